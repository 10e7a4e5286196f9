"""HTTP receiver for CVAT webhooks: verify the signature, queue the job durably, sync it.

CVAT signs a webhook with a shared secret: ``X-Signature-256: sha256=<hex HMAC-SHA256(secret,
raw body)>`` (``cvat/apps/webhooks/signals.py``). The receiver checks it on the *raw bytes*,
in constant time and whatever bytes the header holds, before parsing anything; a missing or
wrong signature gets 401 and nothing else happens.

Only ``update:job`` events whose ``before_update`` holds ``state`` or ``stage`` trigger a
sync (of that one job): saving annotations also fires ``update:job`` with just
``updated_date`` changed, and syncing on every save would check half-finished work. Our own
stage changes fire webhooks too; the resulting sync finds the job outside the configured
filter (or unchanged) and does nothing.

What the receiver guarantees (served on aiohttp, :mod:`~cvat_extension.adapters.http_server`):

- only ``POST`` on the configured path (405 JSON for other methods there, 404 JSON elsewhere);
  body, header and time limits of the stack; graceful shutdown on SIGTERM/SIGINT;
- a job id must be an integer in 1..2**31-1 (else 400);
- 202 only once the job is in the durable queue (:class:`~cvat_extension.cvat.webhook_queue.
  WebhookQueue`); a re-delivered webhook (same body) is 200 "duplicate" and queued once;
  a full queue is 503 with ``Retry-After``;
- syncs run one at a time on a worker thread, so the answer is immediate and CVAT does not
  time out; jobs queued before a crash are synced when the receiver starts again.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

from cvat_extension.adapters.http_server import (
    HttpLimits,
    ServerThread,
    error_response,
    make_application,
    make_runner,
    read_body,
    run_until_signal,
)
from cvat_extension.cvat.webhook_queue import WebhookQueue

__all__ = ["WebhookServer", "job_to_sync", "signature_for", "verify_signature"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_JOB_ID = 2**31 - 1


def signature_for(secret: bytes, body: bytes) -> str:
    """The ``X-Signature-256`` value CVAT sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | bytes | None) -> bool:
    """True iff ``header`` is CVAT's signature of ``body`` (constant time, any header bytes)."""
    if not header or not secret:
        return False
    given = header if isinstance(header, bytes) else header.encode("utf-8", "surrogateescape")
    return hmac.compare_digest(signature_for(secret, body).encode("ascii"), given.strip())


class BadEventError(ValueError):
    """An event that asks for a sync but names no valid job."""


def job_to_sync(payload: Mapping[str, Any]) -> int | None:
    """The job id an event asks us to sync, or None for events we ignore.

    Raises:
        BadEventError: an ``update:job`` state/stage event whose job id is not an integer in
            1..2**31-1.
    """
    if payload.get("event") != "update:job":
        return None
    before = payload.get("before_update") or {}
    if not isinstance(before, Mapping) or not ({"state", "stage"} & set(before)):
        return None
    job = payload.get("job")
    job_id = job.get("id") if isinstance(job, Mapping) else None
    if isinstance(job_id, bool) or not isinstance(job_id, int) or not 1 <= job_id <= MAX_JOB_ID:
        raise BadEventError(f"job.id must be an integer in 1..{MAX_JOB_ID}")
    return job_id


class WebhookServer:
    """Receives CVAT webhooks and calls ``sync_job(job_id)`` once per accepted delivery.

    Args:
        secret: the webhook's shared secret.
        sync_job: called on the worker thread with a job id.
        host: address to bind.
        port: port to bind; 0 picks a free one (see :attr:`port`).
        path: the only path accepted (the path of the webhook's target URL in CVAT).
        queue: the durable queue; default an in-memory one (tests; the CLI passes a file).
        limits: HTTP limits (default: 8 MB bodies).
    """

    def __init__(
        self,
        secret: bytes,
        sync_job: Callable[[int], Any],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/",
        queue: WebhookQueue | None = None,
        limits: HttpLimits | None = None,
    ) -> None:
        if not secret:
            raise ValueError("WebhookServer needs a non-empty secret")
        if not path.startswith("/"):
            raise ValueError(f"webhook path must start with '/', got {path!r}")
        self._secret = secret
        self._sync_job = sync_job
        self.host, self.path = host, path
        self._want_port = port
        self.queue = queue or WebhookQueue()
        self.limits = limits or HttpLimits(max_body_bytes=MAX_BODY_BYTES)
        self.accepted = 0
        self.rejected = 0
        self.synced = 0
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._stopping = threading.Event()
        self._idle = threading.Condition()
        self._busy = False
        self._worker = threading.Thread(target=self._work, name="webhook-sync", daemon=True)
        self._thread: ServerThread | None = None

    # ------------------------------------------------------------------ HTTP
    async def _start(self) -> int:
        app = make_application(self.limits)
        app.router.add_post(self.path, self._receive)
        self._runner = make_runner(app, self.limits)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._want_port)
        await site.start()
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
        assert server is not None and server.sockets  # started above: internal call order
        self.port = int(server.sockets[0].getsockname()[1])
        if not self._worker.is_alive():
            self._worker.start()
        return self.port

    async def _stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        self._stopping.set()
        self.queue.wake()
        await asyncio.get_running_loop().run_in_executor(None, self._worker.join, 30)

    async def _receive(self, request: web.Request) -> web.Response:
        body = await read_body(request, self.limits)
        if not verify_signature(self._secret, body, request.headers.get("X-Signature-256")):
            self.rejected += 1
            logger.warning("webhook from %s: bad or missing signature", request.remote)
            return error_response(401, "invalid signature")
        try:
            payload = json.loads(body)
        except (ValueError, RecursionError):
            return error_response(400, "body is not JSON")
        if not isinstance(payload, Mapping):
            return error_response(400, "body is not a JSON object")
        try:
            job_id = job_to_sync(payload)
        except BadEventError as exc:
            return error_response(400, str(exc))
        digest = hashlib.sha256(body).hexdigest()
        loop = asyncio.get_running_loop()
        if job_id is None:
            await loop.run_in_executor(None, self.queue.remember, digest)
            return web.json_response({"detail": "ignored"})
        outcome = await loop.run_in_executor(None, self.queue.offer, digest, job_id)
        if outcome == "duplicate":
            return web.json_response({"detail": "duplicate delivery", "job": job_id})
        if outcome == "full":
            return error_response(503, "sync queue is full; retry later", headers={"Retry-After": "30"})
        self.accepted += 1
        return web.json_response({"detail": "sync queued", "job": job_id}, status=202)

    # ------------------------------------------------------------------ worker
    def _work(self) -> None:
        while not self._stopping.is_set():
            item = self.queue.next(timeout_s=0.5)
            if item is None:
                with self._idle:
                    self._idle.notify_all()
                continue
            seq, job_id = item
            with self._idle:
                self._busy = True
            try:
                self._sync_job(job_id)
                self.synced += 1
            except Exception:
                logger.exception("webhook: sync of job %s failed", job_id)
            finally:
                self.queue.done(seq)
                with self._idle:
                    self._busy = False
                    self._idle.notify_all()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> None:
        """Serve in background threads."""
        self._thread = ServerThread(self._start, self._stop)
        self._thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until SIGTERM/SIGINT, then stop gracefully."""
        run_until_signal(self._start, self._stop)

    def drain(self, timeout_s: float = 60.0) -> None:
        """Wait until every queued sync has run (tests)."""
        with self._idle:
            self._idle.wait_for(lambda: not self._busy and self.queue.pending() == 0, timeout_s)

    def stop(self) -> None:
        """Stop serving; a sync in progress finishes, queued ones wait for the next start."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None


def queue_for(path: str | Path | None, **kw: Any) -> WebhookQueue:
    """The receiver's queue at ``path`` (None: in memory)."""
    return WebhookQueue(path or ":memory:", **kw)
