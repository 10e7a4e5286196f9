"""Sequence-level train/val/test splits, seeded, stratified by difficulty tier.

Frames of one sequence are near-duplicates of each other, so a frame-level split leaks the
test set into training; every split here assigns whole sequences. The test set is drawn per
difficulty tier (:mod:`.difficulty`) so that it holds easy, medium and hard sequences: at
least ``min_test_per_tier`` (2 easy, 3 medium, 2 hard by default) when the dataset has
enough, else a proportional share with at least one per tier where possible, and a warning
says what was done instead. Validation is drawn the same way from what is left.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.dataset.difficulty import Difficulty, Tier, assign_tiers
from cvat_extension.errors import ConfigError, InputError

__all__ = ["DEFAULT_MIN_TEST_PER_TIER", "SPLITS", "SplitPlan", "plan_split"]

logger = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "val", "test")
#: The tracking-dataset guide's test set: at least 2 easy, 3 medium, 2 hard sequences.
DEFAULT_MIN_TEST_PER_TIER: Mapping[Tier, int] = {Tier.EASY: 2, Tier.MEDIUM: 3, Tier.HARD: 2}
_TIERS = (Tier.EASY, Tier.MEDIUM, Tier.HARD)


@dataclass
class SplitPlan:
    """Which split each sequence is in, and why."""

    assignment: dict[str, str]
    tiers: dict[str, Tier]
    difficulties: dict[str, Difficulty]
    seed: int
    fractions: dict[str, float]
    warnings: list[str] = field(default_factory=list)

    def members(self, split: str) -> list[str]:
        """Sequence names in ``split``, sorted."""
        return sorted(n for n, s in self.assignment.items() if s == split)

    def to_json(self, extra: Mapping[str, Mapping[str, Any]] | None = None) -> dict[str, Any]:
        """The JSON manifest: settings, per-sequence difficulty and split, warnings."""
        from cvat_extension.dataset.difficulty import REFERENCES

        seqs = []
        for name in sorted(self.assignment):
            entry = {"name": name, "split": self.assignment[name], "tier": self.tiers[name].value,
                     **self.difficulties[name].to_json()}
            entry.update((extra or {}).get(name, {}))
            seqs.append(entry)
        return {
            "version": 1,
            "seed": self.seed,
            "fractions": self.fractions,
            "difficulty": {"references": dict(REFERENCES),
                           "score": "mean over features of min(feature / reference, 1)",
                           "tiers": "easy/medium/hard = lower/middle/upper third of this dataset's scores"},
            "splits": {s: self.members(s) for s in SPLITS},
            "sequences": seqs,
            "warnings": list(self.warnings),
        }


def _allocate(total: int, sizes: Mapping[Tier, int], minimum: Mapping[Tier, int]) -> dict[Tier, int]:
    """Per-tier counts summing to ``total``: minimums first (within sizes), then by size."""
    take = {t: min(minimum.get(t, 0), sizes[t]) for t in _TIERS}
    while sum(take.values()) > total:  # minimums over the total: trim the largest first
        t = max(_TIERS, key=lambda k: (take[k], k == Tier.MEDIUM))
        take[t] -= 1
    left = total - sum(take.values())
    while left > 0:
        room = [t for t in _TIERS if take[t] < sizes[t]]
        if not room:
            break
        # Largest remaining share of the tier goes next: proportional to tier sizes.
        t = max(room, key=lambda k: ((sizes[k] - take[k]) / max(sizes[k], 1), sizes[k], k == Tier.MEDIUM))
        take[t] += 1
        left -= 1
    return take


def plan_split(
    difficulties: Sequence[Difficulty],
    *,
    test_fraction: float = 0.2,
    val_fraction: float = 0.1,
    seed: int = 0,
    min_test_per_tier: Mapping[Tier, int] = DEFAULT_MIN_TEST_PER_TIER,
    strict: bool = False,
) -> SplitPlan:
    """Assign every sequence to train, val or test.

    Args:
        difficulties: one per sequence (unique names).
        test_fraction: share of sequences in test (rounded, at least one).
        val_fraction: share in validation (rounded; may be zero).
        seed: the same seed and sequences give the same split.
        min_test_per_tier: test-set minimum per tier when the dataset allows it.
        strict: raise instead of warning when the minimums cannot be met.

    Raises:
        ConfigError: fractions out of range.
        InputError: fewer than two sequences, or (``strict``) the stratification cannot be met.
    """
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1 or test_fraction + val_fraction >= 1:
        raise ConfigError(f"split fractions must leave room for training: test {test_fraction}, "
                          f"val {val_fraction}")
    n = len(difficulties)
    if n < 2:
        raise InputError(f"a sequence-level split needs at least 2 sequences, got {n} "
                         "(frames of one sequence are never split)")
    tiers = assign_tiers(difficulties)
    n_test = min(max(1, round(test_fraction * n)), n - 1)
    n_val = min(round(val_fraction * n), n - 1 - n_test)
    rng = np.random.default_rng(seed)
    pools = {t: [d.name for d in sorted(difficulties, key=lambda d: d.name) if tiers[d.name] is t] for t in _TIERS}
    pools = {t: [pool[i] for i in rng.permutation(len(pool))] for t, pool in pools.items()}
    warnings: list[str] = []
    want = sum(min_test_per_tier.values())
    take = _allocate(n_test, {t: len(p) for t, p in pools.items()}, min_test_per_tier)
    short = {t: min_test_per_tier.get(t, 0) - take[t] for t in _TIERS if take[t] < min_test_per_tier.get(t, 0)}
    if short:
        got = ", ".join(f"{take[t]} {t.value}" for t in _TIERS)
        need = ", ".join(f"{min_test_per_tier.get(t, 0)} {t.value}" for t in _TIERS)
        msg = (f"the test set cannot hold {need} sequences ({n} sequences, {n_test} in test at "
               f"{test_fraction:.0%}; {want} needed); used {got} instead")
        if strict:
            raise InputError(msg)
        warnings.append(msg)  # returned, not logged: the caller shows it once
    assignment: dict[str, str] = {}
    for t in _TIERS:
        for name in pools[t][: take[t]]:
            assignment[name] = "test"
        pools[t] = pools[t][take[t]:]
    take_val = _allocate(n_val, {t: len(p) for t, p in pools.items()}, dict.fromkeys(_TIERS, 1 if n_val >= 3 else 0))
    for t in _TIERS:
        for name in pools[t][: take_val[t]]:
            assignment[name] = "val"
        for name in pools[t][take_val[t]:]:
            assignment[name] = "train"
    return SplitPlan(assignment=assignment, tiers=tiers, difficulties={d.name: d for d in difficulties},
                     seed=seed, fractions={"test": test_fraction, "val": val_fraction}, warnings=warnings)
