"""Sweep detector confidence × tracker threshold and score what annotators would receive.

Each setting runs the pipeline of ``cvat-track annotate`` on cached detections: detections
below the detector confidence are dropped (what ``YOLO_CONF`` / ``--conf`` does), the
tracker runs with ``track_high_thresh`` set to the tracker threshold (the score needed to
start a track and to enter the first association stage), and the tracks are prepared for
upload (smoothed, short gaps filled) exactly as they would be uploaded. The result is scored
with TrackEval (``metrics.evaluate_tracks``):

- box precision: the fraction of pre-annotated boxes that match a ground-truth box at
  IoU ≥ ``iou_threshold`` (1 − FP / predicted boxes): what the 70–85 % band is about by default;
- identity precision (TrackEval's IDP): the fraction of pre-annotated boxes that match a
  ground-truth box *on the right track* (global identity matching). For tracks this is what
  "correct" means to an annotator — a box on the wrong identity must be fixed too — and it is
  the measure that can reach the band when the detector alone is very precise (MOT17's public
  FRCNN detections are 94–100 % box-precise at every confidence);
- box recall: the fraction of ground-truth boxes pre-annotated (1 − FN / GT boxes): the work
  saved;
- IDF1 (and HOTA): whether the boxes are linked into the right identities.

The detector runs once per frame (at the lowest swept confidence); only the tracker runs per
setting, which is cheap (about 2 ms a frame).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from enum import Enum

import numpy as np

from cvat_extension.calibration.ground_truth import CalibrationTruth
from cvat_extension.core.smooth import SparseTrackConfig
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError
from cvat_extension.metrics.trackeval_adapter import evaluate_tracks
from cvat_extension.models.mot_tracker import FrameSource, track_sequence
from cvat_extension.models.tracker_config import TrackerConfig, TrackerType

__all__ = ["DEFAULT_BAND", "Precision", "SettingResult", "SweepSetting", "choose_setting", "run_sweep", "tracker_for"]

#: The tracking-dataset guide's band of useful pre-annotation precision.
DEFAULT_BAND = (0.70, 0.85)


class Precision(str, Enum):
    """Which precision the target band applies to."""

    BOX = "box"  #: boxes matching a ground-truth box at the IoU threshold
    IDENTITY = "identity"  #: boxes matching a ground-truth box of the right track (IDP)


@dataclass(frozen=True, order=True, slots=True)
class SweepSetting:
    """One point of the grid: detector confidence floor and tracker start threshold."""

    det_conf: float
    track_thresh: float


@dataclass(frozen=True, slots=True)
class SettingResult:
    """Scores of one setting (fractions 0..1, counts)."""

    setting: SweepSetting
    precision: float  #: the measure the band applies to (box or identity precision)
    box_precision: float
    id_precision: float
    recall: float
    idf1: float
    hota: float
    pred_boxes: int
    gt_boxes: int
    tracks: int

    def to_json(self) -> dict[str, float | int]:
        """Flat, rounded JSON."""
        out = {**asdict(self.setting), **{k: v for k, v in asdict(self).items() if k != "setting"}}
        return {k: round(v, 6) if isinstance(v, float) else v for k, v in out.items()}


def tracker_for(base: TrackerConfig, track_thresh: float) -> TrackerConfig:
    """``base`` with its start threshold at ``track_thresh``.

    The low threshold never exceeds the high one; BoT-SORT's ``new_track_thresh`` keeps its
    offset from ``track_high_thresh`` (0.1 in the shipped file), clipped to 0..1.
    """
    changes: dict[str, float] = {
        "track_high_thresh": float(track_thresh),
        "track_low_thresh": min(base.track_low_thresh, float(track_thresh)),
    }
    if base.tracker_type is TrackerType.BOTSORT:
        offset = base.new_track_thresh - base.track_high_thresh
        changes["new_track_thresh"] = float(np.clip(track_thresh + offset, 0.0, 1.0))
    return base.replace(**changes)


def run_sweep(
    detections: Tracks,
    truth: CalibrationTruth,
    *,
    first_frame: int,
    last_frame: int,
    tracker: TrackerConfig,
    det_confs: Sequence[float],
    track_threshs: Sequence[float],
    keyframes: SparseTrackConfig | None = None,
    frames: FrameSource | None = None,
    on_result: Callable[[SettingResult], None] | None = None,
    precision: Precision = Precision.BOX,
    iou_threshold: float = 0.5,
) -> list[SettingResult]:
    """Score every (detector confidence, tracker threshold) pair on frames ``first..last``.

    Args:
        detections: per-frame detections (``score`` = confidence) of at least the lowest
            swept confidence; rows outside the frame range are ignored.
        truth: the ground truth (coverage already checked by the caller).
        first_frame: first scored frame (0-based); the tracker starts there.
        last_frame: last scored frame (inclusive).
        tracker: base tracker settings; only the thresholds change.
        det_confs: detector confidences to try (0..1).
        track_threshs: tracker start thresholds to try (0..1).
        keyframes: how tracks are prepared for upload (default: as ``annotate`` does).
        frames: pixels, needed only by trackers that use images (BoT-SORT with CMC/ReID).
        on_result: called after each setting (progress).
        precision: which precision ``SettingResult.precision`` holds.
        iou_threshold: IoU at which a box counts as matching (box and identity precision,
            recall, IDF1).

    Raises:
        ConfigError: an empty grid or a value outside 0..1.
        InputError: the tracker needs frames and none are given.
    """
    if not len(det_confs) or not len(track_threshs):
        raise ConfigError("calibration grid: give at least one detector confidence and one tracker threshold")
    for value in (*det_confs, *track_threshs):
        if not 0.0 <= float(value) <= 1.0:
            raise ConfigError(f"calibration grid: thresholds must lie in 0..1, got {value}")
    prepare = keyframes or SparseTrackConfig()
    scored_frames = np.arange(first_frame, last_frame + 1, dtype=np.int64)
    gt = truth.scored
    in_range = detections[(detections.frame >= first_frame) & (detections.frame <= last_frame)]
    results: list[SettingResult] = []
    for conf in sorted({float(c) for c in det_confs}):
        kept = in_range[in_range.score >= conf - 1e-9]
        for thresh in sorted({float(t) for t in track_threshs}):
            pred = track_sequence(kept, frames, tracker_for(tracker, thresh), num_frames=last_frame + 1)
            pred = truth.predictions_to_score(prepare.prepare(pred), scored_frames)
            m = evaluate_tracks(gt, pred, num_frames=last_frame + 1, iou_threshold=iou_threshold)
            box = 1.0 - m.fp / m.num_pred_dets if m.num_pred_dets else 0.0
            result = SettingResult(
                setting=SweepSetting(conf, thresh),
                precision=box if precision is Precision.BOX else m.idp,
                box_precision=box,
                id_precision=m.idp,
                recall=1.0 - m.fn / m.num_gt_dets if m.num_gt_dets else 0.0,
                idf1=m.idf1,
                hota=m.hota,
                pred_boxes=m.num_pred_dets,
                gt_boxes=m.num_gt_dets,
                tracks=m.num_pred_ids,
            )
            results.append(result)
            if on_result is not None:
                on_result(result)
    return results


def choose_setting(
    results: Sequence[SettingResult], band: tuple[float, float] = DEFAULT_BAND
) -> SettingResult | None:
    """The setting to ship: precision inside ``band``, then the best IDF1, then recall.

    Within the band annotators keep checking, so the pick maximises what they get right
    for free: identities (IDF1) first, since a wrong identity costs more to fix than a
    missing box, then boxes (recall). None when no setting lands in the band.
    """
    low, high = band
    inside = [r for r in results if low - 1e-9 <= r.precision <= high + 1e-9]
    if not inside:
        return None
    return max(inside, key=lambda r: (round(r.idf1, 6), round(r.recall, 6), -r.setting.det_conf))
