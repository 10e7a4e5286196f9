"""``Detections`` → the JSON shapes a CVAT *detector* function answers, and its label spec.

CVAT's rules (``cvat-interfaces.md`` §1.4, ``LambdaJob._call_detector``):

- each object is ``{"label", "type", "points", "confidence", "attributes"}``; the label is
  the model's name and CVAT maps it to the task's labels; ``confidence`` is informational
  (thresholding is the function's job);
- a mask is sent as ``"mask": [flattened 0/1 crop..., xtl, ytl, xbr, ybr]`` with an
  inclusive bbox, plus the outline polygon in ``points`` so CVAT can store a polygon
  instead when the user ticks "convert masks to polygons";
- a skeleton carries ``elements``: one ``points`` shape per keypoint, ``outside`` when the
  keypoint's visibility score is below the threshold. A skeleton with every keypoint
  outside is dropped (CVAT would drop it anyway).

The spec (``metadata.annotations.spec``) must list exactly the labels and types we return,
so both are generated from the same :class:`OutputShape` choice.
"""

from __future__ import annotations

import math
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.models.detections import Detections

__all__ = ["OutputShape", "detections_to_cvat", "label_spec", "mask_to_cvat", "skeleton_svg"]


class OutputShape(str, Enum):
    """What a detector function returns per object."""

    #: per model kind: rectangle (detect), mask + polygon (segment), skeleton (pose)
    AUTO = "auto"
    #: always the box: what CVAT's ``reid`` batch path turns into tracks
    RECTANGLE = "rectangle"
    #: segment models: polygons instead of masks
    POLYGON = "polygon"


def mask_to_cvat(mask: npt.NDArray[np.bool_]) -> list[int] | None:
    """``[flattened 0/1 crop..., xtl, ytl, xbr, ybr]`` for a full-frame mask, None if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(ys) == 0:
        return None
    ytl, ybr, xtl, xbr = int(ys[0]), int(ys[-1]), int(xs[0]), int(xs[-1])
    crop = mask[ytl : ybr + 1, xtl : xbr + 1].astype(np.uint8).ravel().tolist()
    return [*crop, xtl, ytl, xbr, ybr]


def _kind(dets_task: str, output: OutputShape) -> str:
    if output is OutputShape.RECTANGLE or dets_task == "detect":
        return "rectangle"
    if dets_task == "segment":
        return "polygon" if output is OutputShape.POLYGON else "mask"
    return "skeleton"


def _task_of(dets: Detections) -> str:
    if dets.keypoints is not None:
        return "pose"
    if dets.masks is not None:
        return "segment"
    return "detect"


def detections_to_cvat(
    dets: Detections,
    *,
    output: OutputShape = OutputShape.AUTO,
    keypoint_threshold: float = 0.5,
) -> list[dict[str, Any]]:
    """The CVAT detector response for ``dets`` (one dict per object)."""
    kind = _kind(_task_of(dets), output)
    shapes: list[dict[str, Any]] = []
    for i, label in enumerate(dets.label_names):
        confidence = round(float(dets.score[i]), 4)
        base: dict[str, Any] = {"label": label, "confidence": confidence, "attributes": []}
        if kind == "rectangle":
            shapes.append({**base, "type": "rectangle", "points": _round(dets.xyxy[i])})
        elif kind in ("mask", "polygon"):
            assert dets.masks is not None and dets.polygons is not None  # kind says segment
            polygon = _round(dets.polygons[i].ravel())
            if kind == "polygon":
                if len(polygon) >= 6:
                    shapes.append({**base, "type": "polygon", "points": polygon})
                continue
            encoded = mask_to_cvat(dets.masks[i])
            if encoded is not None:
                shapes.append({**base, "type": "mask", "mask": encoded, "points": polygon})
        else:
            assert dets.keypoints is not None  # kind says pose
            elements = [
                {
                    "label": name,
                    "type": "points",
                    "points": _round(dets.keypoints[i, k, :2]),
                    "outside": bool(dets.keypoints[i, k, 2] < keypoint_threshold),
                    "attributes": [],
                }
                for k, name in enumerate(dets.keypoint_names)
            ]
            if any(not e["outside"] for e in elements):
                shapes.append({**base, "type": "skeleton", "points": [], "elements": elements})
    return shapes


def _round(values: npt.ArrayLike) -> list[float]:
    return [round(float(v), 2) for v in np.asarray(values).ravel()]


def skeleton_svg(
    keypoint_names: tuple[str, ...], edges: tuple[tuple[int, int], ...] = ()
) -> str:
    """CVAT's skeleton drawing: one circle per keypoint (``data-label-name``), lines for edges.

    Keypoints are laid out on a circle: CVAT only uses the drawing as the template a user
    edits, so any non-overlapping layout is valid.
    """
    n = max(len(keypoint_names), 1)
    xy = [
        (50 + 40 * math.cos(2 * math.pi * k / n), 50 + 40 * math.sin(2 * math.pi * k / n))
        for k in range(len(keypoint_names))
    ]
    lines = [
        f'<line x1="{xy[a][0]:.1f}" y1="{xy[a][1]:.1f}" x2="{xy[b][0]:.1f}" y2="{xy[b][1]:.1f}" '
        f'data-type="edge" data-node-from="{a + 1}" data-node-to="{b + 1}"></line>'
        for a, b in edges
    ]
    circles = [
        f'<circle r="1.5" cx="{x:.1f}" cy="{y:.1f}" data-type="element node" '
        f'data-element-id="{k + 1}" data-node-id="{k + 1}" data-label-name="{name}"></circle>'
        for k, ((x, y), name) in enumerate(zip(xy, keypoint_names))
    ]
    return "".join(lines + circles)


def label_spec(
    labels: tuple[str, ...],
    *,
    task: str,
    output: OutputShape = OutputShape.AUTO,
    keypoint_names: tuple[str, ...] = (),
    edges: tuple[tuple[int, int], ...] = (),
) -> list[dict[str, Any]]:
    """The ``metadata.annotations.spec`` label list matching :func:`detections_to_cvat`."""
    kind = _kind(task, output)
    spec: list[dict[str, Any]] = []
    for i, name in enumerate(labels):
        item: dict[str, Any] = {"id": i, "name": name, "type": kind}
        if kind == "skeleton":
            item["sublabels"] = [
                {"id": len(labels) + i * len(keypoint_names) + k, "name": kp, "type": "points"}
                for k, kp in enumerate(keypoint_names)
            ]
            item["svg"] = skeleton_svg(keypoint_names, edges)
        spec.append(item)
    return spec
