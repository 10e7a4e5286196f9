"""cvat-sdk detection function over :class:`~cvat_extension.models.yolo.YoloDetector`.

Usable unchanged by ``cvat-cli task auto-annotate TASK --function-module
cvat_extension.adapters.cvat_functions.yolo_detector -p weights=str:/path/model.pt`` and by
``cvat-cli function create-native`` / ``run-agent``. Weights load in :func:`create`, never
at import. Detect models give rectangles, segment models masks (polygons with
``--conv-mask-to-poly``), pose models skeletons; ``-p output=str:rectangle`` gives every model's
boxes as rectangles instead (a task with a plain ``person`` rectangle label and pose weights,
or boxes for the tracking functions), as ``YOLO_OUTPUT=rectangle`` does for the Nuclio function.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np


_OUTPUTS = ("auto", "rectangle")


class _YoloFunction:
    def __init__(self, **params: Any) -> None:
        from cvat_extension.errors import ConfigError
        from cvat_extension.models.yolo import YoloDetector, YoloSettings

        output = str(params.pop("output", "auto")).lower()
        if output not in _OUTPUTS:
            raise ConfigError(f"-p output: expected one of {', '.join(_OUTPUTS)}, got {output!r}")
        self._rectangles = output == "rectangle"
        params.setdefault("setting", "-p weights")
        if "weights" not in params:
            from cvat_extension.errors import ConfigError

            raise ConfigError("-p weights: required (a local YOLO model file, e.g. weights=str:yolo11n.pt)")
        self._detector = YoloDetector(YoloSettings(**params))

    @cached_property
    def spec(self) -> Any:
        import cvat_sdk.auto_annotation as cvataa

        d = self._detector
        n = len(d.labels)
        if self._rectangles:
            labels = [cvataa.label_spec(name, i, type="rectangle") for i, name in enumerate(d.labels)]
        elif d.task == "pose":
            labels = [
                cvataa.skeleton_label_spec(name, i, [
                    cvataa.keypoint_spec(kp, n + i * len(d.keypoint_names) + k)
                    for k, kp in enumerate(d.keypoint_names)
                ])
                for i, name in enumerate(d.labels)
            ]  # fmt: skip
        else:
            kind = "mask" if d.task == "segment" else "rectangle"
            labels = [cvataa.label_spec(name, i, type=kind) for i, name in enumerate(d.labels)]
        return cvataa.DetectionFunctionSpec(labels=labels)

    def detect(self, context: Any, image: Any) -> list[Any]:
        import cvat_sdk.auto_annotation as cvataa

        d = self._detector
        dets = d.detect(np.asarray(image.convert("RGB")), conf=context.conf_threshold)
        out: list[Any] = []
        for i in range(len(dets)):
            label = int(dets.class_id[i])
            if self._rectangles:
                out.append(cvataa.rectangle(label, dets.xyxy[i].tolist()))
            elif dets.keypoints is not None:
                base = len(d.labels) + label * len(d.keypoint_names)
                out.append(cvataa.skeleton(label, [
                    cvataa.keypoint(base + k, dets.keypoints[i, k, :2].tolist(),
                                    outside=bool(dets.keypoints[i, k, 2] < 0.5))
                    for k in range(len(d.keypoint_names))
                ]))  # fmt: skip
            elif dets.masks is not None and dets.polygons is not None:
                if context.conv_mask_to_poly:
                    if len(dets.polygons[i]) >= 3:
                        out.append(cvataa.polygon(label, dets.polygons[i].ravel().tolist()))
                else:
                    from cvat_sdk.masks import encode_mask

                    box = dets.xyxy[i].tolist()
                    out.append(cvataa.mask(label, encode_mask(dets.masks[i], box)))
            else:
                out.append(cvataa.rectangle(label, dets.xyxy[i].tolist()))
        return out


def create(**params: Any) -> _YoloFunction:
    """The function for ``-p`` params: ``weights`` (required), ``output`` (``auto`` | ``rectangle``),
    ``conf``, ``iou``, ``imgsz``, ``device``, ``max_det``, ``half`` (see
    :class:`~cvat_extension.models.yolo.YoloSettings`)."""
    return _YoloFunction(**params)
