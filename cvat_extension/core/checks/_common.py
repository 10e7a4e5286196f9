"""Shared, vectorised building blocks of the checks (private).

Their per-row passes come from the run's kernels module (``core/kernels.py``: numpy twins
below a size threshold, numba above), carried in :attr:`Prepared.kernels`.

- :func:`prepare`: visible rows, neighbours in time, and *camera-compensated* coordinates.
  On moving-camera sequences every box moves with the camera; a per-frame similarity
  transform (scale + translation) estimated as the median over all tracks removes that
  common motion so that one object's motion is judged against the scene, not the camera.
- :func:`window_motion_kept`: per boundary, constant-velocity fits of the rows before and after it
  (prefix sums, O(n)), giving the position jump and the velocity change at that boundary.
- same-frame matching of boxes with detections lives in ``_matching.py``.
- :func:`runs`: group flagged rows of a track into runs.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import pairwise
from types import ModuleType
from typing import Any

import numpy as np

from cvat_extension.core.kernels import kernels_for
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import InputError

#: Fewest tracks in a frame pair for the camera estimate; fewer means "camera static".
_MIN_TRACKS_FOR_CAMERA = 4


@dataclass(frozen=True, eq=False)
class Prepared:
    """Visible rows of a Tracks with what every motion check needs. All arrays (n,)."""

    rows: np.ndarray  # index into the original Tracks
    frame: np.ndarray
    tid: np.ndarray
    xyxy: np.ndarray  # (n, 4) image space
    label: np.ndarray
    occluded: np.ndarray
    visibility: np.ndarray
    start: np.ndarray  # first row of this row's track (index into these arrays)
    end: np.ndarray  # one past the last row of this row's track
    prev_ok: np.ndarray  # row i-1 is the same track at frame - 1
    cx: np.ndarray  # camera-compensated centre
    cy: np.ndarray
    size: np.ndarray  # camera-compensated sqrt(w * h)
    log_area: np.ndarray  # camera-compensated log area
    frame0: int  # first frame of the camera arrays
    cam_scale: np.ndarray  # per frame (from frame0): scale from the previous frame
    cam_shift: np.ndarray  # per frame: (m, 2) translation from the previous frame
    #: The run's kernels (``core/kernels.py``: numpy twins or numba), chosen once by size
    #: in :func:`prepare`; every check of the run calls its per-row passes through it.
    kernels: ModuleType


def group_median(key: np.ndarray, values: np.ndarray, counts: np.ndarray,
                 kernels: ModuleType | None = None) -> np.ndarray:
    """Median of float32 ``values`` per key (NaN where a key has none).

    ``key`` made of strictly increasing runs, e.g. by track then frame (``_kernels.pad_by_key``);
    ``counts`` is ``np.bincount(key, minlength=nkeys)``. Even counts average the two
    middle values in float64. ``kernels``: the run's (chosen by ``len(key)`` when None).
    """
    pad_by_key = (kernels or kernels_for(len(key))).pad_by_key
    nkeys = len(counts)
    med = np.full(nkeys, np.nan)
    if len(values) == 0:
        return med
    mat = pad_by_key(key, values, nkeys, int(counts.max()))
    mat.sort(axis=1)
    has = np.flatnonzero(counts > 0)
    c = counts[has]
    med[has] = (mat[has, (c - 1) // 2].astype(np.float64) + mat[has, c // 2]) / 2.0
    return med


#: Fewest rows per thread for :func:`prepare` to split its last pass.
_MIN_SPLIT_ROWS = 100_000


def prepare(tracks: Tracks, pool: Executor | None = None,
            kernels: ModuleType | None = None) -> Prepared:
    """Compute :class:`Prepared` for ``tracks`` (its last pass split over ``pool`` if given).

    ``kernels`` is the module of per-row passes the run uses (``core/kernels.py``); when
    None it is chosen here by the number of visible boxes, and kept in the result for the
    checks.

    Not cached: :func:`~cvat_extension.core.checks.run_checks` computes it once and passes
    it to every check (``prepared=``), so nothing outlives the call. When no row is outside
    (MOT input, most dense tracks) the columns are views of ``tracks``, not copies. Size and
    log area are float32 (relative quantities); compensated centres stay float64 because
    the camera path accumulates over the whole sequence.

    The per-row work is three passes of the run's kernels (``prepare_rows``,
    ``camera_residuals``/``camera_spread`` over the consecutive pairs, ``compensate``)
    (numba's fused loops, or their numpy twins working in chunks of rows); the per-frame
    camera estimate between them stays numpy (medians, 1/50 of the rows).
    """
    if len(tracks) >= 2**31:
        # Row indices are int32 (half the memory); a task this size would need int64 ones.
        raise InputError(f"checks handle up to 2**31 - 1 boxes per run, got {len(tracks)}")
    visible = ~tracks.outside
    if visible.all():
        vis_rows = np.arange(len(tracks))

        def take(a: np.ndarray) -> np.ndarray:
            return a
    else:
        vis_rows = np.flatnonzero(visible)

        def take(a: np.ndarray) -> np.ndarray:
            return a[vis_rows]
    del visible
    frame = take(tracks.frame)
    tid = take(tracks.track_id)
    box = take(tracks.xyxy)
    n = len(vis_rows)
    k = kernels if kernels is not None else kernels_for(n)
    prepare_rows: Callable[..., Any] = k.prepare_rows
    camera_residuals: Callable[..., Any] = k.camera_residuals
    camera_spread: Callable[..., Any] = k.camera_spread
    compensate: Callable[..., None] = k.compensate
    # Start/end as int32 row indices (half the memory of int64; tasks stay far below 2**31).
    start, end, prev_ok, cx, cy, h, key, ratio = prepare_rows(
        np.ascontiguousarray(frame), np.ascontiguousarray(tid), np.ascontiguousarray(box))

    # Camera: per frame f, X_f = s_f X_{f-1} + T_f estimated as medians over tracks.
    f0 = int(frame.min()) if n else 0
    m = int(frame.max()) - f0 + 1 if n else 1
    cnt = np.bincount(key, minlength=m)
    log_s = group_median(key, ratio, cnt, k)
    del ratio
    ok = cnt >= _MIN_TRACKS_FOR_CAMERA
    s = np.where(ok, np.exp(np.clip(np.nan_to_num(log_s), -0.2, 0.2)), 1.0)
    dx, dy = camera_residuals(prev_ok, cx, cy, key, s)
    tx = np.where(ok, np.nan_to_num(group_median(key, dx, cnt, k)), 0.0)
    ty = np.where(ok, np.nan_to_num(group_median(key, dy, cnt, k)), 0.0)
    # Keep the shift only where it stands out of the tracks' spread (its standard error):
    # on a static camera the median of a few walkers is noise that would only add jitter.
    spread = camera_spread(key, dx, dy, tx, ty, m) / np.maximum(cnt, 1)
    del dx, dy, key
    stderr = 1.5 * spread / np.sqrt(np.maximum(cnt, 1))
    moving = np.hypot(tx, ty) > 2.0 * stderr
    shift = np.stack([np.where(moving, tx, 0.0), np.where(moving, ty, 0.0)], axis=1)
    s = np.where(moving | (np.abs(np.log(s)) > 0.01), s, 1.0)
    # Cumulative transform from frame0: A_f = prod s, B_f = A_f * sum_j T_j / A_j.
    A = np.cumprod(s)
    B = A[:, None] * np.cumsum(shift / A[:, None], axis=0)
    mode = 2 if n and (s != 1.0).any() else (1 if n and B.any() else 0)
    size = np.empty(n, np.float32)
    log_area = np.empty(n, np.float32)
    args = (np.ascontiguousarray(frame), np.ascontiguousarray(box), h, cx, cy, f0, A,
            np.ascontiguousarray(B), mode)
    # Rows are independent here: with a pool, half of them go to another thread.
    if pool is not None and n >= 2 * _MIN_SPLIT_ROWS:
        fut = pool.submit(compensate, *args, n // 2, n, size, log_area)
        compensate(*args, 0, n // 2, size, log_area)
        fut.result()
    else:
        compensate(*args, 0, n, size, log_area)
    del h
    return Prepared(
        rows=vis_rows, frame=frame, tid=tid, xyxy=box, label=take(tracks.label),
        occluded=take(tracks.occluded), visibility=take(tracks.visibility),
        start=start, end=end, prev_ok=prev_ok, cx=cx, cy=cy, size=size,
        log_area=log_area, frame0=f0, cam_scale=s, cam_shift=shift, kernels=k,
    )

@dataclass(frozen=True, eq=False)
class WindowMotion:
    """Per row i (a boundary between rows i-1 and i): fits before and after it."""

    valid: np.ndarray  # i has a same-track predecessor and rows on both sides
    pos_before: np.ndarray  # (n, 2) extrapolated position at the boundary from before
    pos_after: np.ndarray  # (n, 2) from after
    vel_before: np.ndarray  # (n, 2) px/frame (compensated)
    vel_after: np.ndarray
    size: np.ndarray  # (n,) mean size around the boundary
    jump: np.ndarray  # |pos_before - pos_after| / size
    turn: np.ndarray  # |vel_before - vel_after| * half / size


def window_motion_kept(p: Prepared, half: int, weight: np.ndarray | None, rows: np.ndarray,
                       keep: tuple[np.ndarray, np.ndarray, float, float, float] | None = None,
                       ) -> tuple[WindowMotion, np.ndarray]:
    """Constant-velocity fits on ``half``-row windows each side of the boundaries ``rows``,
    keeping only the fits that pass ``keep`` (all of them when None).

    Velocities come from the means of two half-windows (B2, B1 before; A1, A2 after), so
    they need only prefix sums; rows with ``weight`` 0 (e.g. single outlier boxes) are left
    out of every mean. The fits are aligned with ``rows`` (the prefix sums stay O(n)).

    ``keep = (always, drop, min_break, jump_min, min_jump_px)`` (arrays aligned with
    ``rows``): see ``_kernels.window_fits``. Returns the fits and the positions in ``rows``
    they belong to; the fits that fail are never written out.
    """
    n = len(p.frame)
    wgt = np.ones(n) if weight is None else np.ascontiguousarray(weight, dtype=np.float64)
    i = np.ascontiguousarray(rows, dtype=np.int64)
    if keep is None:
        no = np.zeros(0, dtype=bool)
        keep = (no, no, 0.0, 0.0, 0.0)
        filt = False
    else:
        filt = True
    always, drop, min_break, jump_min, min_jump_px = keep
    # One kernel pass (window_fits): prefix sums, then the fits per boundary.
    *arrays, kept = p.kernels.window_fits(
        p.frame, p.start, p.end, p.cx, p.cy, p.size, wgt, i, int(half), filt, always, drop,
        float(min_break), float(jump_min), float(min_jump_px))
    return WindowMotion(*arrays), kept


def runs(flag_idx: np.ndarray, tid: np.ndarray, frame: np.ndarray, max_gap_frames: int,
         min_len: int = 1) -> list[np.ndarray]:
    """Split sorted row indices into runs: same track, frames at most ``max_gap_frames`` apart.

    Runs shorter than ``min_len`` rows are dropped before any Python object is made.
    """
    if len(flag_idx) == 0:
        return []
    f = frame[flag_idx]
    t = tid[flag_idx]
    cut = np.flatnonzero((np.diff(t) != 0) | (np.diff(f) > max_gap_frames)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.append(cut, len(flag_idx))
    keep = np.flatnonzero(ends - starts >= min_len)
    return [flag_idx[starts[k]:ends[k]] for k in keep]


def rows_near_frames(p: Prepared, frames: np.ndarray, before: int = 0, after: int = 0,
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (query, row) pair where row ``r`` of ``p`` lies on a frame from
    ``frames[q] - before`` to ``frames[q] + after``.

    For checks that look at a few candidates' surroundings (drift hints, detections inside
    annotated boxes): only the rows on the frames involved are found (a lookup table over
    frames, not ``np.isin``, which sorts the whole task) and sorted, so the cost follows the
    queries, not the task. Returns ``(query, row, count)``: pairs grouped by query in query
    order, and how many pairs each query has.

    >>> t = Tracks.from_columns(frame=[0, 1, 2, 0, 2], track_id=[1, 1, 1, 2, 2],
    ...                         xyxy=[[0, 0, 1, 1]] * 5)
    >>> q, r, n = rows_near_frames(prepare(t), np.array([2, 0]), before=1)
    >>> q.tolist(), r.tolist(), n.tolist()  # frame 2 sees frames 1-2; frame 0 sees frame 0
    ([0, 0, 0, 1, 1], [1, 2, 4, 0, 3], [3, 2])
    """
    frames = np.asarray(frames, dtype=np.int64)
    if not len(frames) or not len(p.frame):
        z = np.zeros(0, dtype=np.int64)
        return z, z, np.zeros(len(frames), dtype=np.int64)
    f0 = int(p.frame0)
    wanted = np.zeros(int(p.frame.max()) - f0 + 1, dtype=bool)
    around = (frames[:, None] + np.arange(-before, after + 1)[None, :]).ravel() - f0
    wanted[around[(around >= 0) & (around < len(wanted))]] = True
    pool = np.flatnonzero(wanted[p.frame - f0])
    pool = pool[np.argsort(p.frame[pool], kind="stable")]
    pf = p.frame[pool]
    lo = np.searchsorted(pf, frames - before, side="left")
    cnt = np.searchsorted(pf, frames + after, side="right") - lo
    query = np.repeat(np.arange(len(frames)), cnt)
    off = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
    return query, pool[np.repeat(lo, cnt) + off], cnt


def quiet_rows(p: Prepared, min_visibility: float) -> np.ndarray:
    """Rows whose boxes occlusion explains: occluded flag or visibility below the bound."""
    return p.occluded | (p.visibility < min_visibility)


def box_tuple(b: np.ndarray) -> tuple[float, float, float, float]:
    return (float(b[0]), float(b[1]), float(b[2]), float(b[3]))


def check_range(owner: str, name: str, value: float, lo: float, hi: float) -> None:
    """Raise ConfigError unless ``lo <= value <= hi`` (a finite number)."""
    from cvat_extension.errors import ConfigError

    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{owner}.{name} must be a number, got {value!r}") from None
    if not (lo <= v <= hi):
        raise ConfigError(f"{owner}.{name} must be in {lo}..{hi}, got {value!r}")


#: Rows per block when a check walks the rows in blocks of whole tracks. Temporaries of a
#: block stay small enough to be reused by the allocator instead of being page-faulted in
#: afresh for every operation, which dominated run time on multi-million-row tasks.
BLOCK_ROWS = 1 << 17


def blocks(p: Prepared, block_rows: int = BLOCK_ROWS) -> list[tuple[int, int]]:
    """Row ranges ``[r0, r1)`` of about ``block_rows`` rows, cut only between tracks."""
    n = len(p.frame)
    if n == 0:
        return []
    starts = np.flatnonzero(np.arange(n) == p.start)
    cuts = np.unique(starts[np.searchsorted(starts, np.arange(0, n, block_rows), side="right") - 1])
    bounds = np.append(cuts, n)
    return [(int(a), int(b)) for a, b in pairwise(bounds)]


def block_view(p: Prepared, r0: int, r1: int) -> Prepared:
    """The rows ``[r0, r1)`` of ``p`` (whole tracks) as a Prepared of views, indices local."""
    sl = slice(r0, r1)
    return Prepared(
        rows=p.rows[sl], frame=p.frame[sl], tid=p.tid[sl], xyxy=p.xyxy[sl], label=p.label[sl],
        occluded=p.occluded[sl], visibility=p.visibility[sl], start=p.start[sl] - r0,
        end=p.end[sl] - r0, prev_ok=p.prev_ok[sl], cx=p.cx[sl], cy=p.cy[sl], size=p.size[sl],
        log_area=p.log_area[sl], frame0=p.frame0, cam_scale=p.cam_scale, cam_shift=p.cam_shift,
        kernels=p.kernels,
    )
