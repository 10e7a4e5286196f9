"""Compiled inner loops of the QA checks (numba), private.

Only the loops that numpy cannot express without materialising per-row temporaries live
here; everything around them stays numpy. Each kernel is one pass over arrays the caller
already has sorted, ``nogil`` so that :func:`~cvat_extension.core.checks.run_checks`'
threads run them side by side, and ``cache=True`` so the compilation (a few seconds) is
paid once per installation: numba writes the cache next to this file, or under
``NUMBA_CACHE_DIR`` / a user cache directory when the package directory is read-only.

The arithmetic deliberately repeats the numpy code these kernels replaced, operation for
operation and in the same precision (float32 IoU, float64 fits, sequential prefix sums),
so findings do not change with the implementation.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["group_median", "match_same_frame", "window_fits"]


@njit(cache=True, nogil=True)
def group_median(key: np.ndarray, values: np.ndarray, nkeys: int) -> np.ndarray:  # pragma: no cover - compiled
    """Median of float32 ``values`` per integer ``key`` in ``[0, nkeys)``; NaN for empty keys.

    A counting sort by key, then a sort of each (small) group: O(n) plus the groups' sorts,
    no (keys, max count) padding matrix. Even counts average the two middle values in
    float64, as the padding-matrix version did.
    """
    n = len(key)
    offsets = np.zeros(nkeys + 1, np.int64)
    for i in range(n):
        offsets[key[i] + 1] += 1
    for k in range(nkeys):
        offsets[k + 1] += offsets[k]
    pos = offsets[:-1].copy()
    buf = np.empty(n, np.float32)
    for i in range(n):
        k = key[i]
        buf[pos[k]] = values[i]
        pos[k] += 1
    out = np.full(nkeys, np.nan)
    for k in range(nkeys):
        a = offsets[k]
        c = offsets[k + 1] - a
        if c == 0:
            continue
        seg = buf[a:a + c]
        seg.sort()
        out[k] = (np.float64(seg[(c - 1) // 2]) + np.float64(seg[c // 2])) / 2.0
    return out


@njit(cache=True, nogil=True)
def window_fits(frame: np.ndarray, start: np.ndarray, end: np.ndarray, cx: np.ndarray,
                cy: np.ndarray, size: np.ndarray, weight: np.ndarray, rows: np.ndarray,
                half: int):  # pragma: no cover - compiled
    """Constant-velocity fits each side of the boundaries ``rows`` (see ``window_motion``).

    Returns ``valid, pos_before, pos_after, vel_before, vel_after, size, jump, turn``
    aligned with ``rows``. Means of the half-windows come from weighted prefix sums over
    all ``n`` rows (summed sequentially, as ``np.cumsum`` does), so results equal the
    numpy formulation bit for bit while no (rows, 4) temporaries are made.
    """
    n = len(frame)
    p0 = np.empty(n + 1)
    pt = np.empty(n + 1)
    px = np.empty(n + 1)
    py = np.empty(n + 1)
    ps = np.empty(n + 1)
    p0[0] = pt[0] = px[0] = py[0] = ps[0] = 0.0
    for k in range(n):
        w = weight[k]
        t = np.float64(frame[k] - frame[start[k]])
        p0[k + 1] = p0[k] + w
        pt[k + 1] = pt[k] + w * t
        px[k + 1] = px[k] + w * cx[k]
        py[k + 1] = py[k] + w * cy[k]
        ps[k + 1] = ps[k] + w * np.float64(size[k])
    m = len(rows)
    valid = np.zeros(m, np.bool_)
    pb = np.zeros((m, 2))
    pa = np.zeros((m, 2))
    vb = np.zeros((m, 2))
    va = np.zeros((m, 2))
    sz = np.ones(m)
    jump = np.zeros(m)
    turn = np.zeros(m)
    nan = np.nan
    big = np.finfo(np.float64).max
    for q in range(m):
        i = rows[q]
        s = start[i]
        e = end[i]
        b2a = max(s, i - 2 * half)
        b1a = max(s, i - half)
        a1b = min(e, i + half)
        a2b = min(e, i + 2 * half)
        # the four half-window means (t, x, y, size); NaN where a window is empty
        bounds = ((b2a, b1a), (b1a, i), (i, a1b), (a1b, a2b))
        cnt = np.empty(4)
        mt = np.empty(4)
        mx = np.empty(4)
        my = np.empty(4)
        ms = np.empty(4)
        for w in range(4):
            lo, hi = bounds[w]
            c = p0[hi] - p0[lo]
            inv = 1.0 / max(c, 1e-12)
            cnt[w] = c
            if c <= 0:
                mt[w] = mx[w] = my[w] = ms[w] = nan
            else:
                mt[w] = (pt[hi] - pt[lo]) * inv
                mx[w] = (px[hi] - px[lo]) * inv
                my[w] = (py[hi] - py[lo]) * inv
                ms[w] = (ps[hi] - ps[lo]) * inv
        # velocities before (B2 -> B1) and after (A1 -> A2)
        dtb = mt[1] - mt[0]
        dta = mt[3] - mt[2]
        if abs(dtb) > 0:
            vbx = (mx[1] - mx[0]) / dtb
            vby = (my[1] - my[0]) / dtb
        else:
            vbx = vby = nan
        if abs(dta) > 0:
            vax = (mx[3] - mx[2]) / dta
            vay = (my[3] - my[2]) / dta
        else:
            vax = vay = nan
        if np.isnan(vbx):
            vbx = vax
        if np.isnan(vby):
            vby = vay
        if np.isnan(vax):
            vax = vbx
        if np.isnan(vay):
            vay = vby
        # np.nan_to_num: NaN -> 0, +-inf -> +-max float
        vbx = 0.0 if np.isnan(vbx) else (big if vbx == np.inf else (-big if vbx == -np.inf else vbx))
        vby = 0.0 if np.isnan(vby) else (big if vby == np.inf else (-big if vby == -np.inf else vby))
        vax = 0.0 if np.isnan(vax) else (big if vax == np.inf else (-big if vax == -np.inf else vax))
        vay = 0.0 if np.isnan(vay) else (big if vay == np.inf else (-big if vay == -np.inf else vay))
        vb[q, 0] = vbx
        vb[q, 1] = vby
        va[q, 0] = vax
        va[q, 1] = vay
        tau = (frame[max(i - 1, 0)] + frame[i]) / 2.0 - frame[s]
        size_q = np.sqrt(abs(ms[1] * ms[2]))
        ok = (i > s) and cnt[1] > 0 and cnt[2] > 0 and np.isfinite(size_q) and size_q > 0
        if not ok:
            continue
        valid[q] = True
        bx = mx[1] + vbx * (tau - mt[1])
        by = my[1] + vby * (tau - mt[1])
        ax = mx[2] + vax * (tau - mt[2])
        ay = my[2] + vay * (tau - mt[2])
        pb[q, 0] = bx
        pb[q, 1] = by
        pa[q, 0] = ax
        pa[q, 1] = ay
        sz[q] = size_q
        jump[q] = np.hypot(bx - ax, by - ay) / size_q
        turn[q] = np.hypot(vbx - vax, vby - vay) * half / size_q
    return valid, pb, pa, vb, va, sz, jump, turn


@njit(cache=True, nogil=True)
def match_same_frame(a_frame: np.ndarray, a_xyxy: np.ndarray, b_frame: np.ndarray,
                     b_xyxy: np.ndarray, b_ok: np.ndarray):  # pragma: no cover - compiled
    """Best IoU of each ``a`` box with the ``b`` boxes of its frame, and vice versa.

    Returns ``(best_a, best_b)`` (float32): ``best_a[i]`` over the ``b`` boxes with
    ``b_ok``, ``best_b[j]`` over all ``a`` boxes; 0 where nothing overlaps. Both sets are
    bucketed by frame with a counting sort, then every same-frame pair is scored once, in
    float32 as the numpy matcher did (``(a_area + b_area - inter)``, union floored at
    1e-12). One search serves both directions: ``ghost`` needs the support of each track
    box, ``missing_object`` the coverage of each detection.
    """
    na = len(a_frame)
    nb = len(b_frame)
    best_a = np.zeros(na, np.float32)
    best_b = np.zeros(nb, np.float32)
    if na == 0 or nb == 0:
        return best_a, best_b
    f0 = min(a_frame.min(), b_frame.min())
    nf = max(a_frame.max(), b_frame.max()) - f0 + 1
    oa = np.zeros(nf + 1, np.int64)
    ob = np.zeros(nf + 1, np.int64)
    for i in range(na):
        oa[a_frame[i] - f0 + 1] += 1
    for j in range(nb):
        ob[b_frame[j] - f0 + 1] += 1
    for f in range(nf):
        oa[f + 1] += oa[f]
        ob[f + 1] += ob[f]
    pa = oa[:-1].copy()
    pb = ob[:-1].copy()
    ia = np.empty(na, np.int64)
    ib = np.empty(nb, np.int64)
    for i in range(na):
        f = a_frame[i] - f0
        ia[pa[f]] = i
        pa[f] += 1
    for j in range(nb):
        f = b_frame[j] - f0
        ib[pb[f]] = j
        pb[f] += 1
    # per-frame float32 copies of the b boxes (contiguous, reused)
    width = 0
    for f in range(nf):
        width = max(width, ob[f + 1] - ob[f])
    bx0 = np.empty(width, np.float32)
    by0 = np.empty(width, np.float32)
    bx1 = np.empty(width, np.float32)
    by1 = np.empty(width, np.float32)
    bar = np.empty(width, np.float32)
    bok = np.empty(width, np.bool_)
    bbest = np.empty(width, np.float32)
    iou = np.empty(width, np.float32)
    tiny = np.float32(1e-12)
    zero = np.float32(0.0)
    for f in range(nf):
        a0, a1 = oa[f], oa[f + 1]
        b0, b1 = ob[f], ob[f + 1]
        k = b1 - b0
        if a0 == a1 or k == 0:
            continue
        for q in range(k):
            j = ib[b0 + q]
            bx0[q] = np.float32(b_xyxy[j, 0])
            by0[q] = np.float32(b_xyxy[j, 1])
            bx1[q] = np.float32(b_xyxy[j, 2])
            by1[q] = np.float32(b_xyxy[j, 3])
            bar[q] = (bx1[q] - bx0[q]) * (by1[q] - by0[q])
            bok[q] = b_ok[j]
            bbest[q] = zero
        for r in range(a0, a1):
            i = ia[r]
            x0 = np.float32(a_xyxy[i, 0])
            y0 = np.float32(a_xyxy[i, 1])
            x1 = np.float32(a_xyxy[i, 2])
            y1 = np.float32(a_xyxy[i, 3])
            ar = (x1 - x0) * (y1 - y0)
            for q in range(k):  # branch-free: the compiler vectorises it
                iw = max(min(x1, bx1[q]) - max(x0, bx0[q]), zero)
                ih = max(min(y1, by1[q]) - max(y0, by0[q]), zero)
                inter = iw * ih
                v = inter / max(ar + bar[q] - inter, tiny)
                iou[q] = v
                bbest[q] = max(bbest[q], v)
            m = zero
            for q in range(k):
                if bok[q] and iou[q] > m:
                    m = iou[q]
            best_a[i] = m
        for q in range(k):
            best_b[ib[b0 + q]] = bbest[q]
    return best_a, best_b
