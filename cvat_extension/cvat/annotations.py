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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.cvat.jobs import JobInfo

__all__ = ["FrameCache", "TaskSnapshot", "read_task"]

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


def read_task(api: Any, task_id: int) -> TaskSnapshot:
    """Read one task (5 calls + paging) into a :class:`TaskSnapshot`.

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
    dense = expand_keyframes(stitched, stop_frame=stop, job_stops=[j.stop_frame for j in jobs] or None)
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
