"""The three model adapter protocols and the checks drivers run on what adapters return.

Drivers (the Nuclio handlers, the cvat-sdk functions, ``cvat-track annotate``) talk to models
only through these one-method protocols, so a test can implement one with a
``SimpleNamespace`` and a new backend needs no change in the drivers. Drivers call
:func:`checked_detect`, :func:`check_tracker_output` and :func:`check_masks` instead of
trusting the adapter: a broken adapter becomes an :class:`AdapterContractError` naming the
rule, not a wrong annotation in CVAT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from cvat_extension.errors import AdapterContractError

if TYPE_CHECKING:
    from cvat_extension.models.detections import Detections

__all__ = [
    "Detector",
    "Segmenter",
    "Tracker",
    "check_detections",
    "check_masks",
    "check_tracker_output",
    "checked_detect",
]


@runtime_checkable
class Detector(Protocol):
    """Finds objects in one image.

    Contract of ``detect``:

    - ``image_rgb`` is (H, W, 3) uint8 RGB; the adapter must not modify it;
    - the result is a :class:`~cvat_extension.models.detections.Detections` whose boxes,
      polygons and keypoints are in pixels of ``image_rgb`` (not of the network input), with
      ``image_size == (H, W)``;
    - scores are in 0..1 and class ids index ``labels``; boxes have ``x1 <= x2``, ``y1 <= y2``;
    - the returned arrays are read-only and belong to the caller: they may be kept.
    """

    def detect(self, image_rgb: npt.NDArray[np.uint8]) -> Detections: ...


@runtime_checkable
class Tracker(Protocol):
    """Associates the detections of consecutive frames of one sequence into tracks.

    Contract of ``update``:

    - ``dets`` is (n, 6) ``x1, y1, x2, y2, conf, cls`` in pixels of the frame;
    - ``frame`` is the 0-based frame index (CVAT frame numbering); frames must increase, and
      a jump backwards starts a new sequence;
    - ``image_rgb`` is the (H, W, 3) uint8 RGB frame, or None when the tracker needs no pixels;
    - the result is (m, 8) ``x1, y1, x2, y2, track_id, conf, cls, det_index`` with
      ``0 <= det_index < n`` and distinct track ids; it is a fresh array the caller may keep.
    """

    def update(
        self,
        dets: npt.ArrayLike,
        image_rgb: npt.NDArray[np.uint8] | None,
        frame: int,
    ) -> npt.NDArray[np.float64]: ...


@runtime_checkable
class Segmenter(Protocol):
    """Turns box prompts in one image into instance masks.

    Contract of ``segment``:

    - ``image_rgb`` is (H, W, 3) uint8 RGB, ``boxes_xyxy`` is (n, 4) in its pixels;
    - the result is (n, H, W) bool, one mask per box in the same order (an empty mask when
      nothing was found); the caller may keep it.
    """

    def segment(
        self, image_rgb: npt.NDArray[np.uint8], boxes_xyxy: npt.NDArray[np.float32]
    ) -> npt.NDArray[np.bool_]: ...


def check_detections(result: Any, image_shape: tuple[int, ...], *, adapter: str) -> Detections:
    """Return ``result`` if it honours the :class:`Detector` contract for an image of shape.

    Raises:
        AdapterContractError: naming ``adapter`` and the rule it broke.
    """
    from cvat_extension.models.detections import Detections

    if not isinstance(result, Detections):
        raise AdapterContractError(
            f"{adapter}: detect() must return Detections, got {type(result).__name__}"
        )
    h, w = int(image_shape[0]), int(image_shape[1])
    if tuple(result.image_size) != (h, w):
        raise AdapterContractError(
            f"{adapter}: image_size must be the input's (height, width) {(h, w)}, "
            f"got {tuple(result.image_size)}"
        )
    if len(result):
        if not np.isfinite(result.xyxy).all():
            raise AdapterContractError(f"{adapter}: boxes must be finite")
        if (result.xyxy[:, 2] < result.xyxy[:, 0]).any() or (
            result.xyxy[:, 3] < result.xyxy[:, 1]
        ).any():
            raise AdapterContractError(f"{adapter}: boxes must be x1 <= x2 and y1 <= y2")
        if (result.score < 0).any() or (result.score > 1).any():
            raise AdapterContractError(f"{adapter}: scores must be in 0..1")
        if (result.class_id < 0).any() or (result.class_id >= len(result.labels)).any():
            raise AdapterContractError(
                f"{adapter}: class ids must index the {len(result.labels)} labels"
            )
    return result


def checked_detect(detector: Detector, image_rgb: npt.NDArray[np.uint8]) -> Detections:
    """Call ``detector.detect`` and check the result against the contract."""
    return check_detections(
        detector.detect(image_rgb), image_rgb.shape, adapter=type(detector).__name__
    )


def check_tracker_output(out: Any, n_dets: int, *, adapter: str) -> npt.NDArray[np.float64]:
    """Return the tracker output as (m, 8) float64 if it honours the :class:`Tracker` contract.

    Raises:
        AdapterContractError: wrong shape, det_index out of range, or a track id used twice.
    """
    arr = np.asarray(out, dtype=np.float64)
    if arr.size == 0:
        return arr.reshape(0, 8)
    if arr.ndim != 2 or arr.shape[1] != 8:
        raise AdapterContractError(f"{adapter}: update() must return (m, 8), got {arr.shape}")
    det_index = arr[:, 7]
    if ((det_index < 0) | (det_index >= n_dets) | (det_index != np.round(det_index))).any():
        raise AdapterContractError(f"{adapter}: det_index must be an integer in [0, {n_dets})")
    if len(np.unique(arr[:, 4])) != len(arr):
        raise AdapterContractError(f"{adapter}: a track id appears twice in one frame")
    return arr


def check_masks(
    masks: Any, n_boxes: int, image_shape: tuple[int, ...], *, adapter: str
) -> npt.NDArray[np.bool_]:
    """Return ``masks`` if they honour the :class:`Segmenter` contract.

    Raises:
        AdapterContractError: not (n, H, W) or not boolean.
    """
    arr = np.asarray(masks)
    expected = (n_boxes, int(image_shape[0]), int(image_shape[1]))
    if arr.shape != expected:
        raise AdapterContractError(f"{adapter}: masks must have shape {expected}, got {arr.shape}")
    if arr.dtype != np.bool_:
        raise AdapterContractError(f"{adapter}: masks must be bool, got {arr.dtype}")
    return arr
