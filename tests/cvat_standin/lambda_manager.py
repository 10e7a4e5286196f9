"""CVAT's lambda manager in the stand-in: ``/api/lambda/functions`` and ``/api/lambda/requests``.

What CVAT 2.73 does (``cvat/apps/lambda_manager/views.py``, ``serializers.py``, ``urls.py``;
the function side is in ``lambda_functions.py``):

* ``GET /api/lambda/functions`` lists the gateway's functions (``to_dict``: id, kind,
  labels_v2, description, name, version, + interactor/tracker keys); ``GET .../{id}`` one.
* ``POST /api/lambda/functions/{id}`` is one interactive call (``FunctionViewSet.call``):
  ``job`` or ``task`` in the body, the rest passed to the function as described in
  ``lambda_functions``. Detectors answer converted ``{tags, shapes}``; reid the raw matching;
  trackers ``{shapes, states}`` with signed states.
* ``POST /api/lambda/requests`` validates only the body's *shape*
  (``FunctionCallRequestSerializer``), the task, the job and that the function exists, refuses
  a second running request for the task (409), and answers 200 with the queued request. The
  mapping, threshold and the function's answers are checked later, in the worker: a bad
  mapping shows up as ``status: failed`` and an ``exc_info`` traceback in ``GET
  /api/lambda/requests/{id}`` (the "late validation" seen on a real 2.73).
  Detector runs write shapes (``PATCH action=create`` every 100 frames), reid runs link the
  job's or task's rectangles pair by pair into tracks (every box a keyframe, an outside
  keyframe after a path that ends early) and ``PUT`` them; ``cleanup`` deletes the
  annotations first. Request ids read ``action=autoannotate&target=task&target_id=N``.
* Errors leave as ``return_response`` makes them: the status of the failure and a JSON
  *string* body (``400 Client Error: Bad Request for url: ...`` for a function's 400, not the
  function's own body).

Configure with ``standin.lambda_manager.configure(gateway_url, invoke_method=...)``; before
that every lambda endpoint answers 503, as CVAT does when Nuclio is unreachable. The stand-in's
store lock is released while the gateway works, so other requests go on meanwhile.
"""

from __future__ import annotations

import base64
import datetime as dt
import threading
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .lambda_functions import GatewayError, LambdaFunction, NuclioGateway, ValidationError

if TYPE_CHECKING:
    from .server import CvatStandin

Json = Any

__all__ = ["LambdaManager"]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@contextmanager
def _unlocked(lock: Any) -> Iterator[None]:
    """Release the store's RLock (held once by the request) while the gateway works."""
    lock.release()
    try:
        yield
    finally:
        lock.acquire()


@dataclass
class _Request:
    id: str
    function: LambdaFunction
    task: int
    job: int | None
    threshold: float | None
    options: dict[str, Any]
    status: str = "queued"
    progress: int = 0
    enqueued: str = field(default_factory=_now)
    started: str | None = None
    ended: str | None = None
    exc_info: str | None = None
    cancelled: bool = False

    def to_dict(self) -> Json:
        fn: Json = {"id": self.function.id, "threshold": self.threshold, "task": self.task}
        if self.job:
            fn["job"] = self.job
        return {"id": self.id, "function": fn, "status": self.status, "progress": self.progress,
                "enqueued": self.enqueued, "started": self.started, "ended": self.ended, "exc_info": self.exc_info}


class LambdaManager:
    """The lambda endpoints of one stand-in."""

    def __init__(self, standin: CvatStandin) -> None:
        self.standin = standin
        self.gateway: NuclioGateway | None = None
        self._requests: dict[str, _Request] = {}
        self._threads: list[threading.Thread] = []

    def configure(self, gateway_url: str, *, invoke_method: str = "dashboard", namespace: str = "nuclio",
                  timeout_s: float = 120.0) -> None:
        """Point the manager at a Nuclio dashboard (or ``cvat-track serve-functions``)."""
        self.gateway = NuclioGateway(gateway_url, invoke_method=invoke_method, namespace=namespace,
                                     timeout_s=timeout_s)

    def routes(self) -> list[tuple[str, dict[str, Callable[..., Any]], bool]]:
        return [
            (r"/api/lambda/functions/?", {"GET": self._functions_list}, True),
            (r"/api/lambda/functions/(?P<func_id>[a-zA-Z0-9_.-]+)",
             {"GET": self._functions_get, "POST": self._functions_call}, True),
            (r"/api/lambda/requests/?", {"GET": self._requests_list, "POST": self._requests_create}, True),
            (r"/api/lambda/requests/(?P<rid>[^/]+)", {"GET": self._requests_get, "DELETE": self._requests_delete},
             True),
        ]

    def wait(self, timeout_s: float = 60.0) -> None:
        """Wait for every batch request started so far (test helper)."""
        for t in list(self._threads):
            t.join(timeout_s)

    # ------------------------------------------------------------------ plumbing
    def _respond(self, work: Callable[[], Any], *, success: int = 200) -> tuple[int, Any]:
        """``return_response``: errors become (status, message string)."""
        try:
            return success, work()
        except GatewayError as err:
            return err.status, str(err)
        except ValidationError as err:
            return err.code, err.message

    def _gateway(self) -> NuclioGateway:
        if self.gateway is None:
            raise GatewayError(503, "Connection error: the lambda manager has no Nuclio gateway configured")
        return self.gateway

    def _image_of(self, task: Any) -> Callable[[int], str]:
        from .server import _frame_bytes, _video_frame_png

        def image(frame: int) -> str:
            if not 0 <= frame < task.size:
                raise ValidationError(f"Invalid frame {frame}")
            if task.chunk_type == "video":
                data = _video_frame_png(task, frame, "original")
            else:
                data, _ = _frame_bytes(task, frame, "original")
            return base64.b64encode(data).decode()

        return image

    # ------------------------------------------------------------------ functions
    def _functions_list(self, ctx: Any) -> tuple[int, Any]:
        def work() -> Any:
            with _unlocked(self.standin.store.lock):
                return [f.to_dict() for f in self._gateway().list()]

        return self._respond(work)

    def _functions_get(self, ctx: Any) -> tuple[int, Any]:
        def work() -> Any:
            with _unlocked(self.standin.store.lock):
                return self._gateway().get(str(ctx.args["func_id"])).to_dict()

        return self._respond(work)

    def _functions_call(self, ctx: Any) -> tuple[int, Any]:
        func_id = str(ctx.args["func_id"])
        store = self.standin.store
        body = ctx.json()
        if not isinstance(body, dict):
            return 400, f"`{func_id}` lambda function was run with wrong arguments (expected an object)"
        job = None
        try:
            if body.get("job") is not None:
                job = store.jobs[int(body["job"])]
                task_id = job.task_id
            else:
                task_id = int(body["task"])
            task = store.tasks[task_id]
        except KeyError as err:
            return 400, f"`{func_id}` lambda function was run with wrong arguments ({err})"
        except (TypeError, ValueError) as err:
            return 400, f"`{func_id}` lambda function was run with wrong arguments ({err})"
        if job is not None and body.get("task") is not None and int(body["task"]) != task_id:
            return 400, "Job task ID does not match task ID"
        labels = store.labels_of(task)

        def work() -> Any:
            with _unlocked(store.lock):
                fn = self._gateway().get(func_id)
                return fn.invoke(task, labels, body, job=job, image_of=self._image_of(task))

        return self._respond(work)

    # ------------------------------------------------------------------ batch requests
    def _requests_list(self, ctx: Any) -> Json:
        return [r.to_dict() for r in self._requests.values() if not r.cancelled]

    def _requests_get(self, ctx: Any) -> tuple[int, Any]:
        rid = unquote(str(ctx.args["rid"]))
        found = self._requests.get(rid)
        if found is None or found.cancelled:
            return 404, f"{rid} lambda job is not found"
        return 200, found.to_dict()

    def _requests_delete(self, ctx: Any) -> tuple[int, Any]:
        rid = unquote(str(ctx.args["rid"]))
        found = self._requests.get(rid)
        if found is None or found.cancelled:
            return 404, f"{rid} lambda job is not found"
        found.cancelled = True
        return 204, None

    def _requests_create(self, ctx: Any) -> tuple[int, Any]:
        body = ctx.json()
        errors = _validate_request(body)
        if errors:
            return 400, errors
        store = self.standin.store
        task_id = int(body["task"])
        if task_id not in store.tasks:
            return 400, "Task matching query does not exist."
        job_id = body.get("job")
        if job_id is not None:
            if int(job_id) not in store.jobs:
                return 400, "Job matching query does not exist."
            if store.jobs[int(job_id)].task_id != task_id:
                return 400, ["Job task ID does not match task ID"]

        def work() -> Any:
            with _unlocked(store.lock):
                fn = self._gateway().get(str(body["function"]))
            rid = f"action=autoannotate&target=task&target_id={task_id}"
            running = self._requests.get(rid)
            if running is not None and not running.cancelled and running.status not in ("finished", "failed"):
                raise ValidationError(f"Only one running request is allowed for the same task #{task_id}", code=409)
            req = _Request(rid, fn, task_id, None if job_id is None else int(job_id), body.get("threshold"),
                           {k: body.get(k) for k in ("mapping", "max_distance")}
                           | {"cleanup": bool(body.get("cleanup", False)),
                              "conv_mask_to_poly": bool(body.get("conv_mask_to_poly", body.get("convMaskToPoly", False)))})
            self._requests[rid] = req
            thread = threading.Thread(target=self._run, args=(req,), name=f"lambda-{task_id}", daemon=True)
            self._threads.append(thread)
            answer = req.to_dict()  # queued, as the view answers before the worker picks it up
            thread.start()
            return answer

        return self._respond(work)

    # ------------------------------------------------------------------ the worker
    def _run(self, req: _Request) -> None:
        req.status, req.started = "started", _now()
        try:
            if req.options["cleanup"]:
                self._write(req, {"tags": [], "shapes": [], "tracks": []}, None)
            if req.function.kind == "detector":
                self._run_detector(req)
            elif req.function.kind == "reid":
                self._run_reid(req)
            req.status = "finished"
        except Exception:  # the worker's traceback is what CVAT shows in exc_info
            req.exc_info = traceback.format_exc()
            req.status = "failed"
        req.ended = _now()

    def _frames(self, req: _Request) -> list[int]:
        store = self.standin.store
        with store.lock:
            if req.job is not None:
                job = store.jobs[req.job]
                return list(range(job.start_frame, job.stop_frame + 1))
            return list(range(store.tasks[req.task].size))

    def _write(self, req: _Request, data: Json, action: str | None) -> None:
        standin, store = self.standin, self.standin.store
        with store.lock:
            if req.job is not None:
                standin._write(lambda: store.write_job(req.job, data, action))
            elif action is None and not any(data.values()):
                for job in store.task_jobs(req.task):
                    standin._write(lambda job=job: store.write_job(job.id, data, None))
            else:
                standin._write(lambda: store.write_task(req.task, data, action))
        standin._flush_webhooks()

    def _context(self, req: _Request) -> tuple[Any, list[Json], Any]:
        store = self.standin.store
        with store.lock:
            task = store.tasks[req.task]
            return task, store.labels_of(task), store.jobs.get(req.job) if req.job else None

    def _run_detector(self, req: _Request) -> None:
        task, labels, job = self._context(req)
        frames = self._frames(req)
        collected: Json = {"tags": [], "shapes": [], "tracks": []}
        for frame in frames:
            if req.cancelled:
                return
            result = req.function.invoke(task, labels, {
                "frame": frame, "mapping": req.options["mapping"], "threshold": req.threshold,
                "conv_mask_to_poly": req.options["conv_mask_to_poly"]}, job=job, image_of=self._image_of(task))
            assert not result["tracks"]  # detectors never make tracks (DetectionResultCollector.add)
            collected["tags"] += result["tags"]
            collected["shapes"] += result["shapes"]
            req.progress = int(100 * (frame + 1) / task.size)
            if frame and frame % 100 == 0 and (collected["tags"] or collected["shapes"]):
                self._write(req, collected, "create")
                collected = {"tags": [], "shapes": [], "tracks": []}
        if collected["tags"] or collected["shapes"]:
            self._write(req, collected, "create")

    def _run_reid(self, req: _Request) -> None:
        task, labels, job = self._context(req)
        store = self.standin.store
        with store.lock:
            data = store.read_job(req.job) if req.job is not None else store.read_task(req.task)
        frames = self._frames(req)
        boxes: dict[int, list[Json]] = {f: [] for f in frames}
        others = []
        for shape in data["shapes"]:
            (boxes[shape["frame"]] if shape["type"] == "rectangle" else others).append(shape)
        paths: dict[int, list[Json]] = {}
        for i, (f0, f1) in enumerate(zip(frames[:-1], frames[1:], strict=False)):
            if req.cancelled:
                return
            for box in boxes[f0]:
                if "path_id" not in box:
                    box["path_id"] = len(paths)
                    paths[box["path_id"]] = [box]
            if boxes[f0] and boxes[f1]:
                matching = req.function.invoke(task, labels, {
                    "frame0": f0, "frame1": f1, "boxes0": boxes[f0], "boxes1": boxes[f1],
                    "threshold": req.threshold, "max_distance": req.options["max_distance"]},
                    job=job, image_of=self._image_of(task))
                for idx0, idx1 in enumerate(matching):
                    if idx1 >= 0:
                        pid = boxes[f0][idx0]["path_id"]
                        boxes[f1][idx1]["path_id"] = pid
                        paths[pid].append(boxes[f1][idx1])
            req.progress = int(100 * (i + 1) / len(frames))
        for box in boxes[frames[-1]] if frames else []:
            if "path_id" not in box:
                box["path_id"] = len(paths)
                paths[box["path_id"]] = [box]
        tracks = []
        for path in paths.values():
            first = path[0]
            track = {"label_id": first["label_id"], "group": None, "attributes": [], "frame": first["frame"],
                     "shapes": path, "source": "auto"}
            for box in path:
                for key in ("id", "path_id", "group", "label_id", "source", "elements", "score"):
                    box.pop(key, None)
                box["outside"] = False
                box["attributes"] = []
            if path[-1]["frame"] != frames[-1]:
                closing = dict(path[-1], frame=path[-1]["frame"] + 1, outside=True)
                path.append(closing)
            tracks.append(track)
        if tracks:
            data["shapes"] = others
            data["tracks"] = list(data.get("tracks", [])) + tracks
            self._write(req, data, None)


def _validate_request(body: Any) -> Json:
    """``FunctionCallRequestSerializer`` field errors (empty: valid)."""
    if not isinstance(body, dict):
        return {"non_field_errors": ["Invalid data. Expected a dictionary, but got list."]}
    errors: Json = {}
    if not isinstance(body.get("function"), str) or not body.get("function"):
        errors["function"] = ["This field is required." if "function" not in body else "Not a valid string."]
    for key, required in (("task", True), ("job", False), ("max_distance", False)):
        if key not in body or (body[key] is None and not required):
            if required:
                errors[key] = ["This field is required."]
            continue
        if isinstance(body[key], bool) or not isinstance(body[key], int):
            errors[key] = ["A valid integer is required."]
    if body.get("threshold") is not None and (isinstance(body["threshold"], bool)
                                              or not isinstance(body["threshold"], (int, float))):
        errors["threshold"] = ["A valid number is required."]
    for key in ("cleanup", "conv_mask_to_poly", "convMaskToPoly"):
        if key in body and not isinstance(body[key], bool):
            errors[key] = ["Must be a valid boolean."]
    mapping = body.get("mapping")
    if mapping is not None:
        if not isinstance(mapping, dict):
            errors["mapping"] = [f'Expected a dictionary of items but got type "{type(mapping).__name__}".']
        else:
            bad = {k: {"name": ["This field is required."]} for k, v in mapping.items()
                   if not isinstance(v, dict) or not isinstance(v.get("name"), str)}
            if bad:
                errors["mapping"] = bad
    return errors
