"""A task's annotations read from CVAT into the track model, with per-job bookkeeping.

One task costs a fixed number of calls whatever its length: task, jobs, labels, data meta
and one task-level annotation read (CVAT returns keyframes only, so the payload grows with
the number of keyframes, not frames). Frames are never downloaded here; :class:`FrameCache`
fetches a frame only when a check or the report asks for it.

CVAT cuts tracks at job boundaries (``cvat-interfaces.md`` §3.3, §6); the snapshot keeps both
views: ``pieces`` (CVAT ids, what write-back addresses, each piece in one job) and
``stitched`` (one track per object, what checks and merges see), linked by
``piece_to_stitched``.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.cvat.jobs import JobInfo

__all__ = ["FrameCache", "TaskSnapshot", "job_annotations_by_id", "match_job_pieces", "read_task"]

logger = logging.getLogger(__name__)


@dataclass
class TaskSnapshot:
    """Everything the loop knows about one task after one read.

    Attributes:
        task_id: the task.
        name: task name (reports).
        info: frames, size, job starts.
        jobs: every annotation job of the task, by start frame.
        labels: ``[{"id", "name"}]``.
        raw: the task-level annotation JSON as read.
        doc: the parsed document (``io.cvat_json.CvatAnnotations``).
        pieces: keyframes, CVAT piece ids.
        stitched: keyframes with job-boundary pieces joined.
        piece_to_stitched: CVAT piece id → stitched id.
        dense: per-frame boxes of ``stitched`` (what checks and merges read).
    """

    task_id: int
    name: str
    info: SequenceInfo
    jobs: list[JobInfo]
    labels: list[dict[str, Any]]
    raw: dict[str, Any]
    doc: Any
    pieces: Tracks
    stitched: Tracks
    piece_to_stitched: dict[int, int]
    dense: Tracks
    _piece_job: dict[int, int] = field(default_factory=dict)

    def job_of_frame(self, frame: int) -> JobInfo | None:
        """The (first) job holding task frame ``frame``."""
        for job in self.jobs:
            if job.holds(frame):
                return job
        return None

    def job_of_piece(self, piece_id: int) -> int | None:
        """Id of the job that stores piece ``piece_id``."""
        return self._piece_job.get(piece_id)

    def piece_in_job(self, stitched_id: int, job_id: int) -> int | None:
        """The CVAT id of the piece of object ``stitched_id`` stored in job ``job_id``."""
        for piece, sid in self.piece_to_stitched.items():
            if sid == stitched_id and self._piece_job.get(piece) == job_id:
                return piece
        return None

    def pieces_of(self, stitched_id: int) -> list[int]:
        """CVAT piece ids of one object, in time order."""
        ids = [p for p, s in self.piece_to_stitched.items() if s == stitched_id]
        first = {p: int(self.pieces.track(p).frame[0]) for p in ids if len(self.pieces.track(p))}
        return sorted(first, key=first.__getitem__)


def task_fps(frame_filter: str, source_fps: float = 0.0) -> float:
    """Annotated frames per second of a CVAT task: the video's rate over the frame step.

    CVAT keeps every ``step``-th frame of the source (``frame_filter`` ``"step=3"``) and
    does not record the source rate, so ``source_fps`` comes from configuration; unknown (0)
    means the checks' 30 fps reference. With neither a step nor a rate the answer is 0
    (unknown): thresholds stay at their reference values.

    >>> task_fps("step=3"), task_fps(""), task_fps("step=2", 25.0), task_fps("", 12.0)
    (10.0, 0.0, 12.5, 12.0)
    """
    from cvat_extension.core.timebase import REFERENCE_FPS

    step = 1
    for part in (frame_filter or "").split(","):
        key, _, value = part.partition("=")
        if key.strip() == "step" and value.strip().isdigit():
            step = max(1, int(value))
    if step == 1 and not source_fps:
        return 0.0
    return float(source_fps or REFERENCE_FPS) / step


def read_task(api: Any, task_id: int, *, source_fps: float = 0.0) -> TaskSnapshot:
    """Read one task (5 calls + paging) into a :class:`TaskSnapshot`.

    ``source_fps`` is the video's frame rate when known; with the task's frame step it
    gives ``SequenceInfo.fps`` (:func:`task_fps`), which scales the checks' thresholds.

    Raises:
        CvatSyncError: CVAT refused a request.
        AnnotationFormatError: CVAT returned annotations that do not parse (names the
            element).
    """
    from cvat_extension.core.keyframes import expand_keyframes
    from cvat_extension.core.stitch import stitch_job_pieces
    from cvat_extension.io.cvat_json import parse_labeled_data

    task = api.get_task(task_id)
    jobs = sorted(
        (JobInfo.from_json(j) for j in api.list_jobs(task_id=task_id, page_size=100)
         if j.get("type", "annotation") == "annotation"),
        key=lambda j: (j.start_frame, j.id),
    )
    labels = [{"id": int(lb["id"]), "name": str(lb["name"])} for lb in api.list_labels(task_id)]
    meta = api.get_task_meta(task_id)
    raw = api.get_task_annotations(task_id)
    size = int(task.get("size") or meta.get("size") or 0)
    frames_meta = meta.get("frames") or [{}]
    info = SequenceInfo(
        num_frames=size,
        width=int(frames_meta[0].get("width", 0) or 0),
        height=int(frames_meta[0].get("height", 0) or 0),
        frame_base=0,
        job_starts=tuple(j.start_frame for j in jobs),
        name=str(task.get("name", "")),
        fps=task_fps(str(meta.get("frame_filter") or ""), source_fps),
    )
    doc = parse_labeled_data(raw, labels=labels, path=f"task {task_id} annotations")
    pieces = doc.tracks
    piece_job: dict[int, int] = {}
    for tid, rows in pieces.iter_tracks():
        first = int(rows.frame[~rows.outside][0]) if (~rows.outside).any() else int(rows.frame[0])
        for job in jobs:
            if job.holds(first):
                piece_job[tid] = job.id
                break
    stitched, mapping = stitch_job_pieces(pieces, info.job_starts)
    stop = max(size - 1, int(pieces.frame.max()) if len(pieces) else 0)
    # No per-job stops: CVAT's task-level read already closes every track of a job that
    # is not the last with an outside keyframe at the end of its own job + 1 (the merge's
    # ``_modify_unmached_object`` at ``next start + overlap``); only the last job's tracks
    # arrive open and they run to the task's end. Per-job stops would cut a last-job track
    # whose last box is in the overlap at the previous job's end (jobs share those frames).
    dense = expand_keyframes(stitched, stop_frame=stop)
    return TaskSnapshot(
        task_id=task_id, name=info.name, info=info, jobs=jobs, labels=labels, raw=raw, doc=doc,
        pieces=pieces, stitched=stitched, piece_to_stitched=mapping, dense=dense,
        _piece_job=piece_job,
    )


class FrameCache:
    """Decoded frames fetched on demand from CVAT (``frames`` argument of checks/merge).

    Only frames somebody asks for are downloaded, and each at most once per run.

    Args:
        api: the CVAT session.
        task_id: the task.
        max_frames: decoded frames kept in memory (oldest dropped first).
    """

    def __init__(self, api: Any, task_id: int, *, max_frames: int = 64) -> None:
        self._api = api
        self._task_id = task_id
        self._max = max_frames
        self._cache: dict[int, np.ndarray] = {}
        self.fetched = 0

    def __call__(self, frame: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) of task frame ``frame``."""
        if frame not in self._cache:
            from PIL import Image

            data = self._api.get_frame(self._task_id, int(frame))
            with Image.open(io.BytesIO(data)) as im:
                arr = np.asarray(im.convert("RGB"))
            self.fetched += 1
            if len(self._cache) >= self._max:
                self._cache.pop(next(iter(self._cache)))
            self._cache[frame] = arr
        return self._cache[frame]


def job_annotations_by_id(raw: Mapping[str, Any]) -> dict[int, dict[str, Any]]:
    """Tracks of an annotation document by CVAT id."""
    return {int(t["id"]): t for t in raw.get("tracks") or [] if t.get("id") is not None}


def match_job_pieces(
    snap: TaskSnapshot, job: JobInfo, job_raw: Mapping[str, Any], object_ids: Sequence[int],
    *, min_iou: float = 0.5,
) -> dict[int, int]:
    """CVAT ids, in ``job``'s own read, of the pieces of objects ``object_ids``.

    With segment overlap a task-level read re-joins the pieces of consecutive jobs and keeps
    only the earliest piece's id, so the ids that a later job stores for the same object
    (its copy of the overlap frames and beyond) appear nowhere in the task-level read. They
    are found here by boxes, as CVAT joins them: a job track is the object's piece when it has
    the same label and the most frames of the job where both are visible with IoU at least
    ``min_iou`` (each job track serves at most one object).

    Returns:
        object id → job track id, for the objects that have a piece in the job.
    """
    from cvat_extension.core.geometry import iou_xyxy_pairwise
    from cvat_extension.core.keyframes import expand_keyframes
    from cvat_extension.io.cvat_json import parse_labeled_data

    doc = parse_labeled_data(job_raw, labels=snap.labels, path=f"job {job.id} annotations")
    if not len(doc.tracks):
        return {}
    mine = expand_keyframes(doc.tracks, stop_frame=job.stop_frame, job_stops=[job.stop_frame])
    in_job = (mine.frame >= job.start_frame) & (mine.frame <= job.stop_frame) & ~mine.outside
    mine = mine[in_job]
    dense = snap.dense
    scores: list[tuple[int, int, int]] = []
    for oid in object_ids:
        obj = dense[(dense.track_id == int(oid)) & ~dense.outside
                    & (dense.frame >= job.start_frame) & (dense.frame <= job.stop_frame)]
        if not len(obj):
            continue
        name = _label_name(obj)
        by_frame = {int(f): i for i, f in enumerate(obj.frame)}
        for tid, rows in mine.iter_tracks():
            if _label_name(rows) != name:
                continue
            idx = [(i, by_frame[int(f)]) for i, f in enumerate(rows.frame) if int(f) in by_frame]
            if not idx:
                continue
            a = rows.xyxy[[i for i, _ in idx]]
            b = obj.xyxy[[j for _, j in idx]]
            agree = int((iou_xyxy_pairwise(a, b) >= min_iou).sum())
            if agree:
                scores.append((agree, int(oid), int(tid)))
    out: dict[int, int] = {}
    used: set[int] = set()
    for _, oid, tid in sorted(scores, reverse=True):
        if oid not in out and tid not in used:
            out[oid] = tid
            used.add(tid)
    return out



def _label_name(rows: Tracks) -> str:
    """Label name of a track's first row (its index as text when names are missing)."""
    i = int(rows.label[0])
    return rows.labels[i] if i < len(rows.labels) else str(i)
