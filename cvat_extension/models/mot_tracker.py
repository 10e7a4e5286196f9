"""Multi-object tracking over boxmot's ByteTrack and BoT-SORT, frame by frame or whole sequences.

Why a wrapper and not boxmot directly: the product needs (1) settings from a YAML file with
documented trade-offs (:mod:`cvat_extension.models.tracker_config`), (2) RGB frames (boxmot
wants BGR), (3) the id given to *every* detection of the last frame, tentative tracks
included, so the CVAT ``reid`` functions can answer a pairwise matching, (4) a tracker state
that can be saved and restored (checkpoints, Redis) without pickling a ReID network, and
(5) :class:`~cvat_extension.core.tracks.Tracks` in and out. The association itself is
boxmot's, untouched: ``scripts/eval_trackers_mot17.py`` checks that the ids are identical to
boxmot called directly.

Contract of :meth:`MotTracker.update`:

- ``dets`` is (n, 6) ``x1, y1, x2, y2, conf, cls`` in pixels of the frame; conf in 0..1;
- ``image_rgb`` is the frame (H, W, 3) uint8 RGB, or None when the configuration needs no
  pixels (ByteTrack, BoT-SORT without CMC and ReID);
- frames must increase; a jump back, or forward by more than ``track_buffer``, resets the
  tracker (a new sequence); a short jump forward runs empty updates for the skipped frames so
  that the Kalman prediction stays in step with time;
- returned arrays are fresh copies the caller may keep.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cvat_extension._deps import require
from cvat_extension.core.tracks import SOURCES, Source, Tracks
from cvat_extension.errors import ConfigError, InputError
from cvat_extension.models.tracker_config import BoxSource, TrackerConfig, TrackerType

__all__ = ["FrameSource", "MotTracker", "OUTPUT_COLUMNS", "track_sequence"]

logger = logging.getLogger(__name__)

#: Columns of the (m, 8) array returned by :meth:`MotTracker.update` (boxmot's layout).
OUTPUT_COLUMNS = ("x1", "y1", "x2", "y2", "track_id", "conf", "cls", "det_index")
_AUTO = SOURCES.index(Source.AUTO)


class FrameSource(Protocol):
    """Gives the RGB pixels of a 0-based frame: (H, W, 3) uint8."""

    def __call__(self, frame: int) -> npt.NDArray[np.uint8]: ...


def _resolve_device(device: str) -> str:
    if device != "auto":
        return device
    torch = require("torch", extra="models")
    return "cuda:0" if torch.cuda.is_available() else "cpu"


def build_boxmot_tracker(config: TrackerConfig) -> Any:
    """The boxmot tracker object for ``config`` (no ReID network loaded yet).

    Raises:
        ConfigError: the ReID weights file does not exist.
        MissingDependencyError: boxmot is not installed.
    """
    boxmot = require("boxmot", extra="models")
    if config.tracker_type is TrackerType.BYTETRACK:
        return boxmot.ByteTrack(
            min_conf=config.track_low_thresh,
            track_thresh=config.track_high_thresh,
            match_thresh=config.match_thresh,
            track_buffer=config.track_buffer,
            frame_rate=config.frame_rate,
            per_class=config.per_class,
        )
    reid: dict[str, Any] = {}
    if config.with_reid:
        assert config.model is not None  # TrackerConfig.__post_init__ enforces it
        if not config.model.is_file():
            raise ConfigError(
                f"tracker setting model: ReID weights file {config.model} does not exist "
                "(weights are never downloaded; give a local file or set with_reid: false)"
            )
        from cvat_extension.models.torchvision_fallback import ensure_torchvision_ops

        ensure_torchvision_ops()  # boxmot's ReID backends import torchvision
        reid = {"reid_weights": config.model, "device": _resolve_device(config.device)}
    return boxmot.BotSort(
        track_high_thresh=config.track_high_thresh,
        track_low_thresh=config.track_low_thresh,
        new_track_thresh=config.new_track_thresh,
        track_buffer=config.track_buffer,
        match_thresh=config.match_thresh,
        proximity_thresh=config.proximity_thresh,
        appearance_thresh=config.appearance_thresh,
        use_cmc=config.gmc_method != "none",
        cmc_method=config.gmc_method if config.gmc_method != "none" else "ecc",
        frame_rate=config.frame_rate,
        use_embeddings=config.with_reid,
        per_class=config.per_class,
        **reid,
    )


# Attributes holding a ReID network: shared between fresh trackers, never saved.
_MODEL_ATTRS = ("_reid_model", "_reid_encoder")
# Tracker attributes rebuilt from the TrackerConfig on load instead of being saved: functions,
# layout objects, the network and its settings, and the camera-motion object (whose *state*
# is saved separately, without its OpenCV algorithm objects).
_REBUILT_ATTRS = frozenset({
    "geometry_ops", "detection_layout", "asso_func", "class_catalog", "kalman_noise_config", "cmc",
    "_reid_model", "_reid_encoder", "_reid_encoder_spec", "_reid_preprocess", "_reid_weights",
    "_reid_device", "_reid_half", "_raw_reid_configured",
})
#: boxmot classes a saved state may contain (module path, class names); nothing else is built.
_STATE_CLASSES = {
    "boxmot.trackers.box.bytetrack.track": ("STrack",),
    "boxmot.trackers.box.botsort.track": ("STrack",),
    "boxmot.motion.kalman_filters.xyah": ("KalmanFilterXYAH",),
    "boxmot.motion.kalman_filters.xywh": ("KalmanFilterXYWH",),
    "boxmot.motion.kalman_filters.noise": ("KalmanNoiseConfig",),
    "boxmot.trackers.common.tracking.track": ("TrackIdAllocator", "TrackMeta", "TrackState"),
    "boxmot.trackers.common.tracking.per_class": ("ClassTrackState",),
}


def _state_registry() -> tuple[dict[str, type], dict[type, Any]]:
    """The classes :mod:`state_codec` may rebuild, and the ``cv2.KeyPoint`` leaf form."""
    import importlib

    from cvat_extension.models.state_codec import class_name

    registry: dict[str, type] = {}
    for module_name, names in _STATE_CLASSES.items():
        module = importlib.import_module(module_name)
        for name in names:
            cls = getattr(module, name)
            registry[class_name(cls)] = cls
    special: dict[type, Any] = {}
    try:
        import cv2
    except ImportError:  # pragma: no cover - boxmot depends on OpenCV
        return registry, special

    def keypoint_from_json(v: Any) -> Any:
        if not isinstance(v, list) or len(v) != 7 or not all(isinstance(x, (int, float)) for x in v):
            raise InputError("saved tracker state has a malformed key point")
        return cv2.KeyPoint(float(v[0]), float(v[1]), float(v[2]), float(v[3]), float(v[4]), int(v[5]), int(v[6]))

    special[cv2.KeyPoint] = (
        "$kp",
        lambda k: [k.pt[0], k.pt[1], k.size, k.angle, k.response, k.octave, k.class_id],
        keypoint_from_json,
    )
    return registry, special


def _is_opencv_algorithm(value: Any) -> bool:
    return type(value).__module__.startswith("cv2") and type(value).__name__ != "KeyPoint"


def _config_dict(config: TrackerConfig) -> dict[str, Any]:
    """A JSON-comparable form of the settings a state was made with."""
    import dataclasses
    from enum import Enum
    from pathlib import Path

    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = value.value if isinstance(value, Enum) else str(value) if isinstance(value, Path) else value
    return out


def _share_models(src: Any, dst: Any) -> None:
    """Give boxmot tracker ``dst`` the loaded ReID network(s) of ``src`` (no reload)."""
    for attr in _MODEL_ATTRS:
        value = getattr(src, attr, None)
        if value is not None:
            setattr(dst, attr, value)


class MotTracker:
    """One multi-object tracking sequence (ByteTrack or BoT-SORT), updated frame by frame."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.config = config or TrackerConfig()
        self._tracker = build_boxmot_tracker(self.config)
        if self.config.with_reid:
            # Load the network now (once), not lazily on the first frame of the first request.
            try:
                self._tracker._get_live_reid_model()
            except Exception as exc:  # boxmot/torch raise many kinds for a bad weights file
                raise ConfigError(
                    f"tracker setting model: cannot load ReID weights {self.config.model}: {exc}"
                ) from exc
        self._last_frame: int | None = None
        self._assignments: dict[int, int] = {}

    # ------------------------------------------------------------------ per frame
    def update(
        self,
        dets: npt.ArrayLike,
        image_rgb: npt.NDArray[np.uint8] | None,
        frame: int,
    ) -> npt.NDArray[np.float64]:
        """Associate the detections of ``frame`` and return the tracked boxes.

        Returns:
            (m, 8) float64 ``x1, y1, x2, y2, track_id, conf, cls, det_index`` for the
            confirmed tracks seen in this frame (``det_index`` indexes ``dets``). Boxes are the
            detector's or the Kalman filter's, per ``config.box_source``.

        Raises:
            InputError: ``dets`` is not (n, 6) finite with conf in 0..1, or an image is needed
                and missing or malformed.
        """
        det_arr = self._check_dets(dets, frame)
        img_bgr = self._check_image(image_rgb, frame)
        self._advance_to(frame)
        out = np.asarray(self._tracker.update(det_arr, img_bgr), dtype=np.float64).reshape(-1, 8)
        self._last_frame = frame
        self._assignments = self._collect_assignments(out)
        if self.config.box_source is BoxSource.DETECTION and len(out):
            idx = out[:, 7].astype(np.int64)
            out[:, :4] = det_arr[idx, :4]
            out[:, 5] = det_arr[idx, 4]
        return out

    def fresh(self) -> MotTracker:
        """A new, empty sequence with the same settings, sharing this one's ReID network.

        Building the boxmot tracker is cheap; loading a ReID network is not. Servers keep one
        template tracker and take a fresh one per task or request.
        """
        new = MotTracker.__new__(MotTracker)
        new.config = self.config
        new._tracker = build_boxmot_tracker(self.config)
        _share_models(self._tracker, new._tracker)
        new._last_frame = None
        new._assignments = {}
        return new

    def assignments(self) -> dict[int, int]:
        """``det_index -> track_id`` for every detection of the last frame that is part of a track.

        Unlike :meth:`update`'s output this includes tentative tracks (started this frame,
        not yet confirmed), which is what a pairwise matching needs: a box seen in two
        consecutive frames is the same object even if the tracker has not confirmed it yet.
        """
        return dict(self._assignments)

    def reset(self) -> None:
        """Forget every track; the next update starts a new sequence (ids restart too)."""
        self._tracker.reset()
        self._last_frame = None
        self._assignments = {}

    @property
    def last_frame(self) -> int | None:
        """The frame of the last update, None before the first."""
        return self._last_frame

    # ------------------------------------------------------------------ state
    def state_bytes(self) -> bytes:
        """The tracker's motion (and appearance) state in the typed format of
        :mod:`~cvat_extension.models.state_codec` (no pickle, no ReID network).

        Attributes that only restate the configuration (association function, geometry
        layout, networks, OpenCV feature detectors) are not stored: :meth:`load_state`
        takes them from a tracker freshly built from the same :class:`TrackerConfig`.
        """
        from cvat_extension.models import state_codec

        tracker = {k: v for k, v in vars(self._tracker).items() if k not in _REBUILT_ATTRS}
        cmc = getattr(self._tracker, "cmc", None)
        cmc_state = None if cmc is None else {
            k: v for k, v in vars(cmc).items() if not _is_opencv_algorithm(v)
        }
        root = {
            "config": _config_dict(self.config),
            "last_frame": self._last_frame,
            "assignments": self._assignments,
            "tracker": tracker,
            "cmc": cmc_state,
        }
        registry, special = _state_registry()
        return state_codec.encode(root, allowed=registry, special=special)

    def load_state(self, data: bytes) -> None:
        """Restore a state from :meth:`state_bytes`; only tracker state classes can be built.

        Raises:
            InputError: not a state, or one made with different tracker settings.
        """
        from cvat_extension.models import state_codec

        registry, special = _state_registry()
        root = state_codec.decode(data, allowed=registry, special=special)
        if not isinstance(root, dict) or root.get("config") != _config_dict(self.config):
            raise InputError("saved tracker state was made with different tracker settings")
        tracker = build_boxmot_tracker(self.config)
        _share_models(self._tracker, tracker)
        saved = root.get("tracker")
        if not isinstance(saved, dict):
            raise InputError("saved tracker state has no tracker attributes")
        for key, value in saved.items():
            if key in _REBUILT_ATTRS or not key.isidentifier() or key.startswith("__"):
                raise InputError(f"saved tracker state has an unexpected attribute {key[:40]!r}")
            vars(tracker)[key] = value
        cmc_state = root.get("cmc")
        if cmc_state is not None:
            cmc = getattr(tracker, "cmc", None)
            if cmc is None or not isinstance(cmc_state, dict):
                raise InputError("saved tracker state has camera-motion state this tracker lacks")
            vars(cmc).update(cmc_state)
        last = root.get("last_frame")
        assignments = root.get("assignments")
        if not (last is None or isinstance(last, int)) or not isinstance(assignments, dict):
            raise InputError("saved tracker state has malformed frame bookkeeping")
        self._tracker, self._last_frame = tracker, last
        self._assignments = {int(k): int(v) for k, v in assignments.items()}

    # ------------------------------------------------------------------ helpers
    def _advance_to(self, frame: int) -> None:
        last = self._last_frame
        if last is None:
            return
        gap = frame - last
        if gap <= 0 or gap > self.config.track_buffer:
            logger.info("frame %d after %d: discontinuity, tracker reset", frame, last)
            self.reset()
            return
        if gap > 1 and not self.config.needs_image:
            empty = np.zeros((0, 6), dtype=np.float64)
            for _ in range(gap - 1):  # keep the Kalman prediction in step with time
                self._tracker.update(empty, None)

    def _collect_assignments(self, out: npt.NDArray[np.float64]) -> dict[int, int]:
        # Confirmed tracks come from boxmot's own output (its det_index is authoritative).
        result = {int(d): int(i) for i, d in zip(out[:, 4], out[:, 7]) if d >= 0}
        t = self._tracker
        if getattr(t, "per_class", False):
            # Per-class kernels index their own class subset; only the output is reliable.
            return result
        for trk in getattr(t, "active_tracks", []):
            # Tentative tracks started this frame are not in the output but own a detection.
            if getattr(trk, "frame_id", None) == t.frame_count and getattr(trk, "det_ind", -1) >= 0:
                result.setdefault(int(trk.det_ind), int(trk.id))
        return result

    @staticmethod
    def _check_dets(dets: npt.ArrayLike, frame: int) -> npt.NDArray[np.float64]:
        arr = np.asarray(dets, dtype=np.float64)
        if arr.size == 0:
            return np.zeros((0, 6), dtype=np.float64)
        if arr.ndim != 2 or arr.shape[1] != 6:
            raise InputError(f"frame {frame}: detections must have shape (n, 6), got {arr.shape}")
        if not np.isfinite(arr).all():
            raise InputError(f"frame {frame}: detections contain NaN or infinity")
        if (arr[:, 4] < 0).any() or (arr[:, 4] > 1).any():
            raise InputError(f"frame {frame}: detection confidences must lie in 0..1")
        return arr

    def _check_image(self, image_rgb: Any, frame: int) -> npt.NDArray[np.uint8] | None:
        if not self.config.needs_image:
            return None
        if image_rgb is None:
            raise InputError(
                f"frame {frame}: this tracker configuration (gmc_method/with_reid) needs the frame image"
            )
        img = np.asarray(image_rgb)
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise InputError(f"frame {frame}: image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}")
        return np.ascontiguousarray(img[..., ::-1])


def track_sequence(
    detections: Tracks,
    frames: FrameSource | Callable[[int], npt.NDArray[np.uint8]] | None = None,
    config: TrackerConfig | None = None,
    *,
    num_frames: int | None = None,
) -> Tracks:
    """Track per-frame detections through a whole sequence.

    Args:
        detections: one row per detection (``track_id`` ignored); ``score`` is the confidence
            and ``label`` the class.
        frames: RGB pixels per frame, needed only when the configuration uses images.
        config: tracker settings (default: ByteTrack with the dataset-guide values).
        num_frames: frames to run through (default: last detection frame + 1); frames without
            detections still advance the tracker, as in a real video.

    Returns:
        Tracks with one row per tracked box (``source`` auto, ``score`` the detection's),
        labels as in ``detections``.

    Raises:
        InputError: images are needed and ``frames`` is None, or a detection row is invalid.
    """
    tracker = MotTracker(config)
    if tracker.config.needs_image and frames is None:
        raise InputError("this tracker configuration (gmc_method/with_reid) needs frames")
    n = len(detections)
    total = int(num_frames) if num_frames is not None else (int(detections.frame.max()) + 1 if n else 0)
    order = np.argsort(detections.frame, kind="stable")
    det_frames = detections.frame[order]
    rows = np.column_stack([
        detections.xyxy[order],
        detections.score[order].astype(np.float64),
        detections.label[order].astype(np.float64),
    ]) if n else np.zeros((0, 6))
    bounds = np.searchsorted(det_frames, np.arange(total + 1), side="left")
    out_parts: list[np.ndarray] = []
    out_frames: list[np.ndarray] = []
    for f in range(total):
        dets = rows[bounds[f]:bounds[f + 1]]
        image = frames(f) if tracker.config.needs_image and frames is not None else None
        out = tracker.update(dets, image, f)
        if len(out):
            out_parts.append(out)
            out_frames.append(np.full(len(out), f, dtype=np.int64))
    if not out_parts:
        return Tracks.empty(labels=detections.labels)
    out = np.concatenate(out_parts)
    return Tracks.from_columns(
        frame=np.concatenate(out_frames),
        track_id=out[:, 4].astype(np.int64),
        xyxy=out[:, :4],
        label=out[:, 6].astype(np.int32),
        score=out[:, 5].astype(np.float32),
        source=np.full(len(out), _AUTO, dtype=np.uint8),
        labels=detections.labels,
    )
