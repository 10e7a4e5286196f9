"""What the fragment merge knows of each track: its two ends, in stabilised coordinates.

Per track, the first and last visible box (centre, size, label, frame), the velocity at
each end and the boxes used for its appearance; coordinates undo the camera's motion (the
checks' ``prepare``) so that a pan during a gap does not move where the object reappears.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_extension.core.checks._common import Prepared, prepare
from cvat_extension.core.geometry import center_xyxy
from cvat_extension.core.merge_types import MergeConfig
from cvat_extension.core.tracks import Tracks

__all__ = ["Ends", "stabilised", "summarise_ends", "velocity_robust"]


@dataclass(frozen=True, slots=True)
class Ends:
    """Per-track summaries of the first and last visible boxes, one row per track."""

    ids: np.ndarray  # (k,) int64
    label_first: np.ndarray  # (k,) int32
    label_last: np.ndarray  # (k,) int32
    first: np.ndarray  # (k,) int64 first visible frame
    last: np.ndarray  # (k,) int64 last visible frame
    length: np.ndarray  # (k,) int64 visible frames
    centre_first: np.ndarray  # (k, 2) stabilised centre of the first box
    centre_last: np.ndarray  # (k, 2) stabilised centre of the last box
    vel_first: np.ndarray  # (k, 2) centre velocity at the start, px/frame
    vel_last: np.ndarray  # (k, 2) centre velocity at the end, px/frame
    wh_first: np.ndarray  # (k, 2) stabilised width, height of the first box
    wh_last: np.ndarray  # (k, 2) stabilised width, height of the last box
    frames_first: tuple[np.ndarray, ...]  # frames used for appearance at the start
    frames_last: tuple[np.ndarray, ...]
    boxes_first: tuple[np.ndarray, ...]
    boxes_last: tuple[np.ndarray, ...]


def _velocity(frames: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Least-squares centre velocity (px/frame) of a few boxes; 0 for a single box."""
    if len(frames) < 2:
        return np.zeros(2)
    t = frames.astype(np.float64) - frames.mean()
    den = float(np.dot(t, t))
    if den <= 0:
        return np.zeros(2)
    return np.asarray((t[:, None] * (centers - centers.mean(axis=0))).sum(axis=0) / den, dtype=np.float64)


def velocity_robust(frames: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Theil-Sen centre velocity (px/frame): median of the slopes between box pairs.

    Hand-drawn boxes jump when an annotator re-draws a keyframe or shrinks the box to the
    visible part as the object walks into an occlusion; a least-squares fit follows such a
    jump, the median of pairwise slopes ignores it. Pairs less than half the window apart
    are left out (their slopes are mostly jitter).
    """
    n = len(frames)
    if n < 2:
        return np.zeros(2)
    if n < 4:
        return _velocity(frames, centers)
    i, j = np.triu_indices(n, k=max(1, n // 2))
    df = (frames[j] - frames[i]).astype(np.float64)
    slopes = (centers[j] - centers[i]) / df[:, None]
    return np.asarray(np.median(slopes, axis=0), dtype=np.float64)


def stabilised(vis: Tracks, compensate: bool,
                prepared: Prepared | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per visible row: centre (n, 2) and width/height (n, 2) in stabilised coordinates.

    With ``compensate``, the per-frame camera similarity transform (zoom + shift) of the
    checks (:func:`cvat_extension.core.checks._common.prepare`: medians over the tracks
    present in both frames, kept only where the shift stands out of the tracks' own spread)
    is undone, so that a pan or a forward-moving camera during a gap does not move where
    the object reappears. Without it, image coordinates. ``prepared`` is the checks'
    ``prepare`` of the tracks ``vis`` was taken from (the same visible rows, in order).
    """
    wh = np.clip(vis.xyxy[:, 2:] - vis.xyxy[:, :2], 1e-3, None)
    if not compensate or len(vis) < 2:
        return center_xyxy(vis.xyxy), wh
    p = prepared if prepared is not None else prepare(vis)
    # prepare keeps every row of an all-visible Tracks, in the same order.
    zoom = np.divide(np.sqrt(wh[:, 0] * wh[:, 1]), p.size.astype(np.float64))
    return np.c_[p.cx, p.cy], wh / zoom[:, None]


def summarise_ends(vis: Tracks, centre: np.ndarray, wh: np.ndarray, config: MergeConfig) -> Ends:
    cf: list[np.ndarray] = []
    cl: list[np.ndarray] = []
    ids, lf, ll, first, last, length, vf, vl = ([] for _ in range(8))
    whf: list[np.ndarray] = []
    whl: list[np.ndarray] = []
    ff: list[np.ndarray] = []
    fl: list[np.ndarray] = []
    xf: list[np.ndarray] = []
    xl: list[np.ndarray] = []
    h = config.history_frames
    na = config.appearance_frames
    ns = config.appearance_search_frames
    starts = vis.track_starts.tolist()
    for a, b in zip(starts[:-1], starts[1:]):
        # Array slices, not ``vis[a:b]``: a Tracks per track re-validates its rows, which
        # costs more than the summary itself.
        tid = int(vis.track_id[a])
        fr, box = vis.frame[a:b], vis.xyxy[a:b]
        c = centre[a:b]
        size = wh[a:b]
        cf.append(c[0])
        cl.append(c[-1])
        whf.append(size[0])
        whl.append(size[-1])
        clear = (vis.visibility[a:b] >= config.min_appearance_visibility) & ~vis.occluded[a:b]
        head = np.flatnonzero(clear[:ns])[:na]
        tail_start = max(len(fr) - ns, 0)
        tail = tail_start + np.flatnonzero(clear[tail_start:])[-na:]
        ids.append(tid)
        lf.append(vis.label[a])
        ll.append(vis.label[b - 1])
        first.append(fr[0])
        last.append(fr[-1])
        length.append(len(fr))
        # Velocity from the boxes within the last ``h`` frames (not rows: a track with
        # holes must not reach back to a stale stretch).
        head_v = fr <= fr[0] + h - 1
        tail_v = fr >= fr[-1] - h + 1
        vf.append(velocity_robust(fr[head_v], c[head_v]))
        vl.append(velocity_robust(fr[tail_v], c[tail_v]))
        ff.append(fr[head])
        fl.append(fr[tail])
        xf.append(box[head])
        xl.append(box[tail])
    k = len(ids)
    return Ends(
        ids=np.asarray(ids, dtype=np.int64),
        label_first=np.asarray(lf, dtype=np.int32),
        label_last=np.asarray(ll, dtype=np.int32),
        first=np.asarray(first, dtype=np.int64),
        last=np.asarray(last, dtype=np.int64),
        length=np.asarray(length, dtype=np.int64),
        centre_first=np.asarray(cf, dtype=np.float64).reshape(k, 2),
        centre_last=np.asarray(cl, dtype=np.float64).reshape(k, 2),
        vel_first=np.asarray(vf, dtype=np.float64).reshape(k, 2),
        vel_last=np.asarray(vl, dtype=np.float64).reshape(k, 2),
        wh_first=np.asarray(whf, dtype=np.float64).reshape(k, 2),
        wh_last=np.asarray(whl, dtype=np.float64).reshape(k, 2),
        frames_first=tuple(ff),
        frames_last=tuple(fl),
        boxes_first=tuple(xf),
        boxes_last=tuple(xl),
    )
