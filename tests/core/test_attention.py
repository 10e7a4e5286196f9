"""Choosing planted misses (clearly visible, spread, seeded) and scoring them."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

from cvat_extension.core.annotator_quality import JobQuality, Period, summarize_annotators
from cvat_extension.core.attention import (
    AttentionConfig,
    JobSpan,
    PlantedMisses,
    remove_planted,
    restored_mask,
    select_planted_misses,
)
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError

W, H = 640, 480


def _walkers(n_frames: int = 40, *, score: float = 0.9) -> Tracks:
    """Three well separated objects visible on every frame."""
    f = np.arange(n_frames)
    rows = []
    for tid, (x, y) in enumerate([(20, 40), (250, 60), (460, 200)], start=1):
        xyxy = np.column_stack([x + f, np.full(n_frames, y), x + 80 + f, np.full(n_frames, y + 160)])
        rows.append((np.full(n_frames, tid), f, xyxy))
    return Tracks.from_columns(frame=np.concatenate([r[1] for r in rows]),
                               track_id=np.concatenate([r[0] for r in rows]),
                               xyxy=np.concatenate([r[2] for r in rows]).astype(float),
                               score=np.full(3 * n_frames, score, np.float32), labels=("person",))


JOBS = [JobSpan(11, 0, 19), JobSpan(12, 20, 39)]


def test_spread_over_jobs_frames_and_tracks_and_seeded() -> None:
    p = select_planted_misses(_walkers(), JOBS, (W, H), AttentionConfig(per_job=3, seed=4))
    assert len(p) == 6
    for job in JOBS:
        mine = p.frame[p.job_id == job.job_id]
        assert len(mine) == 3 and len(set(mine.tolist())) == 3
        assert ((mine > job.start_frame) & (mine < job.stop_frame)).all()  # never a job edge
        assert len(set(p.track_id[p.job_id == job.job_id].tolist())) == 3  # other tracks first
    again = select_planted_misses(_walkers(), JOBS, (W, H), AttentionConfig(per_job=3, seed=4))
    np.testing.assert_array_equal(p.frame, again.frame)
    other = select_planted_misses(_walkers(), JOBS, (W, H), AttentionConfig(per_job=3, seed=5))
    assert (other.frame != p.frame).any() or (other.track_id != p.track_id).any()


def _one_candidate_case(kind: str) -> Tracks:
    t = _walkers(20)
    xyxy = t.xyxy.copy()
    score = t.score.copy()
    first = t.track_id == 1
    if kind == "low score":
        score[first] = 0.3
    elif kind == "truncated":
        xyxy[first, 0] = 0.0
    elif kind == "tiny":
        xyxy[first, 3] = xyxy[first, 1] + 10
    elif kind == "occluded":
        xyxy[t.track_id == 2] = xyxy[first] + [30, 0, 30, 0]
    return t.with_columns(xyxy=xyxy, score=score)


@pytest.mark.parametrize("kind", ["low score", "truncated", "tiny", "occluded"])
def test_unclear_boxes_are_never_planted(kind: str) -> None:
    p = select_planted_misses(_one_candidate_case(kind), [JobSpan(1, 0, 19)], (W, H), AttentionConfig(per_job=5))
    assert 1 not in p.track_id.tolist(), kind


def test_track_ends_and_overlap_frames_are_skipped_and_empty_inputs() -> None:
    t = _walkers(20)
    p = select_planted_misses(t, [JobSpan(1, 0, 12), JobSpan(2, 8, 19)], (W, H), AttentionConfig(per_job=20))
    assert not np.isin(p.frame, np.arange(8, 13)).any()  # frames 8..12 are in two jobs
    assert not np.isin(p.frame, [0, 19]).any()  # no neighbour on one side
    assert len(select_planted_misses(Tracks.empty(), JOBS, (W, H))) == 0
    assert len(select_planted_misses(t, [], (W, H))) == 0


def test_remove_and_restore() -> None:
    t = _walkers(20)
    p = select_planted_misses(t, [JobSpan(1, 0, 19)], (W, H), AttentionConfig(per_job=3))
    kept = remove_planted(t, p)
    assert len(kept) == len(t) - 3
    assert not restored_mask(p, kept).any()
    assert restored_mask(p, t).all()
    shifted = t.with_columns(xyxy=t.xyxy + [60, 0, 60, 0])  # IoU 0.14 with an 80 px box: not restored
    assert not restored_mask(p, shifted).any()
    assert len(remove_planted(t, PlantedMisses.empty())) == len(t)


@pytest.mark.parametrize(("kwargs", "expect"), [
    ({}, contextlib.nullcontext()),
    ({"per_job": 0}, pytest.raises(ConfigError, match="per_job")),
    ({"min_iou": 0.0}, pytest.raises(ConfigError, match="min_iou")),
    ({"min_score": 1.5}, pytest.raises(ConfigError, match="min_score")),
])
def test_config_ranges(kwargs: dict, expect) -> None:  # noqa: ANN001
    with expect:
        AttentionConfig(**kwargs)


def test_quality_rates_sum_counts_and_bucket_by_period() -> None:
    day = 86400.0
    jobs = [JobQuality(1, 1, "alice", 20, 0.0, review_issues=2, review_resolved=1, kinds=(("id_switch", 2),),
                       planted=5, restored=3),
            JobQuality(2, 1, "alice", 80, 14 * day, review_issues=0, planted=5, restored=5),
            JobQuality(3, 1, "bob", 50, 0.0)]
    s = summarize_annotators(jobs, period=Period.WEEK)["annotators"]
    assert s["alice"]["attention_rate"] == 0.8 and not s["alice"]["attention_below"]
    assert s["alice"]["issues_per_100_frames"] == 2.0
    assert [p["attention_rate"] for p in s["alice"]["periods"]] == [0.6, 1.0]
    assert s["alice"]["periods"][0]["attention_below"] is True
    assert s["bob"]["attention_rate"] is None and s["bob"]["resolved_share"] is None
    assert summarize_annotators([])["annotators"] == {}
