"""A pure-torch ``torchvision::nms`` for installs where torchvision's C++ ops cannot load.

Why this exists: the PyPI torchvision 0.28.0 wheel is CUDA-built; next to the CPU torch its
``_C`` extension fails to load and ``import torchvision`` itself then dies with
``operator torchvision::nms does not exist`` (``_meta_registrations.py`` registers a fake
kernel for an op nobody defined). ultralytics (predict) and sam2 only need
``torchvision.ops.nms`` / ``batched_nms`` for inference, so defining that one operator is
enough to make both usable.

Rules this module keeps:

- It does nothing when the C ops load (the normal case on a matching torch/torchvision):
  the probe loads ``_C`` exactly as torchvision would, and on success returns at once.
- It must run *before* torchvision is imported, because the failing registration happens at
  import time; :func:`ensure_torchvision_ops` therefore never imports torchvision before the
  probe, and our model wrappers call it first thing.
- ``roi_align``, ``deform_conv2d`` and the other C ops stay unavailable: nothing we run needs
  them for inference, and a clear "operator does not exist" beats a silently slow copy.
- The kernel is registered for ``CompositeExplicitAutograd``, so it also works on CUDA
  tensors (a CUDA torch next to a mismatched torchvision hits the same import failure).
"""

from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()
_STATE: dict[str, bool] = {}  # "done" -> installed?; set once under _LOCK
_LIBRARY: list[Any] = []  # keeps the torch.library.Library alive (dropping it unregisters)

_NMS_SCHEMA = "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"
# torchvision's import also registers a fake kernel for the quantized variant; it only needs
# the schema to exist. Calling it fails with "no kernel", which is the honest answer.
_QNMS_SCHEMA = "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor"


def _torchvision_c_extension() -> Path | None:
    """Path of torchvision's ``_C`` shared library, found without importing torchvision."""
    spec = importlib.util.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations)))
    for candidate in sorted(folder.glob("_C*")):
        if candidate.suffix in (".so", ".pyd", ".dylib"):
            return candidate
    return None


def _native_ops_load() -> bool:
    """True when torchvision's own C ops are (or can be) loaded; never imports torchvision."""
    tv = sys.modules.get("torchvision")
    extension = sys.modules.get("torchvision.extension")
    if tv is not None and extension is not None:
        return bool(extension._has_ops())
    import torch

    library = _torchvision_c_extension()
    if library is None:
        return False
    try:
        torch.ops.load_library(str(library))
    except (ImportError, OSError) as exc:
        logger.debug("torchvision C ops do not load (%s): using the pure-torch fallback", exc)
        return False
    return _nms_op_defined()


def _nms_op_defined() -> bool:
    import torch

    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
    except RuntimeError:
        return False
    return True


def nms_reference(boxes: torch.Tensor, scores: torch.Tensor, iou_threshold: float) -> torch.Tensor:
    """Greedy NMS in plain torch with torchvision's semantics.

    - boxes are ``(n, 4)`` xyxy, scores ``(n,)``; returns int64 indices of kept boxes in
      decreasing score order (ties keep the earlier box: the sort is stable, as in
      torchvision's CPU kernel);
    - a box is suppressed when its IoU with a kept, higher-scoring box is *strictly* greater
      than ``iou_threshold``; degenerate boxes (zero union) are never suppressed.

    The loop runs once per *kept* box and works on the shrinking set of survivors, so its cost
    is O(kept × n) vector work: a few milliseconds for the few hundred candidates a detector
    leaves after its confidence filter.
    """
    import torch

    if boxes.numel() == 0:
        return torch.empty((0,), dtype=torch.int64, device=boxes.device)
    order = torch.sort(scores, descending=True, stable=True).indices
    b = boxes.to(torch.float32) if not boxes.is_floating_point() else boxes
    x1, y1, x2, y2 = b.unbind(1)
    areas = (x2 - x1) * (y2 - y1)
    kept: list[torch.Tensor] = []
    remaining = order
    while remaining.numel() > 0:
        best = remaining[0]
        kept.append(best)
        rest = remaining[1:]
        if rest.numel() == 0:
            break
        w = (torch.minimum(x2[best], x2[rest]) - torch.maximum(x1[best], x1[rest])).clamp(min=0)
        h = (torch.minimum(y2[best], y2[rest]) - torch.maximum(y1[best], y1[rest])).clamp(min=0)
        inter = w * h
        iou = inter / (areas[best] + areas[rest] - inter)
        # NaN (zero union) compares False, so such boxes survive exactly as in torchvision.
        remaining = rest[~(iou > iou_threshold)]
    return torch.stack(kept).to(torch.int64)


def _install() -> None:
    import torch

    library = torch.library.Library("torchvision", "DEF")  # noqa: TOR901 - deliberate
    library.define(_NMS_SCHEMA)
    library.define(_QNMS_SCHEMA)
    library.impl("nms", nms_reference, "CompositeExplicitAutograd")
    _LIBRARY.append(library)

    import torchvision.ops.boxes as tv_boxes

    # torchvision's nms() first asserts that *its* C library loaded; that check is the only
    # thing between ops.nms/batched_nms and the operator we just defined. Scope the bypass to
    # the boxes module: rotated-box ops there still fail loudly on their missing operators.
    tv_boxes._assert_has_ops = _assert_nms_available


def _assert_nms_available() -> None:
    if not _nms_op_defined():  # pragma: no cover - only if someone removed our library
        raise RuntimeError("torchvision::nms is not defined: call ensure_torchvision_ops() first")


def ensure_torchvision_ops() -> bool:
    """Make ``import torchvision`` and ``torchvision.ops.nms``/``batched_nms`` work.

    Call this before anything imports torchvision (ultralytics and sam2 do). Idempotent and
    thread-safe: the first call decides, later calls return the same answer.

    Returns:
        True if the pure-torch fallback was installed, False if torchvision's own C ops load
        (or torchvision is not installed at all, in which case nothing needs it).
    """
    with _LOCK:
        if "done" in _STATE:
            return _STATE["done"]
        installed = False
        if importlib.util.find_spec("torchvision") is not None and not _native_ops_load():
            if "torchvision" in sys.modules:  # pragma: no cover - a half-imported torchvision
                logger.warning("torchvision was imported before ensure_torchvision_ops()")
            if not _nms_op_defined():
                _install()
                installed = True
                logger.info("torchvision C ops unavailable: using the pure-torch NMS fallback")
        _STATE["done"] = installed
        return installed
