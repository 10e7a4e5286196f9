"""Sequence-level splits: stratified, seeded, whole sequences, explicit when short."""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import pytest

from cvat_extension.core.tracks import Tracks
from cvat_extension.dataset.difficulty import Difficulty, Tier, assign_tiers, sequence_difficulty
from cvat_extension.dataset.split import plan_split
from cvat_extension.errors import ConfigError, InputError


def diffs(n: int) -> list[Difficulty]:
    return [Difficulty(f"S{i:02d}", {"density": float(i)}, i / n) for i in range(n)]


def test_test_set_holds_2_easy_3_medium_2_hard_when_enough():
    plan = plan_split(diffs(36), test_fraction=0.2, val_fraction=0.1, seed=4)
    test = plan.members("test")
    assert len(test) == 7
    assert [sum(plan.tiers[n] is t for n in test) for t in Tier] == [2, 3, 2]
    assert plan.warnings == []
    assert sorted(plan.assignment) == [d.name for d in diffs(36)]  # every sequence, once


def test_seeded_and_seed_sensitive():
    a = plan_split(diffs(30), seed=1).assignment
    assert a == plan_split(diffs(30), seed=1).assignment
    assert any(a != plan_split(diffs(30), seed=s).assignment for s in (2, 3, 4))


def test_too_few_sequences_warns_with_what_was_done():
    plan = plan_split(diffs(8), test_fraction=0.4, seed=0)
    assert len(plan.members("test")) == 3
    assert [sum(plan.tiers[n] is t for n in plan.members("test")) for t in Tier] == [1, 1, 1]
    assert "cannot hold 2 easy, 3 medium, 2 hard" in plan.warnings[0] and "used 1 easy, 1 medium, 1 hard" in plan.warnings[0]
    with pytest.raises(InputError, match="cannot hold"):
        plan_split(diffs(8), strict=True)


@pytest.mark.parametrize(("n", "test", "val", "expect"), [
    (0, 0.2, 0.1, pytest.raises(InputError, match="at least 2 sequences")),
    (1, 0.2, 0.1, pytest.raises(InputError, match="never split")),
    (2, 0.2, 0.1, nullcontext()),
    (5, 0.0, 0.1, pytest.raises(ConfigError, match="fractions")),
    (5, 0.6, 0.5, pytest.raises(ConfigError, match="fractions")),
])
def test_bad_input(n, test, val, expect):
    with expect:
        plan = plan_split(diffs(n), test_fraction=test, val_fraction=val)
        assert len(plan.members("train")) >= 1 and len(plan.members("test")) == 1


def test_difficulty_features_and_tiers():
    still = Tracks.from_columns(frame=np.arange(10), track_id=[1] * 10, xyxy=[[0, 0, 100, 200]] * 10)
    x = np.arange(10) * 20.0
    moving = Tracks.from_columns(frame=np.arange(10), track_id=[1] * 10,
                                 xyxy=np.stack([x, x * 0, x + 10, x * 0 + 20], axis=1), occluded=[1] * 10)
    a, b = sequence_difficulty(still, 10, name="a"), sequence_difficulty(moving, 10, name="b")
    assert a.features["motion"] == 0.0 and b.features["motion"] == 1.0 and b.features["small"] == 1.0
    assert a.score < b.score and "occluded" in b.why() or "small" in b.why()
    assert assign_tiers([a, b]) == {"a": Tier.EASY, "b": Tier.HARD}
    ignore = sequence_difficulty(still.with_columns(score=np.zeros(10, np.float32)), 10)
    assert ignore.score == 0.0  # MOT "ignore" rows are not objects
