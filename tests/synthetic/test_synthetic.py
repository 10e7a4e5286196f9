"""Synthetic scenes, rendering and error injection: shapes, determinism, error placement."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from cvat_extension.errors import ConfigError
from cvat_extension.synthetic.inject import ERROR_KINDS, inject_errors, make_detections
from cvat_extension.synthetic.render import render_frame
from cvat_extension.synthetic.scene import SceneConfig, make_scene


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, contextlib.nullcontext()),
        ({"num_frames": 1}, pytest.raises(ConfigError, match="num_frames")),
        ({"crossing_fraction": 1.5}, pytest.raises(ConfigError, match="crossing_fraction")),
        ({"speed_px_per_frame": (3.0, 1.0)}, pytest.raises(ConfigError, match="speed_px_per_frame")),
    ],
)
def test_scene_config_validation(kwargs, expectation):
    with expectation:
        SceneConfig(**kwargs)


def test_scene_is_dense_deterministic_and_in_frame():
    cfg = SceneConfig(num_frames=120, num_objects=10, seed=4, entry_exit_fraction=0.0)
    gt, info = make_scene(cfg)
    gt2, _ = make_scene(cfg)
    assert np.array_equal(gt.xyxy, gt2.xyxy)
    assert len(gt) == 120 * 10  # no entries/exits: every object every frame
    assert info.num_frames == 120 and (info.width, info.height) == (960, 540)
    c = (gt.xyxy[:, :2] + gt.xyxy[:, 2:]) / 2
    assert (c[:, 0] > -5).all() and (c[:, 0] < 965).all()
    # Occlusion flags follow visibility.
    assert np.array_equal(gt.occluded, gt.visibility < cfg.occluded_below_visibility)


def test_scene_crossings_make_occlusions():
    gt, _ = make_scene(SceneConfig(num_objects=12, crossing_fraction=1.0, seed=1))
    assert gt.occluded.any()


def test_render_frame_paints_objects_in_their_colour():
    gt, info = make_scene(SceneConfig(num_frames=10, num_objects=3, seed=2, small_fraction=0))
    img = render_frame(gt, info, 5)
    assert img.shape == (540, 960, 3) and img.dtype == np.uint8
    assert not np.array_equal(img, render_frame(gt, info, 6))


@pytest.mark.parametrize("kind", ERROR_KINDS)
def test_inject_each_kind(kind):
    gt, info = make_scene(SceneConfig(num_objects=16, seed=5))
    bad, truth = inject_errors(gt, kinds=[kind], count_per_kind=2, seed=3, info=info)
    assert [e.kind for e in truth] == [kind, kind]
    assert not (len(bad) == len(gt) and np.array_equal(bad.xyxy, gt.xyxy)
                and np.array_equal(bad.track_id, gt.track_id) and np.array_equal(bad.label, gt.label))
    # Every (track, frame) still appears at most once.
    key = bad.track_id * 10**6 + bad.frame
    assert len(np.unique(key)) == len(key)


def test_inject_rejects_unknown_kind():
    gt, _ = make_scene(SceneConfig(num_frames=50, num_objects=2))
    with pytest.raises(ConfigError, match="unknown kinds"):
        inject_errors(gt, kinds=["teleport"], count_per_kind=1, seed=0)


def test_make_detections_misses_and_false_positives():
    gt, info = make_scene(SceneConfig(num_objects=10, seed=1))
    det = make_detections(gt, miss_rate=0.2, fp_rate=1.0, seed=0, info=info)
    assert (det.track_id == -1).all()
    assert 0.6 * len(gt) < len(det) < 1.2 * len(gt) + 600
    assert ((det.score >= 0) & (det.score <= 1)).all()
