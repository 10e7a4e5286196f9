"""A CVAT stand-in: a real HTTP server on loopback that speaks the subset of CVAT's REST API
that ``cvat_extension`` uses, with CVAT's JSON, so tests can drive it through ``cvat-sdk``.

What the JSON looks like and why (read from CVAT and from the generated SDK models, which
validate every response, so a missing or mistyped field breaks the client):

* Serializers (``cvat/apps/engine/serializers.py``): ``JobReadSerializer`` (``issues`` and
  ``labels`` are ``{"url", "count"}`` / ``{"url"}`` summaries, ``assignee`` is a
  ``BasicUser`` or null, ``status`` is read-only), ``TaskReadSerializer`` (``jobs`` is
  ``{"count", "completed", "validation", "url"}``), ``IssueReadSerializer`` (``comments`` is
  ``{"count", "url"}``, verified in ``../shared/cvat-interfaces.md`` section 6),
  ``DataMetaReadSerializer`` and ``LabelSerializer``. Nullable fields are sent as null,
  never left out, as DRF does.
* Pagination (``cvat/apps/engine/pagination.py``, DRF ``PageNumberPagination``): ``count``,
  absolute ``next``/``previous`` URLs or null, ``results``; ``page_size`` defaults to 10;
  an out-of-range page is ``404 {"detail": "Invalid page."}``.
* Filters (``cvat/apps/engine/filters.py``): simple equality filters per view
  (``JobViewSet.simple_filters``: ``task_id, project_id, stage, state, type, assignee``
  (by username) ...), ``filter=`` JSON-logic with ``and, or, !, !!, var, ==, <, <=, >,
  >=, in`` (``in`` with a list is membership, with a string operand is "contains") and the
  three-operand ``<=`` "between"; an unknown field is
  ``400 ["filter: 'x' term is not supported"]``; ``sort=`` takes field names, ``-`` for
  descending.
* Errors are DRF's: ``{"detail": "..."}`` for 401/403/404/405, a list or a field dict for
  400 validation errors.
* Auth (``cvat/apps/iam``, cvat-sdk ``Client.login`` in 2.80): ``POST /api/auth/login``
  returns ``{"key"}`` and sets ``sessionid`` and ``csrftoken`` cookies (the SDK asserts
  both and then sends ``X-CSRFToken``); unsafe methods authenticated by session cookie
  need that header (403 "CSRF Failed" otherwise). Personal access tokens arrive as
  ``Authorization: Bearer <pat>`` (``Configuration.auth_settings`` of the SDK); login keys as
  ``Authorization: Token <key>``; basic auth works too. ``GET /api/server/about`` needs no
  auth, everything else answers 401 ``{"detail": "Authentication credentials were not
  provided."}`` without credentials.
* Frames (``cvat/apps/engine/views.py``, data endpoints): ``type=frame&number=N``; a
  number outside the task is ``400 "The frame number should be in the [0, N] range"``
  (CVAT issue #7269 quotes it), outside a job is ``400 "Incorrect requested frame
  number: N"``. Job endpoints use task frame numbers.
* Chunks (``views.py`` ``_TaskDataGetter``/``_JobDataGetter``, ``frame_provider.py``
  ``TaskFrameProvider.get_chunk``/``JobFrameProvider.get_chunk``): ``type=chunk&number=N
  &quality=original|compressed``. Task chunk ``N`` holds task frames ``N*chunk_size`` to
  ``min((N+1)*chunk_size, size) - 1`` (``data_chunk_size`` of the task, ``chunk_size`` of
  ``data/meta``). For image tasks (``data_original_chunk_type``/``data_compressed_chunk_type``
  ``"imageset"``) a chunk is a zip (``application/zip``) whose members are named
  ``{index in chunk:06d}.{ext}`` in frame order (``ZipChunkWriter``: original files as
  uploaded; ``ZipCompressedChunkWriter``: re-encoded JPEG, ``.jpeg``); video tasks
  (``"video"``) get mp4 chunks (``video/mp4``; ``Mpeg4ChunkWriter``: one H.264 ``yuv420p``
  stream at 25 fps, width/height padded up to even, ``compressed`` halved until the height is
  under 1080). The stand-in writes them with OpenCV's ``mp4v`` (MPEG-4 part 2, the encoder the
  opencv wheels carry) with the same padding and downscale: a client decoding through FFmpeg
  sees the same container, frame count and sizes, only another codec. A video task's
  ``type=frame`` is that frame decoded from its chunk, sent as PNG (``VIDEO_FRAME_MIME``,
  ``_av_frame_to_png_bytes`` in ``frame_provider.py``). A chunk number out
  of range is ``400 "Invalid chunk number 'N'. The chunk number should be in the [0, M]
  range"``. On a job, ``number`` keeps the *task* chunk numbering limited to the job's frames
  (allowed range: the task chunks holding the job's first and last frame), while ``index``
  (newer CVAT) counts the job's own chunks from 0; ``number`` and ``index`` together are
  ``400 "Number and Index cannot be used together"``. Real CVAT also sends
  ``X-Checksum``/``X-Updated-Date`` headers on chunks; the stand-in omits them.
* Issues (``IssueWriteSerializer``): ``frame``, ``position``, ``job``, ``message`` are
  required; the message becomes the first comment; the frame must lie in the job.

Test-only controls are Python methods (``seed_user``, ``seed_task``, ``inject_fault``,
``edit_as_user``, ``request_log``); none of them is reachable over HTTP.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import json
import logging
import re
import secrets
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from .annotations import AnnotationError, IdCollision, Json
from .store import STAGES, STATES, Issue, Job, Store, Task, User

__all__ = ["CvatStandin", "Fault", "LoggedRequest"]

logger = logging.getLogger(__name__)

_ABOUT_NAME = "Computer Vision Annotation Tool"


class HttpError(Exception):
    def __init__(self, status: int, body: Any) -> None:
        super().__init__(f"{status}: {body}")
        self.status = status
        self.body = body


def _not_found() -> HttpError:
    return HttpError(404, {"detail": "Not found."})


def _iso(t: dt.datetime | None) -> str | None:
    if t is None:
        return None
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Fault:
    """An injected failure: the ``on_call``-th matching request (1-based) and the next
    ``times - 1`` ones fail. ``status`` is an HTTP status or ``"timeout"`` (the server
    waits ``delay_s`` and closes the connection without answering). ``when="after"``
    applies the request first and fails only the answer: the write happened although the
    client saw an error, the nastiest case for a sync loop."""

    method: str
    path_regex: re.Pattern[str]
    status: int | str
    on_call: int
    times: int
    when: str
    delay_s: float
    seen: int = 0
    fired: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.method in ("*", method) and bool(self.path_regex.search(path))


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: str
    status: int | str


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in two writes; without TCP_NODELAY the second one waits
        # for the client's delayed ACK (~40 ms a request on Linux loopback).
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        logger.debug("standin: " + format, *args)

    def _dispatch(self) -> None:
        self.server.standin._handle(self)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    standin: CvatStandin

    def handle_error(self, request: object, client_address: object) -> None:
        """Stay quiet when a client hangs up (timeouts we inject, pooled connections closed
        by cvat-sdk); anything else is a stand-in bug and is printed as before."""
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class CvatStandin:
    """The server object. Start with :meth:`start` (or use it as a context manager).

    Args:
        version: what ``/api/server/about`` reports; ``"2.80.0"`` keeps cvat-sdk 2.80 from
            warning, ``"2.73.1"`` is what section 6 was verified against.
        page_size: default page size of list endpoints (CVAT's is 10).
    """

    def __init__(self, *, version: str = "2.80.0", page_size: int = 10) -> None:
        self.version = version
        self.page_size = page_size
        self.store = Store()
        self.request_log: list[LoggedRequest] = []
        self._faults: list[Fault] = []
        self._webhooks: dict[int, Json] = {}
        self._outbox: list[tuple[Json, bytes]] = []
        self._deliveries: list[threading.Thread] = []
        #: ``{"webhook_id", "event", "status"}`` per delivery attempt (status None: no answer).
        self.webhook_deliveries: list[Json] = []
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None
        from .lambda_manager import LambdaManager  # CVAT's lambda manager: lambda_manager.py

        self.lambda_manager = LambdaManager(self)
        self._routes = self._build_routes()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> CvatStandin:
        httpd = _Server(("127.0.0.1", 0), _Handler)
        httpd.standin = self
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), name="cvat-standin",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> CvatStandin:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the stand-in is not started")
        return int(self._httpd.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # ------------------------------------------------------------------ test controls
    def seed_user(self, username: str, password: str = "password", *, is_superuser: bool = False,
                  first_name: str = "", last_name: str = "", email: str = "") -> int:
        with self.store.lock:
            return self.store.add_user(username, password, is_superuser=is_superuser,
                                       first_name=first_name, last_name=last_name,
                                       email=email).id

    def create_access_token(self, user_id: int) -> str:
        """A personal access token for ``Authorization: Bearer``."""
        with self.store.lock:
            if user_id not in self.store.users:
                raise KeyError(f"no user {user_id}")
            token = secrets.token_urlsafe(24)
            self.store.access_tokens[token] = user_id
            return token

    def seed_project(self, name: str, *, owner: int | None = None) -> int:
        with self.store.lock:
            return self.store.add_project(name, owner or self._first_user()).id

    def seed_task(
        self,
        name: str,
        labels: Sequence[Json],
        frames: Sequence[str | Path] | tuple[int, int, int],
        *,
        segment_size: int = 0,
        overlap: int | None = None,
        project: int | None = None,
        owner: int | None = None,
        mode: str = "annotation",
        chunk_size: int = 72,
        chunk_type: str = "imageset",
    ) -> int:
        """Create a task with its jobs as CVAT does; returns the task id.

        Args:
            labels: ``[{"name", "type"?, "attributes"?: [{"name", "mutable"?, "input_type"?,
                "values"?, "default_value"?}]}]``.
            frames: image file paths (served as stored), or ``(n, width, height)`` to serve
                generated PNGs.
            segment_size: frames per job; 0 means one job.
            overlap: frames shared by consecutive jobs; ``None`` (not sent) gives CVAT's
                default, 5 for ``mode="interpolation"`` (video) and 0 otherwise, and any
                value is capped at ``segment_size // 2`` (``store.effective_segment_params``).
            mode: ``"annotation"`` (image task) or ``"interpolation"`` (video task).
            chunk_size: frames per data chunk (``data_chunk_size``).
            chunk_type: ``"imageset"`` (zip chunks) or ``"video"`` (mp4 chunks, as CVAT serves
                for video tasks).
        """
        if chunk_size < 1 or chunk_type not in ("imageset", "video"):
            raise ValueError(f"bad chunk settings {chunk_size!r}, {chunk_type!r}")
        if isinstance(frames, tuple) and len(frames) == 3 and all(isinstance(v, int)
                                                                   for v in frames):
            n, w, h = frames
            frame_rows = [{"name": f"frame_{i:06d}.png", "width": w, "height": h}
                          for i in range(n)]
        else:
            from PIL import Image

            frame_rows = []
            for p in frames:
                path = Path(p)
                with Image.open(path) as im:
                    w, h = im.size
                frame_rows.append({"name": path.name, "width": w, "height": h,
                                   "path": str(path)})
        with self.store.lock:
            if project is not None and project not in self.store.projects:
                raise KeyError(f"no project {project}")
            task = self.store.add_task(name, owner or self._first_user(), labels, frame_rows,
                                       segment_size=segment_size, overlap=overlap,
                                       project_id=project, mode=mode)
            task.chunk_size, task.chunk_type = chunk_size, chunk_type
            return task.id

    def job_ids(self, task_id: int) -> list[int]:
        with self.store.lock:
            return [j.id for j in self.store.task_jobs(task_id)]

    def label_id(self, task_id: int, name: str) -> int:
        with self.store.lock:
            for lb in self.store.labels_of(self.store.tasks[task_id]):
                if lb["name"] == name:
                    return int(lb["id"])
        raise KeyError(f"task {task_id} has no label {name!r}")

    def inject_fault(self, method: str, path_regex: str, *, status: int | str = 500,
                     on_call: int = 1, times: int = 1, when: str = "before",
                     delay_s: float = 1.0) -> Fault:
        """Fail matching requests; see :class:`Fault`. ``method`` may be ``"*"``."""
        if status != "timeout" and not (isinstance(status, int) and 400 <= status <= 599):
            raise ValueError(f"status must be an HTTP error code or 'timeout', got {status!r}")
        if when not in ("before", "after"):
            raise ValueError(f"when must be 'before' or 'after', got {when!r}")
        fault = Fault(method.upper(), re.compile(path_regex), status, on_call, times, when,
                      delay_s)
        with self.store.lock:
            self._faults.append(fault)
        return fault

    def clear_faults(self) -> None:
        with self.store.lock:
            self._faults.clear()

    def calls(self, method: str | None = None, path_regex: str | None = None) -> int:
        """How many logged requests match (handy for "API calls per task" assertions)."""
        rx = re.compile(path_regex) if path_regex else None
        return sum(1 for r in self.request_log
                   if (method is None or r.method == method) and (rx is None or rx.search(r.path)))

    def edit_as_user(self, job_id: int, data: Json, *, action: str | None = "update",
                     username: str | None = None) -> Json:
        """Change a job's annotations as a human in the CVAT UI would (PUT when ``action`` is
        None, else PATCH ``create|update|delete``), moving the job's ``updated_date``.
        Use it to simulate an edit between a client's read and its write."""
        del username  # CVAT records no author on annotation rows
        with self.store.lock:
            if job_id not in self.store.jobs:
                raise KeyError(f"no job {job_id}")
            result = self._write(lambda: self.store.write_job(job_id, data, action))
        self._flush_webhooks()
        return result

    def job_annotations(self, job_id: int) -> Json:
        """The job's stored annotations, as ``GET /api/jobs/{id}/annotations/`` returns them."""
        with self.store.lock:
            return self.store.read_job(job_id)

    def set_job(self, job_id: int, *, stage: str | None = None, state: str | None = None,
                assignee: int | None = None) -> None:
        """Set a job's stage/state/assignee directly (as an admin in the UI would)."""
        with self.store.lock:
            body: Json = {}
            if stage is not None:
                body["stage"] = stage
            if state is not None:
                body["state"] = state
            if assignee is not None:
                body["assignee"] = assignee
            self._patch_job(self.store.jobs[job_id], body)
        self._flush_webhooks()

    def _first_user(self) -> int:
        if not self.store.users:
            raise RuntimeError("seed a user first")
        return min(self.store.users)

    # ------------------------------------------------------------------ request handling
    def _handle(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        path, query = split.path, split.query
        method = h.command
        length = int(h.headers.get("Content-Length") or 0)
        body = h.rfile.read(length) if length else b""
        fault = self._take_fault(method, path)
        if fault is not None and fault.when == "before":
            self._fail(h, fault, method, path, query)
            return
        try:
            status, payload, headers = self._route(h, method, path, query, body)
        except HttpError as exc:
            status, payload, headers = exc.status, exc.body, {}
        except Exception:  # a bug in the stand-in must look like a CVAT 500, not hang
            logger.exception("stand-in failed on %s %s", method, path)
            status, payload, headers = 500, {"detail": "stand-in internal error"}, {}
        if fault is not None:
            self._fail(h, fault, method, path, query)
            return
        # Deliveries start before the answer so that wait_for_webhooks() sees them; they run
        # on their own threads, as CVAT's run in a worker.
        self._flush_webhooks()
        with self.store.lock:
            self.request_log.append(LoggedRequest(method, path, query, status))
        self._send(h, status, payload, headers)

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self.store.lock:
            for f in self._faults:
                if f.matches(method, path):
                    f.seen += 1
                    if f.seen >= f.on_call and f.fired < f.times:
                        f.fired += 1
                        return f
        return None

    def _fail(self, h: _Handler, fault: Fault, method: str, path: str, query: str) -> None:
        with self.store.lock:
            self.request_log.append(LoggedRequest(method, path, query, fault.status))
        if fault.status == "timeout":
            time.sleep(fault.delay_s)
            h.close_connection = True
            try:
                h.connection.shutdown(2)
            except OSError:
                pass
            return
        self._send(h, int(fault.status), {"detail": f"injected fault {fault.status}"}, {})

    def _send(self, h: _Handler, status: int, payload: Any, headers: dict[str, Any]) -> None:
        if isinstance(payload, (bytes, bytearray)):
            data = bytes(payload)
            ctype = headers.pop("Content-Type", "application/octet-stream")
        elif payload is None:
            data = b""
            ctype = "application/json"
        else:
            data = json.dumps(payload).encode()
            ctype = "application/json"
        try:
            h.send_response(status)
            h.send_header("Content-Type", ctype)
            h.send_header("Content-Length", str(len(data)))
            h.send_header("Vary", "Accept, Origin, Cookie")
            for k, v in headers.items():
                for item in v if isinstance(v, list) else [v]:
                    h.send_header(k, item)
            h.end_headers()
            if h.command != "HEAD":
                h.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass

    # ------------------------------------------------------------------ routing
    def _build_routes(self) -> list[tuple[re.Pattern[str], dict[str, Callable[..., Any]], bool]]:
        r: list[tuple[str, dict[str, Callable[..., Any]], bool]] = [
            (r"/api/server/about", {"GET": self._about}, False),
            (r"/api/auth/login", {"POST": self._login}, False),
            (r"/api/auth/logout", {"POST": self._logout, "GET": self._logout}, False),
            (r"/api/users/self", {"GET": self._users_self}, True),
            (r"/api/users", {"GET": self._users_list}, True),
            (r"/api/users/(?P<id>\d+)", {"GET": self._users_get}, True),
            (r"/api/projects", {"GET": self._projects_list}, True),
            (r"/api/projects/(?P<id>\d+)", {"GET": self._projects_get}, True),
            (r"/api/tasks", {"GET": self._tasks_list}, True),
            (r"/api/tasks/(?P<id>\d+)", {"GET": self._tasks_get}, True),
            (r"/api/tasks/(?P<id>\d+)/annotations/?",
             {"GET": self._task_ann_get, "PUT": self._task_ann_put,
              "PATCH": self._task_ann_patch, "DELETE": self._task_ann_delete}, True),
            (r"/api/tasks/(?P<id>\d+)/data/meta", {"GET": self._task_meta}, True),
            (r"/api/tasks/(?P<id>\d+)/data/?", {"GET": self._task_data}, True),
            (r"/api/labels", {"GET": self._labels_list}, True),
            (r"/api/labels/(?P<id>\d+)", {"GET": self._labels_get}, True),
            (r"/api/jobs", {"GET": self._jobs_list}, True),
            (r"/api/jobs/(?P<id>\d+)", {"GET": self._jobs_get, "PATCH": self._jobs_patch}, True),
            (r"/api/jobs/(?P<id>\d+)/annotations/?",
             {"GET": self._job_ann_get, "PUT": self._job_ann_put,
              "PATCH": self._job_ann_patch, "DELETE": self._job_ann_delete}, True),
            (r"/api/jobs/(?P<id>\d+)/data/meta", {"GET": self._job_meta}, True),
            (r"/api/jobs/(?P<id>\d+)/data/?", {"GET": self._job_data}, True),
            (r"/api/issues", {"GET": self._issues_list, "POST": self._issues_create}, True),
            (r"/api/issues/(?P<id>\d+)", {"GET": self._issues_get, "PATCH": self._issues_patch,
                                          "DELETE": self._issues_delete}, True),
            (r"/api/comments", {"GET": self._comments_list, "POST": self._comments_create}, True),
            (r"/api/webhooks", {"GET": self._webhooks_list, "POST": self._webhooks_create}, True),
            (r"/api/webhooks/(?P<id>\d+)", {"GET": self._webhooks_get,
                                            "DELETE": self._webhooks_delete}, True),
            (r"/api/comments/(?P<id>\d+)", {"GET": self._comments_get,
                                            "DELETE": self._comments_delete}, True),
            *self.lambda_manager.routes(),
        ]
        return [(re.compile(p + r"\Z"), m, a) for p, m, a in r]

    def _route(self, h: _Handler, method: str, path: str, query: str,
               body: bytes) -> tuple[int, Any, dict[str, Any]]:
        for rx, methods, needs_auth in self._routes:
            m = rx.match(path)
            if m is None:
                continue
            if method == "OPTIONS":
                return 200, {"name": path}, {"Allow": ", ".join(methods)}
            handler = methods.get(method)
            if handler is None:
                raise HttpError(405, {"detail": f"Method \"{method}\" not allowed."})
            ctx = _Ctx(self, h, method, path, parse_qs(query, keep_blank_values=True), body,
                       {k: int(v) if v.isdigit() else v for k, v in m.groupdict().items()})
            if needs_auth:
                ctx.user = self._authenticate(h, method)
            with self.store.lock:
                result = handler(ctx)
            status, payload = result if isinstance(result, tuple) else (200, result)
            return status, payload, ctx.headers
        raise _not_found()

    def _authenticate(self, h: _Handler, method: str) -> User:
        auth = h.headers.get("Authorization", "")
        with self.store.lock:
            if auth:
                scheme, _, cred = auth.partition(" ")
                scheme = scheme.lower()
                uid: int | None = None
                if scheme == "bearer":
                    uid = self.store.access_tokens.get(cred.strip())
                elif scheme == "token":
                    uid = self.store.tokens.get(cred.strip())
                elif scheme == "basic":
                    try:
                        user, _, pw = base64.b64decode(cred).decode().partition(":")
                    except (ValueError, UnicodeDecodeError):
                        raise HttpError(401, {"detail": "Invalid basic header."}) from None
                    found = next((u for u in self.store.users.values()
                                  if u.username == user and u.password == pw), None)
                    if found is None:
                        raise HttpError(401, {"detail": "Invalid username/password."})
                    return found
                if uid is None:
                    raise HttpError(401, {"detail": "Invalid token."})
                return self.store.users[uid]
            cookies = _parse_cookies(h.headers.get("Cookie", ""))
            session = self.store.sessions.get(cookies.get("sessionid", ""))
            if session is not None:
                uid, csrf = session
                if method not in ("GET", "HEAD", "OPTIONS") and \
                        h.headers.get("X-CSRFToken") != csrf:
                    raise HttpError(403, {"detail": "CSRF Failed: CSRF token missing."})
                return self.store.users[uid]
        raise HttpError(401, {"detail": "Authentication credentials were not provided."})

    # ------------------------------------------------------------------ serializers
    def _abs(self, ctx: _Ctx | None, path: str) -> str:
        host = (ctx.h.headers.get("Host") if ctx is not None else None) or f"127.0.0.1:{self.port}"
        return f"http://{host}{path}"

    def _basic_user(self, ctx: _Ctx, uid: int | None) -> Json | None:
        if uid is None or uid not in self.store.users:
            return None
        u = self.store.users[uid]
        return {"url": self._abs(ctx, f"/api/users/{u.id}"), "id": u.id, "username": u.username,
                "first_name": u.first_name, "last_name": u.last_name}

    def _user_json(self, ctx: _Ctx, u: User) -> Json:
        return {
            "url": self._abs(ctx, f"/api/users/{u.id}"), "id": u.id, "username": u.username,
            "first_name": u.first_name, "last_name": u.last_name, "email": u.email,
            "groups": list(u.groups), "is_staff": u.is_superuser,
            "is_superuser": u.is_superuser, "is_active": True,
            "last_login": _iso(u.last_login), "date_joined": _iso(u.date_joined),
            "has_analytics_access": u.is_superuser,
        }

    def _storage(self) -> Json:
        return {"id": 1, "location": "local", "cloud_storage_id": None}

    def _task_json(self, ctx: _Ctx, t: Task) -> Json:
        jobs = self.store.task_jobs(t.id)
        project = self.store.projects.get(t.project_id) if t.project_id else None
        return {
            "url": self._abs(ctx, f"/api/tasks/{t.id}"), "id": t.id, "name": t.name,
            "project_id": t.project_id, "project_name": project.name if project else None,
            "mode": t.mode, "owner": self._basic_user(ctx, t.owner_id),
            "assignee": self._basic_user(ctx, t.assignee_id), "bug_tracker": "",
            "created_date": _iso(t.created_date), "updated_date": _iso(t.updated_date),
            "overlap": t.overlap, "segment_size": t.segment_size or t.size,
            "status": _task_status(jobs), "data_chunk_size": t.chunk_size,
            "data_compressed_chunk_type": t.chunk_type, "data_original_chunk_type": t.chunk_type,
            "data_cloud_storage_id": None, "guide_id": None, "size": t.size,
            "image_quality": t.image_quality, "data": t.data_id, "dimension": "2d",
            "subset": "", "organization": None, "organization_id": None,
            "target_storage": self._storage(), "source_storage": self._storage(),
            "jobs": {"count": len(jobs),
                     "completed": sum(j.state == "completed" for j in jobs),
                     "validation": sum(j.stage == "validation" for j in jobs),
                     "url": self._abs(ctx, f"/api/jobs?task_id={t.id}")},
            "labels": {"url": self._abs(ctx, f"/api/labels?task_id={t.id}")},
            "assignee_updated_date": None, "validation_mode": None, "media_type": "video" if t.chunk_type == "video" else "image",
        }

    def _job_json(self, ctx: _Ctx, j: Job) -> Json:
        t = self.store.tasks[j.task_id]
        project = self.store.projects.get(t.project_id) if t.project_id else None
        n_issues = sum(1 for i in self.store.issues.values() if i.job_id == j.id)
        return {
            "url": self._abs(ctx, f"/api/jobs/{j.id}"), "id": j.id, "task_id": t.id,
            "task_name": t.name, "project_id": t.project_id,
            "project_name": project.name if project else None,
            "assignee": self._basic_user(ctx, j.assignee_id), "guide_id": None,
            "dimension": "2d", "bug_tracker": None, "status": j.status, "stage": j.stage,
            "state": j.state, "mode": t.mode, "frame_count": j.frame_count,
            "start_frame": j.start_frame, "stop_frame": j.stop_frame,
            "data_chunk_size": t.chunk_size, "data_compressed_chunk_type": t.chunk_type,
            "data_original_chunk_type": t.chunk_type, "created_date": _iso(j.created_date),
            "updated_date": _iso(j.updated_date),
            "issues": {"url": self._abs(ctx, f"/api/issues?job_id={j.id}"), "count": n_issues},
            "labels": {"url": self._abs(ctx, f"/api/labels?job_id={j.id}")},
            "type": j.type, "organization": None, "target_storage": self._storage(),
            "source_storage": self._storage(),
            "assignee_updated_date": _iso(j.assignee_updated_date), "parent_job_id": None,
            "consensus_replicas": 0, "media_type": "video" if t.chunk_type == "video" else "image",
        }

    def _issue_json(self, ctx: _Ctx, i: Issue) -> Json:
        n = sum(1 for c in self.store.comments.values() if c.issue_id == i.id)
        return {
            "id": i.id, "frame": i.frame, "position": list(i.position), "job": i.job_id,
            "owner": self._basic_user(ctx, i.owner_id),
            "assignee": self._basic_user(ctx, i.assignee_id),
            "created_date": _iso(i.created_date), "updated_date": _iso(i.updated_date),
            "resolved": i.resolved,
            "comments": {"count": n, "url": self._abs(ctx, f"/api/comments?issue_id={i.id}")},
        }

    def _comment_json(self, ctx: _Ctx, c: Any) -> Json:
        return {"id": c.id, "issue": c.issue_id, "owner": self._basic_user(ctx, c.owner_id),
                "message": c.message, "created_date": _iso(c.created_date),
                "updated_date": _iso(c.updated_date)}

    def _paginate(self, ctx: _Ctx, rows: list[Json]) -> Json:
        try:
            page = int(ctx.q("page") or 1)
            size_raw = ctx.q("page_size")
            size = self.page_size if not size_raw else int(size_raw)
        except ValueError:
            raise _not_found() from None
        size = max(1, size)
        count = len(rows)
        pages = max(1, -(-count // size))
        if page < 1 or page > pages:
            raise HttpError(404, {"detail": "Invalid page."})

        def link(p: int) -> str:
            params = {k: v[-1] for k, v in ctx.query.items()}
            params["page"] = str(p)
            return self._abs(ctx, ctx.path + "?" + urlencode(params))

        return {"count": count, "next": link(page + 1) if page < pages else None,
                "previous": link(page - 1) if page > 1 else None,
                "results": rows[(page - 1) * size: page * size]}

    def _list(self, ctx: _Ctx, rows: list[Json], simple: dict[str, Callable[[Json], Any]],
              fields: dict[str, Callable[[Json], Any]]) -> Json:
        """Simple filters, JSON-logic ``filter``, ``sort``, then pagination."""
        for name, getter in simple.items():
            value = ctx.q(name)
            if value is not None and value != "":
                rows = [r for r in rows if _loose_eq(getter(r), value)]
        raw = ctx.q("filter")
        if raw:
            try:
                rule = json.loads(raw)
            except json.JSONDecodeError:
                raise HttpError(400, ["filter: Json syntax should be used"]) from None
            if not rule:
                raise HttpError(400, ["filter shouldn't be empty"])
            rows = [r for r in rows if _json_logic(rule, r, fields)]
        sort = ctx.q("sort")
        if sort:
            for key in reversed([s.strip() for s in sort.split(",") if s.strip()]):
                desc = key.startswith("-")
                name = key.lstrip("-")
                getter = fields.get(name)
                if getter is None:
                    raise HttpError(400, [f"sort: '{name}' term is not supported"])
                rows = sorted(rows, key=lambda r, g=getter: _sort_key(g(r)), reverse=desc)
        return self._paginate(ctx, rows)

    # ------------------------------------------------------------------ endpoints: server/auth
    def _about(self, ctx: _Ctx) -> Json:
        return {"name": _ABOUT_NAME, "description": "CVAT stand-in for tests",
                "version": self.version, "logo_url": self._abs(ctx, "/static/logo.svg"),
                "subtitle": "Open Data Annotation Platform"}

    def _login(self, ctx: _Ctx) -> Json:
        body = ctx.json()
        username = body.get("username") or body.get("email")
        user = next((u for u in self.store.users.values()
                     if (u.username == username or u.email == username)
                     and u.password == body.get("password")), None)
        if user is None:
            raise HttpError(400, {"non_field_errors":
                                  ["Unable to log in with provided credentials."]})
        key = secrets.token_hex(20)
        self.store.tokens[key] = user.id
        session, csrf = secrets.token_hex(16), secrets.token_hex(16)
        self.store.sessions[session] = (user.id, csrf)
        user.last_login = self.store.tick()
        ctx.headers["Set-Cookie"] = [f"csrftoken={csrf}; Path=/; SameSite=Lax",
                                     f"sessionid={session}; HttpOnly; Path=/; SameSite=Lax"]
        return {"key": key}

    def _logout(self, ctx: _Ctx) -> Json:
        cookies = _parse_cookies(ctx.h.headers.get("Cookie", ""))
        self.store.sessions.pop(cookies.get("sessionid", ""), None)
        auth = ctx.h.headers.get("Authorization", "")
        if auth.lower().startswith("token "):
            self.store.tokens.pop(auth[6:].strip(), None)
        ctx.headers["Set-Cookie"] = ["csrftoken=; Max-Age=0; Path=/",
                                     "sessionid=; Max-Age=0; Path=/"]
        return {"detail": "Successfully logged out."}

    def _users_self(self, ctx: _Ctx) -> Json:
        assert ctx.user is not None  # _route authenticated this endpoint
        return self._user_json(ctx, ctx.user)

    def _users_list(self, ctx: _Ctx) -> Json:
        rows = [self._user_json(ctx, u) for u in sorted(self.store.users.values(),
                                                         key=lambda u: u.id)]
        f = {k: (lambda r, k=k: r[k]) for k in ("id", "username", "first_name", "last_name",
                                                  "is_active")}
        return self._list(ctx, rows, {k: f[k] for k in ("username", "first_name", "last_name",
                                                        "is_active")}, f)

    def _users_get(self, ctx: _Ctx) -> Json:
        u = self.store.users.get(ctx.args["id"])
        if u is None:
            raise _not_found()
        return self._user_json(ctx, u)

    # ------------------------------------------------------------------ projects, tasks, labels
    def _project_json(self, ctx: _Ctx, p: Any) -> Json:
        tasks = [t for t in self.store.tasks.values() if t.project_id == p.id]
        return {
            "url": self._abs(ctx, f"/api/projects/{p.id}"), "id": p.id, "name": p.name,
            "owner": self._basic_user(ctx, p.owner_id), "assignee": None, "guide_id": None,
            "bug_tracker": "", "task_subsets": [], "created_date": _iso(p.created_date),
            "updated_date": _iso(p.updated_date), "status": "annotation", "dimension": "2d",
            "organization": None, "organization_id": None, "target_storage": self._storage(),
            "source_storage": self._storage(), "assignee_updated_date": None,
            "tasks": {"count": len(tasks), "url": self._abs(ctx, f"/api/tasks?project_id={p.id}")},
            "labels": {"url": self._abs(ctx, f"/api/labels?project_id={p.id}")},
        }

    def _projects_list(self, ctx: _Ctx) -> Json:
        rows = [self._project_json(ctx, p) for p in sorted(self.store.projects.values(),
                                                            key=lambda p: p.id)]
        f = {"id": lambda r: r["id"], "name": lambda r: r["name"]}
        return self._list(ctx, rows, {"name": f["name"]}, f)

    def _projects_get(self, ctx: _Ctx) -> Json:
        p = self.store.projects.get(ctx.args["id"])
        if p is None:
            raise _not_found()
        return self._project_json(ctx, p)

    def _task(self, ctx: _Ctx) -> Task:
        t = self.store.tasks.get(ctx.args["id"])
        if t is None:
            raise _not_found()
        return t

    def _tasks_list(self, ctx: _Ctx) -> Json:
        rows = [self._task_json(ctx, t) for t in sorted(self.store.tasks.values(),
                                                         key=lambda t: t.id)]
        f = {k: (lambda r, k=k: r[k]) for k in ("id", "name", "project_id", "status", "mode",
                                                  "dimension", "subset", "updated_date")}
        f["owner"] = lambda r: (r["owner"] or {}).get("username")
        f["assignee"] = lambda r: (r["assignee"] or {}).get("username")
        return self._list(ctx, rows, {k: f[k] for k in ("name", "project_id", "status", "mode",
                                                        "owner", "assignee", "subset")}, f)

    def _tasks_get(self, ctx: _Ctx) -> Json:
        return self._task_json(ctx, self._task(ctx))

    def _labels_list(self, ctx: _Ctx) -> Json:
        task_id, job_id, project_id = ctx.q("task_id"), ctx.q("job_id"), ctx.q("project_id")
        if job_id:
            job = self.store.jobs.get(int(job_id))
            if job is None:
                raise _not_found()
            labels = self.store.labels_of(self.store.tasks[job.task_id])
        elif task_id:
            task = self.store.tasks.get(int(task_id))
            if task is None:
                raise _not_found()
            labels = self.store.labels_of(task)
        elif project_id:
            labels = [lb for t in self.store.tasks.values() if t.project_id == int(project_id)
                      for lb in t.labels]
        else:
            labels = [lb for t in self.store.tasks.values() for lb in t.labels]
        seen: dict[int, Json] = {lb["id"]: lb for lb in labels}
        rows = [dict(seen[k]) for k in sorted(seen)]
        f = {k: (lambda r, k=k: r[k]) for k in ("id", "name", "type", "color", "parent_id")}
        return self._list(ctx, rows, {k: f[k] for k in ("name", "type", "color", "parent_id")}, f)

    def _labels_get(self, ctx: _Ctx) -> Json:
        for t in self.store.tasks.values():
            for lb in t.labels:
                if lb["id"] == ctx.args["id"]:
                    return dict(lb)
        raise _not_found()

    # ------------------------------------------------------------------ jobs
    def _job(self, ctx: _Ctx) -> Job:
        j = self.store.jobs.get(ctx.args["id"])
        if j is None:
            raise _not_found()
        return j

    def _jobs_list(self, ctx: _Ctx) -> Json:
        rows = [self._job_json(ctx, j) for j in sorted(self.store.jobs.values(),
                                                        key=lambda j: j.id)]
        f: dict[str, Callable[[Json], Any]] = {
            k: (lambda r, k=k: r[k]) for k in (
                "id", "task_id", "project_id", "stage", "state", "type", "mode", "dimension",
                "task_name", "project_name", "parent_job_id", "updated_date", "media_type",
                "frame_count", "start_frame", "stop_frame")}
        f["assignee"] = lambda r: (r["assignee"] or {}).get("username")
        simple = {k: f[k] for k in ("task_id", "project_id", "stage", "state", "type", "assignee",
                                    "mode", "dimension", "task_name", "project_name",
                                    "parent_job_id")}
        return self._list(ctx, rows, simple, f)

    def _jobs_get(self, ctx: _Ctx) -> Json:
        return self._job_json(ctx, self._job(ctx))

    def _jobs_patch(self, ctx: _Ctx) -> Json:
        job = self._job(ctx)
        self._patch_job(job, ctx.json())
        return self._job_json(ctx, job)

    def _patch_job(self, job: Job, body: Json) -> None:
        """``JobWriteSerializer.update``: a stage change without a state resets it to ``new``."""
        errors: dict[str, list[str]] = {}
        if "stage" in body and body["stage"] not in STAGES:
            errors["stage"] = [f"\"{body['stage']}\" is not a valid choice."]
        if "state" in body and body["state"] not in STATES:
            errors["state"] = [f"\"{body['state']}\" is not a valid choice."]
        if "assignee" in body and body["assignee"] is not None and \
                body["assignee"] not in self.store.users:
            errors["assignee"] = [f"Invalid pk \"{body['assignee']}\" - object does not exist."]
        if errors:
            raise HttpError(400, errors)
        before = {"stage": job.stage, "state": job.state,
                  "assignee": self._basic_user(None, job.assignee_id),
                  "updated_date": _iso(job.updated_date)}
        if "stage" in body and body["stage"] != job.stage:
            job.stage = body["stage"]
            if "state" not in body:
                job.state = "new"
        if "state" in body:
            job.state = body["state"]
        t = self.store.tick()
        if "assignee" in body and body["assignee"] != job.assignee_id:
            job.assignee_id = body["assignee"]
            job.assignee_updated_date = t
        job.updated_date = t
        after = {"stage": job.stage, "state": job.state,
                 "assignee": self._basic_user(None, job.assignee_id)}
        changed = {k: v for k, v in before.items() if k == "updated_date" or after[k] != v}
        self._emit("update:job", "job", self._job_json(None, job),
                   self.store.tasks[job.task_id].project_id, changed)

    # ------------------------------------------------------------------ annotations
    def _action(self, ctx: _Ctx) -> str:
        action = ctx.q("action")
        if action not in ("create", "update", "delete"):
            raise HttpError(400, [f"Please specify a correct 'action' for the request: {action}"])
        return action

    def _write(self, fn: Callable[[], Json]) -> Json:
        """Run an annotation write; saving annotations ``touch()``-es the job, which CVAT's
        ``post_save`` signal turns into ``update:job`` with only ``updated_date`` changed."""
        stamps = {j.id: j.updated_date for j in self.store.jobs.values()}
        try:
            result = fn()
        except AnnotationError as exc:
            raise HttpError(400, exc.detail) from None
        except IdCollision as exc:
            raise HttpError(500, {"detail": str(exc)}) from None
        for job in self.store.jobs.values():
            if job.id in stamps and job.updated_date != stamps[job.id]:
                self._emit("update:job", "job", self._job_json(None, job),
                           self.store.tasks[job.task_id].project_id,
                           {"updated_date": _iso(stamps[job.id])})
        return result

    def _job_ann_get(self, ctx: _Ctx) -> Json:
        return self.store.read_job(self._job(ctx).id)

    def _job_ann_put(self, ctx: _Ctx) -> Json:
        job = self._job(ctx)
        return self._write(lambda: self.store.write_job(job.id, ctx.json(), None))

    def _job_ann_patch(self, ctx: _Ctx) -> Json:
        job = self._job(ctx)
        action = self._action(ctx)
        return self._write(lambda: self.store.write_job(job.id, ctx.json(), action))

    def _job_ann_delete(self, ctx: _Ctx) -> tuple[int, None]:
        job = self._job(ctx)
        self._write(lambda: self._clear_job(job))
        return 204, None

    def _clear_job(self, job: Job) -> Json:
        return self.store.write_job(job.id, {"tags": [], "shapes": [], "tracks": []}, None)

    def _task_ann_get(self, ctx: _Ctx) -> Json:
        return self.store.read_task(self._task(ctx).id)

    def _task_ann_put(self, ctx: _Ctx) -> Json:
        task = self._task(ctx)
        return self._write(lambda: self.store.write_task(task.id, ctx.json(), None))

    def _task_ann_patch(self, ctx: _Ctx) -> Json:
        task = self._task(ctx)
        action = self._action(ctx)
        return self._write(lambda: self.store.write_task(task.id, ctx.json(), action))

    def _task_ann_delete(self, ctx: _Ctx) -> tuple[int, None]:
        task = self._task(ctx)
        for job in self.store.task_jobs(task.id):
            self._clear_job(job)
        return 204, None

    # ------------------------------------------------------------------ data
    def _meta(self, ctx: _Ctx, task: Task, start: int, stop: int) -> Json:
        return {
            "chunks_updated_date": _iso(task.created_date), "chunk_size": task.chunk_size,
            "size": stop - start + 1, "image_quality": task.image_quality,
            "start_frame": start, "stop_frame": stop, "frame_filter": "",
            "frames": [{"name": f["name"], "width": f["width"], "height": f["height"],
                        "related_files": 0, "has_related_context": False}
                       for f in task.frames[start: stop + 1]],
            "deleted_frames": [], "included_frames": None, "chapters": None,
            "storage": "local", "cloud_storage_id": None,
        }

    def _task_meta(self, ctx: _Ctx) -> Json:
        task = self._task(ctx)
        return self._meta(ctx, task, 0, task.size - 1)

    def _job_meta(self, ctx: _Ctx) -> Json:
        job = self._job(ctx)
        return self._meta(ctx, self.store.tasks[job.task_id], job.start_frame, job.stop_frame)

    def _frame(self, ctx: _Ctx, task: Task, lo: int, hi: int, in_job: bool) -> tuple[int, bytes]:
        kind = ctx.q("type")
        if kind != "frame":
            raise HttpError(400, [f"Unsupported data type: {kind} (only 'frame' and 'chunk' are served)"])
        quality = ctx.q("quality") or "compressed"
        if quality not in ("original", "compressed"):
            raise HttpError(400, ["Wrong quality value"])
        try:
            number = int(ctx.q("number") or "")
        except ValueError:
            raise HttpError(400, ["The frame number must be an integer"]) from None
        if not 0 <= number < task.size:
            raise HttpError(400, [f"The frame number should be in the [0, {task.size - 1}] range"])
        if in_job and not lo <= number <= hi:
            raise HttpError(400, [f"Incorrect requested frame number: {number}"])
        if task.chunk_type == "video":
            data, ctype = _video_frame_png(task, number, quality), "image/png"
        else:
            data, ctype = _frame_bytes(task, number, quality)
        ctx.headers["Content-Type"] = ctype
        return 200, data

    def _chunk(self, ctx: _Ctx, task: Task, lo: int, hi: int, in_job: bool) -> tuple[int, bytes]:
        """A zip (image task) or mp4 (video task) chunk, numbered as CVAT does (module docstring)."""
        import zipfile

        quality = ctx.q("quality") or "compressed"
        if quality not in ("original", "compressed"):
            raise HttpError(400, ["Wrong quality value"])
        number_text, index_text = ctx.q("number"), ctx.q("index") if in_job else None
        if number_text and index_text:
            raise HttpError(400, ["Number and Index cannot be used together"])
        if not (number_text or index_text):
            raise HttpError(400, ["Number or Index is not specified" if in_job
                                  else "Number is not specified"])
        try:
            value = int(number_text or index_text or "")
        except ValueError:
            raise HttpError(400, ["The chunk number must be an integer"]) from None
        size = task.chunk_size
        if index_text:  # job-relative chunks
            first, last = 0, (hi - lo) // size
            start = lo + value * size
        else:
            first, last = (lo // size, hi // size) if in_job else (0, (task.size - 1) // size)
            start = value * size
        if not first <= value <= last:
            raise HttpError(400, [(f"Invalid chunk number '{value}'. "
                                   f"The chunk number should be in the [{first}, {last}] range")])
        frames = range(max(start, lo), min(start + size - 1, hi) + 1)
        if task.chunk_type == "video":
            ctx.headers["Content-Type"] = "video/mp4"
            return 200, _mp4_chunk(task, frames, quality)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
            for idx, number in enumerate(frames):
                data, ctype = _frame_bytes(task, number, quality)
                zf.writestr(f"{idx:06d}{'.png' if ctype == 'image/png' else '.jpeg'}", data)
        ctx.headers["Content-Type"] = "application/zip"
        return 200, buf.getvalue()

    def _task_data(self, ctx: _Ctx) -> tuple[int, bytes]:
        task = self._task(ctx)
        if ctx.q("type") == "chunk":
            return self._chunk(ctx, task, 0, task.size - 1, False)
        return self._frame(ctx, task, 0, task.size - 1, False)

    def _job_data(self, ctx: _Ctx) -> tuple[int, bytes]:
        job = self._job(ctx)
        task = self.store.tasks[job.task_id]
        if ctx.q("type") == "chunk":
            return self._chunk(ctx, task, job.start_frame, job.stop_frame, True)
        return self._frame(ctx, task, job.start_frame, job.stop_frame, True)

    # ------------------------------------------------------------------ issues and comments
    def _issue(self, ctx: _Ctx) -> Issue:
        i = self.store.issues.get(ctx.args["id"])
        if i is None:
            raise _not_found()
        return i

    def _issues_list(self, ctx: _Ctx) -> Json:
        rows = [self._issue_json(ctx, i) for i in sorted(self.store.issues.values(),
                                                          key=lambda i: i.id)]
        task_of = {j.id: j.task_id for j in self.store.jobs.values()}
        f: dict[str, Callable[[Json], Any]] = {
            "id": lambda r: r["id"], "job_id": lambda r: r["job"],
            "frame_id": lambda r: r["frame"], "resolved": lambda r: r["resolved"],
            "task_id": lambda r: task_of.get(r["job"]),
            "assignee": lambda r: (r["assignee"] or {}).get("username"),
            "owner": lambda r: (r["owner"] or {}).get("username"),
            "updated_date": lambda r: r["updated_date"],
        }
        return self._list(ctx, rows, {k: f[k] for k in ("job_id", "task_id", "frame_id",
                                                        "resolved", "assignee", "owner")}, f)

    def _issues_create(self, ctx: _Ctx) -> tuple[int, Json]:
        body = ctx.json()
        missing = {k: ["This field is required."] for k in ("frame", "position", "job", "message")
                   if k not in body}
        if missing:
            raise HttpError(400, missing)
        job = self.store.jobs.get(body["job"]) if isinstance(body["job"], int) else None
        if job is None:
            raise HttpError(400, {"job": [f"Invalid pk \"{body['job']}\" - object does not exist."]})
        frame = body["frame"]
        if not isinstance(frame, int) or not job.start_frame <= frame <= job.stop_frame:
            raise HttpError(400, [f"The frame number should be in the "
                                  f"[{job.start_frame}, {job.stop_frame}] range"])
        position = body["position"]
        if not isinstance(position, list) or not position or \
                not all(isinstance(v, (int, float)) for v in position):
            raise HttpError(400, {"position": ["Expected a non-empty list of numbers."]})
        assignee = body.get("assignee")
        if assignee is not None and assignee not in self.store.users:
            raise HttpError(400, {"assignee": [f"Invalid pk \"{assignee}\" - object does not exist."]})
        assert ctx.user is not None  # authenticated route
        t = self.store.tick()
        issue = Issue(self.store.next_id("issue"), job.id, frame, [float(v) for v in position],
                      ctx.user.id, t, t, assignee, bool(body.get("resolved", False)))
        self.store.issues[issue.id] = issue
        self._add_comment(issue.id, ctx.user.id, str(body["message"]))
        self._emit("create:issue", "issue", self._issue_json(None, issue),
                   self.store.tasks[job.task_id].project_id)
        return 201, self._issue_json(ctx, issue)

    def _add_comment(self, issue_id: int, owner_id: int, message: str) -> Any:
        from .store import Comment

        t = self.store.tick()
        c = Comment(self.store.next_id("comment"), issue_id, owner_id, message, t, t)
        self.store.comments[c.id] = c
        return c

    def _issues_get(self, ctx: _Ctx) -> Json:
        return self._issue_json(ctx, self._issue(ctx))

    def _issues_patch(self, ctx: _Ctx) -> Json:
        issue = self._issue(ctx)
        body = ctx.json()
        if "position" in body:
            issue.position = [float(v) for v in body["position"]]
        if "assignee" in body:
            if body["assignee"] is not None and body["assignee"] not in self.store.users:
                raise HttpError(400, {"assignee": [f"Invalid pk \"{body['assignee']}\" - "
                                                   "object does not exist."]})
            issue.assignee_id = body["assignee"]
        if "resolved" in body:
            issue.resolved = bool(body["resolved"])
        issue.updated_date = self.store.tick()
        job = self.store.jobs[issue.job_id]
        self._emit("update:issue", "issue", self._issue_json(None, issue),
                   self.store.tasks[job.task_id].project_id,
                   {k: v for k, v in body.items() if k in ("position", "assignee", "resolved")})
        return self._issue_json(ctx, issue)

    def _issues_delete(self, ctx: _Ctx) -> tuple[int, None]:
        issue = self._issue(ctx)
        del self.store.issues[issue.id]
        for cid in [c.id for c in self.store.comments.values() if c.issue_id == issue.id]:
            del self.store.comments[cid]
        return 204, None

    def _comments_list(self, ctx: _Ctx) -> Json:
        rows = [self._comment_json(ctx, c) for c in sorted(self.store.comments.values(),
                                                            key=lambda c: c.id)]
        task_of = {j.id: j.task_id for j in self.store.jobs.values()}
        job_of = {i.id: i.job_id for i in self.store.issues.values()}
        f: dict[str, Callable[[Json], Any]] = {
            "id": lambda r: r["id"], "issue_id": lambda r: r["issue"],
            "job_id": lambda r: job_of.get(r["issue"]),
            "task_id": lambda r: task_of.get(job_of.get(r["issue"], -1)),
            "owner": lambda r: (r["owner"] or {}).get("username"),
        }
        return self._list(ctx, rows, {k: f[k] for k in ("issue_id", "job_id", "task_id",
                                                        "owner")}, f)

    def _comments_create(self, ctx: _Ctx) -> tuple[int, Json]:
        body = ctx.json()
        missing = {k: ["This field is required."] for k in ("issue", "message") if k not in body}
        if missing:
            raise HttpError(400, missing)
        if body["issue"] not in self.store.issues:
            raise HttpError(400, {"issue": [f"Invalid pk \"{body['issue']}\" - "
                                            "object does not exist."]})
        assert ctx.user is not None  # authenticated route
        c = self._add_comment(body["issue"], ctx.user.id, str(body["message"]))
        return 201, self._comment_json(ctx, c)

    def _comments_get(self, ctx: _Ctx) -> Json:
        c = self.store.comments.get(ctx.args["id"])
        if c is None:
            raise _not_found()
        return self._comment_json(ctx, c)

    def _comments_delete(self, ctx: _Ctx) -> tuple[int, None]:
        if self.store.comments.pop(ctx.args["id"], None) is None:
            raise _not_found()
        return 204, None


    # ------------------------------------------------------------------ webhooks
    def _webhook_json(self, ctx: _Ctx | None, w: Json) -> Json:
        """``WebhookReadSerializer``: the secret is never returned."""
        hidden = {"secret", "owner_id"}
        if w["last_delivery_date"] is None:  # not nullable in the schema: left out until sent
            hidden |= {"last_status", "last_delivery_date"}
        return {
            **{k: v for k, v in w.items() if k not in hidden},
            "url": self._abs(ctx, f"/api/webhooks/{w['id']}"),
            "owner": self._basic_user(ctx, w["owner_id"]),
        }

    def _webhooks_create(self, ctx: _Ctx) -> tuple[int, Json]:
        """``WebhookWriteSerializer``: ``project`` webhooks need ``project_id``."""
        body = ctx.json()
        missing = {k: ["This field is required."] for k in ("target_url", "type", "events")
                   if k not in body}
        if missing:
            raise HttpError(400, missing)
        if body["type"] not in ("project", "organization"):
            raise HttpError(400, {"type": [f"\"{body['type']}\" is not a valid choice."]})
        if body["type"] == "project" and body.get("project_id") not in self.store.projects:
            raise HttpError(400, {"project_id": ["A project webhook needs an existing project."]})
        assert ctx.user is not None  # authenticated route
        t = self.store.tick()
        w = {"id": self.store.next_id("webhook"), "target_url": body["target_url"],
             "description": body.get("description", ""), "type": body["type"],
             "content_type": body.get("content_type", "application/json"),
             "is_active": bool(body.get("is_active", True)),
             "enable_ssl": bool(body.get("enable_ssl", True)),
             "created_date": _iso(t), "updated_date": _iso(t), "owner_id": ctx.user.id,
             "project_id": body.get("project_id"), "organization": None,
             "events": list(body["events"]), "last_status": 0, "last_delivery_date": None,
             "secret": body.get("secret", "")}
        self._webhooks[w["id"]] = w
        return 201, self._webhook_json(ctx, w)

    def _webhooks_list(self, ctx: _Ctx) -> Json:
        rows = [self._webhook_json(ctx, w) for _, w in sorted(self._webhooks.items())]
        f = {k: (lambda r, k=k: r[k]) for k in ("id", "type", "project_id", "target_url")}
        return self._list(ctx, rows, {"type": f["type"], "project_id": f["project_id"]}, f)

    def _webhooks_get(self, ctx: _Ctx) -> Json:
        w = self._webhooks.get(ctx.args["id"])
        if w is None:
            raise _not_found()
        return self._webhook_json(ctx, w)

    def _webhooks_delete(self, ctx: _Ctx) -> tuple[int, None]:
        if self._webhooks.pop(ctx.args["id"], None) is None:
            raise _not_found()
        return 204, None

    def _emit(self, event: str, resource: str, obj: Json, project_id: int | None,
              before_update: Json | None = None) -> None:
        """Queue ``{event, <resource>, before_update?, sender, webhook_id}`` for every active
        webhook subscribed to ``event`` (``cvat/apps/webhooks/signals.py``); sent after the
        response, as CVAT sends from a worker after the transaction commits."""
        sender = self._basic_user(None, self._first_user()) if self.store.users else None
        for w in self._webhooks.values():
            if not w["is_active"] or event not in w["events"]:
                continue
            if w["type"] == "project" and w["project_id"] != project_id:
                continue
            payload: Json = {"event": event, resource: obj, "sender": sender,
                             "webhook_id": w["id"]}
            if before_update is not None:
                payload["before_update"] = before_update
            self._outbox.append((w, json.dumps(payload).encode()))

    def _flush_webhooks(self) -> None:
        with self.store.lock:
            outbox, self._outbox = self._outbox, []
        for w, data in outbox:
            thread = threading.Thread(target=self._deliver, args=(w, data), daemon=True)
            thread.start()
            self._deliveries.append(thread)

    def _deliver(self, w: Json, data: bytes) -> None:
        import hmac
        import urllib.error
        import urllib.request

        headers = {"Content-Type": "application/json"}
        if w["secret"]:
            digest = hmac.new(w["secret"].encode(), data, "sha256").hexdigest()
            headers["X-Signature-256"] = f"sha256={digest}"
        request = urllib.request.Request(w["target_url"], data=data, headers=headers,
                                         method="POST")
        status: int | None
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = None
        with self.store.lock:
            w["last_status"] = status or 0
            w["last_delivery_date"] = _iso(self.store.tick())
            self.webhook_deliveries.append({"webhook_id": w["id"],
                                            "event": json.loads(data)["event"],
                                            "status": status})

    def wait_for_webhooks(self, timeout_s: float = 5.0) -> None:
        """Block until every queued webhook delivery has finished (tests only)."""
        deadline = time.monotonic() + timeout_s
        for thread in list(self._deliveries):
            thread.join(max(0.0, deadline - time.monotonic()))


class _Ctx:
    """One request as the endpoint functions see it."""

    def __init__(self, standin: CvatStandin, h: _Handler, method: str, path: str,
                 query: dict[str, list[str]], body: bytes, args: dict[str, Any]) -> None:
        self.standin = standin
        self.h = h
        self.method = method
        self.path = path
        self.query = query
        self.body = body
        self.args = args
        self.user: User | None = None
        self.headers: dict[str, Any] = {}

    def q(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def json(self) -> Any:
        if not self.body:
            return {}
        try:
            return json.loads(self.body)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HttpError(400, {"detail": f"JSON parse error - {exc}"}) from None


def _task_status(jobs: list[Job]) -> str:
    if jobs and all(j.status == "completed" for j in jobs):
        return "completed"
    if any(j.status == "validation" for j in jobs):
        return "validation"
    return "annotation"


def _parse_cookies(header: str) -> dict[str, str]:
    out = {}
    for part in header.split(";"):
        k, sep, v = part.strip().partition("=")
        if sep:
            out[k] = v
    return out


def _loose_eq(value: Any, query: str) -> bool:
    """Query strings compare to typed fields the way Django coerces them."""
    if isinstance(value, bool):
        return value == (query.lower() in ("true", "1"))
    if isinstance(value, int):
        try:
            return value == int(query)
        except ValueError:
            return False
    return value is not None and str(value) == query


def _as_datetime(v: Any) -> Any:
    """ISO strings compare as instants, as Django compares ``updated_date`` lookups."""
    if isinstance(v, str) and len(v) >= 10 and v[4:5] == "-" and v[7:8] == "-":
        try:
            t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        except ValueError:
            return v
        return t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)
    return v


def _sort_key(v: Any) -> tuple[int, Any]:
    return (0, "") if v is None else (1, v)


def _json_logic(rule: Any, row: Json, fields: dict[str, Callable[[Json], Any]]) -> bool:
    """Evaluate CVAT's JSON-logic subset (``JsonLogicFilter._build_Q``) on one row."""
    if not isinstance(rule, dict) or len(rule) != 1:
        raise HttpError(400, [f"filter: {rule} is not a valid rule"])
    op, args = next(iter(rule.items()))

    def var(name: Any) -> Any:
        if not isinstance(name, str) or name not in fields:
            raise HttpError(400, [f"filter: '{name}' term is not supported"])
        return fields[name](row)

    def cmp(a: Any, b: Any, fn: Callable[[Any, Any], bool]) -> bool:
        if a is None or b is None:
            return False
        a, b = _as_datetime(a), _as_datetime(b)
        try:
            if isinstance(a, (int, float)) and not isinstance(b, (int, float)):
                b = type(a)(b)
            return bool(fn(a, b))
        except (TypeError, ValueError):
            return False

    if op in ("and", "or"):
        vals = [_json_logic(a, row, fields) for a in args]
        return all(vals) if op == "and" else any(vals)
    if op == "!":
        return not _json_logic(args, row, fields)
    if op == "!!":
        return _json_logic(args, row, fields)
    if op == "var":
        return var(args) is not None
    ops: dict[str, Callable[[Any, Any], bool]] = {
        "==": lambda a, b: a == b, "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
    }
    if op in ops and isinstance(args, list) and len(args) == 2:
        if not isinstance(args[0], dict) or "var" not in args[0]:
            raise HttpError(400, [f"filter: {op} operation with {args} arguments is not implemented"])
        value = var(args[0]["var"])
        if op == "==":
            return value == args[1] if not isinstance(value, int) or isinstance(args[1], int) \
                else _loose_eq(value, str(args[1]))
        return cmp(value, args[1], ops[op])
    if op == "in" and isinstance(args, list) and len(args) == 2:
        if isinstance(args[0], dict):
            return var(args[0]["var"]) in args[1]
        hay = var(args[1]["var"]) if isinstance(args[1], dict) else None
        return hay is not None and str(args[0]) in str(hay)
    if op == "<=" and isinstance(args, list) and len(args) == 3 and isinstance(args[1], dict):
        value = var(args[1]["var"])
        return cmp(value, args[0], lambda a, b: a >= b) and cmp(value, args[2],
                                                                lambda a, b: a <= b)
    raise HttpError(400, [f"filter: {op} operation with {args} arguments is not implemented"])


_FRAME_CACHE: dict[tuple[int, int, int, str], bytes] = {}
_MP4_CACHE: dict[tuple[tuple[Any, ...], str], bytes] = {}
_DECODED_CHUNK: dict[str, Any] = {}
_DECODED_LOCK = threading.Lock()


def _mp4_chunk(task: Task, frames: range, quality: str) -> bytes:
    """The frames as an mp4 the way CVAT's ``Mpeg4ChunkWriter`` shapes it (module docstring)."""
    import tempfile

    import cv2
    import numpy as np
    from PIL import Image

    key = (_chunk_key(task, frames), quality)
    cached = _MP4_CACHE.get(key)
    if cached is not None:
        return cached
    images = []
    for number in frames:
        with Image.open(io.BytesIO(_frame_bytes(task, number, "original")[0])) as im:
            images.append(np.asarray(im.convert("RGB"))[:, :, ::-1])
    h, w = images[0].shape[:2]
    scale = 1
    while quality == "compressed" and h / scale >= 1080:
        scale *= 2
    out_w, out_h = w // scale, h // scale
    out_w, out_h = out_w + out_w % 2, out_h + out_h % 2
    with tempfile.TemporaryDirectory(prefix="standin-mp4-") as tmp:
        path = str(Path(tmp) / "chunk.mp4")
        writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (out_w, out_h))
        if not writer.isOpened():
            raise HttpError(500, ["OpenCV cannot write mp4v video here"])
        try:
            for bgr in images:
                if scale > 1:
                    bgr = cv2.resize(bgr, (w // scale, h // scale), interpolation=cv2.INTER_AREA)
                pad_h, pad_w = out_h - bgr.shape[0], out_w - bgr.shape[1]
                if pad_h or pad_w:
                    bgr = cv2.copyMakeBorder(bgr, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
                writer.write(np.ascontiguousarray(bgr))
        finally:
            writer.release()
        data = Path(path).read_bytes()
    if len(_MP4_CACHE) > 64:
        _MP4_CACHE.clear()
    _MP4_CACHE[key] = data
    return data


def _video_frame_png(task: Task, number: int, quality: str) -> bytes:
    """A video task's frame as CVAT serves it: decoded from its chunk (the last decoded chunk
    is kept, like CVAT's chunk loader), sent as PNG (module docstring), cropped to the task's
    frame size for ``original``."""
    import tempfile

    import cv2

    first = number // task.chunk_size * task.chunk_size
    frames = range(first, min(first + task.chunk_size, task.size))
    key = (_chunk_key(task, frames), quality)
    with _DECODED_LOCK:
        if _DECODED_CHUNK.get("key") != key:
            decoded = []
            with tempfile.TemporaryDirectory(prefix="standin-mp4-") as tmp:
                path = Path(tmp) / "chunk.mp4"
                path.write_bytes(_mp4_chunk(task, frames, quality))
                cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
                try:
                    ok, bgr = cap.read()
                    while ok:
                        decoded.append(bgr)
                        ok, bgr = cap.read()
                finally:
                    cap.release()
            _DECODED_CHUNK.update(key=key, frames=decoded)
        decoded = _DECODED_CHUNK["frames"]
    if number - first >= len(decoded):
        raise HttpError(500, [f"cannot decode frame {number} from its chunk"])
    bgr = decoded[number - first]
    if quality == "original":
        row = task.frames[number]
        bgr = bgr[: int(row["height"]), : int(row["width"])]
    return bytes(cv2.imencode(".png", bgr)[1].tobytes())


def _chunk_key(task: Task, frames: range) -> tuple[Any, ...]:
    """What a chunk's pixels depend on (generated frames are a function of size and number)."""
    return tuple((r["width"], r["height"], r.get("path"), n)
                 for n, r in zip(frames, task.frames[frames.start:frames.stop]))


def _frame_bytes(task: Task, number: int, quality: str) -> tuple[bytes, str]:
    """The stored image file, or a generated PNG (plain colour that changes per frame)."""
    row = task.frames[number]
    if row.get("path"):
        path = Path(row["path"])
        data = path.read_bytes()
        ctype = "image/png" if path.suffix.lower() == ".png" else "image/jpeg"
        if quality == "compressed" and ctype == "image/png":
            return data, ctype
        return data, ctype
    key = (int(row["width"]), int(row["height"]), number, quality)
    data = _FRAME_CACHE.get(key)
    if data is None:
        from PIL import Image

        shade = (number * 37) % 256
        im = Image.new("RGB", (key[0], key[1]), (shade, 128, 255 - shade))
        buf = io.BytesIO()
        if quality == "compressed":
            im.save(buf, format="JPEG", quality=70)
        else:
            im.save(buf, format="PNG")
        data = buf.getvalue()
        _FRAME_CACHE[key] = data
    return data, ("image/jpeg" if quality == "compressed" else "image/png")
