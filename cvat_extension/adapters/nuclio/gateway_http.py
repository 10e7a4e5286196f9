"""The HTTP face of ``cvat-track serve-functions``: CVAT's Nuclio calls, on aiohttp.

What CVAT 2.73 calls (``LambdaGateway`` in ``cvat/apps/lambda_manager/views.py``), and what we
answer:

- ``GET /api/functions`` (header ``x-nuclio-project-name: cvat``) → a dict keyed by function
  name, each ``{metadata: {name, namespace, labels, annotations}, spec: {description, ...},
  status: {state: "ready", httpPort}}``; annotations are function.yaml's, as strings (Nuclio
  stores a string map). Another project name gets ``{}``. ``GET /api/functions/<name>`` → one.
- ``dashboard`` invoke method: ``POST /api/function_invocations`` with
  ``x-nuclio-function-name: <name>`` → the handler's response (status, content type, body).
- ``direct`` invoke method (CVAT's default outside Kubernetes): CVAT POSTs the payload to
  ``http://localhost:<status.httpPort>/`` (``host.docker.internal`` from inside Docker) — one
  port per function, no header naming it. With ``direct_ports`` each function listens on its
  own port and advertises it as ``httpPort``; without, the dashboard port answers ``POST /``
  when exactly one function is served.

Robustness, all enforced before a handler runs (settings in :class:`GatewaySettings`):

- body size, body time, header sizes and idle keep-alive: :class:`HttpLimits` (aiohttp);
- per function, one call runs at a time (as Nuclio's ``numWorkers: 1``) in a worker thread,
  at most ``max_pending`` wait; beyond that → 503 with ``Retry-After``; a call running past the
  function's ``eventTimeout`` → 504 (its thread finishes in the background, still counted);
- optional shared token: without it every request but ``/healthz`` gets 401. Accepted from
  ``X-Gateway-Token``, ``Authorization: Bearer <token>``, or ``x-nuclio-function-namespace``
  (the one header CVAT lets you set, through ``CVAT_NUCLIO_FUNCTION_NAMESPACE``). CVAT's
  ``direct`` calls carry no header, so a token implies the ``dashboard`` method;
- wrong method → 405 JSON with ``Allow``; unknown path → 404 JSON; handler crash → 500 JSON
  with a generic message (the traceback goes to the log).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from cvat_extension.adapters.http_server import (
    FUNCTION_KEY,
    HttpLimits,
    ServerThread,
    error_response,
    make_application,
    make_runner,
    read_body,
    run_until_signal,
    token_matches,
)
from cvat_extension.adapters.nuclio.gateway import PROJECT, FunctionGateway, FunctionRuntime

__all__ = ["GatewayServer", "GatewaySettings"]

logger = logging.getLogger(__name__)

#: Headers never copied from a handler's response (aiohttp sets them).
_HOP_HEADERS = {"content-type", "content-length", "transfer-encoding", "connection"}


@dataclass(frozen=True, slots=True)
class GatewaySettings:
    """How the gateway listens and what it admits.

    Attributes:
        host: address to bind; 127.0.0.1 by default (CVAT on the same host). Binding
            elsewhere exposes the functions to that network: set ``token`` too.
        port: the dashboard port (CVAT_NUCLIO_PORT); 0 picks a free one.
        direct_ports: also give each function its own port for CVAT's ``direct`` method.
        direct_port_base: first of those ports (function i gets base + i); None → port + 1
            (or free ports when ``port`` is 0).
        token: shared secret every request must carry (see the module docstring); None → off.
        max_pending: requests per function allowed to wait while one runs; more → 503.
            Raise it for large batch annotation fan-outs, lower it to shed load sooner.
        limits: body/header/time limits of the HTTP stack.
    """

    host: str = "127.0.0.1"
    port: int = 8070
    direct_ports: bool = False
    direct_port_base: int | None = None
    token: str | None = None
    max_pending: int = 64
    limits: HttpLimits = field(default_factory=HttpLimits)


class _Slot:
    """Admission for one function: one running call, a bounded number waiting."""

    def __init__(self, max_pending: int) -> None:
        self.running = asyncio.Semaphore(1)
        self.admitted = 0
        self.max_admitted = max_pending + 1


class GatewayServer:
    """Serves a :class:`FunctionGateway` over HTTP (dashboard port, optional direct ports)."""

    def __init__(self, gateway: FunctionGateway, settings: GatewaySettings | None = None) -> None:
        self.gateway = gateway
        self.settings = settings or GatewaySettings()
        self.port: int = 0
        self.direct_port: dict[str, int] = {}
        self._runners: list[web.AppRunner] = []
        self._slots: dict[str, _Slot] = {}
        self._executor = ThreadPoolExecutor(
            max_workers=max(1, len(gateway.runtimes)) + 2, thread_name_prefix="function"
        )
        self._thread: ServerThread | None = None
        self._background: set[asyncio.Future[Any]] = set()

    # ------------------------------------------------------------------ lifecycle
    async def start(self) -> int:
        """Bind every port; returns the dashboard port."""
        s = self.settings
        self._slots = {name: _Slot(s.max_pending) for name in self.gateway.runtimes}
        dashboard = make_application(s.limits)
        dashboard.router.add_get("/api/functions", self._list)
        dashboard.router.add_get("/api/functions/{name}", self._get)
        dashboard.router.add_post("/api/function_invocations", self._invoke_dashboard)
        dashboard.router.add_get("/healthz", self._health)
        dashboard.router.add_get("/api/healthz", self._health)
        dashboard.router.add_post("/", self._invoke_single)
        self.port = await self._serve(dashboard, s.port)
        if s.direct_ports:
            for i, name in enumerate(self.gateway.runtimes):
                app = make_application(s.limits)
                app[FUNCTION_KEY] = name
                app.router.add_post("/", self._invoke_direct)
                app.router.add_get("/healthz", self._health)
                want = 0 if s.port == 0 and s.direct_port_base is None else (
                    (s.direct_port_base if s.direct_port_base is not None else self.port + 1) + i
                )
                self.direct_port[name] = await self._serve(app, want)
        logger.info(
            "serving %s on %s:%d%s", ", ".join(self.gateway.runtimes) or "no functions", s.host, self.port,
            "".join(f"; {n} direct on :{p}" for n, p in self.direct_port.items()),
        )
        return self.port

    async def _serve(self, app: web.Application, port: int) -> int:
        runner = make_runner(app, self.settings.limits)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, port)
        await site.start()
        self._runners.append(runner)
        server = site._server  # noqa: SLF001 - aiohttp exposes the bound port only here
        assert server is not None and server.sockets  # started above: internal call order
        return int(server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        """Stop listening, let running calls finish (``shutdown_timeout_s``), free threads."""
        for runner in reversed(self._runners):
            await runner.cleanup()
        self._runners.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def serve_forever(self) -> None:
        """Serve until SIGTERM/SIGINT, then shut down gracefully (blocking)."""
        run_until_signal(self.start, self.stop)

    def start_in_thread(self) -> int:
        """Serve from a background thread (tests, embedding); returns the dashboard port."""
        self._thread = ServerThread(self.start, self.stop)
        return int(self._thread.start())

    def stop_thread(self) -> None:
        """Stop what :meth:`start_in_thread` started."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    # ------------------------------------------------------------------ handlers
    def _authorised(self, request: web.Request) -> bool:
        token = self.settings.token
        if not token:
            return True
        auth = request.headers.get("Authorization", "")
        bearer = auth[7:] if auth[:7].lower() == "bearer " else None
        return any(
            token_matches(token, candidate)
            for candidate in (
                request.headers.get("X-Gateway-Token"),
                bearer,
                request.headers.get("x-nuclio-function-namespace"),
            )
            if candidate is not None
        )

    def _refuse(self, request: web.Request) -> web.Response | None:
        if self._authorised(request):
            return None
        return error_response(401, "missing or wrong gateway token")

    def _advertised_port(self, name: str) -> int:
        return self.direct_port.get(name, self.port)

    def _visible(self, request: web.Request) -> dict[str, FunctionRuntime]:
        project = request.headers.get("x-nuclio-project-name")
        return self.gateway.runtimes if project in (None, "", PROJECT) else {}

    async def _list(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        namespace = request.headers.get("x-nuclio-function-namespace") or "nuclio"
        return web.json_response({
            n: r.record(port=self._advertised_port(n), namespace=namespace)
            for n, r in self._visible(request).items()
        })

    async def _get(self, request: web.Request) -> web.Response:
        if (refused := self._refuse(request)) is not None:
            return refused
        name = request.match_info["name"]
        runtime = self._visible(request).get(name)
        if runtime is None:
            return error_response(404, f"function {name[:100]!r} not found")
        namespace = request.headers.get("x-nuclio-function-namespace") or "nuclio"
        return web.json_response(runtime.record(port=self._advertised_port(name), namespace=namespace))

    async def _health(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "functions": sorted(self.gateway.runtimes)})

    async def _invoke_dashboard(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        name = request.headers.get("x-nuclio-function-name")
        if not name:
            return error_response(400, "x-nuclio-function-name header is missing")
        return await self._invoke(request, name, path=request.headers.get("x-nuclio-path") or "/")

    async def _invoke_single(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        if len(self.gateway.runtimes) != 1:
            return error_response(
                404, "POST / serves a single function; use /api/function_invocations or direct ports"
            )
        return await self._invoke(request, next(iter(self.gateway.runtimes)), path="/")

    async def _invoke_direct(self, request: web.Request) -> web.StreamResponse:
        if (refused := self._refuse(request)) is not None:
            return refused
        return await self._invoke(request, request.app[FUNCTION_KEY], path="/")

    async def _invoke(self, request: web.Request, name: str, *, path: str) -> web.StreamResponse:
        runtime = self.gateway.runtimes.get(name)
        if runtime is None:
            return error_response(404, f"function {name[:100]!r} not found")
        slot = self._slots[name]
        if slot.admitted >= slot.max_admitted:
            return error_response(
                503, f"function {name} is busy ({slot.max_admitted - 1} requests waiting); retry later",
                headers={"Retry-After": "1"},
            )
        slot.admitted += 1
        try:
            body = await read_body(request, self.settings.limits)
            headers = {k: v for k, v in request.headers.items()}
            content_type = request.headers.get("Content-Type") or "application/octet-stream"
            await slot.running.acquire()
            loop = asyncio.get_running_loop()
            if not runtime.loaded:
                # Nuclio runs init_context before the first event, outside eventTimeout.
                try:
                    await loop.run_in_executor(self._executor, runtime.ensure_loaded)
                except BaseException:
                    slot.running.release()
                    raise
            future = loop.run_in_executor(
                self._executor,
                lambda: runtime.invoke(body, content_type=content_type, headers=headers, path=path),
            )
            try:
                status, ctype, data, extra = await asyncio.wait_for(asyncio.shield(future), runtime.event_timeout_s)
            except asyncio.TimeoutError:
                logger.error("function %s: call ran past its %.0f s eventTimeout", name, runtime.event_timeout_s)
                # The thread cannot be killed: it keeps the function's slot until it ends, so
                # concurrency stays bounded, while this caller gets its answer now.
                self._background.add(asyncio.ensure_future(_release_when_done(future, slot.running)))
                return error_response(504, f"function {name} did not answer within its timeout")
            except BaseException:  # cancelled: the thread still runs and keeps the slot
                self._background.add(asyncio.ensure_future(_release_when_done(future, slot.running)))
                raise
            slot.running.release()
        finally:
            slot.admitted -= 1
        return _response(status, ctype, data, extra)


async def _release_when_done(future: Any, semaphore: asyncio.Semaphore) -> None:
    try:
        await future
    except Exception:  # noqa: BLE001 - already reported as a timeout
        logger.debug("timed-out call ended with an error", exc_info=True)
    finally:
        semaphore.release()


def _response(status: int, content_type: str, data: bytes, headers: Mapping[str, str]) -> web.Response:
    mime, _, params = content_type.partition(";")
    charset = None
    for part in params.split(";"):
        key, _, value = part.strip().partition("=")
        if key.lower() == "charset" and value:
            charset = value
    extra = {k: v for k, v in headers.items() if k.lower() not in _HOP_HEADERS}
    return web.Response(status=status, body=data, content_type=mime.strip() or "application/json",
                        charset=charset, headers=extra)
