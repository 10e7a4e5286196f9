"""Error events from TrackEval-equal matches: injected swaps, fragments and ghosts are found."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from evaluation._cases import FRAMES, ground_truth, prediction

from cvat_extension.evaluation.events import find_events, match_table
from cvat_extension.evaluation.matching import assert_same_as_trackeval, clear_matches
from cvat_extension.io.mot import read_mot
from cvat_extension.metrics.mot_preprocess import preprocess_mot


def _events(gt, pred, n=FRAMES):
    seq = preprocess_mot(gt, gt.data["mot_class"], gt.score, pred, num_frames=n)
    m = clear_matches(seq)
    assert_same_as_trackeval(seq, m)
    return seq, m, find_events(match_table(seq, m, gt, pred))


def test_injected_errors_become_the_right_events():
    gt, pred = ground_truth(), prediction()
    seq, m, events = _events(gt, pred)
    kinds = Counter(e.kind for e in events)
    # The swap: each of the two tracks jumps once, each person switches once.
    jumps = {e.pred_ids[0]: e for e in events if e.kind == "id_jump"}
    assert set(jumps) == {11, 12}
    j = jumps[11]
    assert j.gt_ids == (1, 2) and 29 <= j.frames[1] <= 33
    assert j.detail["category"] == "drift"  # the people overlapped where the box slid over
    # CLEAR keeps the old match while IoU >= 0.5, so the change is seen a little after 29.
    switches = [e for e in events if e.kind == "gt_switch"]
    assert len(switches) == m.idsw == 3  # the swap on both people + the fragment of person 3
    frag = [e for e in events if e.kind == "fragment"]
    assert [(e.pred_ids, e.gt_ids, e.frames, e.detail["gap_frames"]) for e in frag] == [((13, 14), (3,), (19, 26), 6)]
    assert [(e.pred_ids, e.frames) for e in events if e.kind == "short_false_track"] == [((15,), (40, 45))]
    assert [(e.pred_ids, e.frames) for e in events if e.kind == "fp_run"] == [((16,), (0, 14))]
    # Track 17 sits on a static person: removed by the preprocessing, never an error.
    assert not any(17 in e.pred_ids for e in events)
    assert len(seq.removed_pred_rows) == FRAMES
    # Person 3 is missed on frames 20..25 only (6 < 10 frames): no missed run.
    assert kinds["missed_run"] == 0


def test_missed_run_needs_ten_visible_frames():
    gt = ground_truth()
    pred = prediction()
    pred = pred[~((pred.track_id == 14) & (pred.frame < 40))]  # person 3 now missed on 20..39
    _seq, _m, events = _events(gt, pred)
    missed = [e for e in events if e.kind == "missed_run"]
    assert [(e.gt_ids, e.frames) for e in missed] == [((3,), (20, 39))]
    assert missed[0].boxes is not None and len(missed[0].boxes) == 20


def test_matching_equals_trackeval_on_a_real_excerpt(shared_data):
    """MOT17-04 ground truth against a perturbed copy: our per-frame matching gives
    TrackEval CLEAR's TP/FP/FN/IDSW exactly (``assert_same_as_trackeval`` raises otherwise),
    and person-side switches are exactly CLEAR's IDSW."""
    gt, _info = read_mot(shared_data / "motgt" / "MOT17-04" / "gt.txt")
    n = 150
    gt = gt[gt.frame < n]
    rng = np.random.default_rng(4)
    cls = np.asarray(gt.data["mot_class"])
    pred = gt[np.isin(cls, (1, 7)) & (rng.random(len(gt)) > 0.15)]
    ids = pred.track_id.copy()
    # Swap identities in crowds: pairs of tracks exchange ids from frame 70.
    uniq = np.unique(ids)
    for a, b in zip(uniq[0:40:2], uniq[1:40:2]):
        late = pred.frame >= 70
        ids[late & (pred.track_id == a)], ids[late & (pred.track_id == b)] = b, a
    jitter = rng.normal(0, 6, (len(pred), 4))
    pred = pred.with_columns(track_id=ids, xyxy=pred.xyxy + jitter)
    pred = type(pred).from_columns(frame=pred.frame, track_id=pred.track_id, xyxy=pred.xyxy)
    seq, m, events = _events(gt, pred, n)
    assert m.idsw > 10 and m.fp > 0 and m.fn > 0
    assert sum(e.kind == "gt_switch" for e in events) == m.idsw
    assert sum(e.kind == "id_jump" for e in events) > 10


@pytest.mark.parametrize("step", [2, 3])
def test_subsampling_renumbers_frames(step):
    from cvat_extension.evaluation.sequences import subsample

    gt = ground_truth()
    sub = subsample(gt, step)
    assert sub.frame.max() == (FRAMES - 1) // step
    assert len(sub) == len(gt[gt.frame % step == 0])
