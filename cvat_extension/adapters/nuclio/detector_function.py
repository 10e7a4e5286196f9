"""The body of the ``yolo-detector`` Nuclio function: request → detections → CVAT shapes.

``functions/yolo-detector/main.py`` only builds a :class:`DetectorFunction` in
``init_context`` and hands requests to it through
:func:`cvat_extension.adapters.nuclio.io.handle`; this module holds the logic so it is
importable and testable without Nuclio.

Request (CVAT detector protocol): ``{"image": <base64>, "threshold"?: float in 0..1}``.
Response: a list of CVAT shapes (:mod:`~cvat_extension.adapters.nuclio.detector_shapes`).

Settings come from the function's environment (``function.yaml`` ``spec.env``):
``YOLO_WEIGHTS`` (required), ``YOLO_CONF``, ``YOLO_IOU``, ``YOLO_IMGSZ``, ``YOLO_DEVICE``,
``YOLO_HALF``, ``YOLO_OUTPUT`` (auto|rectangle|polygon), ``YOLO_KEYPOINT_THRESHOLD``, and the
work limits ``LIMIT_IMAGE_PIXELS``/``LIMIT_MIN_IMAGE_SIDE``
(:mod:`~cvat_extension.adapters.nuclio.limits`; checked from the image header, before decoding).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cvat_extension._enums import parse_enum
from cvat_extension.adapters.nuclio.detector_shapes import (
    OutputShape,
    detections_to_cvat,
    label_spec,
)
from cvat_extension.adapters.nuclio.io import decode_image, optional_float, require_field
from cvat_extension.adapters.nuclio.limits import WorkLimits
from cvat_extension.errors import ConfigError
from cvat_extension.protocols import check_detections

__all__ = ["DetectorFunction"]


class DetectorFunction:
    """A loaded YOLO model answering CVAT detector requests."""

    def __init__(
        self,
        detector: Any,
        *,
        output: OutputShape = OutputShape.AUTO,
        keypoint_threshold: float = 0.5,
        limits: WorkLimits | None = None,
    ) -> None:
        self.detector = detector
        self.output = output
        self.keypoint_threshold = keypoint_threshold
        self.limits = limits or WorkLimits()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DetectorFunction:
        """Load the model named by ``YOLO_WEIGHTS`` (see the module docstring).

        Raises:
            ConfigError: a missing weights file or a setting that does not parse, naming it.
        """
        from cvat_extension.models.yolo import YoloDetector

        env = os.environ if env is None else env
        output = parse_enum(OutputShape, env.get("YOLO_OUTPUT") or "auto")
        try:
            kpt = float(env.get("YOLO_KEYPOINT_THRESHOLD") or 0.5)
        except ValueError as exc:
            raise ConfigError(f"YOLO_KEYPOINT_THRESHOLD: {exc}") from exc
        limits = WorkLimits.from_env(env)
        return cls(YoloDetector.from_env(env), output=output, keypoint_threshold=kpt, limits=limits)

    def spec(self) -> list[dict[str, Any]]:
        """The label spec for ``metadata.annotations.spec`` matching what we answer."""
        from cvat_extension.models.yolo import COCO_KEYPOINT_EDGES

        names = self.detector.keypoint_names
        return label_spec(
            self.detector.labels,
            task=self.detector.task,
            output=self.output,
            keypoint_names=names,
            edges=COCO_KEYPOINT_EDGES if len(names) == 17 else (),
        )

    def __call__(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """Answer one CVAT detector request.

        Raises:
            InputError: missing/undecodable ``image`` or ``threshold`` outside 0..1.
        """
        threshold = optional_float(body, "threshold", default=None, low=0.0, high=1.0)
        image = decode_image(require_field(body, "image"), limits=self.limits)
        dets = check_detections(
            self.detector.detect(image, conf=threshold),
            image.shape,
            adapter=type(self.detector).__name__,
        )
        return detections_to_cvat(
            dets, output=self.output, keypoint_threshold=self.keypoint_threshold
        )
