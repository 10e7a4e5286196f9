"""The compiled kernels (``core/_kernels.py``) against the numpy code they replaced.

The numpy versions below are kept only here, as references: the kernels must give the same
numbers (medians, window fits) or the same decisions at the checks' thresholds (matching).
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest

from cvat_extension.core._kernels import match_frames
from cvat_extension.core.checks._common import (
    Prepared,
    WindowMotion,
    best_match_same_frame,
    group_median,
    prepare,
    window_motion_kept,
)
from cvat_extension.synthetic.inject import inject_errors, make_detections
from cvat_extension.synthetic.scene import SceneConfig, make_scene



def window_motion(p: Prepared, half: int, weight: np.ndarray, rows: np.ndarray) -> WindowMotion:
    """Every fit at ``rows`` (no ``keep`` filter)."""
    wm, _ = window_motion_kept(p, half, weight, rows)
    return wm


def match_same_frame(a_frame: np.ndarray, a_xyxy: np.ndarray, b_frame: np.ndarray, b_xyxy: np.ndarray,
                     b_ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_kernels.match_frames`` over all frames, into new arrays: ``(best_a, best_b)``."""
    best_a = np.zeros(len(a_frame), np.float32)
    best_b = np.zeros(len(b_frame), np.float32)
    if len(a_frame) and len(b_frame):
        f_lo = int(min(a_frame.min(), b_frame.min()))
        f_hi = int(max(a_frame.max(), b_frame.max())) + 1
        match_frames(a_frame, a_xyxy, b_frame, b_xyxy, b_ok, f_lo, f_hi, best_a, best_b)
    return best_a, best_b


def _ref_group_slots(keys: np.ndarray, tid: np.ndarray, nkeys: int) -> tuple[np.ndarray, np.ndarray]:
    counts = np.bincount(keys, minlength=nkeys)
    slot = np.zeros(len(keys), dtype=np.int32)
    if len(keys) == 0:
        return slot, counts
    cuts = np.flatnonzero(np.diff(tid)) + 1
    bounds = np.concatenate([[0], cuts, [len(keys)]])
    running = np.zeros(nkeys, dtype=np.int32)
    for a, b in pairwise(bounds):
        k = keys[a:b]
        s = np.take(running, k)
        slot[a:b] = s
        s += 1
        np.put(running, k, s)
    return slot, counts


def _ref_group_median(keys: np.ndarray, slot: np.ndarray, counts: np.ndarray, values: np.ndarray) -> np.ndarray:
    nkeys = len(counts)
    med = np.full(nkeys, np.nan)
    if len(values) == 0:
        return med
    width = int(counts.max())
    mat = np.full((nkeys, width), np.inf, dtype=np.float32)
    np.put(mat, keys * width + slot, values)
    mat.sort(axis=1)
    has = np.flatnonzero(counts > 0)
    c = counts[has]
    med[has] = (mat[has, (c - 1) // 2].astype(np.float64) + mat[has, c // 2]) / 2.0
    return med


def _ref_window_motion(p, half, weight, rows):  # noqa: ANN001, ANN202 - reference copy
    n = len(p.frame)
    wgt = weight.astype(np.float64)
    t = (p.frame - np.take(p.frame, p.start)).astype(np.float64)
    pref = []
    for v in (wgt, wgt * t, wgt * p.cx, wgt * p.cy, wgt * p.size):
        c = np.empty(n + 1)
        c[0] = 0.0
        np.cumsum(v, out=c[1:])
        pref.append(c)
    i = np.asarray(rows, dtype=np.int64)
    n = len(i)
    start, end = np.take(p.start, i), np.take(p.end, i)

    def mean(a, b):  # noqa: ANN001, ANN202
        cnt = np.take(pref[0], b) - np.take(pref[0], a)
        inv = 1.0 / np.maximum(cnt, 1e-12)
        m = np.stack([(np.take(pref[k], b) - np.take(pref[k], a)) * inv for k in range(1, 5)], axis=1)
        m[cnt <= 0] = np.nan
        return cnt, m

    b2a = np.maximum(start, i - 2 * half)
    b1a = np.maximum(start, i - half)
    a1b = np.minimum(end, i + half)
    a2b = np.minimum(end, i + 2 * half)
    _, mb2 = mean(b2a, b1a)
    nb1, mb1 = mean(b1a, i)
    na1, ma1 = mean(i, a1b)
    _, ma2 = mean(a1b, a2b)

    def vel(m1, m2):  # noqa: ANN001, ANN202
        dt = m2[:, 0] - m1[:, 0]
        return np.divide(m2[:, 1:3] - m1[:, 1:3], dt[:, None], out=np.full((n, 2), np.nan),
                         where=np.abs(dt[:, None]) > 0)

    vb = vel(mb2, mb1)
    va = vel(ma1, ma2)
    vb = np.where(np.isnan(vb), va, vb)
    va = np.where(np.isnan(va), vb, va)
    vb = np.nan_to_num(vb)
    va = np.nan_to_num(va)
    tau = ((np.take(p.frame, np.maximum(i - 1, 0)) + np.take(p.frame, i)) / 2.0 - np.take(p.frame, start))
    pb = mb1[:, 1:3] + vb * (tau - mb1[:, 0])[:, None]
    pa = ma1[:, 1:3] + va * (tau - ma1[:, 0])[:, None]
    size = np.sqrt(np.abs(mb1[:, 3] * ma1[:, 3]))
    valid = (i > start) & (nb1 > 0) & (na1 > 0) & np.isfinite(size) & (size > 0)
    size = np.where(valid, size, 1.0)
    pb = np.where(valid[:, None], pb, 0.0)
    pa = np.where(valid[:, None], pa, 0.0)
    jump = np.where(valid, np.hypot(*(pb - pa).T) / size, 0.0)
    turn = np.where(valid, np.hypot(*(vb - va).T) * half / size, 0.0)
    return valid, pb, pa, vb, va, size, jump, turn


@pytest.fixture(scope="module")
def scene():
    gt, info = make_scene(SceneConfig(num_frames=300, num_objects=12, seed=5))
    bad, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump"], count_per_kind=2, seed=5, info=info)
    det = make_detections(gt, miss_rate=0.2, fp_rate=0.5, seed=5, info=info)
    return bad, det


@pytest.mark.parametrize(("seed", "frames"), [(0, 40), (1, 40), (2, 5000)])  # 5000: several key chunks
def test_group_median_equals_padding_matrix_sort(seed, frames):
    rng = np.random.default_rng(seed)
    tracks = 9
    # rows sorted by (track, frame), tracks covering random frame ranges, ties in values
    keys, tids = [], []
    for t in range(tracks):
        a = int(rng.integers(0, frames - 1))
        b = int(rng.integers(a + 1, frames + 1))
        keys.append(np.arange(a, b))
        tids.append(np.full(b - a, t))
    key, tid = np.concatenate(keys), np.concatenate(tids)
    vals = np.round(rng.normal(size=len(key)), 1).astype(np.float32)  # rounding: many ties
    slot, counts = _ref_group_slots(key, tid, frames + 3)  # +3: keys with no value -> NaN
    ref = _ref_group_median(key, slot, counts, vals)
    np.testing.assert_array_equal(group_median(key, vals, counts), ref)


def test_window_fits_equal_numpy_formulation(scene):
    bad, _ = scene
    p = prepare(bad)
    rng = np.random.default_rng(0)
    weight = (rng.random(len(p.frame)) > 0.05).astype(np.float64)  # some rows left out
    rows = np.flatnonzero(rng.random(len(p.frame)) < 0.5)
    for half in (2, 5):
        got = window_motion(p, half, weight, rows)
        ref = _ref_window_motion(p, half, weight, rows)
        for name, r in zip(("valid", "pos_before", "pos_after", "vel_before", "vel_after", "size",
                            "jump", "turn"), ref):
            np.testing.assert_array_equal(getattr(got, name), r, err_msg=name)


def test_shared_match_gives_the_numpy_matchers_decisions(scene):
    bad, det = scene
    p = prepare(bad)
    ok = ~det.outside & (det.score >= 0.3)
    support, coverage = match_same_frame(p.frame, p.xyxy, det.frame, det.xyxy, ok)
    use = np.flatnonzero(ok)
    # ghost: support of each annotated box at IoU 0.5 among confident detections
    ref_s, _ = best_match_same_frame(p.frame, p.xyxy, det.frame, det.xyxy, b_rows=use, min_iou=0.5)
    np.testing.assert_array_equal(support >= 0.5, ref_s >= 0.5)
    np.testing.assert_allclose(support[ref_s >= 0.5], ref_s[ref_s >= 0.5], atol=1e-6)
    # missing_object: coverage of each detection at IoU 0.3 by any annotated box
    ref_c, _ = best_match_same_frame(det.frame, det.xyxy, p.frame, p.xyxy, min_iou=0.3)
    np.testing.assert_array_equal(coverage < 0.3, ref_c < 0.3)
    assert (support >= 0.5).any() and (coverage < 0.3).any()  # both decisions exercised
