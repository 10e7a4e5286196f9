"""Card numbers against values computed by hand on a tiny fixture, and on real MOT GT."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dataset._fixture import write_sequence

from cvat_extension.core.findings import Finding
from cvat_extension.core.tracks import Tracks
from cvat_extension.dataset.card import build_card, compare_cards
from cvat_extension.dataset.sequences import load_sequences
from cvat_extension.dataset.stats import combine_stats, sequence_stats


def test_hand_computed_numbers(tmp_path):
    seq = load_sequences([write_sequence(tmp_path)])[0]
    assert (seq.name, seq.num_frames, seq.fps, seq.warnings) == ("TINY-01", 10, 25.0, ())
    s = build_card([seq], checks=False).to_json()["total"]
    assert (s["frames"], s["tracks"], s["boxes"], s["ignored_boxes"]) == (10, 3, 10, 1)
    assert s["boxes_per_frame"] == 1.0
    assert (s["track_length_mean"], s["track_length_median"]) == (3.3333, 3.0)  # lengths 6, 3, 1
    assert s["track_length_hist"]["counts"][:3] == [1, 1, 1] and sum(s["track_length_hist"]["counts"]) == 3
    assert (s["occlusion_events"], s["occlusion_events_per_100_frames"], s["occluded_share"]) == (1, 10.0, 0.2)
    assert s["re_entries"] == 1
    assert s["small_share"] == 0.6  # the six 10x10 boxes
    assert s["box_size_hist"]["counts"] == [6, 0, 1, 3, 0, 0]  # sqrt(area): 6x 10, 1x 50, 3x 100
    assert s["visibility_hist"]["counts"][2] == 2 and s["visibility_hist"]["counts"][9] == 8
    assert s["categories"] == {"pedestrian": {"boxes": 9, "tracks": 2}, "static person": {"boxes": 1, "tracks": 1}}
    assert s["id_consistency"] == 1.0 and s["findings_by_kind"] == {}


def test_id_consistency_counts_confident_findings_only():
    t = Tracks.from_columns(frame=[0, 1, 0, 1, 0], track_id=[1, 1, 2, 2, 3], xyxy=[[0, 0, 5, 5]] * 5)
    findings = [Finding("id_switch", (1,), (0, 0), None, 0.9, "x"), Finding("ghost", (2,), (0, 1), None, 0.3, "y")]
    s = sequence_stats(t, 2, findings=findings).to_json()
    assert s["id_consistency"] == round(2 / 3, 4)
    assert s["findings_by_kind"] == {"ghost": 1, "id_switch": 1}


def test_empty_sequence_and_totals_pool_lengths():
    empty = sequence_stats(Tracks.empty(), 5, name="e")
    assert empty.to_json()["boxes"] == 0 and empty.to_json()["id_consistency"] == 1.0
    a = sequence_stats(Tracks.from_columns(frame=np.arange(4), track_id=[1] * 4, xyxy=[[0, 0, 5, 5]] * 4), 4)
    b = sequence_stats(Tracks.from_columns(frame=[0], track_id=[1], xyxy=[[0, 0, 5, 5]]), 4)
    total = combine_stats([empty, a, b]).to_json()
    assert (total["sequences"], total["frames"], total["tracks"], total["track_length_median"]) == (3, 13, 2, 2.5)


def test_compare_reports_deltas(tmp_path):
    before = build_card(load_sequences([write_sequence(tmp_path / "a")]), checks=False).to_json()
    after = build_card(load_sequences([write_sequence(tmp_path / "b", rows=["1,1,0,0,10,10,1,1,1"])]),
                       checks=False).to_json()
    d = compare_cards(before, after)
    assert d["total"]["boxes"] == {"before": 10, "after": 1, "delta": -9}
    assert d["sequences"]["TINY-01"]["tracks"]["delta"] == -2
    json.dumps(d)


def test_missing_seqinfo_is_a_warning(tmp_path):
    seq = load_sequences([write_sequence(tmp_path, seqinfo=False)])[0]
    assert seq.num_frames == 8 and "no seqinfo.ini" in seq.warnings[0]


def test_real_mot_gt_card(shared_data):
    seqs = load_sequences([shared_data / "motgt" / "MOT17-09"])
    s = build_card(seqs).to_json()["total"]
    rows = np.loadtxt(shared_data / "motgt" / "MOT17-09" / "gt.txt", delimiter=",")
    assert (s["frames"], s["boxes"], s["tracks"]) == (525, len(rows), len(np.unique(rows[:, 1])))
    assert s["ignored_boxes"] == int((rows[:, 6] == 0).sum())
    assert s["occluded_share"] == pytest.approx(float((rows[:, 8] < 0.5).mean()), abs=1e-4)
    assert 0.9 <= s["id_consistency"] <= 1.0
