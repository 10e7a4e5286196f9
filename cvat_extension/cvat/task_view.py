"""The read-back check of a multi-job write: does CVAT's task-level view show what we meant?

CVAT stores annotations per job and builds the task-level read (and every task export, e.g.
"CVAT for video 1.1") by joining the jobs' copies of the overlap frames. Each holder can be
exactly as written and the joined view still wrong (the copies disagree), so after a write
spanning jobs the task is read back and compared with an expectation taken from the read
before the write (:func:`task_view_expectation`): each merged object must be one track with
exactly its pieces' frames and boxes, and no frame of the holders may gain or lose a box.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cvat_extension.core.tracks import Tracks

__all__ = ["task_view_expectation", "verify_task_view"]


def _round(xyxy: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(xyxy, dtype=np.float64), 2)


def task_view_expectation(dense: Tracks, objects: Mapping[int, Sequence[int]],
                          frames: tuple[int, int], *, tolerance_px: float = 0.01) -> dict[str, Any]:
    """What the task-level read must show after merging ``objects`` (``into`` → the
    task-level ids merged into it), taken from the read before the write (``dense``).

    - every merged object is one track whose visible frames are exactly the union of its
      pieces' and whose boxes are the pieces' boxes;
    - within ``frames`` (the holders' frames), the number of visible boxes of each label on
      each frame is unchanged: a merge moves no box, adds none and loses none.
    """
    vis = dense[~dense.outside]
    in_range = vis[(vis.frame >= frames[0]) & (vis.frame <= frames[1])]
    keys = np.stack([in_range.frame, in_range.label.astype(np.int64)], axis=1) if len(in_range) \
        else np.zeros((0, 2), dtype=np.int64)
    uniq, counts = np.unique(keys, axis=0, return_counts=True)
    objs = []
    for into, parts in sorted(objects.items()):
        rows = vis[np.isin(vis.track_id, [int(into), *map(int, parts)])]
        objs.append({"object": int(into), "frames": rows.frame.tolist(),
                     "boxes": _round(rows.xyxy).tolist()})
    return {"frames": [int(frames[0]), int(frames[1])],
            "counts": [[int(f), int(lb), int(n)] for (f, lb), n in zip(uniq.tolist(), counts.tolist())],
            "labels": list(vis.labels), "objects": objs, "tolerance_px": float(tolerance_px)}


def verify_task_view(dense: Tracks, expect: Mapping[str, Any], *, counts: bool = True) -> list[str]:
    """Differences between the task-level read ``dense`` and ``expect`` (empty: as intended).

    ``counts``: also compare the number of boxes per frame and label (False: the merged
    objects only).
    """
    if not expect:
        return []
    problems: list[str] = []
    tol = float(expect.get("tolerance_px", 0.01)) + 0.01
    vis = dense[~dense.outside]
    for obj in expect.get("objects", []):
        frames = np.asarray(obj["frames"], dtype=np.int64)
        boxes = np.asarray(obj["boxes"], dtype=np.float64).reshape(-1, 4)
        if not len(frames):
            continue
        first = vis[vis.frame == frames[0]]
        hit = (np.flatnonzero(np.abs(_round(first.xyxy) - boxes[0]).max(axis=1) <= tol)
               if len(first) else np.zeros(0, dtype=np.int64))
        if not len(hit):
            problems.append(f"has no box of object {obj['object']} at frame {int(frames[0])}")
            continue
        track = vis[vis.track_id == first.track_id[int(hit[0])]]
        got = set(track.frame.tolist())
        want = set(frames.tolist())
        if got != want:
            extra, lost = sorted(got - want), sorted(want - got)
            problems.append(
                f"shows object {obj['object']} as a track with {len(extra)} extra frame(s)"
                f"{_span(extra)} and {len(lost)} missing frame(s){_span(lost)}"
            )
            continue
        order = np.argsort(track.frame)
        if np.abs(_round(track.xyxy[order]) - boxes[np.argsort(frames)]).max() > tol:
            problems.append(f"shows object {obj['object']} with boxes that moved")
    if not counts:
        return problems
    lo, hi = expect.get("frames", [0, -1])
    labels = list(expect.get("labels") or [])
    names = list(vis.labels)
    want_counts = {(int(f), labels[lb] if lb < len(labels) else str(lb)): int(n)
                   for f, lb, n in expect.get("counts", [])}
    in_range = vis[(vis.frame >= lo) & (vis.frame <= hi)]
    got_counts: dict[tuple[int, str], int] = {}
    if len(in_range):
        keys = np.stack([in_range.frame, in_range.label.astype(np.int64)], axis=1)
        uniq, ns = np.unique(keys, axis=0, return_counts=True)
        for (f, lb), n in zip(uniq.tolist(), ns.tolist()):
            got_counts[(int(f), names[lb] if lb < len(names) else str(lb))] = int(n)
    extra = sorted({f for k, n in got_counts.items() for f in [k[0]] if n > want_counts.get(k, 0)})
    lost = sorted({f for k, n in want_counts.items() for f in [k[0]] if n > got_counts.get(k, 0)})
    if extra:
        problems.append(f"has extra boxes on {len(extra)} frame(s){_span(extra)}")
    if lost:
        problems.append(f"lost boxes on {len(lost)} frame(s){_span(lost)}")
    return problems


def _span(frames: Sequence[int]) -> str:
    if not frames:
        return ""
    return f" ({frames[0]}-{frames[-1]})" if len(frames) > 1 else f" ({frames[0]})"
