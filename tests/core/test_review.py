"""Review plan: grouping per track and frame range, ranking, budget cut."""

from __future__ import annotations

import contextlib

import pytest

from cvat_extension.core.findings import Finding
from cvat_extension.core.review import group_findings, plan_review
from cvat_extension.errors import ConfigError


def _f(kind: str, tracks: tuple[int, ...], frames: tuple[int, int], score: float) -> Finding:
    return Finding(kind, tracks, frames, (0.0, 0.0, 10.0, 10.0), score, f"track {tracks} {kind}")


def test_empty() -> None:
    assert plan_review([], num_frames=100) == []
    assert group_findings([]) == []


def test_findings_on_one_track_close_in_time_are_one_item() -> None:
    items = group_findings([
        _f("box_jump", (4,), (100, 100), 0.5),
        _f("appearance_jump", (4,), (105, 105), 0.6),
        _f("box_jump", (4,), (300, 300), 0.4),  # far: its own item
    ])
    assert [(it.track_ids, it.frames) for it in items] == [((4,), (100, 105)), ((4,), (300, 300))]
    # Two different checks agreeing: noisy-or of their best scores.
    assert items[0].score == pytest.approx(1 - 0.5 * 0.4)
    assert items[0].kinds == ("appearance_jump", "box_jump")
    assert items[0].frame == 105  # the highest-scoring finding's frame is where to look


def test_same_kind_twice_is_not_more_evidence() -> None:
    items = group_findings([_f("box_jump", (4,), (10, 10), 0.5), _f("box_jump", (4,), (12, 12), 0.5)])
    assert len(items) == 1 and items[0].score == pytest.approx(0.5)


def test_swap_joins_both_tracks_items_transitively() -> None:
    items = group_findings([
        _f("id_switch", (3, 7), (50, 50), 0.9),
        _f("box_jump", (3,), (52, 52), 0.4),
        _f("appearance_jump", (7,), (49, 49), 0.5),
        _f("ghost", (9,), (0, 200), 0.8),
    ])
    assert [(it.track_ids, it.frames) for it in items] == [((3, 7), (49, 52)), ((9,), (0, 200))]
    assert "tracks 3, 7" in items[0].message


def test_findings_without_track_group_among_themselves() -> None:
    items = group_findings([
        Finding("missing_object", (), (10, 12), None, 0.7, "frame 10: missing"),
        Finding("missing_object", (), (20, 20), None, 0.6, "frame 20: missing"),
        _f("box_jump", (1,), (11, 11), 0.3),
    ])
    assert sorted((it.track_ids, it.frames) for it in items) == [((), (10, 20)), ((1,), (11, 11))]


def test_budget_keeps_best_items_within_three_percent_of_frames() -> None:
    findings = [_f("box_jump", (i,), (i * 100, i * 100), i / 100) for i in range(1, 60)]
    items = plan_review(findings, num_frames=1000)  # budget 30 frames
    # Each single-frame item costs one frame: the 30 best items survive.
    assert len(items) == 30
    assert [it.track_ids[0] for it in items] == list(range(59, 29, -1))


def test_long_items_cost_frames_per_item() -> None:
    findings = [_f("ghost", (i,), (0, 500), 0.9 - i / 100) for i in range(20)]
    items = plan_review(findings, num_frames=1000, frames_per_item=3)
    assert len(items) == 10  # 30 frames / 3 per track-level decision


def test_at_least_one_item_when_budget_is_tiny() -> None:
    items = plan_review([_f("ghost", (1,), (0, 50), 0.9)], num_frames=10)
    assert len(items) == 1


def test_min_score_drops_weak_items() -> None:
    items = plan_review([_f("box_jump", (1,), (0, 0), 0.1), _f("box_jump", (2,), (9, 9), 0.6)],
                        num_frames=1000, min_score=0.5)
    assert [it.track_ids for it in items] == [(2,)]


@pytest.mark.parametrize(
    ("kwargs", "expectation"),
    [
        ({}, contextlib.nullcontext()),
        ({"budget_frames_fraction": 0}, pytest.raises(ConfigError, match="budget_frames_fraction")),
        ({"budget_frames_fraction": 1.5}, pytest.raises(ConfigError, match="budget_frames_fraction")),
        ({"frames_per_item": 0}, pytest.raises(ConfigError, match="frames_per_item")),
        ({"join_gap_frames": -1}, pytest.raises(ConfigError, match="join_gap_frames")),
    ],
)
def test_parameter_validation(kwargs: dict[str, float], expectation: contextlib.AbstractContextManager[object]) -> None:
    with expectation:
        plan_review([_f("box_jump", (1,), (0, 0), 0.5)], num_frames=100, **kwargs)  # type: ignore[arg-type]


def test_json_uses_users_frame_numbers() -> None:
    (item,) = plan_review([_f("box_jump", (1,), (0, 0), 0.5)], num_frames=100)
    data = item.to_json(frame_base=1)
    assert data["frames"] == [1, 1] and data["frame"] == 1
    assert data["findings"][0]["frames"] == [1, 1]
