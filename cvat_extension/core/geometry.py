"""Box geometry on numpy arrays; the box format is always in the name.

Divisions use ``np.divide(..., where=den > 0)`` so that empty boxes give 0, never NaN.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "area_xyxy",
    "center_xyxy",
    "iou_xyxy_batch",
    "iou_xyxy_pairwise",
    "xywh_to_xyxy",
    "xyxy_to_xywh",
]


def xywh_to_xyxy(xywh: npt.ArrayLike) -> np.ndarray:
    """(n, 4) ``x, y, w, h`` → (n, 4) ``x1, y1, x2, y2`` as float64."""
    b = np.asarray(xywh, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, :2] + b[:, 2:]], axis=1)


def xyxy_to_xywh(xyxy: npt.ArrayLike) -> np.ndarray:
    """(n, 4) ``x1, y1, x2, y2`` → (n, 4) ``x, y, w, h`` as float64."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.concatenate([b[:, :2], b[:, 2:] - b[:, :2]], axis=1)


def area_xyxy(xyxy: npt.ArrayLike) -> np.ndarray:
    """(n,) areas of (n, 4) boxes; inverted boxes count as 0."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)


def center_xyxy(xyxy: npt.ArrayLike) -> np.ndarray:
    """(n, 2) box centres of (n, 4) boxes."""
    b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
    return (b[:, :2] + b[:, 2:]) / 2.0


def iou_xyxy_pairwise(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """(n,) IoU of row i of ``a`` with row i of ``b``; both (n, 4).

    >>> iou_xyxy_pairwise([[0, 0, 2, 2]], [[1, 0, 3, 2]]).round(3).tolist()
    [0.333]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = area_xyxy(a) + area_xyxy(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def iou_xyxy_batch(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """(n, m) IoU matrix of (n, 4) boxes against (m, 4) boxes.

    >>> iou_xyxy_batch([[0, 0, 2, 2]], [[0, 0, 2, 2], [4, 4, 5, 5]]).tolist()
    [[1.0, 0.0]]
    """
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)
    w = np.clip(
        np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None
    )
    h = np.clip(
        np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None
    )
    inter = w * h
    union = area_xyxy(a)[:, None] + area_xyxy(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
