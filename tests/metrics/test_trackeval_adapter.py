"""TrackEval adapter against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import InputError
from cvat_extension.metrics.trackeval_adapter import evaluate_tracks


def _two_walkers(ids_a: list[int], ids_b: list[int], frames: int = 10) -> Tracks:
    """Two far-apart objects over ``frames`` frames; per-frame ids given by the lists."""
    f = np.arange(frames)
    box_a = np.array([[0, 0, 10, 20]] * frames, dtype=float) + np.c_[f, 0 * f, f, 0 * f]
    box_b = np.array([[100, 0, 110, 20]] * frames, dtype=float) - np.c_[f, 0 * f, f, 0 * f]
    return Tracks.from_columns(
        frame=np.r_[f, f], track_id=np.r_[ids_a, ids_b], xyxy=np.r_[box_a, box_b]
    )


def test_identical_sets_score_100_percent() -> None:
    gt = _two_walkers([1] * 10, [2] * 10)
    pred = _two_walkers([7] * 10, [9] * 10)  # ids need not be equal, only consistent
    m = evaluate_tracks(gt, pred)
    assert (m.mota, m.idf1, m.hota, m.deta, m.assa) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert (m.fp, m.fn, m.idsw, m.mt, m.ml) == (0, 0, 0, 2, 0)


def test_swap_at_frame_5_matches_hand_computed_values() -> None:
    gt = _two_walkers([1] * 10, [2] * 10)
    pred = _two_walkers([10] * 5 + [20] * 5, [20] * 5 + [10] * 5)
    m = evaluate_tracks(gt, pred)
    # CLEAR: 20 TP, no FP/FN, one switch per GT track -> MOTA = 1 - 2/20.
    assert (m.fp, m.fn, m.idsw) == (0, 0, 2)
    assert m.mota == pytest.approx(0.9)
    # Identity: best one-to-one id mapping covers 5 + 5 of 20 boxes -> IDF1 = 2*10/(20+20).
    assert m.idf1 == pytest.approx(0.5)
    # HOTA: detection perfect; every TP has TPA=5, FNA=5, FPA=5 -> AssA = 1/3.
    assert m.deta == pytest.approx(1.0)
    assert m.assa == pytest.approx(1 / 3)
    assert m.hota == pytest.approx(math.sqrt(1 / 3))
    assert m.mt == 2


def test_missed_half_and_a_ghost_track() -> None:
    gt = _two_walkers([1] * 10, [2] * 10)
    # Prediction: A only in frames 0..4, B whole, plus a 3-frame ghost far away.
    keep = np.r_[np.arange(5), np.arange(10, 20)]
    pred = gt[keep]
    ghost = Tracks.from_columns(frame=[0, 1, 2], track_id=[99] * 3, xyxy=[[500, 500, 510, 520]] * 3)
    m = evaluate_tracks(gt, Tracks.concat([pred, ghost]))
    assert (m.fn, m.fp, m.idsw) == (5, 3, 0)
    assert m.mota == pytest.approx(1 - (5 + 3) / 20)
    # A tracked 50 % -> partially tracked; B mostly tracked.
    assert (m.mt, m.pt, m.ml) == (1, 1, 0)
    # IDTP = 15, GT dets 20, pred dets 18 -> IDF1 = 30/38.
    assert m.idf1 == pytest.approx(30 / 38)


def test_empty_prediction_is_all_misses() -> None:
    gt = _two_walkers([1] * 10, [2] * 10)
    m = evaluate_tracks(gt, Tracks.empty())
    assert (m.fn, m.fp, m.ml, m.mota, m.idf1) == (20, 0, 2, 0.0, 0.0)


def test_duplicate_box_is_input_error() -> None:
    dup = Tracks.from_columns(frame=[0, 0], track_id=[1, 1], xyxy=[[0, 0, 1, 1]] * 2)
    with pytest.raises(InputError, match="two visible boxes"):
        evaluate_tracks(dup, dup)


def test_numpy_itself_is_not_patched() -> None:
    evaluate_tracks(_two_walkers([1] * 3, [2] * 3, 3), _two_walkers([1] * 3, [2] * 3, 3))
    assert "float" not in np.__dict__ or np.__version__.startswith("1.")
