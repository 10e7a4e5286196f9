from __future__ import annotations

import contextlib

import numpy as np
import pytest

from cvat_extension.core.tracks import Tracks


def make(n: int = 4) -> Tracks:
    return Tracks.from_columns(
        frame=[3, 1, 2, 0][:n],
        track_id=[2, 1, 1, 2][:n],
        xyxy=np.arange(4 * n, dtype=float).reshape(n, 4),
        labels=("person",),
    )


def test_from_columns_sorts_by_track_then_frame() -> None:
    t = make()
    assert t.track_id.tolist() == [1, 1, 2, 2]
    assert t.frame.tolist() == [1, 2, 0, 3]
    assert t.ids.tolist() == [1, 2]
    assert t.track_starts.tolist() == [0, 2, 4]


def test_columns_are_read_only_but_caller_arrays_stay_writable() -> None:
    box = np.zeros((2, 4))
    t = Tracks.from_columns(frame=[0, 1], track_id=[1, 1], xyxy=box)
    with pytest.raises(ValueError):
        t.xyxy[0, 0] = 5
    box[0, 0] = 5  # the caller's array is untouched by the read-only view


@pytest.mark.parametrize(
    ("index", "rows", "expectation"),
    [
        (0, 1, contextlib.nullcontext()),
        (-1, 1, contextlib.nullcontext()),
        (slice(1, 3), 2, contextlib.nullcontext()),
        (np.array([3, 0]), 2, contextlib.nullcontext()),
        (np.array([True, False, True, False]), 2, contextlib.nullcontext()),
    ],
)
def test_getitem_always_returns_tracks(index, rows, expectation) -> None:
    with expectation:
        sel = make()[index]
        assert isinstance(sel, Tracks) and len(sel) == rows
        assert sel.xyxy.shape == (rows, 4)


def test_empty_and_concat_unify_labels() -> None:
    a = Tracks.from_columns(frame=[0], track_id=[1], xyxy=[[0, 0, 1, 1]], label=[0], labels=("car",))
    b = Tracks.from_columns(frame=[0], track_id=[2], xyxy=[[0, 0, 1, 1]], label=[0], labels=("person",))
    both = Tracks.concat([Tracks.empty(), a, b])
    assert [both.label_name(c) for c in both.label] == ["car", "person"]
    assert len(Tracks.empty()) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"xyxy": np.zeros((2, 5))}, r"shape \(2, 4\)"),
        ({"track_id": [1]}, r"track_id must have shape \(2,\)"),
        ({"label": [0, 3]}, "code 3"),
    ],
)
def test_bad_columns_raise(kwargs, match) -> None:
    base = {"frame": [0, 1], "track_id": [1, 1], "xyxy": np.zeros((2, 4))}
    base.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Tracks.from_columns(**base)


def test_track_and_visible_views() -> None:
    t = Tracks.from_columns(
        frame=[0, 1, 2], track_id=[5, 5, 5], xyxy=np.zeros((3, 4)), outside=[False, False, True]
    )
    assert len(t.track(5)) == 3 and len(t.track(4)) == 0
    assert len(t.visible()) == 2
    moved = t.with_columns(track_id=np.array([7, 7, 7]))
    assert moved.ids.tolist() == [7]


def test_visible_of_all_visible_tracks_is_the_same_object() -> None:
    """No copy of a task where nothing is outside (MOT files): Tracks is immutable."""
    t = Tracks.from_columns(frame=[0, 1], track_id=[5, 5], xyxy=np.zeros((2, 4)))
    assert t.visible() is t


def test_rows_already_in_order_keep_their_order_and_others_are_sorted() -> None:
    """from_columns skips the sort when rows are in (track_id, frame) order, ties included."""
    t = Tracks.from_columns(frame=[0, 0, 1], track_id=[1, 1, 2], xyxy=np.arange(12.0).reshape(3, 4))
    assert t.xyxy[:, 0].tolist() == [0.0, 4.0, 8.0]
    u = Tracks.from_columns(frame=[3, 1, 2], track_id=[2, 2, 1], xyxy=np.arange(12.0).reshape(3, 4))
    assert u.track_id.tolist() == [1, 2, 2] and u.frame.tolist() == [2, 1, 3]
    assert u.xyxy[:, 0].tolist() == [8.0, 4.0, 0.0]
