"""The numpy twins (``core/_kernels_numpy.py``) against the numba kernels, bit for bit.

Every kernel call a real run makes (``run_checks`` and ``propose_merges`` on random scenes:
moving camera, outside rows, gaps, detections, empty and one-row tasks) is recorded with
its arguments, replayed on the twin, and every output (returned or written in place) must
be identical: same dtype, same bits. Then whole runs with numpy forced and numba forced
must give identical findings and merges, on synthetic scenes with injected errors and on
the real ground truth in ../shared/data/motgt.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from cvat_extension.core import _kernels, _kernels_numpy
from cvat_extension.core.checks import run_checks
from cvat_extension.core.kernels import ENV_VAR, kernels_for, load, match_kernels_for
from cvat_extension.core.merge import propose_merges
from cvat_extension.core.tracks import Tracks
from cvat_extension.synthetic.inject import inject_errors, make_detections
from cvat_extension.synthetic.scene import SceneConfig, make_scene

#: Positional arguments each kernel writes into (the rest it only reads).
_IN_PLACE = {"compensate": (3, 4, 11, 12), "match_frames": (7, 8)}


def _recorder() -> tuple[SimpleNamespace, list[tuple[str, tuple[Any, ...], Any]]]:
    """A kernels module that runs numba's kernels and records (name, args copy, result)."""
    calls: list[tuple[str, tuple[Any, ...], Any]] = []

    def wrap(name: str):  # noqa: ANN202
        fn = getattr(_kernels, name)

        def call(*args: Any) -> Any:
            before = copy.deepcopy(args)
            out = fn(*args)
            after = tuple(args[i] for i in _IN_PLACE.get(name, ()))
            calls.append((name, before, copy.deepcopy((out, after))))
            return out

        return call

    mod = SimpleNamespace(**{name: wrap(name) for name in _kernels.__all__}, __name__="recorder")
    return mod, calls


def _assert_same(a: Any, b: Any, what: str) -> None:
    if isinstance(a, tuple):
        assert isinstance(b, tuple) and len(a) == len(b), what
        for k, (x, y) in enumerate(zip(a, b)):
            _assert_same(x, y, f"{what}[{k}]")
    elif isinstance(a, np.ndarray):
        assert isinstance(b, np.ndarray), what
        assert a.dtype == b.dtype and a.shape == b.shape, (what, a.dtype, b.dtype, a.shape, b.shape)
        # bits, not values: NaN payloads and signed zeros count
        np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=what)
    else:
        assert a == b, what


def _replay(calls: list[tuple[str, tuple[Any, ...], Any]]) -> set[str]:
    for name, args, (out, after) in calls:
        args = copy.deepcopy(args)
        got = getattr(_kernels_numpy, name)(*args)
        _assert_same(out, got, name)
        _assert_same(after, tuple(args[i] for i in _IN_PLACE.get(name, ())), f"{name} in place")
    return {name for name, _, _ in calls}


def _scene(seed: int, *, camera: bool, outside: float, frames: int = 400, objects: int = 12,
           ) -> tuple[Tracks, Tracks, Any]:
    gt, info = make_scene(SceneConfig(num_frames=frames, num_objects=objects, seed=seed,
                                      camera_pan_px=40.0 if camera else 0.0,
                                      camera_zoom=0.1 if camera else 0.0))
    t, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump", "label_change"],
                         count_per_kind=2, seed=seed, info=info)
    rng = np.random.default_rng(seed)
    if outside:
        t = t.with_columns(outside=t.outside | (rng.random(len(t)) < outside))
    t = t.with_columns(occluded=rng.random(len(t)) < 0.03,
                       visibility=rng.random(len(t)).astype(np.float32))
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=seed, info=info)
    return t, det, info


def _run_recorded(t: Tracks, det: Tracks | None, info: Any) -> set[str]:
    mod, calls = _recorder()
    run_checks(t, detections=det, info=info, workers=1, kernels=mod)
    from cvat_extension.core.checks._common import prepare

    propose_merges(t, info=info, prepared=prepare(t, kernels=mod))
    return _replay(calls)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("camera", [False, True])
@pytest.mark.parametrize("outside", [0.0, 0.05])
def test_every_call_of_a_run_is_identical(seed: int, camera: bool, outside: float) -> None:
    t, det, info = _scene(seed, camera=camera, outside=outside)
    called = _run_recorded(t, det, info)
    assert called == set(_kernels.__all__)


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 5])
def test_tiny_tasks_are_identical(rows: int) -> None:
    t, det, info = _scene(7, camera=False, outside=0.0, frames=60, objects=3)
    keep = np.zeros(len(t), bool)
    keep[:rows] = True
    _run_recorded(t[keep], det[det.frame < 3], info)


def test_edge_inputs_are_identical() -> None:
    """Direct calls on inputs a check never passes: empty arrays, all-outside rows."""
    e_i = np.zeros(0, np.int64)
    e_f = np.zeros(0)
    e_32 = np.zeros(0, np.int32)
    e_b = np.zeros(0, bool)
    box = np.zeros((0, 4), np.float32)
    cases = {
        "pad_by_key": (e_i, np.zeros(0, np.float32), 3, 1),
        "prepare_rows": (e_i, e_i, box),
        "camera_residuals": (e_b, e_f, e_f, e_i, np.ones(1)),
        "camera_spread": (e_i, np.zeros(0, np.float32), np.zeros(0, np.float32), np.zeros(2), np.zeros(2), 2),
        "offset_screen": (e_b, e_f, e_f, np.zeros(0, np.float32), 0.5),
        "switch_screen": (e_b, e_f, e_f, np.zeros(0, np.float32), e_32, e_32, e_i, e_i, np.float32(0.1)),
        "quiet_near": (e_32, e_32, e_b, np.zeros(0, np.float32), e_i, np.float32(0.3)),
        "swap_pairs": (e_i, e_i, e_i, np.zeros((0, 2)), e_f, 15),
        "track_summary": (e_32, e_32, e_i, box, 10.0, 100.0, 100.0, True),
        "size_flags": (e_b, e_32, np.zeros(0, np.float32), e_b, np.zeros(0, np.float32), np.float32(0.3),
                       box, 10.0, 100.0, 100.0, True, 0.1),
        "static_rows": (e_i, e_32, box, 30, 0.02, 3.0),
        "window_fits": (e_i, e_32, e_32, e_f, e_f, np.zeros(0, np.float32), e_f, e_i, 5, True, e_b, e_b,
                        0.5, 0.5, 5.0),
    }
    for name, args in cases.items():
        _assert_same(getattr(_kernels, name)(*copy.deepcopy(args)),
                     getattr(_kernels_numpy, name)(*copy.deepcopy(args)), name)
    # the match with nothing in range writes nothing
    a = (np.array([5]), np.ones((1, 4), np.float32), np.array([5]), np.ones((1, 4), np.float32),
         np.array([True]), 0, 3)
    for mod in (_kernels, _kernels_numpy):
        best_a, best_b = np.full(1, 7, np.float32), np.full(1, 7, np.float32)
        mod.match_frames(*a, best_a, best_b)
        assert best_a[0] == best_b[0] == 7


@pytest.mark.parametrize("nonfinite", [False, True])
def test_match_with_crowded_frames_is_identical(nonfinite: bool) -> None:
    """Chunks of pairs that cut through a frame, boxes of any overlap, rows out of range;
    and boxes with NaN or infinite corners (the twin's select path, not min/max)."""
    import cvat_extension.core._kernels_numpy_match as match

    rng = np.random.default_rng(0)
    na, nb = 3000, 2000
    a_frame = rng.integers(0, 6, na)
    b_frame = rng.integers(0, 7, nb)

    def boxes(n: int) -> np.ndarray:
        xy = rng.random((n, 2)) * 100
        wh = rng.random((n, 2)) * 30
        return np.concatenate([xy, xy + wh], axis=1).astype(np.float32)

    a_xyxy, b_xyxy = boxes(na), boxes(nb)
    if nonfinite:
        for arr in (a_xyxy, b_xyxy):
            arr[rng.integers(0, len(arr), 40), rng.integers(0, 4, 40)] = np.nan
            arr[rng.integers(0, len(arr), 20), rng.integers(0, 4, 20)] = np.inf
            arr[rng.integers(0, len(arr), 20), rng.integers(0, 4, 20)] = -np.inf
    b_ok = rng.random(nb) < 0.7
    out = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(match, "_MATCH_CHUNK_PAIRS", 1000)  # several chunks per frame
        for mod in (_kernels, _kernels_numpy):
            best_a, best_b = np.zeros(na, np.float32), np.zeros(nb, np.float32)
            mod.match_frames(a_frame, a_xyxy, b_frame, b_xyxy, b_ok, 1, 5, best_a, best_b)
            out.append((best_a, best_b))
    assert (out[0][0] > 0).any() and (out[0][1] > 0).any()
    _assert_same(out[0], out[1], "match_frames")
    assert match.same_frame_pairs(a_frame, b_frame) == sum(
        int((a_frame == f).sum() * (b_frame == f).sum()) for f in range(7))


def test_numpy_log_exp_fallback_is_the_c_library(monkeypatch: pytest.MonkeyPatch) -> None:
    """Where numpy's log/exp would differ from the C library, the twins use math's."""
    import math

    x = np.array([1e-3, 0.5, 1.0, 2.0, 1234.5])
    monkeypatch.setattr(_kernels_numpy, "_numpy_is_libm", lambda: False)
    np.testing.assert_array_equal(_kernels_numpy._log(x), [math.log(v) for v in x])
    np.testing.assert_array_equal(_kernels_numpy._exp(np.array([-800.0, 0.0, 1.5, 800.0])),
                                  [0.0, 1.0, math.exp(1.5), math.inf])


def test_choice_by_size_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.core import kernels
    from cvat_extension.errors import ConfigError

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert kernels_for(kernels.NUMBA_MIN_ROWS - 1) is _kernels_numpy
    assert kernels_for(kernels.NUMBA_MIN_ROWS) is _kernels
    assert match_kernels_for(lambda: 0) is _kernels_numpy
    assert match_kernels_for(lambda: kernels.NUMBA_MIN_PAIRS) is _kernels
    assert match_kernels_for(lambda: 0, _kernels) is _kernels  # numba's start is paid
    monkeypatch.setenv(ENV_VAR, "numba")
    assert kernels_for(0) is _kernels
    monkeypatch.setenv(ENV_VAR, "NumPy")
    assert kernels_for(10**9) is _kernels_numpy
    assert match_kernels_for(lambda: 10**12, _kernels) is _kernels_numpy
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(ConfigError, match="CVAT_TRACK_KERNELS must be one of"):
        kernels_for(1)
    with pytest.raises(ConfigError, match="'numpy' or 'numba'"):
        load("cuda")


def _findings_both_ways(t: Tracks, det: Tracks | None, info: Any, monkeypatch: pytest.MonkeyPatch,
                        ) -> tuple[Any, Any]:
    out = []
    for name in ("numpy", "numba"):
        monkeypatch.setenv(ENV_VAR, name)
        findings = run_checks(t, detections=det, info=info)
        merges = propose_merges(t, info=info)
        out.append((findings, merges))
    monkeypatch.delenv(ENV_VAR)
    return out[0], out[1]


@pytest.mark.parametrize("seed", [3, 4])
def test_findings_identical_numpy_vs_numba(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    gt, info = make_scene(SceneConfig(num_frames=600, num_objects=20, seed=seed,
                                      camera_pan_px=30.0 if seed == 4 else 0.0))
    t, _ = inject_errors(gt, kinds=["id_switch", "ghost", "split", "box_jump", "size_jump", "label_change"],
                         count_per_kind=4, seed=seed, info=info)
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=seed, info=info)
    a, b = _findings_both_ways(t, det, info, monkeypatch)
    assert len(a[0]) > 10 and a[1], "the scene must produce findings and merges"
    assert a == b


@pytest.mark.parametrize("seq", ["MOT17-02", "MOT17-04", "MOT17-05", "MOT17-09", "MOT17-10",
                                 "MOT17-11", "MOT17-13", "MOT20-01"])
def test_findings_identical_on_real_ground_truth(shared_data, seq: str,  # type: ignore[no-untyped-def]
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.io.mot import read_mot

    gt_file = shared_data / "motgt" / seq / "gt.txt"
    if not gt_file.is_file():
        pytest.skip(f"{gt_file} not present")
    t, info = read_mot(gt_file)
    a, b = _findings_both_ways(t, None, info, monkeypatch)
    assert a[0], "real ground truth gives some findings"
    assert a == b
