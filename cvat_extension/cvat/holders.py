"""Jobs that disagree about the frames they share: found and reported, never passed silently.

With segment overlap two consecutive jobs each store a copy of the shared frames, and CVAT's
task-level read (and its exports) joins the copies by boxes. When the copies are cut into
tracks differently (one job holds a fragment merged into one track, the other still holds
two pieces: a crash of an older version between the holders' writes, or a human edit after
our write) the joined view shows the object frozen on extra frames next to a separate
fragment, and no later run would see a fragment to merge. :func:`disagreeing_holders` compares
the copies: boxes of the two jobs on the same shared frame that match (same label, IoU at
least 0.5, as CVAT's join) must belong to one track in each job; a track of one job matched by
two tracks of the other is a disagreement, reported as a review item naming both versions.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.tracks import Tracks
from cvat_extension.cvat.annotations import TaskSnapshot
from cvat_extension.cvat.jobs import JobInfo

__all__ = ["disagreeing_holders"]

#: CVAT joins the jobs' copies at this IoU (``AnnotationManager.merge``); we compare the same way.
MIN_IOU = 0.5


def _visible(snap: TaskSnapshot, job: JobInfo, raw: Mapping[str, Any], lo: int, hi: int) -> Tracks:
    from cvat_extension.core.keyframes import expand_keyframes
    from cvat_extension.io.cvat_json import parse_labeled_data

    doc = parse_labeled_data(raw, labels=snap.labels, path=f"job {job.id} annotations")
    if not len(doc.tracks):
        return doc.tracks
    dense = expand_keyframes(doc.tracks, stop_frame=job.stop_frame, job_stops=[job.stop_frame])
    return dense[~dense.outside & (dense.frame >= lo) & (dense.frame <= hi)]


def _frames_of(rows: Tracks, track_id: int) -> str:
    vis = rows.frame[rows.track_id == track_id]
    return f"frames {int(vis.min())}-{int(vis.max())}" if len(vis) else "no visible frame"


def disagreeing_holders(snap: TaskSnapshot, raws: Mapping[int, Mapping[str, Any]]) -> list[Finding]:
    """One finding per pair of consecutive jobs whose copies of the shared frames are cut
    into tracks differently (``raws``: job id → its annotations; pairs without both are
    skipped)."""
    from cvat_extension.core.geometry import iou_xyxy_batch

    out: list[Finding] = []
    for a, b in zip(snap.jobs, snap.jobs[1:]):
        lo, hi = b.start_frame, a.stop_frame
        if hi < lo or a.id not in raws or b.id not in raws:
            continue
        ra = _visible(snap, a, raws[a.id], lo, hi)
        rb = _visible(snap, b, raws[b.id], lo, hi)
        if not len(ra) or not len(rb):
            continue
        pairs: set[tuple[int, int]] = set()
        where: dict[tuple[int, int], int] = {}
        for f in np.intersect1d(ra.frame, rb.frame):
            fa, fb = ra[ra.frame == f], rb[rb.frame == f]
            iou = iou_xyxy_batch(fa.xyxy, fb.xyxy)
            iou[fa.label[:, None] != fb.label[None, :]] = 0.0
            best = iou.argmax(axis=1)
            for i, j in enumerate(best):
                if iou[i, j] >= MIN_IOU:
                    key = (int(fa.track_id[i]), int(fb.track_id[j]))
                    pairs.add(key)
                    where.setdefault(key, int(f))
        a_to_b: dict[int, set[int]] = {}
        b_to_a: dict[int, set[int]] = {}
        for ta, tb in pairs:
            a_to_b.setdefault(ta, set()).add(tb)
            b_to_a.setdefault(tb, set()).add(ta)
        reported: set[frozenset[tuple[int, int]]] = set()
        for one, many, one_job, many_job, rows_one, rows_many, flip in (
            (a_to_b, b_to_a, a, b, ra, rb, False), (b_to_a, a_to_b, b, a, rb, ra, True),
        ):
            del many
            for t, others in sorted(one.items()):
                if len(others) < 2:
                    continue
                keys = frozenset((o, t) if flip else (t, o) for o in others)
                if keys in reported:
                    continue
                reported.add(keys)
                frames = sorted(where[k] for k in keys)
                first = rows_one[(rows_one.track_id == t) & (rows_one.frame == frames[0])]
                box = tuple(float(v) for v in first.xyxy[0])
                pieces = ", ".join(f"track {o} ({_frames_of(rows_many, o)})" for o in sorted(others))
                objects = _task_ids(snap, rows_one, t, frames)
                out.append(Finding(
                    kind="holders_disagree",
                    track_ids=objects or (t,),
                    frames=(frames[0], frames[-1]),
                    box=box,  # type: ignore[arg-type]
                    score=1.0,
                    message=(f"jobs {one_job.id} and {many_job.id} disagree about one object in their shared "
                             f"frames {lo}-{hi}: job {one_job.id} stores it as one track {t} "
                             f"({_frames_of(rows_one, t)}), job {many_job.id} as {len(others)} tracks: "
                             f"{pieces}. CVAT's task view joins these copies wrongly (extra or missing "
                             f"boxes); make both jobs store the object the same way"),
                    metrics={"tracks_one": 1.0, "tracks_other": float(len(others))},
                ))
    return out


def _task_ids(snap: TaskSnapshot, rows: Tracks, track_id: int, frames: list[int]) -> tuple[int, ...]:
    """Task-level object ids (as checks name them) showing the job track's boxes."""
    from cvat_extension.core.geometry import iou_xyxy_batch

    ids: set[int] = set()
    vis = snap.dense[~snap.dense.outside]
    for f in frames:
        mine = rows[(rows.track_id == track_id) & (rows.frame == f)]
        there = vis[vis.frame == f]
        if not len(mine) or not len(there):
            continue
        iou = iou_xyxy_batch(mine.xyxy, there.xyxy)[0]
        if iou.max() >= MIN_IOU:
            ids.add(int(there.track_id[int(iou.argmax())]))
    return tuple(sorted(ids))
