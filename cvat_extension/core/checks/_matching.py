"""Same-frame matching of annotated boxes with another set of boxes (private).

- :class:`DetectionMatch` / :func:`start_match`: one search over every same-frame pair of
  the visible annotated boxes and the detections gives ``ghost`` each box's support and
  ``missing_object`` each detection's coverage (split by frames over a thread pool);
- :func:`best_match_same_frame`: for each box, the best IoU with boxes of another set in
  the same frame, without building the full per-frame matrix (sort by frame and x).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from itertools import pairwise
from types import ModuleType

import numpy as np

from cvat_extension.core.checks._common import Prepared
from cvat_extension.core.kernels import match_kernels_for
from cvat_extension.core.tracks import Tracks

__all__ = ["DetectionMatch", "best_match_same_frame", "match_detections", "start_match", "visible_boxes"]


@dataclass(frozen=True, eq=False)
class DetectionMatch:
    """Same-frame overlap of the visible annotated boxes with given detections (both ways).

    ``ghost`` needs each annotated box's support (best IoU with a confident detection) and
    ``missing_object`` each detection's coverage (best IoU with an annotated box): one pair
    search gives both, so :func:`~cvat_extension.core.checks.run_checks` computes it once.
    """

    min_det_score: float  # detections below it do not count for ``support``
    support: np.ndarray  # (n,) float32 per Prepared row
    coverage: np.ndarray  # (len(detections),) float32


def match_detections(p: Prepared, detections: Tracks, min_det_score: float) -> DetectionMatch:
    """Compute :class:`DetectionMatch` (exact float32 IoU over every same-frame pair)."""
    return start_match(p.frame, p.xyxy, detections, min_det_score, kernels=p.kernels)()


def visible_boxes(tracks: Tracks) -> tuple[np.ndarray, np.ndarray]:
    """Frames and boxes of the visible rows, in :class:`Prepared` order (views when all are)."""
    visible = ~tracks.outside
    if visible.all():
        return tracks.frame, tracks.xyxy
    return tracks.frame[visible], tracks.xyxy[visible]


def start_match(frame: np.ndarray, xyxy: np.ndarray, detections: Tracks, min_det_score: float,
                pool: Executor | None = None, parts: int = 1,
                kernels: ModuleType | None = None) -> Callable[[], DetectionMatch]:
    """Start :func:`match_detections` on ``frame``/``xyxy`` (the visible rows) and return
    a function that waits for it.

    With a ``pool`` the frames are split into ``parts`` ranges of about equal rows, matched
    side by side (the kernel releases the GIL; frames are independent, so results do not
    depend on the split). It needs only the boxes, not :func:`prepare`, so ``run_checks``
    starts it first and prepares meanwhile.

    ``kernels``: the run's kernels module, if chosen. The match uses numba when the run
    does (its start is paid) or when the same-frame pairs are many
    (``core/kernels.match_kernels_for``); both give identical results.
    """
    from cvat_extension.core._kernels_numpy_match import same_frame_pairs

    ok = ~detections.outside & (detections.score >= min_det_score)
    support = np.zeros(len(frame), np.float32)
    coverage = np.zeros(len(detections), np.float32)
    args = (np.ascontiguousarray(frame), np.ascontiguousarray(xyxy), np.ascontiguousarray(detections.frame),
            np.ascontiguousarray(detections.xyxy), ok)
    if len(frame) and len(detections):
        match_frames: Callable[..., None] = match_kernels_for(
            lambda: same_frame_pairs(frame, detections.frame), kernels).match_frames
        lo = int(min(frame.min(), detections.frame.min()))
        hi = int(max(frame.max(), detections.frame.max())) + 1
        parts = max(1, parts) if pool is not None else 1
        if parts > 1:
            # Cuts at quantiles of the annotated rows' frames: equal work per part.
            q = np.quantile(frame, np.arange(1, parts) / parts).astype(np.int64)
            edges = np.unique(np.concatenate([[lo], q, [hi]]))
        else:
            edges = np.array([lo, hi])
        jobs = [(int(a), int(b)) for a, b in pairwise(edges)]
        if pool is None:
            for a, b in jobs:
                match_frames(*args, a, b, support, coverage)
            futures = []
        else:
            futures = [pool.submit(match_frames, *args, a, b, support, coverage) for a, b in jobs]
    else:
        futures = []
    score = float(min_det_score)

    def wait() -> DetectionMatch:
        for f in futures:
            f.result()
        return DetectionMatch(score, support, coverage)

    return wait


def best_match_same_frame(
    a_frame: np.ndarray, a_xyxy: np.ndarray, b_frame: np.ndarray, b_xyxy: np.ndarray,
    *, min_iou: float = 0.0, a_rows: np.ndarray | None = None, b_rows: np.ndarray | None = None,
    block: int = 1 << 16, chunk_rows: int = 1 << 20,
) -> tuple[np.ndarray, np.ndarray]:
    """For each box of ``a``, the best IoU with a box of ``b`` in the same frame, and its index.

    A sort-based join, never an (n, k) matrix: both sets are sorted by (frame, centre x), so
    each ``a`` box takes the contiguous range of ``b`` boxes of its frame whose centres are
    within reach (two ``searchsorted`` calls), and IoU is computed only for those pairs.
    IoU >= t needs ``w_b <= w_a / t`` and ``IoU <= iw / min(w_a, w_b)`` with
    ``iw <= (w_a + w_b) / 2 - |dx|``, so centres are at most
    ``w_a ((1 + 1/t) / 2 - t)`` apart (t <= 0.5; above it the t = 0.5 bound holds). With
    ``min_iou`` 0 the reach is bounded by the widest ``b`` box instead. Results at or above
    ``min_iou`` are exact to float32 precision; below it they are lower bounds.

    Sorting ``a`` too keeps the binary searches and the gathers from ``b`` sequential in
    memory, which matters more than the arithmetic on multi-million-box tasks; ``a`` is
    processed in blocks of ``block`` rows so temporaries stay in small, reused buffers.
    ``a_rows``/``b_rows`` select rows of the given arrays without the caller copying them
    (results are then aligned with ``a_rows``, indices point into ``b_rows``). Index is -1
    where no box of ``b`` overlaps.

    Frames are processed in chunks of about ``chunk_rows`` rows of ``a`` (boxes of
    different frames never match), so the sort keys, indices and float32 columns of one
    chunk are all that is alive at once: memory stays flat as tasks grow.
    """
    a_f = a_frame if a_rows is None else a_frame[a_rows]
    na = len(a_f)
    if na <= chunk_rows or len(b_frame) == 0:
        return _match_chunk(a_frame, a_xyxy, b_frame, b_xyxy, min_iou=min_iou, a_rows=a_rows,
                            b_rows=b_rows, block=block)
    b_f = b_frame if b_rows is None else b_frame[b_rows]
    lo_f, hi_f = int(a_f.min()), int(a_f.max()) + 1
    edges = np.unique(np.linspace(lo_f, hi_f, -(-na // chunk_rows) + 1).astype(np.int64))
    best = np.zeros(na)
    arg = np.full(na, -1, dtype=np.int64)
    for e0, e1 in pairwise(edges):
        ia = np.flatnonzero((a_f >= e0) & (a_f < e1))
        ib = np.flatnonzero((b_f >= e0) & (b_f < e1))
        if len(ia) == 0 or len(ib) == 0:
            continue
        bc, ac = _match_chunk(
            a_frame, a_xyxy, b_frame, b_xyxy, min_iou=min_iou, block=block,
            a_rows=ia if a_rows is None else a_rows[ia], b_rows=ib if b_rows is None else b_rows[ib])
        best[ia] = bc
        hit = ac >= 0
        arg[ia[hit]] = ib[ac[hit]]
    return best, arg


def _match_chunk(
    a_frame: np.ndarray, a_xyxy: np.ndarray, b_frame: np.ndarray, b_xyxy: np.ndarray,
    *, min_iou: float = 0.0, a_rows: np.ndarray | None = None, b_rows: np.ndarray | None = None,
    block: int = 1 << 16,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`best_match_same_frame` on one chunk of frames (see there)."""
    f32 = np.float32

    def col(xyxy: np.ndarray, rows: np.ndarray | None, k: int) -> np.ndarray:
        return xyxy[:, k] if rows is None else xyxy[rows, k]

    def sel(v: np.ndarray, rows: np.ndarray | None) -> np.ndarray:
        return v if rows is None else v[rows]

    na = len(a_frame) if a_rows is None else len(a_rows)
    nb = len(b_frame) if b_rows is None else len(b_rows)
    best = np.zeros(na)
    arg = np.full(na, -1, dtype=np.int64)
    if na == 0 or nb == 0:
        return best, arg
    acx = col(a_xyxy, a_rows, 0) + col(a_xyxy, a_rows, 2)
    acx *= 0.5
    bcx = col(b_xyxy, b_rows, 0) + col(b_xyxy, b_rows, 2)
    bcx *= 0.5
    reach = col(a_xyxy, a_rows, 2) - col(a_xyxy, a_rows, 0)
    if min_iou > 0:
        reach *= (1 + 1 / min(min_iou, 1.0)) / 2 - min(min_iou, 0.5)
    else:
        reach += float(max((col(b_xyxy, b_rows, 2) - col(b_xyxy, b_rows, 0)).max(), 0.0))
        reach *= 0.5
    reach += 1e-3  # float32 rounding of the coordinates
    xmin = float(min(acx.min(), bcx.min()))
    span = float(max(acx.max(), bcx.max()) - xmin) + 2 * float(reach.max()) + 2
    akey = sel(a_frame, a_rows) * span
    akey += acx
    akey -= xmin
    del acx
    aord = np.argsort(akey)
    akey = np.take(akey, aord)
    reach = np.take(reach, aord)
    bkey = sel(b_frame, b_rows) * span
    bkey += bcx
    bkey -= xmin
    del bcx
    border = np.argsort(bkey)
    bkey = np.take(bkey, border)
    lo = np.searchsorted(bkey, akey - reach, side="left")
    hi = np.searchsorted(bkey, akey + reach, side="right")
    del akey, bkey, reach
    # float32 columns in sorted order, gathered straight from the caller's rows.
    ga = aord if a_rows is None else a_rows[aord]
    ax0, ay0, ax1, ay1 = (np.take(a_xyxy[:, k], ga).astype(f32) for k in range(4))
    del ga
    gb = border if b_rows is None else b_rows[border]
    bx0, by0, bx1, by1 = (np.take(b_xyxy[:, k], gb).astype(f32) for k in range(4))
    del gb
    aarea = (ax1 - ax0) * (ay1 - ay0)
    barea = (bx1 - bx0) * (by1 - by0)
    counts = np.maximum(hi - lo, 0)
    del hi
    sbest = np.zeros(na, dtype=f32)
    sarg = np.full(na, -1, dtype=np.int64)
    # Offset loop instead of expanding pairs: in a block of ``a`` ordered by candidate count
    # (descending), the rows with a d-th candidate are a prefix, so step d computes IoU for
    # that prefix against b[lo + d] with contiguous a-side slices and a running maximum; no
    # repeat/reduceat over pair arrays.
    for r0 in range(0, na, block):
        r1 = min(na, r0 + block)
        c = counts[r0:r1]
        # Descending counts by a stable radix sort of small unsigned keys (counts are few).
        top = int(c.max()) if len(c) else 0
        desc = (top - c).astype(np.uint16) if top < 65535 else -c
        o = np.argsort(desc, kind="stable") + r0
        cs = np.take(counts, o)
        kmax = int(cs[0]) if len(cs) else 0
        if kmax == 0:
            continue
        # rows with more than d candidates: a prefix of o, its length for each d
        nd = np.searchsorted(-cs, -np.arange(kmax), side="left")
        x0, y0, x1, y1, ar = (np.take(v, o) for v in (ax0, ay0, ax1, ay1, aarea))
        lo_o = np.take(lo, o)
        bb = np.zeros(len(o), dtype=f32)
        ba = np.full(len(o), -1, dtype=np.int64)
        for d in range(kmax):
            k = int(nd[d])
            j = lo_o[:k] + d
            # np.take, not fancy indexing: several times faster for 1-D gathers.
            iw = np.minimum(x1[:k], np.take(bx1, j))
            iw -= np.maximum(x0[:k], np.take(bx0, j))
            ih = np.minimum(y1[:k], np.take(by1, j))
            ih -= np.maximum(y0[:k], np.take(by0, j))
            np.maximum(iw, 0, out=iw)
            np.maximum(ih, 0, out=ih)
            iw *= ih  # intersection; union >= intersection, and both are 0 together
            union = ar[:k] + np.take(barea, j)
            union -= iw
            np.maximum(union, 1e-12, out=union)
            iw /= union
            better = iw > bb[:k]  # strict: the first candidate reaching the maximum wins
            np.copyto(bb[:k], iw, where=better)
            np.copyto(ba[:k], j, where=better)
        sbest[o] = bb
        sarg[o] = ba
    best[aord] = sbest
    ok = sarg >= 0
    arg[aord[ok]] = border[sarg[ok]]
    return best, arg
