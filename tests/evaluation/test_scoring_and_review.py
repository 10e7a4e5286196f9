"""Scoring findings against events (hand-computed), review coverage and the simulated reviewer."""

from __future__ import annotations

import numpy as np
import pytest
from evaluation._cases import FRAMES, ground_truth, prediction

from cvat_extension.core.findings import Finding, ReviewItem
from cvat_extension.core.review import plan_review
from cvat_extension.evaluation.events import ErrorEvent, find_events, match_table
from cvat_extension.evaluation.matching import clear_matches
from cvat_extension.evaluation.review_value import coverage, reviewer_gains
from cvat_extension.evaluation.scoring import average_precision, chance_level, hit_matrix, score_findings
from cvat_extension.metrics.mot_preprocess import preprocess_mot

EVENTS = [
    ErrorEvent("id_jump", (10, 11), (1,), (7, 8)),
    ErrorEvent("fp_run", (50, 70), (2,), ()),
    ErrorEvent("fragment", (100, 120), (3, 4), (9,)),
]


def _f(kind: str, tracks: tuple[int, ...], frames: tuple[int, int], score: float) -> Finding:
    return Finding(kind, tracks, frames, None, score, "")


FINDINGS = [
    _f("id_switch", (1,), (12, 12), 0.9),     # hits the jump (11 + 5 >= 12)
    _f("ghost", (2,), (40, 45), 0.8),         # hits the run (45 >= 50 - 5)
    _f("box_jump", (5,), (12, 12), 0.7),      # right time, wrong track
    _f("fragment", (3, 4), (118, 121), 0.4),  # near the fragment's second end (120)
    _f("id_switch", (1,), (30, 30), 0.3),     # right track, too late
]


def test_hits_need_time_and_track():
    h = hit_matrix(FINDINGS, EVENTS)
    assert h.tolist() == [[True, False, False], [False, True, False], [False, False, False],
                          [False, False, True], [False, False, False]]
    # A change of identity is seen at its ends, not in the middle of its range.
    assert not hit_matrix([_f("fragment", (3,), (110, 110), 1.0)], EVENTS).any()


def test_hand_computed_recall_precision_ap():
    s = score_findings(FINDINGS, EVENTS)
    # Ranked: T(.9) T(.8) F(.7) T(.4) F(.3): recall steps 1/3, 2/3, -, 1 at precision 1, 1, 3/4.
    assert s["ap"] == pytest.approx(1 / 3 + 1 / 3 + (1 / 3) * (3 / 4))
    assert s["precision_confident"] == pytest.approx(2 / 3)
    assert (s["confident_findings"], s["confident_true"]) == (3, 2)
    assert s["recall_confident"]["id_jump"] == [1, 1]
    assert s["recall_confident"]["fragment"] == [0, 1]
    assert s["recall_any"]["fragment"] == [1, 1]
    assert s["by_check"]["id_switch"]["findings"] == 2
    assert s["by_check"]["id_switch"]["confident_true"] == 1
    assert average_precision(np.zeros(0), hit_matrix([], EVENTS)) == 0.0


def test_chance_level_moves_findings_within_their_tracks():
    # Track 1 lives on frames 0..11 only: anywhere in it, the jump at 10/11 is within 5 frames
    # of a 1-frame finding starting at 5..11, so chance recall is 7/12 on average, roughly.
    c = chance_level(FINDINGS, EVENTS, {1: (0, 11), 2: (0, 200), 5: (0, 200)}, seeds=50)
    assert 0.4 < c["id_jump_recall_confident"] < 0.8
    assert 0 <= c["precision_confident"] <= 1


def test_coverage_of_items_vs_random():
    item = ReviewItem(track_ids=(1,), frames=(12, 12), frame=12, box=None, score=0.9,
                      kinds=("id_switch",), findings=(FINDINGS[0],), message="")
    c = coverage([item], EVENTS, num_frames=200)
    assert (c["covered"], c["cost_frames"], c["events"]) == (1, 1, 3)
    assert c["frames_share"] == pytest.approx(1 / 200)
    assert 0 <= c["covered_random"] <= 3


def _reviewer_inputs():
    gt, pred = ground_truth(), prediction()
    seq = preprocess_mot(gt, gt.data["mot_class"], gt.score, pred, num_frames=FRAMES)
    m = clear_matches(seq)
    events = find_events(match_table(seq, m, gt, pred))
    return seq, m, events


def test_reviewer_oracle_beats_a_perfect_queue_which_beats_nothing():
    seq, m, events = _reviewer_inputs()
    perfect = [_f(e.kind, e.pred_ids, e.frames, 1.0) for e in events if e.pred_ids]
    fraction = 0.1
    items = plan_review(perfect, num_frames=FRAMES, budget_frames_fraction=fraction)
    g = reviewer_gains(seq, m, items, fraction=fraction)
    assert g["budget_frames"] == 6 and g["queue_cost_frames"] <= 6
    assert g["oracle"] >= g["queue"] > 0
    assert g["queue"] >= g["queue_item_tracks"] >= 0
    assert 0 <= g["random"] <= 100 - g["idf1"]
    # Nothing to review, nothing gained.
    assert reviewer_gains(seq, m, [], fraction=fraction)["queue"] == 0


def test_findings_on_ignored_boxes_are_not_judged():
    """Track 17 sits on a static person (class 7): TrackEval drops its boxes, so a finding
    about it can be neither right nor wrong; a missing_object finding on that person too."""
    from cvat_extension.evaluation.scoring import judgeable

    gt, pred = ground_truth(), prediction()
    cls = np.asarray(gt.data["mot_class"])
    data = preprocess_mot(gt, cls, gt.score != 0, pred, num_frames=FRAMES)
    tab = match_table(data, clear_matches(data), gt, pred)
    unscored = gt[~((cls == 1) & (gt.score != 0))]
    static = tuple(float(v) for v in unscored.xyxy[0])
    on_ignored = [_f("ghost", (17,), (5, 30), 0.9),
                  Finding("missing_object", (), (5, 8), static, 0.9, "")]
    judged = [_f("ghost", (15,), (40, 45), 0.9), _f("id_switch", (11,), (30, 30), 0.9),
              Finding("missing_object", (), (5, 8), (600.0, 400.0, 640.0, 500.0), 0.9, "")]
    assert judgeable(on_ignored + judged, tab, unscored) == judged
