"""``cvat-track propagate TASK_ID``: SAM2 keyframe propagation on a CVAT task.

Reads the task once (:func:`~cvat_extension.cvat.annotations.read_task`: keyframes with
job pieces stitched), fetches only the frames between keyframes that are propagated
(:class:`~cvat_extension.cvat.annotations.FrameCache`), and returns the dense result plus
review items; writing and pushing issues are left to the caller (the CLI writes a CVAT
file; the CVAT loop's review push opens issues from the items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvat_extension.core.findings import ReviewItem
from cvat_extension.core.propagation import PropagationConfig
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import InputError

__all__ = ["TaskPropagation", "propagate_task", "select_tracks"]


def select_tracks(keyframes: Tracks, *, track_ids: Sequence[int] = (), labels: Sequence[str] = ()) -> Tracks:
    """The keyframes of the requested tracks and labels (all when both are empty).

    Raises:
        InputError: a requested track id or label that the annotations do not have.
    """
    keep = np.ones(len(keyframes), dtype=bool)
    if track_ids:
        missing = sorted(set(track_ids) - set(keyframes.ids.tolist()))
        if missing:
            raise InputError(f"--track: no track with id {', '.join(map(str, missing))}")
        keep &= np.isin(keyframes.track_id, list(track_ids))
    if labels:
        unknown = sorted(set(labels) - set(keyframes.labels))
        if unknown:
            raise InputError(f"--labels: unknown label {', '.join(unknown)}; known: {', '.join(keyframes.labels)}")
        codes = [keyframes.labels.index(name) for name in labels]
        keep &= np.isin(keyframes.label, codes)
    return keyframes[keep]


@dataclass(frozen=True)
class TaskPropagation:
    """Result of :func:`propagate_task`: the snapshot read, the propagation, review items."""

    snapshot: Any
    result: Any
    review_items: list[ReviewItem]


def propagate_task(
    api: Any,
    task_id: int,
    propagator: Any,
    *,
    track_ids: Sequence[int] = (),
    labels: Sequence[str] = (),
    config: PropagationConfig | None = None,
) -> TaskPropagation:
    """Propagate the selected tracks of task ``task_id`` between their keyframes.

    Raises:
        CvatSyncError: CVAT refused a request.
        InputError: unknown track ids or labels.
    """
    from cvat_extension.core.review import group_findings
    from cvat_extension.cvat.annotations import FrameCache, read_task
    from cvat_extension.models.keyframe_propagation import propagate_keyframes

    snap = read_task(api, task_id)
    keyframes = select_tracks(snap.stitched, track_ids=track_ids, labels=labels)
    stop = max(snap.info.num_frames - 1, int(snap.stitched.frame.max()) if len(snap.stitched) else 0)
    result = propagate_keyframes(keyframes, FrameCache(api, task_id), propagator, stop_frame=stop, config=config)
    return TaskPropagation(snap, result, group_findings(result.findings))
