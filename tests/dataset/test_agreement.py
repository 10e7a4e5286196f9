"""Agreement: each kind of disagreement on a small scene, and MOT17-09 with injected errors."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.core.tracks import Tracks
from cvat_extension.dataset.agreement import AgreementConfig, compute_agreement, disagreements
from cvat_extension.errors import ConfigError


def scene(**edits) -> Tracks:
    """Two tracks, 10 frames: 1 at x=0, 2 at x=100 (40x80 boxes); ``edits`` change B."""
    f = np.tile(np.arange(10), 2)
    tid = np.repeat([1, 2], 10)
    x = np.where(tid == 1, 0.0, 100.0)
    if "swap_at" in edits:
        k = edits["swap_at"]
        tid = np.where(f >= k, 3 - tid, tid)
    if "shift" in edits:
        t, frame, dx = edits["shift"]
        x = np.where((tid == t) & (f == frame), x + dx, x)
    keep = np.ones(len(f), bool)
    if "drop" in edits:
        t, lo, hi = edits["drop"]
        keep = ~((tid == t) & (f >= lo) & (f <= hi))
    label = np.where(tid == 1, 1, 0) if edits.get("relabel") else np.zeros(len(f))
    rows = dict(frame=f[keep], track_id=tid[keep], xyxy=np.stack([x, x * 0, x + 40, x * 0 + 80], 1)[keep],
                label=label[keep], labels=("person", "cyclist"))
    if "extra" in edits:
        rows = {k: np.concatenate([v, w]) if k != "labels" else v for (k, v), w in zip(
            rows.items(), [np.arange(3), [9] * 3, [[300, 0, 340, 80]] * 3, [0] * 3, None])}
    return Tracks.from_columns(**rows)


@pytest.mark.parametrize(("edits", "expect"), [
    ({}, []),
    ({"swap_at": 6}, [("agreement_identity", (1, 2), (6, 9)), ("agreement_identity", (2, 1), (6, 9))]),
    ({"drop": (2, 3, 5)}, [("agreement_missing", (2,), (3, 5))]),
    ({"extra": True}, [("agreement_extra", (9,), (0, 2))]),
    ({"shift": (2, 4, 30)}, [("agreement_box", (2,), (4, 4))]),
    ({"relabel": True}, [("agreement_label", (1,), (0, 9))]),
])
def test_each_kind(edits, expect):
    found = disagreements(scene(), scene(**edits))
    assert sorted((f.kind, f.track_ids, f.frames) for f in found) == sorted(expect)
    assert all(f.message.startswith("track ") for f in found)


def test_identity_ranks_above_box_and_pass_fail():
    a = scene()
    r = compute_agreement(a, scene(swap_at=6, shift=(1, 2, 30)), num_frames=10)
    score = {f.kind: f.score for f in r.findings}
    assert score["agreement_identity"] > score["agreement_box"]
    assert r.review[0].kinds == ("agreement_box", "agreement_identity")  # one track, close frames: one item
    assert not r.passed and r.reference.idsw == 2
    assert compute_agreement(a, a).passed and compute_agreement(a, a).findings == []
    loose = compute_agreement(a, scene(swap_at=6), config=AgreementConfig(min_mota=0.5, min_idf1=0.5))
    assert loose.passed and loose.symmetric["idf1"] == pytest.approx(loose.reference.idf1)


def test_config_ranges():
    with pytest.raises(ConfigError, match="match_iou"):
        AgreementConfig(match_iou=1.5)


def test_mot17_09_injected_errors_found_first(shared_data):
    from cvat_extension.io.formats import read_tracks
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks
    from cvat_extension.synthetic.inject import ERROR_KINDS, inject_errors

    gt = read_tracks(shared_data / "motgt" / "MOT17-09" / "gt.txt")
    bad, truth = inject_errors(gt.tracks, kinds=list(ERROR_KINDS), count_per_kind=2, seed=1, info=gt.info)
    r = compute_agreement(gt.tracks, bad, num_frames=gt.info.num_frames, frame_base=1)
    assert r.reference == evaluate_tracks(gt.tracks, bad, num_frames=gt.info.num_frames)

    def hits(item, err):
        near = item.frames[0] - 15 <= err.frames[1] and err.frames[0] <= item.frames[1] + 15
        return near and bool(set(item.track_ids) & set(err.track_ids))

    assert all(any(hits(it, e) for it in r.review) for e in truth), "every injected error is listed"
    assert all(any(hits(it, e) for e in truth) for it in r.review), "nothing else is listed"
    first_kinds = {e.kind for e in truth if any(hits(it, e) for it in r.review[:4])}
    assert first_kinds <= {"id_switch", "split"}  # identity disagreements rank first
