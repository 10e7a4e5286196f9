"""``Detections``: what one detector call returns for one image, as aligned numpy columns.

Kept free of torch so that adapters (Nuclio handlers, cvat-sdk functions, the tracker glue)
can build and test against it without the model extras. Coordinates are pixels of the image
that was passed in (not of the network input), x to the right, y down; boxes are
``x1, y1, x2, y2`` with ``x1 <= x2`` and ``y1 <= y2``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Detections"]


def _frozen(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True)
class Detections:
    """Detections in one image.

    Attributes:
        xyxy: (n, 4) float32 boxes in image pixels.
        score: (n,) float32 confidences in 0..1.
        class_id: (n,) int32 indices into ``labels``.
        labels: class names of the model, index = class id.
        masks: (n, H, W) bool instance masks at image size, or None for box-only models.
        polygons: n polygons, each (k, 2) float32 in image pixels (the outline of the mask),
            or None for box-only models.
        keypoints: (n, K, 3) float32 ``x, y, visibility score``, or None for non-pose models.
        keypoint_names: K names of the keypoints (empty without keypoints).
        image_size: ``(height, width)`` of the image the detections refer to.
    """

    xyxy: npt.NDArray[np.float32]
    score: npt.NDArray[np.float32]
    class_id: npt.NDArray[np.int32]
    labels: tuple[str, ...]
    image_size: tuple[int, int]
    masks: npt.NDArray[np.bool_] | None = None
    polygons: tuple[npt.NDArray[np.float32], ...] | None = None
    keypoints: npt.NDArray[np.float32] | None = None
    keypoint_names: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        n = len(self.xyxy)
        columns = {
            "xyxy": (np.asarray(self.xyxy, np.float32).reshape(-1, 4), None),
            "score": (np.asarray(self.score, np.float32).reshape(-1), None),
            "class_id": (np.asarray(self.class_id, np.int32).reshape(-1), None),
        }
        for name, (array, _) in columns.items():
            if len(array) != n:
                raise ValueError(f"Detections.{name}: expected {n} rows, got {len(array)}")
            object.__setattr__(self, name, _frozen(array))
        if self.masks is not None:
            masks = np.asarray(self.masks, dtype=bool)
            if masks.shape != (n, *self.image_size):
                raise ValueError(
                    f"Detections.masks: expected shape {(n, *self.image_size)}, got {masks.shape}"
                )
            object.__setattr__(self, "masks", _frozen(masks))
        if self.polygons is not None:
            polys = tuple(np.asarray(p, np.float32).reshape(-1, 2) for p in self.polygons)
            if len(polys) != n:
                raise ValueError(f"Detections.polygons: expected {n} polygons, got {len(polys)}")
            object.__setattr__(self, "polygons", polys)
        if self.keypoints is not None:
            kpts = np.asarray(self.keypoints, np.float32)
            if kpts.ndim != 3 or kpts.shape[0] != n or kpts.shape[2] != 3:
                raise ValueError(f"Detections.keypoints: expected (n, K, 3), got {kpts.shape}")
            if len(self.keypoint_names) != kpts.shape[1]:
                raise ValueError(
                    f"Detections.keypoint_names: expected {kpts.shape[1]} names, "
                    f"got {len(self.keypoint_names)}"
                )
            object.__setattr__(self, "keypoints", _frozen(kpts))
        object.__setattr__(self, "labels", tuple(self.labels))
        object.__setattr__(self, "keypoint_names", tuple(self.keypoint_names))

    def __len__(self) -> int:
        return len(self.xyxy)

    def __getitem__(self, index: Any) -> Detections:
        """Rows selected by an int, slice, index array or boolean mask; always ``Detections``."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        rows = np.arange(len(self))[index]
        return Detections(
            xyxy=self.xyxy[rows],
            score=self.score[rows],
            class_id=self.class_id[rows],
            labels=self.labels,
            image_size=self.image_size,
            masks=None if self.masks is None else self.masks[rows],
            polygons=None if self.polygons is None else tuple(self.polygons[i] for i in rows),
            keypoints=None if self.keypoints is None else self.keypoints[rows],
            keypoint_names=self.keypoint_names,
        )

    @property
    def label_names(self) -> list[str]:
        """The class name of every row."""
        return [self.labels[i] for i in self.class_id]

    def to_dets(self) -> npt.NDArray[np.float64]:
        """(n, 6) ``x1, y1, x2, y2, conf, cls`` float64: the input of the MOT trackers."""
        return np.column_stack([self.xyxy, self.score, self.class_id]).astype(np.float64)

    @classmethod
    def empty(cls, labels: tuple[str, ...], image_size: tuple[int, int]) -> Detections:
        """No detections in an image of ``image_size`` = (height, width)."""
        return cls(
            xyxy=np.zeros((0, 4), np.float32),
            score=np.zeros(0, np.float32),
            class_id=np.zeros(0, np.int32),
            labels=labels,
            image_size=image_size,
        )
