"""Recall on injected errors and false alarms on clean synthetic scenes (several seeds)."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.core.checks import run_checks
from cvat_extension.synthetic.inject import inject_errors, make_detections
from cvat_extension.synthetic.scene import SceneConfig, make_scene
from cvat_extension.synthetic.score import frames_flagged, recall_by_kind

SEEDS = range(6)
KINDS = ["id_switch", "ghost", "box_jump", "size_jump", "label_change", "missing_object"]


def _scene(seed: int, moving_camera: bool):
    cfg = SceneConfig(num_objects=16, seed=seed, camera_pan_px=60.0 if moving_camera else 0.0,
                      camera_zoom=0.1 if moving_camera else 0.0)
    return make_scene(cfg)


@pytest.fixture(scope="module")
def results():
    totals: dict[str, list[int]] = {}
    flagged = []
    for seed in SEEDS:
        for moving in (False, True):
            gt, info = _scene(seed, moving)
            det = make_detections(gt, seed=seed, info=info)
            clean = run_checks(gt, detections=det, info=info)
            flagged.append(frames_flagged(clean, info.num_frames))
            bad, truth = inject_errors(gt, kinds=KINDS, count_per_kind=2, seed=seed, info=info)
            found = run_checks(bad, detections=det, info=info)
            for kind, (hit, n) in recall_by_kind(truth, found, clean=gt).items():
                t = totals.setdefault(kind, [0, 0])
                t[0] += hit
                t[1] += n
    return totals, flagged


@pytest.mark.parametrize(("kind", "min_recall"), [("id_switch", 0.95), ("ghost", 0.95),
                                                   ("box_jump", 0.9), ("size_jump", 0.85),
                                                   ("label_change", 1.0), ("missing_object", 0.75)])
def test_recall_on_injected_errors(results, kind, min_recall):
    hit, n = results[0][kind]
    assert n >= 20
    assert hit / n >= min_recall, f"{kind}: {hit}/{n}"


def test_clean_scenes_flag_at_most_three_percent_of_frames(results):
    flagged = np.array(results[1])
    assert flagged.max() <= 0.03, flagged


def test_without_detections_ghosts_are_still_found():
    gt, info = _scene(7, False)
    bad, truth = inject_errors(gt, kinds=["ghost"], count_per_kind=4, seed=7, info=info)
    rec = recall_by_kind(truth, run_checks(bad, info=info, only=["ghost"]))
    assert rec["ghost"][0] == rec["ghost"][1] == 4
