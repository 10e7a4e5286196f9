"""Forward/backward selection and disagreement flags on synthetic sequences."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.core.masks import box_to_mask
from cvat_extension.core.propagation import (
    BACKWARD,
    FORWARD,
    NONE,
    DirectionalResult,
    PropagationConfig,
    disagreement_findings,
    select_bidirectional,
)
from cvat_extension.errors import ConfigError, InputError

H, W = 40, 60
K0, K1 = 10, 20


def _truth(frames: np.ndarray) -> np.ndarray:
    """An object moving right by 2 px per frame."""
    x = 5.0 + 2.0 * (frames - K0)
    return np.stack([x, np.full_like(x, 10.0), x + 12.0, np.full_like(x, 22.0)], axis=1)


def _masks(boxes: np.ndarray) -> np.ndarray:
    return np.stack([box_to_mask(b, W, H) if np.isfinite(b).all() else np.zeros((H, W), bool) for b in boxes])


def test_both_directions_agree_no_flags_and_nearer_keyframe_wins() -> None:
    frames = np.arange(K0, K1 + 1)
    boxes = _truth(frames)
    fwd = DirectionalResult.from_masks(frames, _masks(boxes), np.full(len(frames), 0.9))
    bwd = DirectionalResult.from_masks(frames, _masks(boxes), np.full(len(frames), 0.9))
    sel = select_bidirectional(fwd, bwd, K0, K1)
    assert not sel.disagree.any()
    assert sel.flagged_share == 0.0
    # equal confidence: forward before the middle, backward after
    assert (sel.choice[:5] == FORWARD).all() and (sel.choice[6:] == BACKWARD).all()
    np.testing.assert_allclose(sel.xyxy, boxes)
    assert disagreement_findings(sel, track_id=3) == []


def test_forward_drifts_backward_is_chosen_and_drift_frames_flagged() -> None:
    """Forward propagation jumps to a distractor from frame 14 on; backward stays right."""
    frames = np.arange(K0, K1 + 1)
    truth = _truth(frames)
    drifted = truth.copy()
    drifted[frames >= 14] = [40.0, 25.0, 55.0, 38.0]  # a different object, no overlap
    fwd_conf = np.where(frames >= 14, 0.6, 0.95)
    fwd = DirectionalResult.from_masks(frames, _masks(drifted), fwd_conf)
    bwd = DirectionalResult.from_masks(frames, _masks(truth), np.full(len(frames), 0.9))
    sel = select_bidirectional(fwd, bwd, K0, K1)

    assert sel.disagree.tolist() == ((frames >= 14) & (frames < K1)).tolist()
    assert (sel.choice[frames >= 14] == BACKWARD).all()
    np.testing.assert_allclose(sel.xyxy[frames >= 14], truth[frames >= 14])
    assert sel.flagged_share == pytest.approx(6 / 9)

    found = disagreement_findings(sel, track_id=7)
    assert len(found) == 1
    f = found[0]
    assert f.kind == "propagation_disagreement"
    assert f.frames == (14, 19) and f.track_ids == (7,)
    assert f.score == pytest.approx(1.0)
    assert f.box == tuple(truth[frames == 14][0])
    assert "track 7 at frames 14-19" in f.message
    # A MOT user (frames from 1) reads the same run in their own numbering.
    mot = disagreement_findings(sel, track_id=7, frame_base=1)[0]
    assert mot.frames == (14, 19) and "track 7 at frames 15-20" in mot.message


def test_one_direction_loses_object_is_flagged_both_lost_is_outside() -> None:
    frames = np.arange(K0, K1 + 1)
    truth = _truth(frames)
    fwd_boxes = truth.copy()
    fwd_boxes[[3, 4]] = np.nan  # forward loses it on frames 13-14
    bwd_boxes = truth.copy()
    bwd_boxes[[4, 5]] = np.nan  # backward loses it on 14-15
    conf = np.full(len(frames), 0.9)
    sel = select_bidirectional(
        DirectionalResult.build(frames, fwd_boxes, conf),
        DirectionalResult.build(frames, bwd_boxes, conf),
        K0,
        K1,
    )
    assert sel.choice[4] == NONE and np.isnan(sel.xyxy[4]).all()
    assert sel.disagree.tolist() == [f in (13, 15) for f in frames]
    assert [f.frames for f in disagreement_findings(sel, 1)] == [(13, 13), (15, 15)]


def test_low_confidence_counts_as_lost_and_box_iou_mode() -> None:
    frames = np.arange(K0, K1 + 1)
    truth = _truth(frames)
    shifted = truth + np.array([3.0, 0, 3.0, 0])  # IoU 9/15 = 0.6 with truth
    conf = np.full(len(frames), 0.3)
    conf[0] = 1.0  # the prompt frame itself
    fwd = DirectionalResult.build(frames, shifted, conf)
    bwd = DirectionalResult.build(frames, truth, np.full(len(frames), 0.9))
    sel = select_bidirectional(fwd, bwd, K0, K1)
    assert sel.choice[0] == FORWARD and (sel.choice[1:] == BACKWARD).all()
    assert sel.disagree[1:-1].all() and not sel.disagree[[0, -1]].any()
    sel2 = select_bidirectional(
        DirectionalResult.build(frames, shifted, np.full(len(frames), 0.9)), bwd, K0, K1,
        config=PropagationConfig(min_agreement_iou=0.7),
    )
    np.testing.assert_allclose(sel2.agreement_iou, 0.6)
    assert sel2.disagree[1:-1].all()


def test_missing_frames_and_bad_input() -> None:
    frames = np.arange(K0, K1 + 1)
    truth = _truth(frames)
    fwd = DirectionalResult.build(frames[:3], truth[:3], np.ones(3))  # only 10..12
    bwd = DirectionalResult.build(frames, truth, np.ones(len(frames)))
    sel = select_bidirectional(fwd, bwd, K0, K1)
    assert sel.disagree.tolist() == [12 < f < K1 for f in frames]
    with pytest.raises(InputError, match="ordered"):
        select_bidirectional(fwd, bwd, 5, 4)
    with pytest.raises(InputError, match="disagree"):
        DirectionalResult.build(frames, truth[:2], np.ones(len(frames)))
    with pytest.raises(InputError, match="increasing"):
        DirectionalResult.build([2, 1], truth[:2], [1, 1])
    with pytest.raises(ConfigError, match="min_agreement_iou"):
        PropagationConfig(min_agreement_iou=1.5)
