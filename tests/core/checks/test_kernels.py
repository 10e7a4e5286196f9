"""The compiled kernels (``core/_kernels.py``) against their numpy twins and the sort-based matcher.

The twins (``core/_kernels_numpy.py``, production code) must give the same numbers
(medians, window fits); the shared match must give the decisions of the sort-based
``best_match_same_frame`` at the checks' thresholds.
"""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.core import _kernels, _kernels_numpy
from cvat_extension.core._kernels import match_frames
from cvat_extension.core.checks._common import (
    Prepared,
    WindowMotion,
    group_median,
    prepare,
    window_motion_kept,
)
from cvat_extension.core.checks._matching import best_match_same_frame
from cvat_extension.core.kernels import load
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
    keys = []
    for _ in range(tracks):
        a = int(rng.integers(0, frames - 1))
        b = int(rng.integers(a + 1, frames + 1))
        keys.append(np.arange(a, b))
    key = np.concatenate(keys)
    vals = np.round(rng.normal(size=len(key)), 1).astype(np.float32)  # rounding: many ties
    counts = np.bincount(key, minlength=frames + 3)  # +3: keys with no value -> NaN
    width = int(counts.max())
    # the padded matrices themselves are identical (order within a row included)
    np.testing.assert_array_equal(_kernels.pad_by_key(key, vals, frames + 3, width),
                                  _kernels_numpy.pad_by_key(key, vals, frames + 3, width))
    ref = group_median(key, vals, counts, _kernels_numpy)
    assert np.isnan(ref[-3:]).all() and not np.isnan(ref[:-3]).all()
    np.testing.assert_array_equal(group_median(key, vals, counts, _kernels), ref)
    # and they are the medians
    for k in np.flatnonzero(counts):
        assert ref[k] == np.median(vals[key == k].astype(np.float64)), k


def test_window_fits_equal_numpy_formulation(scene):
    bad, _ = scene
    p = prepare(bad, kernels=load("numba"))
    p_np = prepare(bad, kernels=load("numpy"))
    rng = np.random.default_rng(0)
    weight = (rng.random(len(p.frame)) > 0.05).astype(np.float64)  # some rows left out
    rows = np.flatnonzero(rng.random(len(p.frame)) < 0.5)
    for half in (2, 5):
        got = window_motion(p, half, weight, rows)
        ref = window_motion(p_np, half, weight, rows)
        assert got.valid.any() and not got.valid.all()
        for name in ("valid", "pos_before", "pos_after", "vel_before", "vel_after", "size", "jump", "turn"):
            np.testing.assert_array_equal(getattr(got, name), getattr(ref, name), err_msg=name)


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
