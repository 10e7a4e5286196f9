"""YOLO detector over ultralytics: any local ``.pt`` / ``.onnx`` / exported model → ``Detections``.

Why a wrapper: every driver (Nuclio function, cvat-sdk function, ``cvat-track annotate``)
needs the same things ultralytics leaves to the caller: weights only from a local path (a
bare name like ``yolo11n.pt`` makes ultralytics reach GitHub), a clear error naming the
setting when the file is missing, RGB input (ultralytics treats numpy input as BGR), the
device chosen automatically, label and keypoint names from the model, and results as plain
numpy in image pixels.

Model kinds (``task``) and what they produce:

- ``detect``: boxes;
- ``segment``: boxes + instance masks at image size + outline polygons;
- ``pose``: boxes + keypoints ``(n, K, 3)``, names from ultralytics' COCO-pose list when
  K = 17, else ``keypoint_names`` or ``"1".."K"``;
- ``obb`` and ``classify`` are refused with a :class:`ConfigError`: CVAT's rotated boxes and
  tags need their own mapping, which nothing here needs yet.

A ``.yaml`` model name (``yolo11n.yaml``) builds a randomly initialised network from
ultralytics' own configs: useful for plumbing tests and benchmarks where weights do not matter.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension._deps import require
from cvat_extension.errors import ConfigError, InputError
from cvat_extension.models.detections import Detections

__all__ = ["COCO_KEYPOINT_EDGES", "YoloDetector", "YoloSettings", "resolve_device"]

logger = logging.getLogger(__name__)

#: Supported ultralytics tasks.
SUPPORTED_TASKS = ("detect", "segment", "pose")

#: COCO-17 skeleton edges (0-based keypoint indices), used to draw CVAT skeleton labels.
COCO_KEYPOINT_EDGES: tuple[tuple[int, int], ...] = (
    (15, 13), (13, 11), (16, 14), (14, 12), (11, 12), (5, 11), (6, 12), (5, 6), (5, 7),
    (6, 8), (7, 9), (8, 10), (1, 2), (0, 1), (0, 2), (1, 3), (2, 4), (3, 5), (4, 6),
)  # fmt: skip

_ENV_PREFIX = "YOLO_"


def resolve_device(device: str) -> str:
    """``"auto"`` → ``"cuda:0"`` when torch sees a GPU, else ``"cpu"``; anything else as given."""
    if device != "auto":
        return device
    torch = require("torch", extra="models")
    return "cuda:0" if torch.cuda.is_available() else "cpu"


@dataclass(frozen=True)
class YoloSettings:
    """How to run a YOLO model.

    Attributes:
        weights: local model file or export folder (``.pt``, ``.onnx``, ``.torchscript``,
            ``_openvino_model/``...), or an ultralytics ``.yaml`` config for random weights.
        conf: minimum confidence. Lower finds more objects and more false positives; the
            trackers want low-confidence boxes too (ByteTrack's second association), so
            ``cvat-track annotate`` passes 0.1 while CVAT detector calls default to 0.25.
        iou: NMS IoU threshold. Higher keeps more overlapping boxes (crowds), lower merges
            duplicates more aggressively.
        imgsz: network input size in pixels (multiple of 32). Larger finds smaller objects and
            costs roughly quadratically more time.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda:0``...
        max_det: most detections per image.
        half: FP16 inference (CUDA only); about twice as fast on a GPU, same boxes to ~1 px.
        keypoint_names: names of the keypoints of a pose model with other than 17 keypoints.
        setting: the name of the setting the weights came from, used in error messages
            (``YOLO_WEIGHTS``, ``-p weights``...).
    """

    weights: str | Path
    conf: float = 0.25
    iou: float = 0.7
    imgsz: int = 640
    device: str = "auto"
    max_det: int = 300
    half: bool = False
    keypoint_names: tuple[str, ...] = ()
    setting: str = "weights"

    def __post_init__(self) -> None:
        for name in ("conf", "iou"):
            value = getattr(self, name)
            if not 0.0 <= float(value) <= 1.0:
                raise ConfigError(f"{name}: expected a value in [0, 1], got {value!r}")
        if int(self.imgsz) < 32 or int(self.imgsz) % 32:
            raise ConfigError(f"imgsz: expected a multiple of 32 ≥ 32, got {self.imgsz!r}")
        if int(self.max_det) < 1:
            raise ConfigError(f"max_det: expected ≥ 1, got {self.max_det!r}")
        object.__setattr__(self, "keypoint_names", tuple(self.keypoint_names))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> YoloSettings:
        """Settings from ``YOLO_WEIGHTS``, ``YOLO_CONF``, ``YOLO_IOU``, ``YOLO_IMGSZ``,
        ``YOLO_DEVICE``, ``YOLO_MAX_DET``, ``YOLO_HALF`` (the Nuclio functions' env).

        Raises:
            ConfigError: ``YOLO_WEIGHTS`` unset, or a value that does not parse.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {"setting": "YOLO_WEIGHTS"}
        parsers: dict[str, Any] = {
            "weights": str, "conf": float, "iou": float, "imgsz": int, "device": str,
            "max_det": int, "half": _parse_bool,
        }  # fmt: skip
        for field_name, parse in parsers.items():
            key = _ENV_PREFIX + field_name.upper()
            if env.get(key, "") != "":
                try:
                    values[field_name] = parse(env[key])
                except ValueError as exc:
                    raise ConfigError(f"{key}: cannot parse {env[key]!r} ({exc})") from exc
        names = env.get("YOLO_KEYPOINT_NAMES", "")
        if names:
            values["keypoint_names"] = tuple(n.strip() for n in names.split(",") if n.strip())
        values.update(overrides)
        if "weights" not in values:
            raise ConfigError("YOLO_WEIGHTS: not set; point it at a local model file (.pt/.onnx)")
        return cls(**values)


def _parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true/false")


def _check_weights(settings: YoloSettings) -> str:
    text = str(settings.weights)
    if text.endswith((".yaml", ".yml")) and not Path(text).exists():
        return text  # an ultralytics built-in config name: random weights, nothing downloaded
    path = Path(text).expanduser()
    if not path.exists():
        raise ConfigError(
            f"{settings.setting}: model file {text!r} does not exist; give the path of a local "
            "YOLO model (.pt, .onnx or an export folder): nothing is downloaded"
        )
    return str(path)


def _coco_keypoint_names() -> tuple[str, ...]:
    """The 17 COCO keypoint names, read from ultralytics' own coco-pose dataset config."""
    import yaml

    ultralytics = require("ultralytics", extra="models")
    cfg = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco-pose.yaml"
    names = yaml.safe_load(cfg.read_text(encoding="utf-8"))["kpt_names"][0]
    return tuple(str(n) for n in names)


class YoloDetector:
    """An ultralytics YOLO model behind the :class:`~cvat_extension.protocols.Detector` protocol.

    The model is loaded in the constructor (once per process; Nuclio's ``init_context``);
    ``detect`` and ``detect_batch`` are thread-safe (a lock serialises inference, since
    ultralytics predictors keep per-call state).
    """

    def __init__(self, settings: YoloSettings) -> None:
        self.settings = settings
        weights = _check_weights(settings)
        from cvat_extension.models.torchvision_fallback import ensure_torchvision_ops

        ensure_torchvision_ops()
        ultralytics = require("ultralytics", extra="models")
        self.device = resolve_device(settings.device)
        try:
            self._model = ultralytics.YOLO(weights)
        except Exception as exc:  # ultralytics raises bare Exceptions of many kinds here
            raise ConfigError(f"{settings.setting}: cannot load YOLO model {weights!r}: {exc}") from exc
        self.task: str = str(self._model.task)
        if self.task not in SUPPORTED_TASKS:
            raise ConfigError(
                f"{settings.setting}: model task {self.task!r} is not supported; "
                f"expected one of {', '.join(SUPPORTED_TASKS)}"
            )
        names = self._model.names
        self.labels: tuple[str, ...] = tuple(str(names[i]) for i in sorted(names))
        self.keypoint_names: tuple[str, ...] = self._keypoint_names()
        self._lock = threading.Lock()
        logger.info(
            "loaded %s (%s, %d labels) on %s", weights, self.task, len(self.labels), self.device
        )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> YoloDetector:
        """A detector configured from the ``YOLO_*`` environment (see :meth:`YoloSettings.from_env`)."""
        return cls(YoloSettings.from_env(env, **overrides))

    def _keypoint_names(self) -> tuple[str, ...]:
        if self.task != "pose":
            return ()
        kpt_shape = getattr(self._model.model, "kpt_shape", None)
        if kpt_shape is None:  # exported models keep it in their metadata
            kpt_shape = getattr(getattr(self._model, "predictor", None), "kpt_shape", None)
        count = int(kpt_shape[0]) if kpt_shape is not None else len(self.settings.keypoint_names)
        if self.settings.keypoint_names:
            if len(self.settings.keypoint_names) != count:
                raise ConfigError(
                    f"keypoint_names: the model has {count} keypoints, got "
                    f"{len(self.settings.keypoint_names)} names"
                )
            return self.settings.keypoint_names
        if count == 17:
            return _coco_keypoint_names()
        return tuple(str(i + 1) for i in range(count))

    # ------------------------------------------------------------------ inference
    def detect(self, image_rgb: npt.NDArray[np.uint8], *, conf: float | None = None) -> Detections:
        """Detections in one (H, W, 3) uint8 RGB image, in its pixels.

        Args:
            image_rgb: the image; not modified.
            conf: confidence threshold for this call (default: ``settings.conf``).

        Raises:
            InputError: the image is not (H, W, 3) uint8.
        """
        return self.detect_batch([image_rgb], conf=conf)[0]

    def detect_batch(
        self, images_rgb: Sequence[npt.NDArray[np.uint8]], *, conf: float | None = None
    ) -> list[Detections]:
        """Detections for several images in one forward pass (faster on a GPU).

        Raises:
            InputError: an image is not (H, W, 3) uint8.
        """
        if not images_rgb:
            return []
        bgr = []
        for i, image in enumerate(images_rgb):
            arr = np.asarray(image)
            if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8 or 0 in arr.shape:
                raise InputError(
                    f"image {i}: expected (H, W, 3) uint8 RGB, got {arr.shape} {arr.dtype}"
                )
            bgr.append(np.ascontiguousarray(arr[:, :, ::-1]))  # ultralytics reads numpy as BGR
        threshold = self.settings.conf if conf is None else float(conf)
        with self._lock:
            results = self._model.predict(
                bgr,
                conf=threshold,
                iou=self.settings.iou,
                imgsz=self.settings.imgsz,
                device=self.device,
                max_det=self.settings.max_det,
                quantize=16 if self.settings.half and self.device.startswith("cuda") else None,
                retina_masks=True,
                verbose=False,
            )
        return [self._convert(r, img.shape[:2]) for r, img in zip(results, images_rgb)]

    def _convert(self, result: Any, image_size: tuple[int, ...]) -> Detections:
        size = (int(image_size[0]), int(image_size[1]))
        boxes = result.boxes
        if boxes is None or len(boxes) == 0:
            return self._empty(size)
        xyxy = boxes.xyxy.float().cpu().numpy()
        xyxy[:, [0, 2]] = xyxy[:, [0, 2]].clip(0, size[1])
        xyxy[:, [1, 3]] = xyxy[:, [1, 3]].clip(0, size[0])
        masks = polygons = keypoints = None
        if self.task == "segment" and result.masks is not None:
            masks = result.masks.data.cpu().numpy() > 0.5
            if masks.shape[1:] != size:  # retina_masks gives image size; guard exports anyway
                masks = _resize_masks(masks, size)
            polygons = tuple(np.asarray(p, np.float32) for p in result.masks.xy)
        if self.task == "pose" and result.keypoints is not None:
            keypoints = result.keypoints.data.float().cpu().numpy()
            if keypoints.shape[2] == 2:  # models trained without visibility
                keypoints = np.concatenate([keypoints, np.ones_like(keypoints[..., :1])], 2)
        return Detections(
            xyxy=xyxy,
            score=boxes.conf.float().cpu().numpy(),
            class_id=boxes.cls.cpu().numpy().astype(np.int32),
            labels=self.labels,
            image_size=size,
            masks=masks,
            polygons=polygons,
            keypoints=keypoints,
            keypoint_names=self.keypoint_names if keypoints is not None else (),
        )


    def _empty(self, size: tuple[int, int]) -> Detections:
        """No detections, with the (empty) mask/keypoint columns this kind of model has."""
        empty = Detections.empty(self.labels, size)
        if self.task == "segment":
            return Detections(
                xyxy=empty.xyxy, score=empty.score, class_id=empty.class_id, labels=self.labels,
                image_size=size, masks=np.zeros((0, *size), bool), polygons=(),
            )  # fmt: skip
        if self.task == "pose":
            return Detections(
                xyxy=empty.xyxy, score=empty.score, class_id=empty.class_id, labels=self.labels,
                image_size=size, keypoints=np.zeros((0, len(self.keypoint_names), 3), np.float32),
                keypoint_names=self.keypoint_names,
            )  # fmt: skip
        return empty


def _resize_masks(masks: npt.NDArray[np.bool_], size: tuple[int, int]) -> npt.NDArray[np.bool_]:
    from PIL import Image

    out = np.zeros((len(masks), *size), dtype=bool)
    for i, mask in enumerate(masks):
        img = Image.fromarray(mask.astype(np.uint8) * 255).resize((size[1], size[0]))
        out[i] = np.asarray(img) > 127
    return out
