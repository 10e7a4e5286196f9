"""The one HTTP stack of our network faces (functions gateway, webhook receiver): aiohttp.

Why aiohttp: it enforces what a hostile client can abuse as *settings of the stack* rather
than code of ours — ``client_max_size`` refuses a body while reading it (413, whatever
``Content-Length`` claims), the parser limits request lines, header sizes and counts, the
keep-alive timer closes idle connections, and a connection costs a coroutine, not a thread.
Starlette/uvicorn, the other candidate, has no request body limit at all (encode/starlette
#2155).

What this module adds on top, for both servers:

- :class:`HttpLimits`: the settings, with documented defaults;
- :func:`json_errors`: every error leaves as ``{"error": "..."}`` JSON with a stable shape and
  no internal detail (aiohttp's own 404/405/413 pages are HTML); a 405 keeps its ``Allow``;
- :func:`read_body`: the body, read under the body timeout (408 when a client trickles);
- :class:`ServerThread`: runs an app on a private event loop in a thread (tests, embedding);
- :func:`run_until_signal`: serves until SIGTERM or SIGINT, then shuts down gracefully (stops
  accepting, lets running requests finish for ``shutdown_timeout_s``).

Malformed HTTP (a negative or non-numeric ``Content-Length``, an invalid chunked body) is
answered by aiohttp's parser with its own ``400 Bad Request`` (plain text) before any of our
code runs; no body is read in that case.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import signal
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = [
    "FUNCTION_KEY",
    "MAX_BODY_KEY",
    "HttpLimits",
    "ServerThread",
    "error_response",
    "json_errors",
    "make_application",
    "make_runner",
    "read_body",
    "run_until_signal",
    "token_matches",
]

logger = logging.getLogger(__name__)

#: The application's body limit (for the 413 message).
MAX_BODY_KEY = web.AppKey("max_body_bytes", int)
#: For single-function applications (direct ports): the function's name.
FUNCTION_KEY = web.AppKey("function", str)


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """What one request may cost the server before our code sees it.

    Attributes:
        max_body_bytes: largest request body; longer bodies get 413 while being read.
        body_timeout_s: time allowed to receive a whole body; slower clients get 408.
        idle_timeout_s: a keep-alive connection with no request for this long is closed.
        max_field_bytes: largest request line or header line.
        max_headers: most header lines per request.
        shutdown_timeout_s: on SIGTERM/SIGINT, how long running requests may finish.
    """

    max_body_bytes: int = 32 * 1024 * 1024
    body_timeout_s: float = 30.0
    idle_timeout_s: float = 15.0
    max_field_bytes: int = 8190
    max_headers: int = 64
    shutdown_timeout_s: float = 30.0


def error_response(status: int, message: str, *, headers: Mapping[str, str] | None = None) -> web.Response:
    """``{"error": message}`` with ``status``."""
    return web.json_response({"error": message}, status=status, headers=dict(headers or {}))


_REASONS = {
    404: "no such endpoint",
    405: "method not allowed",
    408: "request body not received in time",
    413: "request body too large",
}


@web.middleware
async def json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> web.StreamResponse:
    """Turn aiohttp's HTTP exceptions and any crash into JSON errors (no internals leak)."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        if exc.status == 413:
            message = f"request body over {request.app.get(MAX_BODY_KEY, '?')} bytes"
        elif exc.status in _REASONS:
            message = f"{_REASONS[exc.status]}: {request.method} {request.path}"
        else:
            message = exc.reason
        return error_response(exc.status, message, headers=headers)
    except asyncio.CancelledError:
        raise
    except Exception:  # noqa: BLE001 - the boundary: log, answer generically, never crash
        logger.exception("request %s %s failed", request.method, request.path)
        return error_response(500, "internal error; see the server log")


async def read_body(request: web.Request, limits: HttpLimits) -> bytes:
    """The whole body, within ``limits`` (413 over size, 408 over time).

    A declared ``Content-Length`` over the limit is refused at once, without waiting for the
    body; aiohttp's ``client_max_size`` refuses any longer body (chunked too) while reading.
    """
    declared = request.content_length
    if declared is not None and declared > limits.max_body_bytes:
        raise web.HTTPRequestEntityTooLarge(max_size=limits.max_body_bytes, actual_size=declared)
    try:
        return await asyncio.wait_for(request.read(), limits.body_timeout_s)
    except asyncio.TimeoutError as exc:
        raise web.HTTPRequestTimeout() from exc
    except web.HTTPException:
        raise
    except Exception as exc:  # noqa: BLE001 - any failure to read a body is the client's
        # The client closed mid-body, or sent a body its own headers contradict (bad chunking,
        # a Content-Encoding that does not decode). A 400 when the socket can still take it.
        raise web.HTTPBadRequest(reason="request body could not be read") from exc


def token_matches(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison of a shared token (any header bytes; None never matches)."""
    if not expected:
        return True
    if given is None:
        return False
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", "surrogateescape"))


def make_application(limits: HttpLimits) -> web.Application:
    """An application with our body limit and JSON errors."""
    app = web.Application(client_max_size=limits.max_body_bytes, middlewares=[json_errors])
    app[MAX_BODY_KEY] = limits.max_body_bytes
    return app


def make_runner(app: web.Application, limits: HttpLimits) -> web.AppRunner:
    """A runner applying the connection-level limits (parser sizes, keep-alive timeout)."""
    return web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        keepalive_timeout=limits.idle_timeout_s,
        max_line_size=limits.max_field_bytes,
        max_field_size=limits.max_field_bytes,
        max_headers=limits.max_headers,
        shutdown_timeout=limits.shutdown_timeout_s,
    )


Starter = Callable[[], Awaitable[Any]]
Stopper = Callable[[], Awaitable[None]]


def run_until_signal(start: Starter, stop: Stopper) -> None:
    """Run ``start()``, serve until SIGTERM or SIGINT, then ``stop()`` (blocking).

    ``stop`` is expected to shut the runners down gracefully (``AppRunner.cleanup``: stop
    listening, let running handlers finish within the shutdown timeout).
    """

    async def main() -> None:
        loop = asyncio.get_running_loop()
        done = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, done.set)
        await start()
        try:
            await done.wait()
            logger.info("signal received: shutting down gracefully")
        finally:
            await stop()

    asyncio.run(main())


class ServerThread:
    """Run ``start``/``stop`` coroutines on a private event loop in a daemon thread.

    ``start()`` runs when the thread starts and :meth:`start` returns its result (e.g. bound
    ports); :meth:`stop` runs ``stop()`` and joins the thread.
    """

    def __init__(self, start: Starter, stop: Stopper) -> None:
        self._start, self._stop = start, stop
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="http-server", daemon=True)

    def start(self, timeout_s: float = 60.0) -> Any:
        self._thread.start()
        return asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout_s)

    def stop(self, timeout_s: float = 60.0) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout_s)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout_s)
            self._loop.close()

    def call(self, fn: Callable[[], Awaitable[Any]], timeout_s: float = 60.0) -> Any:
        """Run a coroutine function on the server's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(fn(), self._loop).result(timeout_s)


def dumps(payload: Any) -> str:
    """Compact JSON (responses we build ourselves)."""
    return json.dumps(payload, separators=(",", ":"))
