"""In-memory state of the CVAT stand-in: the rows CVAT keeps in its database.

Rules reproduced here and where they come from:

* Segments (``cvat/apps/engine/task.py``, ``_generate_segment_params``, read @496f865f):
  ``segment_size`` 0 or larger than the task means one segment of the whole task; the
  overlap is ``min(task.overlap if task.overlap is not None else (5 if task.mode ==
  "interpolation" else 0), segment_size // 2)`` (``Task.overlap`` is a nullable
  ``PositiveIntegerField`` in ``models.py``, so "not given" and 0 differ: video tasks,
  whose mode is ``interpolation``, get 5 frames of overlap by default, image tasks
  ``annotation`` get 0; a larger overlap is silently capped, never rejected). Segments
  start at ``range(0, size - overlap, segment_size - overlap)`` and end at
  ``min(start + segment_size - 1, size - 1)``; one ``annotation`` job per segment. The
  task then stores the effective ``segment_size`` and ``overlap`` (what ``GET
  /api/tasks/{id}`` shows).
* Job state machine (``JobWriteSerializer.update`` in ``cvat/apps/engine/serializers.py``,
  ``Job.save`` in ``models.py``): when ``stage`` changes and no ``state`` is given,
  ``state`` becomes ``new``; the read-only ``status`` is ``completed`` for an accepted
  completed job, ``validation`` in the validation stage, else ``annotation``.
  Writing annotations calls ``job.touch()`` and ``task.touch()``: ``updated_date`` moves.
* Ids: every table has its own sequence, as in PostgreSQL (tracks, tracked shapes,
  shapes, tags, issues, comments, jobs, tasks ...).
* Annotation writes are atomic per request: the stand-in works on a copy of all affected
  jobs and commits only when every job succeeded, as ``transaction.atomic`` does.
"""

from __future__ import annotations

import copy
import datetime as dt
import itertools
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .annotations import (
    SHAPE_TYPES,
    AnnotationError,
    IdCollision,
    Json,
    empty_data,
    merge_task_data,
    slice_data,
)

__all__ = ["Store", "User", "Project", "Task", "Job", "Issue", "Comment", "segment_ranges",
           "effective_segment_params",
           "STAGES", "STATES", "now_utc"]

STAGES = ("annotation", "validation", "acceptance")
STATES = ("new", "in progress", "completed", "rejected")
_LABEL_COLORS = ("#33ddff", "#fa3253", "#34d1b7", "#ff007c", "#ddff33", "#24b353", "#b83df5")


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def effective_segment_params(size: int, segment_size: int, overlap: int | None,
                             mode: str = "annotation") -> tuple[int, int]:
    """``(segment_size, overlap)`` as CVAT stores them after creating the segments.

    ``overlap=None`` means the client did not send one: 5 for ``interpolation`` (video)
    tasks, 0 otherwise; any overlap is capped at ``segment_size // 2``.

    >>> effective_segment_params(60, 30, None, "interpolation"), effective_segment_params(60, 30, None)
    ((30, 5), (30, 0))
    >>> effective_segment_params(60, 10, 9), effective_segment_params(60, 0, 50)
    ((10, 5), (60, 30))
    """
    if size <= 0:
        raise ValueError("a task needs at least one frame")
    if segment_size < 0 or (overlap is not None and overlap < 0):
        raise ValueError(f"segment_size {segment_size} and overlap {overlap} must be >= 0")
    if segment_size == 0 or segment_size > size:
        segment_size = size
    default = 5 if mode == "interpolation" else 0
    return segment_size, min(default if overlap is None else overlap, segment_size // 2)


def segment_ranges(size: int, segment_size: int, overlap: int | None,
                   mode: str = "annotation") -> list[tuple[int, int]]:
    """``(start, stop)`` inclusive frame ranges of the jobs CVAT creates for a task.

    >>> segment_ranges(60, 30, 5)
    [(0, 29), (25, 54), (50, 59)]
    >>> segment_ranges(10, 4, 7)  # overlap capped at 4 // 2
    [(0, 3), (2, 5), (4, 7), (6, 9)]
    """
    segment_size, overlap = effective_segment_params(size, segment_size, overlap, mode)
    return [(start, min(start + segment_size - 1, size - 1))
            for start in range(0, size - overlap, segment_size - overlap)]


@dataclass
class User:
    id: int
    username: str
    password: str
    first_name: str = ""
    last_name: str = ""
    email: str = ""
    is_superuser: bool = False
    groups: list[str] = field(default_factory=lambda: ["user"])
    date_joined: dt.datetime = field(default_factory=now_utc)
    last_login: dt.datetime | None = None


@dataclass
class Project:
    id: int
    name: str
    owner_id: int
    created_date: dt.datetime
    updated_date: dt.datetime


@dataclass
class Task:
    id: int
    name: str
    owner_id: int
    project_id: int | None
    labels: list[Json]
    size: int
    segment_size: int
    overlap: int
    frames: list[Json]  # {"name", "width", "height", "path"?}
    mode: str
    created_date: dt.datetime
    updated_date: dt.datetime
    chunk_size: int = 72
    image_quality: int = 70
    chunk_type: str = "imageset"  # "imageset" (zip chunks) or "video" (mp4 chunks)
    assignee_id: int | None = None
    data_id: int = 0


@dataclass
class Job:
    id: int
    task_id: int
    start_frame: int
    stop_frame: int
    created_date: dt.datetime
    updated_date: dt.datetime
    stage: str = "annotation"
    state: str = "new"
    assignee_id: int | None = None
    assignee_updated_date: dt.datetime | None = None
    type: str = "annotation"
    annotations: Json = field(default_factory=empty_data)

    @property
    def status(self) -> str:
        if self.stage == "acceptance" and self.state == "completed":
            return "completed"
        if self.stage == "validation":
            return "validation"
        return "annotation"

    @property
    def frame_count(self) -> int:
        return self.stop_frame - self.start_frame + 1


@dataclass
class Issue:
    id: int
    job_id: int
    frame: int
    position: list[float]
    owner_id: int
    created_date: dt.datetime
    updated_date: dt.datetime
    assignee_id: int | None = None
    resolved: bool = False


@dataclass
class Comment:
    id: int
    issue_id: int
    owner_id: int
    message: str
    created_date: dt.datetime
    updated_date: dt.datetime


class Store:
    """All stand-in state behind one re-entrant lock (the server serialises requests on it)."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.users: dict[int, User] = {}
        self.tokens: dict[str, int] = {}  # login keys ("Token <key>")
        self.access_tokens: dict[str, int] = {}  # personal access tokens ("Bearer <pat>")
        self.sessions: dict[str, tuple[int, str]] = {}  # sessionid -> (user id, csrftoken)
        self.projects: dict[int, Project] = {}
        self.tasks: dict[int, Task] = {}
        self.jobs: dict[int, Job] = {}
        self.issues: dict[int, Issue] = {}
        self.comments: dict[int, Comment] = {}
        self._seq: dict[str, itertools.count[int]] = {}
        self._last_time = now_utc()

    # ------------------------------------------------------------------ helpers
    def next_id(self, table: str) -> int:
        return next(self._seq.setdefault(table, itertools.count(1)))

    def tick(self) -> dt.datetime:
        """A timestamp strictly after the previous one, so every change moves ``updated_date``."""
        t = now_utc()
        if t <= self._last_time:
            t = self._last_time + dt.timedelta(microseconds=1)
        self._last_time = t
        return t

    def labels_of(self, task: Task) -> list[Json]:
        if task.project_id is not None:
            return [lb for t in self.tasks.values() if t.project_id == task.project_id
                    for lb in t.labels] or task.labels
        return task.labels

    def task_jobs(self, task_id: int) -> list[Job]:
        return sorted((j for j in self.jobs.values() if j.task_id == task_id),
                      key=lambda j: (j.start_frame, j.id))

    # ------------------------------------------------------------------ seeding
    def add_user(self, username: str, password: str, *, is_superuser: bool = False,
                 first_name: str = "", last_name: str = "", email: str = "") -> User:
        if any(u.username == username for u in self.users.values()):
            raise ValueError(f"user {username!r} exists")
        uid = self.next_id("user")
        user = User(uid, username, password, first_name, last_name,
                    email or f"{username}@example.com", is_superuser,
                    ["admin"] if is_superuser else ["user"])
        self.users[uid] = user
        return user

    def add_project(self, name: str, owner_id: int) -> Project:
        t = self.tick()
        p = Project(self.next_id("project"), name, owner_id, t, t)
        self.projects[p.id] = p
        return p

    def add_task(self, name: str, owner_id: int, labels: Sequence[Json], frames: list[Json], *,
                 segment_size: int, overlap: int | None, project_id: int | None,
                 mode: str = "annotation") -> Task:
        t = self.tick()
        task_id = self.next_id("task")
        built = []
        for spec in labels:
            if "name" not in spec:
                raise ValueError(f"label spec {spec!r} has no name")
            lid = self.next_id("label")
            attrs = []
            for a in spec.get("attributes", []):
                values = [str(v) for v in a.get("values", [])]
                attrs.append({
                    "id": self.next_id("attributespec"),
                    "name": a["name"],
                    "mutable": bool(a.get("mutable", False)),
                    "input_type": a.get("input_type", "text"),
                    "default_value": str(a.get("default_value", values[0] if values else "")),
                    "values": values,
                })
            built.append({
                "id": lid, "name": spec["name"],
                "color": spec.get("color", _LABEL_COLORS[(lid - 1) % len(_LABEL_COLORS)]),
                "attributes": attrs, "type": spec.get("type", "any"), "svg": "",
                "sublabels": [], "project_id": project_id,
                "task_id": None if project_id is not None else task_id,
                "parent_id": None, "has_parent": False,
            })
        ranges = segment_ranges(len(frames), segment_size, overlap, mode)
        segment_size, overlap = effective_segment_params(len(frames), segment_size, overlap, mode)
        task = Task(task_id, name, owner_id, project_id, built, len(frames), segment_size,
                    overlap, frames, mode, t, t, data_id=self.next_id("data"))
        self.tasks[task_id] = task
        for start, stop in ranges:
            jid = self.next_id("job")
            self.jobs[jid] = Job(jid, task_id, start, stop, t, t)
        return task

    # ------------------------------------------------------------------ annotations
    def _label_index(self, task: Task) -> dict[int, Json]:
        return {lb["id"]: lb for lb in self.labels_of(task)}

    def _all_ids(self, kind: str, *, exclude_job: int | None = None) -> set[int]:
        ids: set[int] = set()
        for job in self.jobs.values():
            if job.id == exclude_job:
                continue
            for obj in job.annotations[kind]:
                ids.add(obj["id"])
        return ids

    def normalize(self, task: Task, data: Json, *, action: str | None) -> Json:
        """Validate a ``LabeledDataRequest`` like CVAT's serializers and fill read defaults.

        Raises:
            AnnotationError: with the 400 body CVAT sends (DRF-style field errors).
        """
        if not isinstance(data, dict):
            raise AnnotationError({"non_field_errors": ["Invalid data. Expected a dictionary."]})
        labels = self._label_index(task)
        out = empty_data()
        errors: dict[str, list[Any]] = {}

        def attrs(items: Any, label: Json, path: str) -> list[Json]:
            result = []
            specs = {a["id"] for a in label["attributes"]}
            for a in items or []:
                if not isinstance(a, dict) or "spec_id" not in a or "value" not in a:
                    raise AnnotationError({path: ["spec_id and value are required"]})
                if int(a["spec_id"]) not in specs:
                    raise AnnotationError([f"spec_id `{a['spec_id']}` is invalid"])
                result.append({"spec_id": int(a["spec_id"]), "value": str(a["value"])})
            return result

        def base(obj: Any, kind: str, required: Sequence[str]) -> Json | None:
            if not isinstance(obj, dict):
                errors.setdefault(kind, []).append({"non_field_errors": ["Expected a dict"]})
                return None
            if action == "delete":
                # CVAT's delete only reads ids; the serializer still wants the required fields.
                required = tuple(r for r in required if r in obj) + ("id",)
            missing = {r: ["This field is required."] for r in required if r not in obj}
            if missing:
                errors.setdefault(kind, []).append(missing)
                return None
            return obj

        for tag in data.get("tags", []) or []:
            t = base(tag, "tags", ("frame", "label_id"))
            if t is None:
                continue
            if action == "delete":
                out["tags"].append({"id": int(t["id"])})
                continue
            label = self._require_label(labels, t["label_id"])
            out["tags"].append({
                "id": t.get("id"), "frame": int(t["frame"]), "label_id": label["id"],
                "group": t.get("group"), "source": t.get("source", "manual"),
                "attributes": attrs(t.get("attributes"), label, "tags"),
            })
        for shape in data.get("shapes", []) or []:
            s = base(shape, "shapes", ("type", "frame", "label_id"))
            if s is None:
                continue
            if action == "delete":
                out["shapes"].append({"id": int(s["id"])})
                continue
            label = self._require_label(labels, s["label_id"])
            out["shapes"].append({
                **self._shape_fields(s, "shapes"), "id": s.get("id"), "label_id": label["id"],
                "group": s.get("group"), "source": s.get("source", "manual"),
                "score": float(s.get("score", 1.0)),
                "attributes": attrs(s.get("attributes"), label, "shapes"),
                "elements": copy.deepcopy(s.get("elements", [])),
            })
        for track in data.get("tracks", []) or []:
            tr = base(track, "tracks", ("frame", "label_id", "shapes"))
            if tr is None:
                continue
            if action == "delete":
                out["tracks"].append({"id": int(tr["id"])})
                continue
            label = self._require_label(labels, tr["label_id"])
            shapes = []
            for ts in tr.get("shapes") or []:
                if not isinstance(ts, dict) or "type" not in ts or "frame" not in ts:
                    errors.setdefault("tracks", []).append(
                        {"shapes": [{"type": ["This field is required."]}]})
                    continue
                shapes.append({**self._shape_fields(ts, "tracks"), "id": ts.get("id"),
                               "attributes": attrs(ts.get("attributes"), label, "tracks")})
            shapes.sort(key=lambda x: x["frame"])
            frames = [x["frame"] for x in shapes]
            if len(set(frames)) != len(frames):
                raise AnnotationError({"tracks": [{"shapes": ["Shapes share a frame"]}]})
            out["tracks"].append({
                "id": tr.get("id"), "frame": int(tr["frame"]), "label_id": label["id"],
                "group": tr.get("group"), "source": tr.get("source", "manual"),
                "attributes": attrs(tr.get("attributes"), label, "tracks"),
                "shapes": shapes, "elements": copy.deepcopy(tr.get("elements", [])),
            })
        if errors:
            raise AnnotationError(errors)
        if action == "delete":
            return out
        for t in out["tracks"]:
            self._correct_track_frame(t)
        out["tracks"] = [t for t in out["tracks"] if t["shapes"]]
        return out

    @staticmethod
    def _require_label(labels: dict[int, Json], label_id: Any) -> Json:
        try:
            return labels[int(label_id)]
        except (KeyError, TypeError, ValueError):
            raise AnnotationError([f"label_id `{label_id}` is invalid"]) from None

    @staticmethod
    def _shape_fields(s: Json, kind: str) -> Json:
        if s["type"] not in SHAPE_TYPES:
            raise AnnotationError({kind: [{"type": [f"\"{s['type']}\" is not a valid choice."]}]})
        try:
            points = [float(p) for p in s.get("points", []) or []]
        except (TypeError, ValueError):
            raise AnnotationError({kind: [{"points": ["A valid number is required."]}]}) from None
        return {
            "type": s["type"], "frame": int(s["frame"]),
            "occluded": bool(s.get("occluded", False)), "outside": bool(s.get("outside", False)),
            "z_order": int(s.get("z_order", 0)), "rotation": float(s.get("rotation", 0.0)),
            "points": points,
        }

    @staticmethod
    def _correct_track_frame(track: Json) -> None:
        """``JobAnnotation._correct_frame_of_tracked_shapes``."""
        shapes = track["shapes"]
        if not shapes:
            return
        first = shapes[0]
        if track["frame"] < first["frame"]:
            missing = copy.deepcopy(first)
            missing["frame"] = track["frame"]
            missing["outside"] = True
            missing["id"] = None
            shapes.insert(0, missing)
        elif first["frame"] < track["frame"]:
            track["frame"] = first["frame"]

    def _insert(self, job: Job, data: Json, taken: dict[str, set[int]]) -> Json:
        """Create objects in ``job`` keeping ids that are given (``bulk_create`` with pk)."""
        created = empty_data()
        for kind, table in (("tags", "labeledimage"), ("shapes", "labeledshape"),
                            ("tracks", "labeledtrack")):
            for obj in data[kind]:
                obj = copy.deepcopy(obj)
                if obj.get("id") is None:
                    obj["id"] = self._fresh_id(table, taken[kind])
                elif obj["id"] in taken[kind]:
                    raise IdCollision(f"duplicate key value violates unique constraint "
                                      f"\"engine_{table}_pkey\": id={obj['id']}")
                taken[kind].add(obj["id"])
                if kind == "tracks":
                    for s in obj["shapes"]:
                        if s.get("id") is None or s["id"] in taken["trackedshape"]:
                            s["id"] = self._fresh_id("trackedshape", taken["trackedshape"])
                        taken["trackedshape"].add(s["id"])
                job.annotations[kind].append(obj)
                created[kind].append(obj)
        return created

    def _fresh_id(self, table: str, taken: set[int]) -> int:
        while True:
            i = self.next_id(table)
            if i not in taken:
                return i

    def _taken_ids(self, jobs: dict[int, Job]) -> dict[str, set[int]]:
        taken: dict[str, set[int]] = {"tags": set(), "shapes": set(), "tracks": set(),
                                      "trackedshape": set()}
        for job in jobs.values():
            for kind in ("tags", "shapes", "tracks"):
                taken[kind].update(o["id"] for o in job.annotations[kind])
            taken["trackedshape"].update(s["id"] for t in job.annotations["tracks"]
                                         for s in t["shapes"])
        return taken

    def _job_op(self, job: Job, data: Json, action: str | None,
                taken: dict[str, set[int]]) -> Json:
        """One ``put_job_data`` / ``patch_job_data`` on a working copy of ``job``."""
        def drop(ids: dict[str, set[int]]) -> Json:
            removed = empty_data()
            for kind in ("tags", "shapes", "tracks"):
                keep = []
                for obj in job.annotations[kind]:
                    (removed[kind] if obj["id"] in ids[kind] else keep).append(obj)
                job.annotations[kind] = keep
                taken[kind] -= {o["id"] for o in removed[kind]}
                if kind == "tracks":
                    taken["trackedshape"] -= {s["id"] for t in removed[kind] for s in t["shapes"]}
            return removed

        if action is None:
            everything = {k: {o["id"] for o in job.annotations[k]}
                          for k in ("tags", "shapes", "tracks")}
            removed = drop(everything)
            created = self._insert(job, data, taken)
            changed = any(removed[k] or created[k] for k in ("tags", "shapes", "tracks"))
            result = created
        elif action == "create":
            for kind in ("tags", "shapes", "tracks"):
                for obj in data[kind]:
                    obj["id"] = None
                    for s in obj.get("shapes", []):
                        s["id"] = None
            result = self._insert(job, data, taken)
            changed = any(result[k] for k in ("tags", "shapes", "tracks"))
        elif action == "update":
            for kind in ("tags", "shapes", "tracks"):
                for obj in data[kind]:
                    if obj.get("id") is None:
                        raise AnnotationError({kind: [{"id": ["This field is required."]}]})
            ids = {k: {o["id"] for o in data[k]} for k in ("tags", "shapes", "tracks")}
            drop(ids)
            result = self._insert(job, data, taken)
            changed = any(result[k] for k in ("tags", "shapes", "tracks"))
        elif action == "delete":
            ids = {k: {o["id"] for o in data[k]} for k in ("tags", "shapes", "tracks")}
            removed = drop(ids)
            changed = any(removed[k] for k in ("tags", "shapes", "tracks"))
            result = data
        else:
            raise AnnotationError([f"Please specify a correct 'action' for the request: {action}"])
        if changed:
            t = self.tick()
            job.updated_date = t
            task = self.tasks[job.task_id]
            task.updated_date = t
            if task.project_id is not None:
                self.projects[task.project_id].updated_date = t
        return result

    def write_job(self, job_id: int, raw: Json, action: str | None) -> Json:
        """PUT (``action=None``) or PATCH one job; returns the response ``LabeledData``."""
        job = self.jobs[job_id]
        task = self.tasks[job.task_id]
        data = self.normalize(task, raw, action=action)
        work = {j.id: copy.deepcopy(j) for j in self.jobs.values()}
        taken = self._taken_ids(work)
        result = self._job_op(work[job_id], data, action, taken)
        self._commit(work, [job_id])
        return {**empty_data(), **self._with_defaults(task, result)} if action != "delete" \
            else {**empty_data(), **raw, "version": 0}

    def write_task(self, task_id: int, raw: Json, action: str | None) -> Json:
        """PUT/PATCH at task level: slice per job, apply per job, all or nothing."""
        task = self.tasks[task_id]
        data = self.normalize(task, raw, action=action)
        work = {j.id: copy.deepcopy(j) for j in self.jobs.values()}
        taken = self._taken_ids(work)
        jobs = [work[j.id] for j in self.task_jobs(task_id) if j.type == "annotation"]
        for job in jobs:
            if action == "delete":
                part = data  # ids are filtered by job, as in _delete_job_labeled*
            else:
                part = slice_data(data, job.start_frame, job.stop_frame)
            self._job_op(job, copy.deepcopy(part), action, taken)
        self._commit(work, [j.id for j in jobs])
        if action == "delete":
            return {**empty_data(), **raw, "version": 0}
        return self.read_task(task_id)

    def _commit(self, work: dict[int, Job], job_ids: list[int]) -> None:
        for jid in job_ids:
            self.jobs[jid] = work[jid]

    def _with_defaults(self, task: Task, data: Json) -> Json:
        """Reads fill missing attributes with defaults (``_extend_attributes``)."""
        labels = self._label_index(task)
        data = copy.deepcopy(data)

        def extend(items: list[Json], defaults: list[Json]) -> None:
            have = {a["spec_id"] for a in items}
            items.extend({"spec_id": d["spec_id"], "value": d["value"]}
                         for d in defaults if d["spec_id"] not in have)

        for obj in data["tags"] + data["shapes"]:
            label = labels.get(obj["label_id"])
            if label is not None:
                extend(obj["attributes"], [{"spec_id": a["id"], "value": a["default_value"]}
                                           for a in label["attributes"]])
        for tr in data["tracks"]:
            label = labels.get(tr["label_id"])
            if label is None:
                continue
            extend(tr["attributes"], [{"spec_id": a["id"], "value": a["default_value"]}
                                      for a in label["attributes"] if not a["mutable"]])
            prev = [{"spec_id": a["id"], "value": a["default_value"]}
                    for a in label["attributes"] if a["mutable"]]
            for s in tr["shapes"]:
                extend(s["attributes"], prev)
                prev = s["attributes"]
        return data

    def read_job(self, job_id: int) -> Json:
        job = self.jobs[job_id]
        task = self.tasks[job.task_id]
        data = self._with_defaults(task, job.annotations)
        for tr in data["tracks"]:
            tr["shapes"].sort(key=lambda s: s["frame"])
        data["tracks"].sort(key=lambda t: t["id"])
        return {**data, "version": 0}

    def read_task(self, task_id: int) -> Json:
        task = self.tasks[task_id]
        parts = [(j.start_frame, self.read_job(j.id)) for j in self.task_jobs(task_id)
                 if j.type == "annotation"]
        return merge_task_data(parts, task.overlap)

    def frame_path(self, task: Task, frame: int) -> Path | None:
        p = task.frames[frame].get("path")
        return Path(p) if p else None
