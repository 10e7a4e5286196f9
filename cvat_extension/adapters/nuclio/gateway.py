"""A stand-in for the Nuclio dashboard that runs our function handlers in this process.

Why: CVAT Community talks to Nuclio only through the dashboard's HTTP API (``LambdaGateway``
in ``cvat/apps/lambda_manager/views.py``). Answering those few calls lets a CVAT without
Nuclio or Docker use our functions: point ``CVAT_NUCLIO_HOST``/``CVAT_NUCLIO_PORT`` (on both
``cvat_server`` and ``cvat_worker_annotation``) at ``cvat-track serve-functions``.

What CVAT calls, and what we answer:

- ``GET /api/functions`` with ``x-nuclio-project-name: cvat`` → a dict keyed by function name,
  each ``{metadata: {name, namespace, labels, annotations}, spec: {description, ...},
  status: {state: "ready", httpPort}}``; the annotations are function.yaml's, as strings
  (Nuclio stores them as a string map). Another project name gets ``{}``.
- ``GET /api/functions/<name>`` → that record, 404 if unknown.
- ``POST /api/function_invocations`` with ``x-nuclio-function-name: <name>`` (and
  ``x-nuclio-path``) → the handler's response: status, content type and body as the handler
  produced them (``nuclio_sdk.Response.from_entrypoint_output`` semantics).
- ``POST /`` (CVAT's ``direct`` invoke method, which knows only ``status.httpPort``) is served
  when exactly one function is loaded.

Handlers run as under Nuclio: ``main.py`` is imported and ``init_context`` called once, on the
first invocation (listing never loads a model); then ``handler(context, event)`` with real
``nuclio_sdk.Event``/``Context`` objects. Like a function deployed with ``numWorkers: 1``,
calls to one function are serialised; different functions run concurrently. The function's
environment (function.yaml ``spec.env`` < manifest ``env`` < this process's environment <
manifest ``weights.local``) is applied while ``main.py`` is imported and ``init_context`` runs.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import logging
import os
import threading
import traceback
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

from cvat_extension._deps import require
from cvat_extension.adapters.nuclio.manifest import (
    FunctionEntry,
    load_function_yaml,
    load_manifest,
)
from cvat_extension.errors import ConfigError

__all__ = ["FunctionGateway", "FunctionRuntime", "serve"]

logger = logging.getLogger(__name__)

#: The Nuclio project CVAT lists (``x-nuclio-project-name``); ours are all deployed there.
PROJECT = "cvat"
#: Largest request body accepted (the functions' ``maxRequestBodySize``).
MAX_BODY_BYTES = 33554432

_ENV_LOCK = threading.Lock()  # os.environ is process-wide: one function initialises at a time


@contextmanager
def _patched_environ(values: Mapping[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


@dataclass
class FunctionRuntime:
    """One function: its configuration, and its handler once loaded (lazily)."""

    entry: FunctionEntry
    config: dict[str, Any]
    _module: ModuleType | None = None
    _context: Any = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def loaded(self) -> bool:
        return self._module is not None

    def environment(self) -> dict[str, str]:
        """The handler's environment (see the module docstring for the precedence)."""
        env: dict[str, str] = {}
        for item in (self.config.get("spec") or {}).get("env") or []:
            if isinstance(item, Mapping) and item.get("name") and "value" in item:
                env[str(item["name"])] = str(item["value"])
        env.update(self.entry.env)
        env.update({k: os.environ[k] for k in env if k in os.environ})
        if self.entry.weights_env and self.entry.weights_env in os.environ:
            env[self.entry.weights_env] = os.environ[self.entry.weights_env]
        env.update(self.entry.handler_env())
        return env

    def record(self, *, port: int, namespace: str) -> dict[str, Any]:
        """The dashboard's description of this function (what ``LambdaFunction`` reads)."""
        meta = self.config.get("metadata") or {}
        spec = self.config.get("spec") or {}
        annotations = {
            str(k): v if isinstance(v, str) else json.dumps(v) if isinstance(v, (list, dict)) else str(v).lower() if isinstance(v, bool) else str(v)
            for k, v in (meta.get("annotations") or {}).items()
        }
        return {
            "metadata": {
                "name": self.name,
                "namespace": namespace,
                "labels": {"nuclio.io/project-name": PROJECT},
                "annotations": annotations,
            },
            "spec": {
                "description": str(spec.get("description", "")),
                "handler": spec.get("handler", "main:handler"),
                "runtime": spec.get("runtime", "python"),
                "minReplicas": self.entry.replicas,
                "maxReplicas": self.entry.replicas,
            },
            "status": {"state": "ready", "httpPort": port},
        }

    def user_data(self) -> Any:
        """What ``init_context`` left in ``context.user_data``, loading the handler first."""
        with self._lock:
            if self._module is None:
                self._load()
        return self._context.user_data

    def _load(self) -> None:
        nuclio_sdk = require("nuclio_sdk", extra="models")
        handler_spec = str((self.config.get("spec") or {}).get("handler", "main:handler"))
        module_name, _, _ = handler_spec.partition(":")
        source = self.entry.path / f"{module_name}.py"
        if not source.is_file():
            raise ConfigError(f"{self.entry.function_file}: handler module {source} does not exist")
        spec = importlib.util.spec_from_file_location(f"cvat_function_{self.name.replace('-', '_')}", source)
        assert spec is not None and spec.loader is not None  # the file exists (checked above)
        module = importlib.util.module_from_spec(spec)
        context = nuclio_sdk.Context(
            logger=nuclio_sdk.Logger(logging.DEBUG, name=f"nuclio.{self.name}"),
            worker_id=0,
            trigger=nuclio_sdk.TriggerInfo("http", "myHttpTrigger"),
        )
        with _ENV_LOCK, _patched_environ(self.environment()):
            spec.loader.exec_module(module)
            if hasattr(module, "init_context"):
                module.init_context(context)
        self._module, self._context = module, context
        logger.info("function %s initialised from %s", self.name, source)

    def invoke(
        self, body: bytes, *, content_type: str, headers: Mapping[str, str], path: str
    ) -> tuple[int, str, bytes, dict[str, str]]:
        """Run the handler on one request: ``(status, content type, body, headers)``.

        Failures of ``init_context`` or of the handler become a 500 with a generic JSON body;
        the traceback goes to the log (as Nuclio's processor would do).
        """
        nuclio_sdk = require("nuclio_sdk", extra="models")
        with self._lock:
            try:
                if self._module is None:
                    self._load()
                event = nuclio_sdk.Event(
                    body=_event_body(body, content_type),
                    content_type=content_type,
                    trigger=nuclio_sdk.TriggerInfo("http", "myHttpTrigger"),
                    headers=dict(headers),
                    method="POST",
                    path=path,
                    size=len(body),
                )
                handler_name = str(
                    (self.config.get("spec") or {}).get("handler", "main:handler")
                ).partition(":")[2] or "handler"
                output = getattr(self._module, handler_name)(self._context, event)
                response = nuclio_sdk.Response.from_entrypoint_output(json.dumps, output)
            except Exception as exc:  # noqa: BLE001 - the boundary: report, never crash
                logger.error("function %s failed: %s\n%s", self.name, exc, traceback.format_exc())
                message = {"error": f"function {self.name} failed; see the gateway log"}
                return 500, "application/json", json.dumps(message).encode(), {}
        payload = response["body"]
        data = (
            base64.b64decode(payload)
            if response.get("body_encoding") == "base64"
            else str(payload).encode("utf-8")
        )
        extra = {str(k): str(v) for k, v in (response.get("headers") or {}).items()}
        return int(response["status_code"]), str(response["content_type"]), data, extra


def _event_body(body: bytes, content_type: str) -> Any:
    """What Nuclio's Python wrapper puts in ``event.body``: parsed JSON when it parses."""
    if "json" in content_type.lower():
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return body
    return body


class FunctionGateway:
    """The set of functions served, and the HTTP server answering CVAT."""

    def __init__(self, runtimes: Sequence[FunctionRuntime]) -> None:
        self.runtimes = {r.name: r for r in runtimes}
        self._server: ThreadingHTTPServer | None = None

    @classmethod
    def from_manifest(cls, manifest: str | Path, *, only: Sequence[str] = ()) -> FunctionGateway:
        """Functions listed in ``manifest`` (``serverless.yaml``); nothing is loaded yet.

        Raises:
            ConfigError: a malformed manifest or function.yaml, naming the file.
        """
        entries = load_manifest(manifest, only=only)
        return cls([FunctionRuntime(e, load_function_yaml(e)) for e in entries])

    # ------------------------------------------------------------------ HTTP
    def bind(self, host: str = "0.0.0.0", port: int = 8070) -> ThreadingHTTPServer:
        """Create (not start) the HTTP server; ``port=0`` picks a free port."""
        gateway = self

        class Handler(_RequestHandler):
            pass

        Handler.gateway = gateway
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        return self._server

    @property
    def port(self) -> int:
        assert self._server is not None  # bind() first: internal call order
        return int(self._server.server_address[1])


class _RequestHandler(BaseHTTPRequestHandler):
    gateway: FunctionGateway
    server_version = "cvat-extension-nuclio-gateway"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("%s " + format, self.address_string(), *args)

    def _send(self, status: int, body: bytes, content_type: str = "application/json",
              headers: Mapping[str, str] | None = None) -> None:  # fmt: skip
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for key, value in (headers or {}).items():
            if key.lower() not in ("content-type", "content-length"):
                self.send_header(key, value)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, payload: Any) -> None:
        self._send(status, json.dumps(payload).encode("utf-8"))

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = urlsplit(self.path).path.rstrip("/")
        namespace = self.headers.get("x-nuclio-function-namespace") or "nuclio"
        project = self.headers.get("x-nuclio-project-name")
        runtimes = self.gateway.runtimes if project in (None, "", PROJECT) else {}
        port = self.server.server_address[1]
        if path == "/api/functions":
            self._json(200, {n: r.record(port=port, namespace=namespace) for n, r in runtimes.items()})
        elif path.startswith("/api/functions/"):
            name = unquote(path[len("/api/functions/") :])
            if name in runtimes:
                self._json(200, runtimes[name].record(port=port, namespace=namespace))
            else:
                self._json(404, {"error": f"function {name!r} not found"})
        elif path in ("/api/healthz", "/healthz"):
            self._json(200, {"status": "ok", "functions": sorted(self.gateway.runtimes)})
        else:
            self._json(404, {"error": f"no such endpoint: GET {path or '/'}"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = urlsplit(self.path).path.rstrip("/")
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._json(413, {"error": f"request body over {MAX_BODY_BYTES} bytes"})
            return
        body = self.rfile.read(length) if length else b""
        if path == "/api/function_invocations":
            name = self.headers.get("x-nuclio-function-name")
            if not name:
                self._json(400, {"error": "x-nuclio-function-name header is missing"})
                return
        elif path == "" and len(self.gateway.runtimes) == 1:
            name = next(iter(self.gateway.runtimes))
        else:
            self._json(404, {"error": f"no such endpoint: POST {path or '/'}"})
            return
        runtime = self.gateway.runtimes.get(name)
        if runtime is None:
            self._json(404, {"error": f"function {name!r} not found"})
            return
        status, content_type, data, headers = runtime.invoke(
            body,
            content_type=self.headers.get("Content-Type") or "application/octet-stream",
            headers={k: v for k, v in self.headers.items()},
            path=self.headers.get("x-nuclio-path") or "/",
        )
        self._send(status, data, content_type, headers)


def serve(gateway: FunctionGateway, *, host: str = "0.0.0.0", port: int = 8070) -> None:
    """Serve until interrupted (blocking)."""
    server = gateway.bind(host, port)
    logger.info("serving %s on %s:%d", ", ".join(gateway.runtimes) or "no functions", host, gateway.port)
    try:
        server.serve_forever()
    finally:
        server.server_close()
