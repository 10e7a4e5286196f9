"""Compiled inner loops of the QA checks (numba), private.

Only the loops that numpy cannot express without materialising per-row temporaries live
here (the per-row passes of ``prepare``, screens, window fits, pair searches); the
per-frame and per-finding work around them stays numpy. This module imports numba: the
checks import it inside functions, so importing ``cvat_extension.core.checks`` does not. Each kernel is one pass over arrays the caller
already has sorted, ``nogil`` so that :func:`~cvat_extension.core.checks.run_checks`'
threads run them side by side, and ``cache=True`` so the compilation (a few seconds) is
paid once per installation: numba writes the cache next to this file, or under
``NUMBA_CACHE_DIR`` / a user cache directory when the package directory is read-only.

The arithmetic deliberately repeats the numpy code these kernels replaced, operation for
operation and in the same precision (float32 IoU, float64 fits, sequential prefix sums),
so findings do not change with the implementation.

Each kernel has a numpy twin of the same name in ``core/_kernels_numpy.py`` with
bit-identical results (tests/core/checks/test_kernels_numpy.py); ``core/kernels.py``
picks one module per run by its size, so tasks below a few million boxes never pay this
module's ~1 s start. A change here needs the same change there.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["camera_residuals", "camera_spread", "compensate", "match_frames",
           "offset_screen", "pad_by_key", "prepare_rows", "quiet_near", "static_rows", "swap_pairs",
           "size_flags", "switch_screen", "track_summary", "window_fits"]


#: Keys per chunk of :func:`pad_by_key`: the chunk's rows of the matrix stay in cache
#: while values are scattered into them, instead of one cache miss per value.
_PAD_CHUNK_KEYS = 2048


@njit(cache=True, nogil=True)
def pad_by_key(key: np.ndarray, values: np.ndarray, nkeys: int,
               width: int) -> np.ndarray:  # pragma: no cover - compiled
    """``values`` laid out as a (nkeys, width) float32 matrix, one row per key, +inf padded.

    ``key`` must be a concatenation of strictly increasing runs (the camera estimate's
    consecutive pairs: by track, then frame) with at most ``width`` rows per key; runs are
    found where the key stops increasing, so no group column is needed. Keys are filled in
    chunks: each run's rows of a chunk are contiguous, so values are read sequentially and
    written into a few cached rows. numpy then sorts the rows (its SIMD sort beats any
    per-key selection here); the order within a row does not matter.
    """
    n = len(key)
    mat = np.full((nkeys, width), np.inf, np.float32)
    if n == 0:
        return mat
    ng = 1
    for i in range(1, n):
        if key[i] <= key[i - 1]:
            ng += 1
    seg = np.empty(ng + 1, np.int64)
    seg[0] = 0
    g = 1
    for i in range(1, n):
        if key[i] <= key[i - 1]:
            seg[g] = i
            g += 1
    seg[ng] = n
    cur = seg[:-1].copy()
    ch = _PAD_CHUNK_KEYS
    fill = np.zeros(ch, np.int64)
    for c0 in range(0, nkeys, ch):
        c1 = min(nkeys, c0 + ch)
        fill[:] = 0
        for g in range(ng):
            r = cur[g]
            e = seg[g + 1]
            while r < e and key[r] < c1:
                k = key[r]
                mat[k, fill[k - c0]] = values[r]
                fill[k - c0] += 1
                r += 1
            cur[g] = r
    return mat


@njit(cache=True, nogil=True)
def window_fits(frame: np.ndarray, start: np.ndarray, end: np.ndarray, cx: np.ndarray,
                cy: np.ndarray, size: np.ndarray, weight: np.ndarray, rows: np.ndarray,
                half: int, filt: bool, always: np.ndarray, drop: np.ndarray, min_break: float,
                jump_min: float, min_jump_px: float):  # pragma: no cover - compiled
    """Constant-velocity fits each side of the boundaries ``rows`` (see ``window_motion``).

    Returns ``valid, pos_before, pos_after, vel_before, vel_after, size, jump, turn, kept``
    aligned with ``rows`` (ascending), ``kept`` the positions in ``rows`` returned: all of
    them unless ``filt``. With ``filt`` (id_switch) a fit is kept only where ``always``, or
    where it is valid, not ``drop`` and either ``jump + turn >= min_break`` or
    ``jump >= jump_min`` and ``jump * size >= min_jump_px``: the fits no test can use are
    never written out. Means of the half-windows come from weighted prefix
    sums over the rows (summed sequentially from row 0, as ``np.cumsum`` does), so results
    equal the numpy formulation bit for bit while no per-row temporaries are made.
    """
    # Prefix sums are produced on the fly into a ring of the last R values (a window
    # spans 4 * half + 1 prefix indices): the same sequential sums as np.cumsum, without
    # five (n + 1) arrays whose first touch (page faults) cost more than the arithmetic.
    R = 4 * half + 2
    ring = np.zeros((5, R))
    done = 0  # prefix sums known for indices 0..done
    m = len(rows)
    valid = np.zeros(m, np.bool_)
    pb = np.zeros((m, 2))
    pa = np.zeros((m, 2))
    vb = np.zeros((m, 2))
    va = np.zeros((m, 2))
    sz = np.ones(m)
    jump = np.zeros(m)
    turn = np.zeros(m)
    kept = np.empty(m, np.int64)
    k_out = 0
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
        # the four half-window means (count, t, x, y, size); NaN where a window is empty
        while done < a2b:
            k = done
            w = weight[k]
            t = np.float64(frame[k] - frame[start[k]])
            o = k % R
            o1 = (k + 1) % R
            ring[0, o1] = ring[0, o] + w
            ring[1, o1] = ring[1, o] + w * t
            ring[2, o1] = ring[2, o] + w * cx[k]
            ring[3, o1] = ring[3, o] + w * cy[k]
            ring[4, o1] = ring[4, o] + w * np.float64(size[k])
            done += 1
        c0, t0, x0, y0, _s0 = _window_mean(ring, b2a % R, b1a % R)
        c1, t1, x1, y1, s1 = _window_mean(ring, b1a % R, i % R)
        c2, t2, x2, y2, s2 = _window_mean(ring, i % R, a1b % R)
        c3, t3, x3, y3, _s3 = _window_mean(ring, a1b % R, a2b % R)
        # velocities before (B2 -> B1) and after (A1 -> A2)
        dtb = t1 - t0
        dta = t3 - t2
        if abs(dtb) > 0:
            vbx = (x1 - x0) / dtb
            vby = (y1 - y0) / dtb
        else:
            vbx = vby = nan
        if abs(dta) > 0:
            vax = (x3 - x2) / dta
            vay = (y3 - y2) / dta
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
        tau = (frame[max(i - 1, 0)] + frame[i]) / 2.0 - frame[s]
        size_q = np.sqrt(abs(s1 * s2))
        ok = (i > s) and c1 > 0 and c2 > 0 and np.isfinite(size_q) and size_q > 0
        if ok:
            bx = x1 + vbx * (tau - t1)
            by = y1 + vby * (tau - t1)
            ax = x2 + vax * (tau - t2)
            ay = y2 + vay * (tau - t2)
            jq = np.hypot(bx - ax, by - ay) / size_q
            tq = np.hypot(vbx - vax, vby - vay) * half / size_q
        else:
            bx = by = ax = ay = jq = tq = 0.0
            size_q = 1.0
        if filt and not always[q] and not (
                ok and not drop[q] and (jq + tq >= min_break or (jq >= jump_min and jq * size_q >= min_jump_px))):
            continue
        o = k_out
        k_out += 1
        kept[o] = q
        vb[o, 0] = vbx
        vb[o, 1] = vby
        va[o, 0] = vax
        va[o, 1] = vay
        valid[o] = ok
        pb[o, 0] = bx
        pb[o, 1] = by
        pa[o, 0] = ax
        pa[o, 1] = ay
        sz[o] = size_q
        jump[o] = jq
        turn[o] = tq
    k = k_out
    return valid[:k], pb[:k], pa[:k], vb[:k], va[:k], sz[:k], jump[:k], turn[:k], kept[:k]


@njit(cache=True, nogil=True, inline="always")
def _window_mean(ring, lo, hi):  # pragma: no cover - compiled
    """Weighted count and means of t, x, y, size between two prefix-sum ring slots."""
    c = ring[0, hi] - ring[0, lo]
    if c <= 0:
        return c, np.nan, np.nan, np.nan, np.nan
    inv = 1.0 / max(c, 1e-12)
    return c, (ring[1, hi] - ring[1, lo]) * inv, (ring[2, hi] - ring[2, lo]) * inv, \
        (ring[3, hi] - ring[3, lo]) * inv, (ring[4, hi] - ring[4, lo]) * inv


@njit(cache=True, nogil=True, inline="always")
def _pair_iou(x0, y0, x1, y1, ar, bx0, by0, bx1, by1, bar, iou):  # pragma: no cover - compiled
    """float32 IoU of one box with each box of a frame, into ``iou`` (a loop apart from
    the running maxima so that it has one store and vectorises)."""
    tiny = np.float32(1e-12)
    zero = np.float32(0.0)
    for q in range(len(bx0)):  # selects, not min()/max() (NaN rules): this vectorises
        u = bx1[q]
        w = bx0[q]
        iw = (x1 if x1 < u else u) - (x0 if x0 > w else w)
        u = by1[q]
        w = by0[q]
        ih = (y1 if y1 < u else u) - (y0 if y0 > w else w)
        iw = iw if iw > zero else zero
        ih = ih if ih > zero else zero
        inter = iw * ih
        un = ar + bar[q] - inter
        iou[q] = inter / (un if un > tiny else tiny)


#: Rows of each set per chunk of :func:`match_frames` (its float32 buffers stay cached).
_MATCH_CHUNK_ROWS = 1 << 15


@njit(cache=True, nogil=True, inline="always")
def _bucket_by_frame(frame, f_lo, f_hi):  # pragma: no cover - compiled
    """Counting sort of the rows with ``f_lo <= frame < f_hi``: ``(offsets, rows)``, the
    rows of frame ``f_lo + f`` being ``rows[offsets[f]:offsets[f + 1]]`` in input order."""
    nf = f_hi - f_lo
    off = np.zeros(nf + 1, np.int64)
    for i in range(len(frame)):
        if f_lo <= frame[i] < f_hi:
            off[frame[i] - f_lo + 1] += 1
    for f in range(nf):
        off[f + 1] += off[f]
    pos = off[:-1].copy()
    idx = np.empty(off[nf], np.int64)
    for i in range(len(frame)):
        if f_lo <= frame[i] < f_hi:
            f = frame[i] - f_lo
            idx[pos[f]] = i
            pos[f] += 1
    return off, idx


@njit(cache=True, nogil=True)
def match_frames(a_frame: np.ndarray, a_xyxy: np.ndarray, b_frame: np.ndarray,
                 b_xyxy: np.ndarray, b_ok: np.ndarray, f_lo: int, f_hi: int, best_a: np.ndarray,
                 best_b: np.ndarray) -> None:  # pragma: no cover - compiled
    """Best IoU of each ``a`` box with the ``b`` boxes of its frame, and vice versa.

    Only frames ``f_lo <= f < f_hi``: their rows of ``best_a``/``best_b`` (float32, zeroed
    by the caller) are written, no other, so disjoint frame ranges run on separate threads
    into the same arrays.

    Returns ``(best_a, best_b)`` (float32): ``best_a[i]`` over the ``b`` boxes with
    ``b_ok``, ``best_b[j]`` over all ``a`` boxes; 0 where nothing overlaps. Both sets are
    bucketed by frame with a counting sort, then every same-frame pair is scored once, in
    float32 as the numpy matcher did (``(a_area + b_area - inter)``, union floored at
    1e-12). One search serves both directions: ``ghost`` needs the support of each track
    box, ``missing_object`` the coverage of each detection.
    """
    na = len(a_frame)
    nb = len(b_frame)
    if na == 0 or nb == 0 or f_hi <= f_lo:
        return
    nf = f_hi - f_lo
    oa, ia = _bucket_by_frame(a_frame, f_lo, f_hi)
    ob, ib = _bucket_by_frame(b_frame, f_lo, f_hi)
    # Frames are taken in chunks of about _MATCH_CHUNK_ROWS rows: a tight gather loop
    # copies the chunk's boxes into contiguous float32 buffers in frame order first (rows
    # come sorted by track, so a gather inside the pair loop would miss the cache on every
    # box), the pairs are scored from there, and results go back in another tight loop.
    wa = 0
    wb = 0
    for f in range(nf):
        wa = max(wa, oa[f + 1] - oa[f])
        wb = max(wb, ob[f + 1] - ob[f])
    ca = max(_MATCH_CHUNK_ROWS, wa)
    cb = max(_MATCH_CHUNK_ROWS, wb)
    ax0 = np.empty(ca, np.float32)
    ay0 = np.empty(ca, np.float32)
    ax1 = np.empty(ca, np.float32)
    ay1 = np.empty(ca, np.float32)
    abest = np.empty(ca, np.float32)
    bx0 = np.empty(cb, np.float32)
    by0 = np.empty(cb, np.float32)
    bx1 = np.empty(cb, np.float32)
    by1 = np.empty(cb, np.float32)
    bar = np.empty(cb, np.float32)
    bok = np.empty(cb, np.bool_)
    bbest = np.empty(cb, np.float32)
    iou = np.empty(wb, np.float32)
    zero = np.float32(0.0)
    f = 0
    while f < nf:
        g = f + 1
        while g < nf and oa[g + 1] - oa[f] <= ca and ob[g + 1] - ob[f] <= cb:
            g += 1
        ra = oa[f]
        rb = ob[f]
        for r in range(oa[g] - ra):
            i = ia[ra + r]
            ax0[r] = np.float32(a_xyxy[i, 0])
            ay0[r] = np.float32(a_xyxy[i, 1])
            ax1[r] = np.float32(a_xyxy[i, 2])
            ay1[r] = np.float32(a_xyxy[i, 3])
        for r in range(ob[g] - rb):
            j = ib[rb + r]
            bx0[r] = np.float32(b_xyxy[j, 0])
            by0[r] = np.float32(b_xyxy[j, 1])
            bx1[r] = np.float32(b_xyxy[j, 2])
            by1[r] = np.float32(b_xyxy[j, 3])
            bar[r] = (bx1[r] - bx0[r]) * (by1[r] - by0[r])
            bok[r] = b_ok[j]
            bbest[r] = zero
        for h in range(f, g):
            a0 = oa[h] - ra
            a1 = oa[h + 1] - ra
            b0 = ob[h] - rb
            k = ob[h + 1] - ob[h]
            for r in range(a0, a1):
                x0 = ax0[r]
                y0 = ay0[r]
                x1 = ax1[r]
                y1 = ay1[r]
                ar = (x1 - x0) * (y1 - y0)
                _pair_iou(x0, y0, x1, y1, ar, bx0[b0:b0 + k], by0[b0:b0 + k], bx1[b0:b0 + k],
                          by1[b0:b0 + k], bar[b0:b0 + k], iou)
                for q in range(k):
                    v = iou[q]
                    bb = bbest[b0 + q]
                    bbest[b0 + q] = v if v > bb else bb
                m = zero
                for q in range(k):
                    if bok[b0 + q] and iou[q] > m:
                        m = iou[q]
                abest[r] = m
        for r in range(oa[g] - ra):
            best_a[ia[ra + r]] = abest[r]
        for r in range(ob[g] - rb):
            best_b[ib[rb + r]] = bbest[r]
        f = g


@njit(cache=True, nogil=True)
def static_rows(frame: np.ndarray, end: np.ndarray, xyxy: np.ndarray, window: int,
                drift_ratio: float, drift_px: float) -> np.ndarray:  # pragma: no cover - compiled
    """Rows inside a window of ``window + 1`` consecutive frames with a frozen box (ghost).

    Window start s counts when rows s, s + window/2 and s + window (same track, consecutive
    frames) agree pairwise within the drift bound (centre) and 0.05 in log area. One pass:
    row i is marked when some counting start s <= i has s + window >= i, so a running
    "marked until" replaces the numpy +1/-1 marks and their prefix sum.
    """
    n = len(frame)
    out = np.zeros(n, np.bool_)
    L = window
    h2 = L // 2
    until = -1
    for s in range(n):
        if s + L < n and s + L < end[s] and frame[s + L] - frame[s] == L:
            area_s = max((xyxy[s, 2] - xyxy[s, 0]) * (xyxy[s, 3] - xyxy[s, 1]), 1e-6)
            # exp(log(a) / 2) is sqrt(a) to a few ulp: a bound 1e-6 wider rejects moving
            # boxes without the transcendentals; the exact bound decides the rest.
            r_wide = max(drift_ratio * np.sqrt(area_s) * (1 + 1e-6), drift_px)
            r = -1.0
            still = True
            for k in range(3):
                if k == 0:
                    i, j = s, s + h2
                elif k == 1:
                    i, j = s + h2, s + L
                else:
                    i, j = s, s + L
                ax = (xyxy[i, 0] + xyxy[i, 2]) / 2
                ay = (xyxy[i, 1] + xyxy[i, 3]) / 2
                bx = (xyxy[j, 0] + xyxy[j, 2]) / 2
                by = (xyxy[j, 1] + xyxy[j, 3]) / 2
                dist = np.hypot(bx - ax, by - ay)
                if dist > r_wide:
                    still = False
                    break
                if r < 0:
                    r = max(drift_ratio * np.exp(np.log(area_s) / 2), drift_px)
                la = np.log(max((xyxy[i, 2] - xyxy[i, 0]) * (xyxy[i, 3] - xyxy[i, 1]), 1e-6))
                lb = np.log(max((xyxy[j, 2] - xyxy[j, 0]) * (xyxy[j, 3] - xyxy[j, 1]), 1e-6))
                if not (dist <= r and abs(lb - la) <= 0.05):
                    still = False
                    break
            if still:
                until = s + L
        out[s] = s <= until
    return out


@njit(cache=True, nogil=True)
def prepare_rows(frame: np.ndarray, tid: np.ndarray, xyxy: np.ndarray):  # pragma: no cover - compiled
    """First pass of ``prepare``: track bounds, neighbours, centres, heights, camera pairs.

    Returns ``start, end (int32), prev_ok, cx, cy, h, key, ratio``: ``h`` the height
    clipped at 1e-3, ``key``/``ratio`` for each consecutive pair (i - 1, i) of one track
    the frame index from ``f0 = frame.min()`` and ``float32(log h_i - log h_{i-1})``, in
    row order (what numpy's compress of the diffs gave).
    """
    n = len(frame)
    start = np.empty(n, np.int32)
    end = np.empty(n, np.int32)
    prev_ok = np.zeros(n, np.bool_)
    cx = np.empty(n)
    cy = np.empty(n)
    h = np.empty(n)
    key = np.empty(max(n - 1, 0), np.int64)
    ratio = np.empty(max(n - 1, 0), np.float32)
    if n == 0:
        return start, end, prev_ok, cx, cy, h, key, ratio
    f0 = frame.min()
    s = 0
    npair = 0
    lh_prev = 0.0
    for i in range(n):
        if i > 0 and tid[i] != tid[i - 1]:
            for k in range(s, i):
                end[k] = i
            s = i
        start[i] = s
        hh = xyxy[i, 3] - xyxy[i, 1]
        hh = hh if hh > 1e-3 else 1e-3
        h[i] = hh
        cx[i] = (xyxy[i, 0] + xyxy[i, 2]) / 2
        cy[i] = (xyxy[i, 1] + xyxy[i, 3]) / 2
        lh = np.log(hh)
        if i > s and frame[i] - frame[i - 1] == 1:
            prev_ok[i] = True
            key[npair] = frame[i] - f0
            ratio[npair] = np.float32(lh - lh_prev)
            npair += 1
        lh_prev = lh
    for k in range(s, n):
        end[k] = n
    return start, end, prev_ok, cx, cy, h, key[:npair], ratio[:npair]


@njit(cache=True, nogil=True)
def camera_residuals(prev_ok: np.ndarray, cx: np.ndarray, cy: np.ndarray, key: np.ndarray,
                     s: np.ndarray):  # pragma: no cover - compiled
    """Per consecutive pair: float32 ``c_i - s[key] * c_{i-1}`` for x and y (``prepare``)."""
    m = len(key)
    dx = np.empty(m, np.float32)
    dy = np.empty(m, np.float32)
    q = 0
    for i in range(1, len(prev_ok)):
        if prev_ok[i]:
            sk = s[key[q]]
            dx[q] = np.float32(cx[i] - sk * cx[i - 1])
            dy[q] = np.float32(cy[i] - sk * cy[i - 1])
            q += 1
    return dx, dy


@njit(cache=True, nogil=True)
def camera_spread(key: np.ndarray, dx: np.ndarray, dy: np.ndarray, tx: np.ndarray,
                  ty: np.ndarray, nkeys: int) -> np.ndarray:  # pragma: no cover - compiled
    """Per frame, the sum of the pairs' float32 distances from the median shift."""
    out = np.zeros(nkeys)
    for q in range(len(key)):
        k = key[q]
        ex = dx[q] - np.float32(tx[k])
        ey = dy[q] - np.float32(ty[k])
        out[k] += np.float64(np.hypot(ex, ey))
    return out


@njit(cache=True, nogil=True)
def compensate(frame: np.ndarray, xyxy: np.ndarray, h: np.ndarray, cx: np.ndarray,
               cy: np.ndarray, f0: int, A: np.ndarray, B: np.ndarray, mode: int, r0: int, r1: int,
               size: np.ndarray, log_area: np.ndarray) -> None:  # pragma: no cover - compiled
    """Last pass of ``prepare`` on rows ``[r0, r1)``, in place: camera compensation, sizes.

    ``mode`` 2: scale and shift (``c = (c - B_f) / A_f``, sizes divided by ``A_f``), 1:
    shift only, 0: nothing. Writes float32 ``size`` and ``log_area`` of the compensated box.
    ``exp(log A_f)`` and ``2 log A_f`` are taken per frame once (the numpy code took them
    per row, with the same values); disjoint row ranges can run on separate threads.
    """
    nf = len(A)
    ea = np.empty(nf, np.float32)
    l2 = np.empty(nf, np.float32)
    if mode == 2:
        for f in range(nf):
            log_a = np.log(A[f])
            ea[f] = np.float32(np.exp(log_a))
            l2[f] = np.float32(2 * log_a)
    for i in range(r0, r1):
        w = xyxy[i, 2] - xyxy[i, 0]
        w = w if w > 1e-3 else 1e-3
        area = w * h[i]
        la = np.float32(np.log(area))
        sz = np.float32(np.sqrt(area))
        if mode != 0:
            fi = frame[i] - f0
            cx[i] -= B[fi, 0]
            cy[i] -= B[fi, 1]
            if mode == 2:
                a = A[fi]
                cx[i] /= a
                cy[i] /= a
                sz /= ea[fi]
                la -= l2[fi]
        size[i] = sz
        log_area[i] = la


@njit(cache=True, nogil=True)
def offset_screen(prev_ok: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: np.ndarray,
                  min_ratio: float):  # pragma: no cover - compiled
    """Rows with both neighbours in consecutive frames whose centre lies more than
    ``min_ratio`` sizes from the neighbours' midpoint, and that offset (``single_outliers``).

    The cheap screen of box_jump's single-box outliers: numpy gathered the neighbours of
    every row (five full-length temporaries) to keep a few hundred of millions.
    """
    n = len(cx)
    cand = np.empty(n, np.int64)
    d = np.empty(n)
    k = 0
    for i in range(1, n - 1):
        if prev_ok[i] and prev_ok[i + 1]:
            mx = (cx[i - 1] + cx[i + 1]) * 0.5 - cx[i]
            my = (cy[i - 1] + cy[i + 1]) * 0.5 - cy[i]
            v = np.sqrt(mx * mx + my * my) / np.float64(size[i])
            if v > min_ratio:
                cand[k] = i
                d[k] = v
                k += 1
    return cand[:k].copy(), d[:k].copy()


@njit(cache=True, nogil=True)
def switch_screen(prev_ok: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: np.ndarray,
                  start: np.ndarray, end: np.ndarray, tid: np.ndarray, outl: np.ndarray,
                  thr: np.float32) -> np.ndarray:  # pragma: no cover - compiled
    """Rows where id_switch fits windows (see ``id_switch._screened_fits``), one pass.

    A large second difference of the centre (``>= thr * size``), the first two rows of a
    track, rows within one row of those (same track), rows within two of a single outlier
    box (same track) and the last row of every track.
    """
    n = len(cx)
    hot = np.zeros(n, np.bool_)
    for i in range(n):
        if i - start[i] < 2:
            hot[i] = True
        elif prev_ok[i] and prev_ok[i - 1]:
            ddx = cx[i] - 2 * cx[i - 1] + cx[i - 2]
            ddy = cy[i] - 2 * cy[i - 1] + cy[i - 2]
            if np.sqrt(ddx * ddx + ddy * ddy) >= thr * size[i]:
                hot[i] = True
    # Spread by one row within the track, each direction from the unspread marks.
    for i in range(n - 1):
        if hot[i + 1] and tid[i] == tid[i + 1]:
            hot[i] = True
    for i in range(n - 1, 0, -1):
        if hot[i - 1] and tid[i - 1] == tid[i]:
            hot[i] = True
    for q in range(len(outl)):
        o = outl[q]
        for dd in (-2, -1, 1, 2):
            j = min(max(o + dd, 0), n - 1)
            if tid[j] == tid[o]:
                hot[j] = True
    for i in range(n):
        if end[i] - 1 == i:
            hot[i] = True
    return hot


@njit(cache=True, nogil=True)
def quiet_near(start: np.ndarray, end: np.ndarray, occluded: np.ndarray, visibility: np.ndarray,
               rows: np.ndarray, min_visibility: np.float32) -> np.ndarray:  # pragma: no cover - compiled
    """For each of ``rows``: an occluded/low-visibility box among rows i-2..i+1 of its track."""
    out = np.zeros(len(rows), np.bool_)
    for q in range(len(rows)):
        i = rows[q]
        for j in range(max(i - 2, start[i]), min(i + 2, end[i])):
            if occluded[j] or visibility[j] < min_visibility:
                out[q] = True
                break
    return out


@njit(cache=True, nogil=True)
def swap_pairs(order: np.ndarray, fr: np.ndarray, tid: np.ndarray, pos_after: np.ndarray,
               size: np.ndarray, max_offset: int):  # pragma: no cover - compiled
    """Candidate swap pairs of id_switch: boundaries ``order[k]``, ``order[k + d]``.

    ``order`` are fit positions sorted by frame, ``fr`` (ascending)/``tid`` their frames and tracks in
    that order. A pair counts for offsets d = 1..max_offset when the frames are at most one
    apart, the tracks differ and the fitted positions after the boundary are less than three
    sizes apart. Pairs come grouped by d, then by k: the order the numpy version made them.
    """
    n = len(order)
    cap = 1024
    A = np.empty(cap, np.int64)
    c = 0
    # Positions and sizes gathered into frame order once: the pair loop then reads them
    # sequentially instead of missing the cache on every candidate.
    px = np.empty(n)
    py = np.empty(n)
    sz = np.empty(n)
    for k in range(n):
        px[k] = pos_after[order[k], 0]
        py[k] = pos_after[order[k], 1]
        sz[k] = size[order[k]]
    # k outer, d inner: ``fr`` ascends, so the offsets stop at the first frame more than
    # one ahead. Pairs are then put in (d, k) order by a counting sort on d.
    D = np.empty(cap, np.int64)
    for k in range(n - 1):
        for d in range(1, min(max_offset, n - 1 - k) + 1):
            if fr[k + d] - fr[k] > 1:
                break
            if tid[k + d] != tid[k]:
                dist = np.hypot(px[k] - px[k + d], py[k] - py[k + d])
                if dist < 3.0 * max(sz[k], sz[k + d]):
                    if c == cap:
                        cap *= 2
                        A2 = np.empty(cap, np.int64)
                        D2 = np.empty(cap, np.int64)
                        A2[:c] = A[:c]
                        D2[:c] = D[:c]
                        A = A2
                        D = D2
                    A[c] = k
                    D[c] = d
                    c += 1
    first = np.zeros(max_offset + 2, np.int64)
    for q in range(c):
        first[D[q] + 1] += 1
    for d in range(1, max_offset + 2):
        first[d] += first[d - 1]
    outA = np.empty(c, np.int64)
    outB = np.empty(c, np.int64)
    for q in range(c):
        d = D[q]
        r = first[d]
        first[d] += 1
        outA[r] = order[A[q]]
        outB[r] = order[A[q] + d]
    return outA, outB


@njit(cache=True, nogil=True)
def track_summary(start: np.ndarray, end: np.ndarray, frame: np.ndarray, xyxy: np.ndarray,
                  lo: float, wlim: float, hlim: float, check_border: bool):  # pragma: no cover - compiled
    """Per track (short_track): first row, visible segments, and whether a box touches the
    border (``x0 <= lo or y0 <= lo or x1 >= wlim or y1 >= hlim``; False unless
    ``check_border``). One pass instead of full-length masks and two ``reduceat``."""
    n = len(frame)
    nt = 0
    for i in range(n):
        if start[i] == i:
            nt += 1
    first = np.empty(nt, np.int64)
    segs = np.ones(nt, np.int64)
    border = np.zeros(nt, np.bool_)
    t = -1
    for i in range(n):
        if start[i] == i:
            t += 1
            first[t] = i
        elif frame[i] - frame[i - 1] > 1:
            segs[t] += 1
        if check_border and not border[t] and (
                xyxy[i, 0] <= lo or xyxy[i, 1] <= lo or xyxy[i, 2] >= wlim or xyxy[i, 3] >= hlim):
            border[t] = True
    return first, segs, border


@njit(cache=True, nogil=True)
def size_flags(prev_ok: np.ndarray, start: np.ndarray, log_area: np.ndarray, occluded: np.ndarray,
               visibility: np.ndarray, min_visibility: np.float32, xyxy: np.ndarray, lo: float,
               wlim: float, hlim: float, check_border: bool, thr: float):  # pragma: no cover - compiled
    """Rows whose log area jumps by more than ``thr`` from the previous frame (size_jump).

    Skipped: occluded/low-visibility rows and the rows right after one (same track), and,
    with ``check_border``, rows whose box and the previous row's box both touch the border.
    Returns the flagged rows and their jumps ``|float32 diff|`` (float64).
    """
    n = len(log_area)
    idx = np.empty(n, np.int64)
    dv = np.empty(n)
    k = 0
    quiet_prev = False
    border_prev = False
    for i in range(n):
        quiet = occluded[i] or visibility[i] < min_visibility
        border = check_border and (xyxy[i, 0] <= lo or xyxy[i, 1] <= lo or xyxy[i, 2] >= wlim
                                   or xyxy[i, 3] >= hlim)
        if i > 0 and prev_ok[i]:
            d = np.float64(abs(log_area[i] - log_area[i - 1]))
            skip = quiet or (quiet_prev and i > start[i]) or (border and border_prev)
            if d > thr and not skip:
                idx[k] = i
                dv[k] = d
                k += 1
        quiet_prev = quiet
        border_prev = border
    return idx[:k].copy(), dv[:k].copy()
