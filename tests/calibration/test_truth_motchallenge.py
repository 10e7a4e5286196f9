"""Calibration scores MOT ground truth exactly as ``eval --motchallenge`` (TrackEval) does.

Before, calibration carried its own copy of the distractor rule that matched predictions
against scored and distractor boxes only; on MOT17-02 it counted 2845 false positives where
TrackEval counts 2923 (it overstated precision, the number calibration picks a setting by).
"""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.calibration.ground_truth import CalibrationTruth, LabelMap
from cvat_extension.core.tracks import Tracks
from cvat_extension.io.mot import read_mot
from cvat_extension.metrics.mot_preprocess import mot_classes
from cvat_extension.metrics.trackeval_adapter import evaluate_tracks, evaluate_tracks_mot


@pytest.mark.parametrize(("seq", "benchmark"), [("MOT17-02", "MOT17"), ("MOT17-09", "MOT17"), ("MOT20-01", "MOT20")])
def test_calibration_counts_what_trackeval_counts(shared_data, seq: str, benchmark: str) -> None:
    path = shared_data / "motgt" / seq / "gt.txt"
    if not path.is_file():
        pytest.skip(f"{path} not present")
    gt, info = read_mot(path)
    rng = np.random.default_rng(0)
    # Predictions on every kind of ground-truth box (cars, static people, ignore rows), jittered.
    p = gt[rng.random(len(gt)) < 0.8]
    pred = Tracks.from_columns(frame=p.frame, track_id=p.track_id + 100_000,
                               xyxy=p.xyxy + rng.normal(0, 3, (len(p), 4)), labels=("pedestrian",))
    truth = CalibrationTruth.from_tracks(gt, label_map=LabelMap((("pedestrian", "pedestrian"),)),
                                         model_labels=("pedestrian",), benchmark=benchmark)
    ours = evaluate_tracks(truth.scored, truth.predictions_to_score(pred, np.arange(info.num_frames)),
                           num_frames=info.num_frames)
    cls = mot_classes(gt)
    theirs = evaluate_tracks_mot(gt, pred, gt_class=np.where(cls <= 0, 1, cls), gt_consider=gt.score,
                                 num_frames=info.num_frames, benchmark=benchmark)
    assert (ours.fp, ours.fn, ours.num_pred_dets, ours.idsw) == \
        (theirs.fp, theirs.fn, theirs.num_pred_dets, theirs.idsw)
    assert ours.idf1 == pytest.approx(theirs.idf1, abs=1e-12)


def test_unknown_benchmark_is_refused() -> None:
    from cvat_extension.errors import InputError

    gt = Tracks.from_columns(frame=[0], track_id=[1], xyxy=[[0, 0, 5, 5]], labels=("pedestrian",),
                             data={"mot_class": np.array([1])})
    with pytest.raises(InputError, match="MOT21"):
        CalibrationTruth.from_tracks(gt, label_map=LabelMap(), model_labels=("pedestrian",), benchmark="MOT21")
