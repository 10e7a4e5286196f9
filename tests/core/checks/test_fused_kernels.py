"""Fused passes (``prepare``, ghost's frozen-box scan, the screens): numba's kernels against
their numpy twins (``core/_kernels_numpy.py``), both production code.

Every array of ``Prepared`` and every screen must be identical on random scenes, moving
camera and outside rows included (``test_kernels_numpy.py`` replays whole runs).
"""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.core import _kernels, _kernels_numpy
from cvat_extension.core.checks._common import Prepared, prepare
from cvat_extension.core.checks.ghost import GhostConfig, _static_rows
from cvat_extension.core.kernels import ENV_VAR
from cvat_extension.core.tracks import Tracks
from cvat_extension.synthetic.inject import inject_errors
from cvat_extension.synthetic.scene import SceneConfig, make_scene


def _scene(seed: int, camera: bool, outside: bool) -> Tracks:
    gt, info = make_scene(SceneConfig(num_frames=400, num_objects=12, seed=seed,
                                      camera_pan_px=40.0 if camera else 0.0,
                                      camera_zoom=0.1 if camera else 0.0))
    t, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                         count_per_kind=2, seed=seed, info=info)
    if outside:
        rng = np.random.default_rng(seed)
        t = t.with_columns(outside=t.outside | (rng.random(len(t)) < 0.05))
    return t


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("camera", [False, True])
@pytest.mark.parametrize("outside", [False, True])
def test_prepare_identical_to_numpy(seed: int, camera: bool, outside: bool) -> None:
    from concurrent.futures import ThreadPoolExecutor

    import cvat_extension.core.checks._common as common

    t = _scene(seed, camera, outside)
    ref = prepare(t, kernels=_kernels_numpy)
    with ThreadPoolExecutor(2) as pool, pytest.MonkeyPatch.context() as mp:
        mp.setattr(common, "_MIN_SPLIT_ROWS", 10)  # split the last pass on this small scene
        split = prepare(t, pool, kernels=_kernels)
        split_np = prepare(t, pool, kernels=_kernels_numpy)
    for new in (prepare(t, kernels=_kernels), split, split_np):
        for name in Prepared.__dataclass_fields__:
            a, b = getattr(new, name), getattr(ref, name)
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype, name
                np.testing.assert_array_equal(a, b, err_msg=name)
            elif name != "kernels":
                assert a == b, name


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("window", [2, 7, 30])
def test_static_rows_identical_to_numpy(seed: int, window: int) -> None:
    t = _scene(seed, seed == 1, seed == 2)
    cfg = GhostConfig(min_static_frames=window, static_drift_px=3.0)
    ref = _static_rows(prepare(t, kernels=_kernels_numpy), cfg)
    got = _static_rows(prepare(t, kernels=_kernels), cfg)
    assert ref.any()
    np.testing.assert_array_equal(got, ref)


def test_prepare_empty_and_single_row() -> None:
    t = _scene(0, False, False)
    for sub in (t[np.zeros(len(t), bool)], t[np.arange(len(t)) == 0]):
        new, ref = prepare(sub, kernels=_kernels), prepare(sub, kernels=_kernels_numpy)
        for name in ("start", "end", "prev_ok", "cx", "cy", "size", "log_area"):
            np.testing.assert_array_equal(getattr(new, name), getattr(ref, name), err_msg=name)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_id_switch_screens_identical_to_numpy(seed: int) -> None:
    from cvat_extension.core.checks.box_jump import BoxJumpConfig, single_outliers

    t = _scene(seed, seed == 1, seed == 2)
    rng = np.random.default_rng(seed)
    t = t.with_columns(occluded=rng.random(len(t)) < 0.02,
                       visibility=rng.random(len(t)).astype(np.float32))
    p = prepare(t)
    nb, npy = _kernels, _kernels_numpy
    for ratio in (0.1, 0.6):
        c, d = nb.offset_screen(p.prev_ok, p.cx, p.cy, p.size, ratio)
        rc, rd = npy.offset_screen(p.prev_ok, p.cx, p.cy, p.size, ratio)
        assert len(c) and c.dtype == rc.dtype and d.dtype == rd.dtype
        np.testing.assert_array_equal(c, rc)
        np.testing.assert_array_equal(d, rd)
    outl, _, _ = single_outliers(p, BoxJumpConfig(min_offset_ratio=0.1))
    assert len(outl)
    for thr in (0.01, 0.03, 0.3):
        args = (p.prev_ok, p.cx, p.cy, p.size, p.start, p.end, p.tid, outl, np.float32(thr))
        hot = nb.switch_screen(*args)
        assert hot.any() and not hot.all()
        np.testing.assert_array_equal(hot, npy.switch_screen(*args))
    rows = np.flatnonzero(rng.random(len(p.frame)) < 0.3)
    for mv in (0.3, 0.5, 0.7):
        args = (p.start, p.end, p.occluded, p.visibility, rows, np.float32(mv))
        got = nb.quiet_near(*args)
        assert got.any()
        np.testing.assert_array_equal(got, npy.quiet_near(*args))


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("path", ["numpy", "numba"])
def test_id_switch_compact_fits_same_findings(seed: int, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Dropping fits no test can use must not change a single finding."""
    monkeypatch.setenv(ENV_VAR, path)
    import functools

    from cvat_extension.core.checks import id_switch as mod

    gt, info = make_scene(SceneConfig(num_frames=600, num_objects=20, seed=seed,
                                      camera_pan_px=30.0 if seed == 1 else 0.0))
    t, _ = inject_errors(gt, kinds=["id_switch"], count_per_kind=6, seed=seed, info=info)
    for cfg in (mod.IdSwitchConfig(), mod.IdSwitchConfig(min_jump_ratio=0.2, occluded_jump_ratio=0.15,
                                                         swap_candidate_break=0.05, min_jump_px=1.0)):
        got = mod.check_id_switch(t, cfg, info=info)
        with monkeypatch.context() as mp:
            mp.setattr(mod, "_screened_fits", functools.partial(mod._screened_fits, compact=False))
            ref = mod.check_id_switch(t, cfg, info=info)
        assert got, "scene must produce id_switch findings"
        assert got == ref


def test_swap_pairs_identical_to_numpy() -> None:
    rng = np.random.default_rng(3)
    m = 5000
    pos = rng.random((m, 2)) * 200
    size = (rng.random(m) * 20 + 1)
    order = rng.permutation(m)
    fr = np.sort(rng.integers(0, 800, m))
    tid = rng.integers(0, 30, m)
    pa_l, pb_l = [], []
    for d in range(1, 16):
        a, b = order[:-d], order[d:]
        ok = (np.abs(fr[d:] - fr[:-d]) <= 1) & (tid[d:] != tid[:-d])
        ok &= np.hypot(*(pos[a] - pos[b]).T) < 3.0 * np.maximum(size[a], size[b])
        pa_l.append(a[ok])
        pb_l.append(b[ok])
    for mod in (_kernels, _kernels_numpy):
        A, B = mod.swap_pairs(order, fr, tid, pos, size, 15)
        assert len(A) > 1024  # the kernel's buffers grew
        np.testing.assert_array_equal(A, np.concatenate(pa_l))
        np.testing.assert_array_equal(B, np.concatenate(pb_l))


@pytest.mark.parametrize("parts", [2, 3])
@pytest.mark.parametrize("path", ["numpy", "numba"])
def test_match_split_by_frames_same_as_whole(parts: int, path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV_VAR, path)
    from concurrent.futures import ThreadPoolExecutor

    from cvat_extension.core.checks._matching import match_detections, start_match, visible_boxes
    from cvat_extension.synthetic.inject import make_detections

    gt, info = make_scene(SceneConfig(num_frames=300, num_objects=15, seed=parts))
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=parts, info=info)
    t = gt.with_columns(outside=gt.outside | (np.arange(len(gt)) % 17 == 0))
    whole = match_detections(prepare(t), det, 0.3)
    frame, xyxy = visible_boxes(t)
    with ThreadPoolExecutor(2) as pool:
        split = start_match(frame, xyxy, det, 0.3, pool, parts)()
    assert (whole.support > 0).any() and (whole.coverage > 0).any()
    np.testing.assert_array_equal(split.support, whole.support)
    np.testing.assert_array_equal(split.coverage, whole.coverage)


@pytest.mark.parametrize("path", ["numpy", "numba"])
def test_run_checks_threaded_same_as_serial(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Threads (match beside prepare, checks side by side) change no finding."""
    monkeypatch.setenv(ENV_VAR, path)
    from cvat_extension.core import checks
    from cvat_extension.synthetic.inject import make_detections

    gt, info = make_scene(SceneConfig(num_frames=500, num_objects=15, seed=4))
    t, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                         count_per_kind=3, seed=4, info=info)
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=4, info=info)
    serial = checks.run_checks(t, detections=det, info=info, workers=1)
    monkeypatch.setattr(checks, "_MIN_ROWS_FOR_THREADS", 0)
    threaded = checks.run_checks(t, detections=det, info=info, workers=2)
    assert {f.kind for f in serial} >= {"ghost", "id_switch"}
    assert threaded == serial


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_track_summary_identical_to_numpy(seed: int) -> None:
    gt, info = make_scene(SceneConfig(num_frames=300, num_objects=15, seed=seed))
    rng = np.random.default_rng(seed)
    t = gt.with_columns(outside=gt.outside | (rng.random(len(gt)) < 0.1))
    p = prepare(t)
    n = len(p.frame)
    first = np.flatnonzero(np.arange(n) == p.start)
    gap = np.zeros(n, dtype=bool)
    gap[1:] = (p.tid[1:] == p.tid[:-1]) & (np.diff(p.frame) > 1)
    segs = np.add.reduceat(gap.astype(np.int64), first) + 1
    m = 10.0
    b = p.xyxy
    at = (b[:, 0] <= m) | (b[:, 1] <= m) | (b[:, 2] >= info.width - m) | (b[:, 3] >= info.height - m)
    border = np.add.reduceat(at.astype(np.int64), first) > 0
    assert (segs > 1).any() and border.any() and not border.all()
    for mod in (_kernels, _kernels_numpy):
        f2, s2, b2 = mod.track_summary(p.start, p.end, p.frame, p.xyxy, m, info.width - m,
                                       info.height - m, True)
        np.testing.assert_array_equal(f2, first)
        np.testing.assert_array_equal(s2, segs)
        np.testing.assert_array_equal(b2, border)
        _, _, b3 = mod.track_summary(p.start, p.end, p.frame, p.xyxy, m, 0.0, 0.0, False)
        assert not b3.any()



def _ref_near(mask: np.ndarray, p: Prepared, before: int, after: int) -> np.ndarray:
    """``mask`` spread to rows within ``before``/``after`` rows of the same track (reference).

    Row i is marked when a masked row lies up to ``after`` rows after it or up to
    ``before`` rows before it.
    """
    out = mask.copy()
    m = np.flatnonzero(mask)
    if len(m) == 0:
        return out
    for d in range(1, after + 1):
        j = m - d
        out[j[j >= p.start[m]]] = True
    for d in range(1, before + 1):
        j = m + d
        out[j[j < p.end[m]]] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_size_flags_identical_to_numpy(seed: int) -> None:
    from cvat_extension.core.checks._common import quiet_rows

    t = _scene(seed, seed == 1, seed == 2)
    rng = np.random.default_rng(seed)
    t = t.with_columns(occluded=rng.random(len(t)) < 0.05, visibility=rng.random(len(t)).astype(np.float32),
                       xyxy=t.xyxy * rng.uniform(0.9, 1.1, (len(t), 1)))
    p = prepare(t)
    n = len(p.frame)
    width, height, m, mv = 1920, 1080, 30.0, 0.3
    for thr in (0.02, 0.1):
        d = np.zeros(n)
        d[1:] = np.abs(p.log_area[1:] - p.log_area[:-1])
        skip = _ref_near(quiet_rows(p, mv), p, 1, 0)
        b = p.xyxy
        at = (b[:, 0] <= m) | (b[:, 1] <= m) | (b[:, 2] >= width - m) | (b[:, 3] >= height - m)
        prev = np.zeros(n, dtype=bool)
        prev[1:] = at[:-1]
        skip |= at & prev
        ref = np.flatnonzero(p.prev_ok & (d > thr) & ~skip)
        assert len(ref) > 10 and at.any()
        for mod in (_kernels, _kernels_numpy):
            idx, dv = mod.size_flags(p.prev_ok, p.start, p.log_area, p.occluded, p.visibility,
                                     np.float32(mv), p.xyxy, m, width - m, height - m, True, thr)
            np.testing.assert_array_equal(idx, ref)
            np.testing.assert_array_equal(dv, d[ref])
