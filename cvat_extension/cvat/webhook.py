"""HTTP receiver for CVAT webhooks: verify the signature, then sync the job that changed.

CVAT signs a webhook with a shared secret: ``X-Signature-256: sha256=<hex HMAC-SHA256(secret,
raw body)>`` (``cvat/apps/webhooks/signals.py``). The receiver checks it on the *raw bytes*
before parsing anything; a missing or wrong signature gets 401 and nothing else happens.

Only ``update:job`` events whose ``before_update`` holds ``state`` or ``stage`` trigger a
sync (of that one job): saving annotations also fires ``update:job`` with just
``updated_date`` changed, and syncing on every save would check half-finished work. Our own
stage changes fire webhooks too; the resulting sync finds the job outside the configured
filter (or unchanged) and does nothing.

Syncs run one at a time on a worker thread, so the HTTP answer (202) is immediate and CVAT
does not time out and re-deliver.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["WebhookServer", "job_to_sync", "signature_for", "verify_signature"]

logger = logging.getLogger(__name__)

MAX_BODY_BYTES = 8 * 1024 * 1024


def signature_for(secret: bytes, body: bytes) -> str:
    """The ``X-Signature-256`` value CVAT sends for ``body``."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def verify_signature(secret: bytes, body: bytes, header: str | None) -> bool:
    """True iff ``header`` is CVAT's signature of ``body`` (constant-time comparison)."""
    if not header or not secret:
        return False
    return hmac.compare_digest(signature_for(secret, body), header.strip())


def job_to_sync(payload: Mapping[str, Any]) -> int | None:
    """The job id an event asks us to sync, or None for events we ignore."""
    if payload.get("event") != "update:job":
        return None
    before = payload.get("before_update") or {}
    if not isinstance(before, Mapping) or not ({"state", "stage"} & set(before)):
        return None
    job = payload.get("job") or {}
    job_id = job.get("id") if isinstance(job, Mapping) else None
    return int(job_id) if isinstance(job_id, int) else None


class WebhookServer:
    """A threaded HTTP server that calls ``sync_job(job_id)`` once per accepted event.

    Args:
        secret: the webhook's shared secret.
        sync_job: called on the worker thread with a job id.
        host: address to bind.
        port: port to bind; 0 picks a free one (see :attr:`port`).
    """

    def __init__(
        self, secret: bytes, sync_job: Callable[[int], Any], *, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        if not secret:
            raise ValueError("WebhookServer needs a non-empty secret")
        self._secret = secret
        self._sync_job = sync_job
        self._queue: queue.Queue[int | None] = queue.Queue()
        self.accepted = 0
        self.rejected = 0
        self.synced = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, fmt: str, *args: Any) -> None:  # route to logging
                logger.debug("webhook %s " + fmt, self.client_address[0], *args)

            def _answer(self, status: int, body: Mapping[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length > MAX_BODY_BYTES:
                    outer.rejected += 1
                    self._answer(413, {"detail": "body too large"})
                    return
                body = self.rfile.read(length)
                if not verify_signature(outer._secret, body, self.headers.get("X-Signature-256")):
                    outer.rejected += 1
                    logger.warning("webhook from %s: bad or missing signature", self.client_address[0])
                    self._answer(401, {"detail": "invalid signature"})
                    return
                try:
                    payload = json.loads(body)
                except json.JSONDecodeError:
                    self._answer(400, {"detail": "body is not JSON"})
                    return
                job_id = job_to_sync(payload) if isinstance(payload, Mapping) else None
                if job_id is None:
                    self._answer(200, {"detail": "ignored"})
                    return
                outer.accepted += 1
                outer._queue.put(job_id)
                self._answer(202, {"detail": "sync queued", "job": job_id})

        self._httpd = ThreadingHTTPServer((host, port), Handler)
        self._worker = threading.Thread(target=self._work, name="webhook-sync", daemon=True)
        self._server_thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port."""
        return int(self._httpd.server_address[1])

    def _work(self) -> None:
        while True:
            job_id = self._queue.get()
            try:
                if job_id is None:
                    return
                self._sync_job(job_id)
                self.synced += 1
            except Exception:
                logger.exception("webhook: sync of job %s failed", job_id)
            finally:
                self._queue.task_done()

    def start(self) -> None:
        """Serve in background threads."""
        self._worker.start()
        self._server_thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._server_thread.start()

    def serve_forever(self) -> None:
        """Serve in this thread until interrupted."""
        self._worker.start()
        try:
            self._httpd.serve_forever()
        finally:
            self.stop()

    def drain(self) -> None:
        """Wait until every queued sync has run (tests)."""
        self._queue.join()

    def stop(self) -> None:
        """Stop serving and let the worker finish the queued syncs."""
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._worker.is_alive():
            self._queue.put(None)
            self._worker.join(timeout=30)
