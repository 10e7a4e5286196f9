"""numpy twin of ``_kernels.match_frames``: best same-frame IoU both ways, private.

Apart from the other twins (``_kernels_numpy.py``) because its cost follows the same-frame
*pairs*, not the rows: :func:`cvat_extension.core.kernels.match_kernels_for` chooses for it
by that count. Every pair's IoU is the kernel's float32 arithmetic (selects, not
``min``/``max``, for the overlap; union floored at 1e-12); the maxima over pairs are
``fmax`` reductions, which ignore NaN as the kernel's comparisons do and, maxima being
exact, give the kernel's values whatever the order.
"""

from __future__ import annotations

import numpy as np

__all__ = ["match_frames", "same_frame_pairs"]

#: Same-frame pairs per chunk: ~40 bytes of temporaries each (10 MiB a chunk).
_MATCH_CHUNK_PAIRS = 1 << 18


def _by_frame(frame: np.ndarray, f_lo: int, f_hi: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows with ``f_lo <= frame < f_hi`` in (frame, row) order, and per-frame offsets."""
    rows = np.flatnonzero((frame >= f_lo) & (frame < f_hi))
    rows = rows[np.argsort(frame[rows], kind="stable")]
    off = np.zeros(f_hi - f_lo + 1, np.int64)
    np.cumsum(np.bincount(frame[rows] - f_lo, minlength=f_hi - f_lo), out=off[1:])
    return rows, off


def same_frame_pairs(a_frame: np.ndarray, b_frame: np.ndarray) -> int:
    """How many (a, b) pairs share a frame: the work of :func:`match_frames`."""
    if len(a_frame) == 0 or len(b_frame) == 0:
        return 0
    lo = int(min(a_frame.min(), b_frame.min()))
    hi = int(max(a_frame.max(), b_frame.max())) + 1
    ca = np.bincount(a_frame - lo, minlength=hi - lo)
    cb = np.bincount(b_frame - lo, minlength=hi - lo)
    return int(np.dot(ca, cb))


def match_frames(a_frame: np.ndarray, a_xyxy: np.ndarray, b_frame: np.ndarray,
                 b_xyxy: np.ndarray, b_ok: np.ndarray, f_lo: int, f_hi: int, best_a: np.ndarray,
                 best_b: np.ndarray) -> None:
    """Best IoU of each ``a`` box with the ``b`` boxes of its frame, and vice versa.

    Same contract as ``_kernels.match_frames``: only the rows of frames
    ``f_lo <= f < f_hi`` of ``best_a`` (over ``b`` boxes with ``b_ok``) and ``best_b`` (over
    all ``a`` boxes) are written, 0 where nothing overlaps.
    """
    f_lo, f_hi = int(f_lo), int(f_hi)
    if len(a_frame) == 0 or len(b_frame) == 0 or f_hi <= f_lo:
        return
    f32 = np.float32
    ia, oa = _by_frame(a_frame, f_lo, f_hi)
    ib, ob = _by_frame(b_frame, f_lo, f_hi)
    ax0, ay0, ax1, ay1 = (a_xyxy[ia, k].astype(f32) for k in range(4))
    bx0, by0, bx1, by1 = (b_xyxy[ib, k].astype(f32) for k in range(4))
    aar = (ax1 - ax0) * (ay1 - ay0)
    bar = (bx1 - bx0) * (by1 - by0)
    bok = b_ok[ib]
    finite = bool(np.isfinite(ax0).all() and np.isfinite(ax1).all() and np.isfinite(ay0).all()
                  and np.isfinite(ay1).all() and np.isfinite(bx0).all() and np.isfinite(bx1).all()
                  and np.isfinite(by0).all() and np.isfinite(by1).all())
    abest = np.zeros(len(ia), f32)
    bbest = np.zeros(len(ib), f32)
    fa = a_frame[ia] - f_lo
    lo = ob[fa]
    cnt = ob[fa + 1] - lo  # b boxes in each a box's frame
    cum = np.cumsum(cnt)
    zero = f32(0.0)
    tiny = f32(1e-12)
    r0 = 0
    while r0 < len(ia):
        base = int(cum[r0 - 1]) if r0 else 0
        r1 = max(r0 + 1, int(np.searchsorted(cum, base + _MATCH_CHUNK_PAIRS, side="right")))
        c = cnt[r0:r1]
        tot = int(cum[r1 - 1]) - base
        if tot:
            with np.errstate(all="ignore"):  # inf/NaN corners: the kernel's values, no warnings
                first = np.cumsum(c) - c
                j = np.repeat(lo[r0:r1] - first, c) + np.arange(tot)
                u, w = bx1[j], bx0[j]
                if finite:
                    # Finite boxes: min/max are the kernel's selects (they differ only for NaN
                    # and the sign of a zero, which the clip below makes +0), and the a side
                    # is a repeat of contiguous rows instead of a gather.
                    iw = np.minimum(np.repeat(ax1[r0:r1], c), u)
                    iw -= np.maximum(np.repeat(ax0[r0:r1], c), w)
                    u, w = by1[j], by0[j]
                    ih = np.minimum(np.repeat(ay1[r0:r1], c), u)
                    ih -= np.maximum(np.repeat(ay0[r0:r1], c), w)
                    np.maximum(iw, zero, out=iw)
                    np.maximum(ih, zero, out=ih)
                    iw += zero  # -0 -> +0, as the kernel's select gives
                    ih += zero
                    inter = iw * ih
                    un = np.repeat(aar[r0:r1], c) + bar[j] - inter
                else:
                    pa = np.repeat(np.arange(r0, r1), c)
                    x0, y0, x1, y1 = ax0[pa], ay0[pa], ax1[pa], ay1[pa]
                    iw = np.where(x1 < u, x1, u) - np.where(x0 > w, x0, w)
                    u, w = by1[j], by0[j]
                    ih = np.where(y1 < u, y1, u) - np.where(y0 > w, y0, w)
                    iw = np.where(iw > zero, iw, zero)
                    ih = np.where(ih > zero, ih, zero)
                    inter = iw * ih
                    un = aar[pa] + bar[j] - inter
                iou = inter / np.where(un > tiny, un, tiny)
                has = c > 0
                best = np.fmax.reduceat(np.where(bok[j], iou, zero), first[has])
                abest[r0:r1][has] = np.fmax(best, zero)
                np.fmax.at(bbest, j, iou)
        r0 = r1
    best_a[ia] = abest
    best_b[ib] = bbest
