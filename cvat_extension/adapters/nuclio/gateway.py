"""The functions we serve, run as under Nuclio: configuration, environment and handler calls.

Why: CVAT Community talks to Nuclio only through the dashboard's HTTP API (``LambdaGateway``
in ``cvat/apps/lambda_manager/views.py``). ``cvat-track serve-functions`` answers those calls
with our handlers (:mod:`~cvat_extension.adapters.nuclio.gateway_http` is the HTTP side);
this module is what it serves:

- :class:`FunctionRuntime`: one function. ``main.py`` is imported and ``init_context`` called
  once, on the first invocation (listing never loads a model); then ``handler(context,
  event)`` with real ``nuclio_sdk.Event``/``Context`` objects. Like a function deployed with
  ``numWorkers: 1``, calls to one function are serialised; different functions run
  concurrently.
- :class:`FunctionGateway`: the set of functions of a manifest.

The function's environment while ``main.py`` is imported and ``init_context`` runs is, from
weakest to strongest: function.yaml ``spec.env`` < the manifest's ``env`` and
``weights.local`` < this process's environment (for the variables the function declares), so
``YOLO_OUTPUT=rectangle cvat-track serve-functions`` wins over a shipped ``YOLO_OUTPUT: auto``.
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
from pathlib import Path
from types import ModuleType
from typing import Any

from cvat_extension._deps import require
from cvat_extension.adapters.nuclio.manifest import (
    FunctionEntry,
    load_function_yaml,
    load_manifest,
)
from cvat_extension.errors import ConfigError

__all__ = ["FunctionGateway", "FunctionRuntime"]

logger = logging.getLogger(__name__)

#: The Nuclio project CVAT lists (``x-nuclio-project-name``); ours are all deployed there.
PROJECT = "cvat"

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
        env.update(self.entry.handler_env())  # manifest env + weights.local
        declared = set(env) | ({self.entry.weights_env} if self.entry.weights_env else set())
        env.update({k: os.environ[k] for k in declared if k in os.environ})
        return env

    @property
    def event_timeout_s(self) -> float:
        """function.yaml ``spec.eventTimeout`` in seconds (Nuclio's default 60 s)."""
        raw = str((self.config.get("spec") or {}).get("eventTimeout") or "60s").strip()
        units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
        for suffix in ("ms", "s", "m", "h"):
            if raw.endswith(suffix):
                try:
                    return float(raw[: -len(suffix)]) * units[suffix]
                except ValueError:
                    break
        raise ConfigError(f"{self.entry.function_file}: spec.eventTimeout {raw!r} is not a duration like 60s")

    def record(self, *, port: int, namespace: str) -> dict[str, Any]:
        # ``port`` is what CVAT's ``direct`` invoke method posts to (``status.httpPort``).
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

    def ensure_loaded(self) -> None:
        """Import ``main.py`` and run ``init_context`` if not done yet.

        Failures are logged and left for :meth:`invoke` to report (a generic 500), as Nuclio
        reports a function whose init failed.
        """
        with self._lock:
            if self._module is None:
                try:
                    self._load()
                except Exception as exc:  # noqa: BLE001 - reported by invoke
                    logger.error("function %s: init failed: %s", self.name, exc)

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
    """What Nuclio's Python wrapper puts in ``event.body``: parsed JSON when it parses.

    JSON nested too deeply to parse (RecursionError) stays bytes; the handler's own decoder
    then answers 400.
    """
    if "json" in content_type.lower():
        try:
            return json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return body
    return body


class FunctionGateway:
    """The set of functions served (see :mod:`~cvat_extension.adapters.nuclio.gateway_http`)."""

    def __init__(self, runtimes: Sequence[FunctionRuntime]) -> None:
        self.runtimes = {r.name: r for r in runtimes}

    @classmethod
    def from_manifest(cls, manifest: str | Path, *, only: Sequence[str] = ()) -> FunctionGateway:
        """Functions listed in ``manifest`` (``serverless.yaml``); nothing is loaded yet.

        Raises:
            ConfigError: a malformed manifest or function.yaml, naming the file.
        """
        entries = load_manifest(manifest, only=only)
        return cls([FunctionRuntime(e, load_function_yaml(e)) for e in entries])


