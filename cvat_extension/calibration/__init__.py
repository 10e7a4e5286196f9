"""Calibration of pre-annotation: which detector confidence and tracker threshold to ship.

Why: pre-annotations only save time when annotators keep checking them. The tracking-dataset
guide puts the useful range at 70–85 % correct boxes: above ~90 % annotators stop checking and
miss the rest, below ~60 % they stop trusting and redraw everything. Which detector
confidence and tracker threshold land there depends on the model and the footage, so it is
measured on a small ground-truth set and written into the functions' configuration.

- :mod:`~cvat_extension.calibration.ground_truth`: the ground truth to score against (MOT file
  or accepted CVAT jobs), label mapping and frame coverage checks;
- :mod:`~cvat_extension.calibration.sweep`: the grid of settings, scored with TrackEval;
- :mod:`~cvat_extension.calibration.manifest_edit`: writes the chosen setting into
  ``serverless.yaml`` without losing its comments;
- :mod:`~cvat_extension.calibration.plot`: the precision/recall/IDF1 curve as a PNG.
"""

from __future__ import annotations

from cvat_extension.calibration.ground_truth import CalibrationTruth, LabelMap, parse_label_map
from cvat_extension.calibration.sweep import SettingResult, SweepSetting, choose_setting, run_sweep

__all__ = ["CalibrationTruth", "LabelMap", "SettingResult", "SweepSetting", "choose_setting", "parse_label_map",
           "run_sweep"]
