"""numpy twins of the checks' compiled kernels (``core/_kernels.py``), private.

Same names, signatures and return values (dtypes included) as the numba kernels, and the
same numbers bit for bit: every twin repeats its kernel's arithmetic operation for
operation in the kernel's precision. Where numba computes in float64 what numpy would keep
in float32 (a float32 column against a Python float, ``(x0 + x1) / 2``), the twin converts
to float64 first; sums that the kernels accumulate sequentially are ``np.cumsum`` /
``np.bincount``, which accumulate sequentially too; maxima are order-free.

Why: the numba kernels cost a fixed ~1 s per process (numba's import and the first
dispatch load its target registries and the cached machine code) before they save
anything. On the task sizes most users check (one sequence, 10^4-10^5 boxes) these twins
finish first; :mod:`cvat_extension.core.kernels` picks one module per run by its size.

Transcendentals: numba's ``np.log``/``np.exp`` call the C library's ``log``/``exp``.
numpy calls the same functions on most CPUs but uses its own SIMD versions on some (AVX-512
builds of ``exp``/``log``), which may differ by an ulp; :func:`_log`/:func:`_exp` check once
per process that numpy agrees with the C library on a probe set and otherwise evaluate
through :mod:`math` (the C library), slower but identical.

Every twin works through its rows in chunks of :data:`_CHUNK_ROWS` (or pairs of boxes in
chunks of :data:`_MATCH_CHUNK_PAIRS`), so its temporaries stay a few columns of a chunk.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import numpy as np

from cvat_extension.core._kernels_numpy_match import match_frames

__all__ = ["camera_residuals", "camera_spread", "compensate", "match_frames",
           "offset_screen", "pad_by_key", "prepare_rows", "quiet_near", "static_rows", "swap_pairs",
           "size_flags", "switch_screen", "track_summary", "window_fits"]

#: Rows per chunk of the per-row twins: temporaries stay small and cached.
_CHUNK_ROWS = 1 << 16

_F64 = np.float64
_F32 = np.float32


@functools.cache
def _numpy_is_libm() -> bool:
    """Whether numpy's float64 ``log``/``exp`` give the C library's results (probe set)."""
    rng = np.random.default_rng(12345)
    x = np.concatenate([rng.uniform(1e-3, 4.0, 4096), np.exp(rng.uniform(-30.0, 30.0, 4096))])
    y = rng.uniform(-40.0, 40.0, 4096)
    return bool((np.log(x) == np.array([math.log(v) for v in x.tolist()])).all()
                and (np.exp(y) == np.array([math.exp(v) for v in y.tolist()])).all())


def _log(x: np.ndarray) -> np.ndarray:
    """float64 natural log as numba computes it (the C library's ``log``); x > 0."""
    x = np.asarray(x, dtype=_F64)
    if _numpy_is_libm():
        return np.log(x)
    return np.fromiter(map(math.log, x.ravel().tolist()), _F64, x.size).reshape(x.shape)


def _exp(x: np.ndarray) -> np.ndarray:
    """float64 exp as numba computes it (the C library's ``exp``)."""
    x = np.asarray(x, dtype=_F64)
    if _numpy_is_libm():
        return np.exp(x)
    return np.fromiter(map(_safe_exp, x.ravel().tolist()), _F64, x.size).reshape(x.shape)


def _safe_exp(v: float) -> float:
    try:
        return math.exp(v)
    except OverflowError:
        return math.inf


def _chunks(r0: int, r1: int, step: int = _CHUNK_ROWS) -> Iterator[slice]:
    for a in range(r0, r1, step):
        yield slice(a, min(r1, a + step))


def _where_less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a if a < b else b`` elementwise (the kernels' select, not ``min``: NaN rules)."""
    return np.where(a < b, a, b)


def _where_greater(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(a > b, a, b)


def pad_by_key(key: np.ndarray, values: np.ndarray, nkeys: int, width: int) -> np.ndarray:
    """``values`` laid out as a (nkeys, width) float32 matrix, one row per key, +inf padded.

    Within a key's row the values keep their input order, as the kernel writes them (each
    strictly increasing run of ``key`` holds a key at most once, and runs are taken in order).
    """
    mat = np.full((nkeys, width), np.inf, _F32)
    n = len(key)
    if n == 0:
        return mat
    # Stable: equal keys keep their input order (timsort, which the increasing runs suit).
    order = np.argsort(key, kind="stable")
    counts = np.bincount(key, minlength=nkeys)
    # flat position of the q-th sorted value: its key's row start plus its rank in the key
    row0 = np.arange(nkeys, dtype=np.int64) * width - (np.cumsum(counts) - counts)
    pos = np.repeat(row0, counts) + np.arange(n)
    mat.reshape(-1)[pos] = values[order]
    return mat


def window_fits(frame: np.ndarray, start: np.ndarray, end: np.ndarray, cx: np.ndarray,
                cy: np.ndarray, size: np.ndarray, weight: np.ndarray, rows: np.ndarray,
                half: int, filt: bool, always: np.ndarray, drop: np.ndarray, min_break: float,
                jump_min: float, min_jump_px: float) -> tuple[np.ndarray, ...]:
    """Constant-velocity fits each side of the boundaries ``rows`` (see ``_kernels.window_fits``).

    The prefix sums are ``np.cumsum`` of the weighted columns with a leading 0 (the
    kernel's sequential sums); the fits are then vectorised over chunks of ``rows``.
    """
    n = len(frame)
    w = np.asarray(weight, dtype=_F64)
    m = len(rows)
    parts: list[tuple[np.ndarray, ...]] = []
    if m:
        t = (frame - frame[start]).astype(_F64)
        pref = []
        for v in (w, w * t, w * cx, w * cy, w * size.astype(_F64)):
            c = np.empty(n + 1)
            c[0] = 0.0
            c[1:] = v
            pref.append(np.cumsum(c))
        del t
        with np.errstate(all="ignore"):
            for sl in _chunks(0, m):
                parts.append(_fits_chunk(frame, start, end, pref, rows[sl], int(half), filt,
                                         always[sl] if filt else None, drop[sl] if filt else None,
                                         min_break, jump_min, min_jump_px, sl.start))
    if not parts:
        z = np.zeros(0)
        z2 = np.zeros((0, 2))
        return np.zeros(0, np.bool_), z2, z2.copy(), z2.copy(), z2.copy(), z, z.copy(), z.copy(), \
            np.zeros(0, np.int64)
    return tuple(np.concatenate([p[k] for p in parts]) for k in range(9))


def _fits_chunk(frame: np.ndarray, start: np.ndarray, end: np.ndarray, pref: list[np.ndarray],
                i: np.ndarray, half: int, filt: bool, always: np.ndarray | None,
                drop: np.ndarray | None, min_break: float, jump_min: float, min_jump_px: float,
                offset: int) -> tuple[np.ndarray, ...]:
    """:func:`window_fits` on one chunk of boundaries ``i`` (``offset``: its first position)."""
    i = i.astype(np.int64)
    s = start[i].astype(np.int64)
    e = end[i].astype(np.int64)
    b2a = np.maximum(s, i - 2 * half)
    b1a = np.maximum(s, i - half)
    a1b = np.minimum(e, i + half)
    a2b = np.minimum(e, i + 2 * half)

    def mean(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, ...]:
        c = pref[0][hi] - pref[0][lo]
        inv = 1.0 / np.maximum(c, 1e-12)
        empty = c <= 0
        out = [c]
        for k in range(1, 5):
            v = (pref[k][hi] - pref[k][lo]) * inv
            v[empty] = np.nan
            out.append(v)
        return tuple(out)

    _, t0, x0, y0, _ = mean(b2a, b1a)
    c1, t1, x1, y1, s1 = mean(b1a, i)
    c2, t2, x2, y2, s2 = mean(i, a1b)
    _, t3, x3, y3, _ = mean(a1b, a2b)

    def vel(p1: np.ndarray, p0: np.ndarray, dt: np.ndarray) -> np.ndarray:
        return np.divide(p1 - p0, dt, out=np.full(len(dt), np.nan), where=np.abs(dt) > 0)

    dtb = t1 - t0
    dta = t3 - t2
    vbx, vby = vel(x1, x0, dtb), vel(y1, y0, dtb)
    vax, vay = vel(x3, x2, dta), vel(y3, y2, dta)
    vbx = np.where(np.isnan(vbx), vax, vbx)
    vby = np.where(np.isnan(vby), vay, vby)
    vax = np.where(np.isnan(vax), vbx, vax)
    vay = np.where(np.isnan(vay), vby, vay)
    vbx, vby, vax, vay = (np.nan_to_num(v) for v in (vbx, vby, vax, vay))
    tau = (frame[np.maximum(i - 1, 0)] + frame[i]) / 2.0 - frame[s]
    size_q = np.sqrt(np.abs(s1 * s2))
    ok = (i > s) & (c1 > 0) & (c2 > 0) & np.isfinite(size_q) & (size_q > 0)
    bx = np.where(ok, x1 + vbx * (tau - t1), 0.0)
    by = np.where(ok, y1 + vby * (tau - t1), 0.0)
    ax = np.where(ok, x2 + vax * (tau - t2), 0.0)
    ay = np.where(ok, y2 + vay * (tau - t2), 0.0)
    size_q = np.where(ok, size_q, 1.0)
    jq = np.where(ok, np.hypot(bx - ax, by - ay) / size_q, 0.0)
    tq = np.where(ok, np.hypot(vbx - vax, vby - vay) * half / size_q, 0.0)
    if filt and always is not None and drop is not None:
        keep = always | (ok & ~drop & ((jq + tq >= min_break)
                                       | ((jq >= jump_min) & (jq * size_q >= min_jump_px))))
    else:
        keep = np.ones(len(i), np.bool_)
    q = np.flatnonzero(keep)
    return (ok[q], np.stack([bx[q], by[q]], axis=1), np.stack([ax[q], ay[q]], axis=1),
            np.stack([vbx[q], vby[q]], axis=1), np.stack([vax[q], vay[q]], axis=1), size_q[q],
            jq[q], tq[q], q + offset)


def static_rows(frame: np.ndarray, end: np.ndarray, xyxy: np.ndarray, window: int,
                drift_ratio: float, drift_px: float) -> np.ndarray:
    """Rows inside a window of ``window + 1`` consecutive frames with a frozen box (ghost).

    As the kernel: a one-sided "wide" bound (``sqrt``, 1e-6 wider) first drops the windows
    whose probes are clearly apart, then the exact bound (``exp(log(a) / 2)``) and the log
    areas decide the few that remain. The wide bound never drops a window the exact one
    keeps, so the result is the exact test's.
    """
    n = len(frame)
    L = int(window)
    h2 = L // 2
    m = max(n - L, 0)
    until = np.full(n, -1, np.int64)
    for sl in _chunks(0, m):
        a, b = sl.start, sl.stop
        w = xyxy[a:b + L]
        cxw = (w[:, 0] + w[:, 2]).astype(_F64) / 2
        cyw = (w[:, 1] + w[:, 3]).astype(_F64) / 2
        area = np.maximum(((w[:, 2] - w[:, 0]) * (w[:, 3] - w[:, 1])).astype(_F64), 1e-6)
        k = b - a
        s = np.arange(a, b)
        ok = (s + L < end[a:b]) & (frame[a + L:b + L] - frame[a:b] == L)
        r_wide = np.maximum(drift_ratio * np.sqrt(area[:k]) * (1 + 1e-6), drift_px)
        for di, dj in ((0, h2), (h2, L), (0, L)):
            dist = np.hypot(cxw[dj:dj + k] - cxw[di:di + k], cyw[dj:dj + k] - cyw[di:di + k])
            ok &= ~(dist > r_wide)
        q = np.flatnonzero(ok)
        if len(q) == 0:
            continue
        r = np.maximum(drift_ratio * _exp(_log(area[q]) / 2), drift_px)
        still = np.ones(len(q), np.bool_)
        for di, dj in ((0, h2), (h2, L), (0, L)):
            i, j = q + di, q + dj
            dist = np.hypot(cxw[j] - cxw[i], cyw[j] - cyw[i])
            still &= (dist <= r) & (np.abs(_log(area[j]) - _log(area[i])) <= 0.05)
        q = q[still] + a
        until[q] = q + L
    np.maximum.accumulate(until, out=until)
    return np.arange(n) <= until


def prepare_rows(frame: np.ndarray, tid: np.ndarray, xyxy: np.ndarray) -> tuple[np.ndarray, ...]:
    """First pass of ``prepare`` (see ``_kernels.prepare_rows``)."""
    n = len(frame)
    if n == 0:
        e = np.empty(0, np.int32)
        f = np.empty(0)
        return e, e.copy(), np.zeros(0, np.bool_), f, f.copy(), f.copy(), np.empty(0, np.int64), \
            np.empty(0, _F32)
    new = np.ones(n, np.bool_)
    np.not_equal(tid[1:], tid[:-1], out=new[1:])
    first = np.flatnonzero(new)
    lengths = np.diff(np.append(first, n))
    start = np.repeat(first.astype(np.int32), lengths)
    end = np.repeat(np.append(first[1:], n).astype(np.int32), lengths)
    prev_ok = np.zeros(n, np.bool_)
    prev_ok[1:] = ~new[1:] & (np.diff(frame) == 1)
    del new
    cx = np.empty(n)
    cy = np.empty(n)
    h = np.empty(n)
    lh = np.empty(n)
    for sl in _chunks(0, n):
        b = xyxy[sl]
        hh = (b[:, 3] - b[:, 1]).astype(_F64)
        h[sl] = np.where(hh > 1e-3, hh, 1e-3)
        cx[sl] = (b[:, 0] + b[:, 2]).astype(_F64) / 2
        cy[sl] = (b[:, 1] + b[:, 3]).astype(_F64) / 2
        lh[sl] = _log(h[sl])
    pair = np.flatnonzero(prev_ok)
    key = (frame[pair] - frame.min()).astype(np.int64)
    ratio = (lh[pair] - lh[pair - 1]).astype(_F32)
    return start, end, prev_ok, cx, cy, h, key, ratio


def camera_residuals(prev_ok: np.ndarray, cx: np.ndarray, cy: np.ndarray, key: np.ndarray,
                     s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per consecutive pair: float32 ``c_i - s[key] * c_{i-1}`` for x and y (``prepare``)."""
    i = np.flatnonzero(prev_ok[1:]) + 1
    sk = s[key]
    dx = (cx[i] - sk * cx[i - 1]).astype(_F32)
    dy = (cy[i] - sk * cy[i - 1]).astype(_F32)
    return dx, dy


def camera_spread(key: np.ndarray, dx: np.ndarray, dy: np.ndarray, tx: np.ndarray,
                  ty: np.ndarray, nkeys: int) -> np.ndarray:
    """Per frame, the sum of the pairs' float32 distances from the median shift."""
    if len(key) == 0:
        return np.zeros(nkeys)
    ex = dx - tx[key].astype(_F32)
    ey = dy - ty[key].astype(_F32)
    # bincount adds in input order, as the kernel's loop does.
    return np.bincount(key, weights=np.hypot(ex, ey).astype(_F64), minlength=nkeys)


def compensate(frame: np.ndarray, xyxy: np.ndarray, h: np.ndarray, cx: np.ndarray,
               cy: np.ndarray, f0: int, A: np.ndarray, B: np.ndarray, mode: int, r0: int, r1: int,
               size: np.ndarray, log_area: np.ndarray) -> None:
    """Last pass of ``prepare`` on rows ``[r0, r1)``, in place (see ``_kernels.compensate``)."""
    if mode == 2:
        log_a = _log(A)
        ea = _exp(log_a).astype(_F32)
        l2 = (2 * log_a).astype(_F32)
    for sl in _chunks(int(r0), int(r1)):
        b = xyxy[sl]
        w = (b[:, 2] - b[:, 0]).astype(_F64)
        area = np.where(w > 1e-3, w, 1e-3) * h[sl]
        la = _log(area).astype(_F32)
        sz = np.sqrt(area).astype(_F32)
        if mode != 0:
            fi = frame[sl] - f0
            cx[sl] -= B[fi, 0]
            cy[sl] -= B[fi, 1]
            if mode == 2:
                a = A[fi]
                cx[sl] /= a
                cy[sl] /= a
                sz /= ea[fi]
                la -= l2[fi]
        size[sl] = sz
        log_area[sl] = la


def offset_screen(prev_ok: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: np.ndarray,
                  min_ratio: float) -> tuple[np.ndarray, np.ndarray]:
    """Rows far from their neighbours' midpoint, and that offset (``_kernels.offset_screen``)."""
    n = len(cx)
    if n < 3:
        return np.zeros(0, np.int64), np.zeros(0)
    i = np.flatnonzero(prev_ok[1:n - 1] & prev_ok[2:n]) + 1
    mx = (cx[i - 1] + cx[i + 1]) * 0.5 - cx[i]
    my = (cy[i - 1] + cy[i + 1]) * 0.5 - cy[i]
    v = np.sqrt(mx * mx + my * my) / size[i].astype(_F64)
    big = v > min_ratio
    return i[big].astype(np.int64), v[big]


def switch_screen(prev_ok: np.ndarray, cx: np.ndarray, cy: np.ndarray, size: np.ndarray,
                  start: np.ndarray, end: np.ndarray, tid: np.ndarray, outl: np.ndarray,
                  thr: np.float32) -> np.ndarray:
    """Rows where id_switch fits windows (see ``_kernels.switch_screen``)."""
    n = len(cx)
    idx = np.arange(n)
    hot = idx - start < 2
    if n > 2:
        ok = prev_ok[2:] & prev_ok[1:-1] & ~hot[2:]
        ddx = cx[2:] - 2 * cx[1:-1] + cx[:-2]
        ddy = cy[2:] - 2 * cy[1:-1] + cy[:-2]
        # thr keeps its own dtype (a float32 bound times float32 sizes, as in the kernel)
        hot[2:] |= ok & (np.sqrt(ddx * ddx + ddy * ddy) >= np.asarray(thr) * size[2:])
    if n > 1:
        same = tid[:-1] == tid[1:]
        fwd = hot.copy()
        fwd[:-1] |= hot[1:] & same
        hot = fwd.copy()
        hot[1:] |= fwd[:-1] & same
    outl = np.asarray(outl, np.int64)
    for dd in (-2, -1, 1, 2):
        j = np.clip(outl + dd, 0, n - 1)
        hot[j[tid[j] == tid[outl]]] = True
    hot[end - 1 == idx] = True
    return hot


def quiet_near(start: np.ndarray, end: np.ndarray, occluded: np.ndarray, visibility: np.ndarray,
               rows: np.ndarray, min_visibility: np.float32) -> np.ndarray:
    """For each of ``rows``: an occluded/low-visibility box among rows i-2..i+1 of its track."""
    out = np.zeros(len(rows), np.bool_)
    if len(rows) == 0:
        return out
    rows = np.asarray(rows, np.int64)
    lo, hi = start[rows], end[rows]
    bound = np.asarray(min_visibility)
    for d in (-2, -1, 0, 1):
        j = rows + d
        inside = (j >= lo) & (j < hi)
        jj = np.where(inside, j, rows)
        out |= inside & (occluded[jj] | (visibility[jj] < bound))
    return out


def swap_pairs(order: np.ndarray, fr: np.ndarray, tid: np.ndarray, pos_after: np.ndarray,
               size: np.ndarray, max_offset: int) -> tuple[np.ndarray, np.ndarray]:
    """Candidate swap pairs of id_switch, grouped by offset d, then by k (see the kernel)."""
    n = len(order)
    px = pos_after[order, 0].astype(_F64)
    py = pos_after[order, 1].astype(_F64)
    sz = size[order].astype(_F64)
    out_a, out_b = [np.zeros(0, np.int64)], [np.zeros(0, np.int64)]
    for d in range(1, min(int(max_offset), n - 1) + 1):
        # fr ascends: the kernel's break at the first frame more than one ahead leaves
        # exactly the offsets whose frames are at most one apart.
        ok = (fr[d:] - fr[:-d] <= 1) & (tid[d:] != tid[:-d])
        k = np.flatnonzero(ok)
        if len(k) == 0:
            continue
        dist = np.hypot(px[k] - px[k + d], py[k] - py[k + d])
        k = k[dist < 3.0 * _where_greater(sz[k], sz[k + d])]
        out_a.append(order[k].astype(np.int64))
        out_b.append(order[k + d].astype(np.int64))
    return np.concatenate(out_a), np.concatenate(out_b)


def _touches(xyxy: np.ndarray, lo: float, wlim: float, hlim: float) -> np.ndarray:
    """Boxes at the border, compared in float64 as the kernels compare."""
    return ((xyxy[:, 0].astype(_F64) <= lo) | (xyxy[:, 1].astype(_F64) <= lo)
            | (xyxy[:, 2].astype(_F64) >= wlim) | (xyxy[:, 3].astype(_F64) >= hlim))


def track_summary(start: np.ndarray, end: np.ndarray, frame: np.ndarray, xyxy: np.ndarray,
                  lo: float, wlim: float, hlim: float, check_border: bool,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per track: first row, visible segments, border contact (see ``_kernels.track_summary``)."""
    n = len(frame)
    is_first = start == np.arange(n)
    first = np.flatnonzero(is_first).astype(np.int64)
    nt = len(first)
    if nt == 0:
        return first, np.ones(0, np.int64), np.zeros(0, np.bool_)
    gap = np.zeros(n, np.int64)
    gap[1:] = ~is_first[1:] & (frame[1:] - frame[:-1] > 1)
    segs = np.add.reduceat(gap, first) + 1
    if check_border:
        border = np.logical_or.reduceat(_touches(xyxy, lo, wlim, hlim), first)
    else:
        border = np.zeros(nt, np.bool_)
    return first, segs.astype(np.int64), border.astype(np.bool_)


def size_flags(prev_ok: np.ndarray, start: np.ndarray, log_area: np.ndarray, occluded: np.ndarray,
               visibility: np.ndarray, min_visibility: np.float32, xyxy: np.ndarray, lo: float,
               wlim: float, hlim: float, check_border: bool, thr: float,
               ) -> tuple[np.ndarray, np.ndarray]:
    """Rows whose log area jumps by more than ``thr`` from the previous frame (size_jump)."""
    n = len(log_area)
    if n < 2:
        return np.zeros(0, np.int64), np.zeros(0)
    quiet = occluded | (visibility < np.asarray(min_visibility))
    border = _touches(xyxy, lo, wlim, hlim) if check_border else np.zeros(n, np.bool_)
    d = np.abs(log_area[1:] - log_area[:-1]).astype(_F64)
    i = np.arange(1, n)
    skip = quiet[1:] | (quiet[:-1] & (i > start[1:])) | (border[1:] & border[:-1])
    k = np.flatnonzero(prev_ok[1:] & (d > thr) & ~skip)
    return (k + 1).astype(np.int64), d[k]
