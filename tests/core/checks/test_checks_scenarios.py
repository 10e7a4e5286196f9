"""One hand-built scenario per failure mode, plus clean negatives, for each check."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from cvat_extension.core.checks import CHECKS, ChecksConfig, run_checks
from cvat_extension.core.checks.appearance_jump import check_appearance_jump
from cvat_extension.core.checks.box_jump import check_box_jump
from cvat_extension.core.checks.ghost import check_ghost
from cvat_extension.core.checks.id_switch import IdSwitchConfig, check_id_switch
from cvat_extension.core.checks.label_change import check_label_change
from cvat_extension.core.checks.missing_object import check_missing_object
from cvat_extension.core.checks.short_track import check_short_track
from cvat_extension.core.checks.size_jump import check_size_jump
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import ConfigError
from cvat_extension.synthetic.inject import inject_errors
from cvat_extension.synthetic.render import render_frame
from cvat_extension.synthetic.scene import SceneConfig, make_scene

INFO = SequenceInfo(num_frames=100, width=1000, height=600)


def _line(tid, x0, vx, *, y=200.0, n=100, w=40.0, h=100.0, f0=0, label=0):
    f = np.arange(f0, f0 + n)
    x = x0 + vx * (f - f0)
    return dict(frame=f, track_id=np.full(n, tid), xyxy=np.stack([x, np.full(n, y), x + w, np.full(n, y + h)], 1),
                label=np.full(n, label))


def _tracks(*parts, labels=("person", "car"), **extra):
    cols = {k: np.concatenate([p[k] for p in parts]) for k in ("frame", "track_id", "xyxy", "label")}
    return Tracks.from_columns(**cols, labels=labels, **extra)


@pytest.mark.parametrize("name", list(CHECKS))
def test_empty_input_gives_no_findings(name):
    assert CHECKS[name].func(Tracks.empty(), CHECKS[name].config_type()) == []


def test_fast_object_is_not_a_switch():
    t = _tracks(_line(1, 0, 9.0), _line(2, 900, -0.5, y=400))
    assert check_id_switch(t) == []


def test_swap_names_both_tracks_and_frame():
    a, b = _line(1, 100, 3.0, y=200), _line(2, 400, -3.0, y=230)
    k = 50
    ta, tb = a["track_id"].copy(), b["track_id"].copy()
    ta[k:], tb[k:] = 2, 1
    a["track_id"], b["track_id"] = ta, tb
    found = check_id_switch(_tracks(a, b))
    assert [(f.track_ids, f.frames) for f in found] == [((1, 2), (k, k))]


def test_identity_jump_on_one_track():
    a = _line(1, 100, 2.0)
    a["xyxy"][60:] += np.array([150.0, 0, 150.0, 0])
    found = check_id_switch(_tracks(a))
    assert [(f.track_ids, f.frames) for f in found] == [((1,), (60, 60))]
    assert found[0].score >= 0.5


def test_occlusion_suppresses_a_moderate_jump():
    a = _line(1, 100, 2.0)
    a["xyxy"][60:] += np.array([30.0, 0, 30.0, 0])
    occl = np.zeros(100, bool)
    occl[55:62] = True
    assert check_id_switch(_tracks(a)) != []
    assert check_id_switch(_tracks(a, occluded=occl)) == []


def test_box_jump_single_box_not_a_switch():
    a = _line(1, 100, 2.0)
    a["xyxy"][40] += np.array([80.0, 0, 80.0, 0])
    t = _tracks(a)
    assert [(f.frames) for f in check_box_jump(t)] == [(40, 40)]
    assert check_id_switch(t) == []


def test_size_jump_run_is_one_finding():
    a = _line(1, 100, 1.0)
    a["xyxy"][30:33, 2:] += np.array([40.0, 80.0])
    found = check_size_jump(_tracks(a), info=INFO)
    assert [(f.frames) for f in found] == [(30, 32)]


def test_label_change_transient_scores_high():
    a = _line(1, 100, 1.0)
    a["label"][20:25] = 1
    found = check_label_change(_tracks(a))
    assert [(f.frames, f.score) for f in found] == [((20, 24), 0.9)]


def test_short_track_and_clean_negative():
    t = _tracks(_line(1, 100, 1.0), _line(2, 500, 0.0, n=2, f0=40))
    found = check_short_track(t, info=INFO)
    assert [f.track_ids for f in found] == [(2,)]


def test_ghost_static_box_with_and_without_detector_support():
    walker = _line(1, 100, 2.0)
    ghost = _line(2, 600, 0.0, y=300, n=60, f0=20)
    t = _tracks(walker, ghost)
    no_det = check_ghost(t)
    assert [(f.track_ids, f.score < 0.5) for f in no_det] == [((2,), True)]
    det_walker = _tracks(walker)  # detector sees the walker only
    with_det = check_ghost(t, detections=det_walker)
    assert [(f.track_ids, f.score >= 0.9) for f in with_det] == [((2,), True)]
    det_both = _tracks(walker, ghost)  # a standing person the detector confirms
    assert check_ghost(t, detections=det_both) == []


def test_missing_object_needs_persistent_uncovered_detections():
    ann = _tracks(_line(1, 100, 2.0))
    det = _tracks(_line(1, 100, 2.0), _line(2, 700, 0.0, y=50, n=20, w=12, h=20, f0=10),
                  _line(3, 300, 0.0, y=450, n=1, f0=5), score=np.full(121, 0.8))
    found = check_missing_object(ann, detections=det)
    assert [(f.frames, f.track_ids) for f in found] == [((10, 29), ())]
    assert check_missing_object(ann) == []


def test_appearance_jump_on_rendered_swap():
    cfg = SceneConfig(num_frames=120, num_objects=4, seed=3, small_fraction=0.0, crossing_fraction=0.0,
                      width=480, height=270, speed_px_per_frame=(0.5, 2.0),
                      entry_exit_fraction=0.0)
    gt, info = make_scene(cfg)
    tid = gt.track_id.copy()
    late = gt.frame >= 60
    tid[late & (gt.track_id == 1)] = 2
    tid[late & (gt.track_id == 2)] = 1
    bad = gt.with_columns(track_id=tid)

    def frames(f):
        return render_frame(gt, info, f)

    found = check_appearance_jump(bad, frames=frames)
    assert any(set(f.track_ids) & {1, 2} and abs(f.frames[0] - 60) <= 3 for f in found)
    assert check_appearance_jump(gt, frames=frames) == []


@pytest.mark.parametrize(
    ("mapping", "expectation"),
    [
        (None, contextlib.nullcontext()),
        ({"ghost": {"min_static_frames": 40}}, contextlib.nullcontext()),
        ({"gost": {}}, pytest.raises(ConfigError, match="valid names are id_switch")),
        ({"ghost": {"min_static": 3}}, pytest.raises(ConfigError, match="min_static_frames")),
        ({"ghost": {"min_static_frames": -1}}, pytest.raises(ConfigError, match="min_static_frames")),
        ({"id_switch": {"min_iou": "high"}}, pytest.raises(ConfigError, match="must be a number")),
    ],
)
def test_checks_config_from_mapping(mapping, expectation):
    with expectation:
        ChecksConfig.from_mapping(mapping)


def test_config_range_checked():
    with pytest.raises(ConfigError, match="IdSwitchConfig.min_iou"):
        IdSwitchConfig(min_iou=2.0)


def test_run_checks_rejects_unknown_names():
    with pytest.raises(ConfigError, match="valid names"):
        run_checks(Tracks.empty(), only=["nope"])


def test_messages_use_the_users_frame_numbering():
    """Checks write frames in the user's numbering (``info.frame_base``); ``frames`` stay 0-based."""
    a = _line(1, 100, 2.0)
    a["xyxy"][60:] += np.array([150.0, 0, 150.0, 0])
    a["label"][20:25] = 1
    t = _tracks(a, _line(2, 500, 0.0, n=2, f0=40))
    det = _tracks(_line(9, 700, 0.0, y=50, n=20, w=12, h=20, f0=10), score=np.full(20, 0.8))
    mot = SequenceInfo(num_frames=100, width=1000, height=600, frame_base=1)
    for base_info in (INFO, mot):
        found = run_checks(t, detections=det, info=base_info)
        assert {f.kind for f in found} >= {"id_switch", "label_change", "short_track", "missing_object"}
        for f in found:
            shown = f.frames[0] + base_info.frame_base
            assert f"frame {shown}:" in f.message, f
    (jump,) = [f for f in run_checks(t, info=mot, only=["id_switch"])]
    assert jump.frames == (60, 60) and jump.message.startswith("track 1 at frame 61:")


def test_run_checks_threads_give_the_same_findings():
    gt, info = make_scene(SceneConfig(num_frames=400, num_objects=8, seed=3))
    bad, _ = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump"], count_per_kind=2, seed=3, info=info)
    one = run_checks(bad, info=info, workers=1)
    import cvat_extension.core.checks as checks_module

    old = checks_module._MIN_ROWS_FOR_THREADS
    checks_module._MIN_ROWS_FOR_THREADS = 0  # force threads on this small task
    try:
        two = run_checks(bad, info=info, workers=2)
    finally:
        checks_module._MIN_ROWS_FOR_THREADS = old
    assert one and one == two
    with pytest.raises(ConfigError, match="workers"):
        run_checks(bad, workers=0)


def test_matching_in_frame_chunks_equals_one_pass():
    from cvat_extension.core.checks._matching import best_match_same_frame

    rng = np.random.default_rng(0)
    n, m = 3000, 2500
    fa, fb = rng.integers(0, 60, n), rng.integers(0, 60, m)
    xy_a, xy_b = rng.random((n, 2)) * 500, rng.random((m, 2)) * 500
    wh_a, wh_b = 10 + rng.random((n, 2)) * 60, 10 + rng.random((m, 2)) * 60
    a, b = np.c_[xy_a, xy_a + wh_a], np.c_[xy_b, xy_b + wh_b]
    rows = np.flatnonzero(rng.random(m) < 0.7)
    for t in (0.0, 0.3, 0.5):
        whole = best_match_same_frame(fa, a, fb, b, min_iou=t, b_rows=rows)
        parts = best_match_same_frame(fa, a, fb, b, min_iou=t, b_rows=rows, chunk_rows=400, block=128)
        np.testing.assert_array_equal(whole[0], parts[0])
        np.testing.assert_array_equal(whole[1], parts[1])
        # Brute force: exact at or above t.
        for i in range(0, n, 97):
            same = rows[fb[rows] == fa[i]]
            iw = np.clip(np.minimum(a[i, 2], b[same, 2]) - np.maximum(a[i, 0], b[same, 0]), 0, None)
            ih = np.clip(np.minimum(a[i, 3], b[same, 3]) - np.maximum(a[i, 1], b[same, 1]), 0, None)
            inter = iw * ih
            iou = inter / (np.prod(wh_a[i]) + np.prod(wh_b[same], axis=1) - inter)
            top = float(iou.max()) if len(iou) else 0.0
            if top >= max(t, 1e-9):
                assert abs(whole[0][i] - top) < 1e-5
                assert rows[whole[1][i]] == same[int(np.argmax(iou))]
