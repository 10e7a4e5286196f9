"""Settings of the multi-object trackers (ByteTrack, BoT-SORT), read from Ultralytics-style YAML.

Why a YAML like Ultralytics' ``bytetrack.yaml``/``botsort.yaml``: users who tuned
``model.track(tracker=...)`` can bring their file; unknown keys are an error naming the key
(a typo must not silently fall back to a default). Ultralytics-only keys that have no
counterpart here (``fuse_score``; it is always on in boxmot's ByteTrack) are accepted and
ignored with a log line.

The defaults follow the dataset guide: ``track_high_thresh`` (the guide's ``track_thresh``)
0.5, ``match_thresh`` 0.8, ``track_buffer`` 30. The shipped files are
``cvat_extension/models/configs/{bytetrack,botsort}.yaml``.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any

from cvat_extension._enums import parse_enum
from cvat_extension.errors import ConfigError

__all__ = ["BoxSource", "TrackerConfig", "TrackerType", "load_tracker_config"]

logger = logging.getLogger(__name__)

#: Camera-motion compensation methods of boxmot, plus ``none``; Ultralytics' names map here.
GMC_METHODS = ("none", "sof", "ecc", "orb", "sift")
_GMC_ALIASES = {"sparseoptflow": "sof", "sparse_opt_flow": "sof", "": "none", "off": "none"}
_IGNORED_KEYS = {"fuse_score"}
_ALIASES = {"track_thresh": "track_high_thresh", "reid_weights": "model", "cmc_method": "gmc_method"}


class TrackerType(str, Enum):
    """The association algorithm."""

    BYTETRACK = "bytetrack"
    BOTSORT = "botsort"


class BoxSource(str, Enum):
    """Which box is written for a tracked object."""

    DETECTION = "detection"  #: the detector's own box (what an annotator would correct)
    TRACKER = "tracker"  #: the Kalman-filtered box (what MOT benchmarks report)


@dataclass(frozen=True)
class TrackerConfig:
    """Parameters of :class:`cvat_extension.models.mot_tracker.MotTracker`.

    Attributes:
        tracker_type: ``bytetrack`` (motion only, no image needed) or ``botsort`` (motion,
            optional camera-motion compensation and appearance).
        track_high_thresh: detections scoring at least this enter the first association
            stage, and (ByteTrack) may start new tracks. Raise it for fewer false tracks at
            the cost of missed objects; lower it for recall, at the cost of ghosts.
        track_low_thresh: detections between this and ``track_high_thresh`` can only extend
            existing tracks (ByteTrack's second stage). Lower keeps partly occluded objects;
            too low lets clutter extend tracks.
        new_track_thresh: (BoT-SORT) score needed to start a track. Raise against ghost
            tracks, lower against misses.
        match_thresh: maximum association cost (1 − IoU, score-fused). Raise so that fast
            objects keep their identity; lower so that neighbours do not swap, at the cost of
            more fragments.
        track_buffer: frames a lost track is kept for re-identification. Raise to survive
            longer occlusions; a long buffer lets a lost id jump to a newcomer.
        frame_rate: video frame rate; the buffer is scaled by ``frame_rate / 30``.
        per_class: associate within each class only, so tracks never change class.
        box_source: write the detector's box (default; exact pixels the annotator corrects)
            or the Kalman-filtered box (what MOT benchmarks report).
        gmc_method: (BoT-SORT) camera-motion compensation, ``none`` to turn it off. Needs the
            frame image; worth it for moving cameras, a waste for fixed ones.
        with_reid: (BoT-SORT) use appearance embeddings from the ReID weights in ``model``.
        model: local ReID weights file; never downloaded.
        proximity_thresh: (BoT-SORT + ReID) minimum IoU for a pair to be compared by
            appearance.
        appearance_thresh: (BoT-SORT + ReID) maximum embedding distance accepted. Raise to
            re-link more often, at a higher risk of swaps.
        device: ReID device: ``auto`` (CUDA when present), ``cpu``, ``cuda``, ``cuda:N``.
    """

    tracker_type: TrackerType = TrackerType.BYTETRACK
    track_high_thresh: float = 0.5
    track_low_thresh: float = 0.1
    new_track_thresh: float = 0.6
    match_thresh: float = 0.8
    track_buffer: int = 30
    frame_rate: int = 30
    per_class: bool = False
    box_source: BoxSource = BoxSource.DETECTION
    gmc_method: str = "none"
    with_reid: bool = False
    model: Path | None = None
    proximity_thresh: float = 0.5
    appearance_thresh: float = 0.25
    device: str = "auto"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "tracker_type", parse_enum(TrackerType, self.tracker_type))
        set_(self, "box_source", parse_enum(BoxSource, self.box_source))
        for name in ("track_high_thresh", "track_low_thresh", "new_track_thresh", "match_thresh",
                     "proximity_thresh", "appearance_thresh"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"tracker setting {name}: expected a number in 0..1, got {value!r}")
            set_(self, name, float(value))
        if self.track_low_thresh > self.track_high_thresh:
            raise ConfigError(
                f"tracker setting track_low_thresh ({self.track_low_thresh}) must not exceed "
                f"track_high_thresh ({self.track_high_thresh})"
            )
        for name in ("track_buffer", "frame_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"tracker setting {name}: expected an integer >= 1, got {value!r}")
        for name in ("per_class", "with_reid"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"tracker setting {name}: expected true or false, got {getattr(self, name)!r}")
        gmc = str(self.gmc_method if self.gmc_method is not None else "none").strip()
        gmc = _GMC_ALIASES.get(gmc.lower(), gmc.lower())
        if gmc not in GMC_METHODS:
            raise ConfigError(f"tracker setting gmc_method: expected one of {', '.join(GMC_METHODS)}, got {self.gmc_method!r}")
        set_(self, "gmc_method", gmc)
        if self.model is not None and str(self.model) not in ("", "auto"):
            set_(self, "model", Path(self.model))
        else:
            set_(self, "model", None)
        if self.tracker_type is TrackerType.BYTETRACK and (self.with_reid or gmc != "none"):
            raise ConfigError(
                "tracker settings with_reid/gmc_method need tracker_type: botsort "
                "(ByteTrack uses motion only)"
            )
        if self.with_reid and self.model is None:
            raise ConfigError("tracker setting model: with_reid is true, so a local ReID weights file is needed")

    @property
    def needs_image(self) -> bool:
        """Whether updates need the frame pixels (camera-motion compensation or ReID)."""
        return self.gmc_method != "none" or self.with_reid

    def replace(self, **changes: Any) -> TrackerConfig:
        """A copy with some settings changed (validated again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_mapping(cls, values: dict[str, Any], *, where: str = "tracker config") -> TrackerConfig:
        """Build from a YAML-like mapping; unknown keys raise :class:`ConfigError`.

        Raises:
            ConfigError: an unknown key or a value out of range.
        """
        if not isinstance(values, dict):
            raise ConfigError(f"{where}: expected a mapping of settings, got {type(values).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in values.items():
            name = _ALIASES.get(str(key), str(key))
            if name in _IGNORED_KEYS:
                logger.info("%s: setting %s has no effect here (always on in boxmot)", where, key)
                continue
            if name not in known:
                raise ConfigError(f"{where}: unknown setting {key!r}; valid: {', '.join(sorted(known))}")
            kwargs[name] = value
        try:
            return cls(**kwargs)
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from exc


def load_tracker_config(source: str | Path | None = None, **overrides: Any) -> TrackerConfig:
    """Load tracker settings from a YAML file or a shipped name, then apply ``overrides``.

    Args:
        source: ``"bytetrack"``/``"botsort"`` (the shipped files), a path to a YAML file, or
            None for ``bytetrack``.
        **overrides: settings that win over the file (e.g. ``model=Path(...)``).

    Raises:
        ConfigError: the file is missing, not YAML, or holds unknown or invalid settings.
    """
    import yaml

    name = "bytetrack" if source is None else str(source)
    if name.lower() in ("bytetrack", "botsort"):
        text = resources.files("cvat_extension.models").joinpath(f"configs/{name.lower()}.yaml").read_text()
        where = f"{name.lower()}.yaml (shipped)"
    else:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"tracker config {path}: no such file (or use bytetrack / botsort)")
        text = path.read_text(encoding="utf-8")
        where = str(path)
    try:
        values = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML ({exc})") from exc
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a mapping of settings, got {type(values).__name__}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    return TrackerConfig.from_mapping(values, where=where)
