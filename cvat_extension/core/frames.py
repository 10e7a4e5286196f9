"""What checks need from video frames: one callable, so core never decodes video itself.

Adapters supply the implementation (a folder of JPEGs, a CVAT chunk reader, the synthetic
renderer); core only calls it, so core stays free of cv2/PIL and of any I/O policy.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

__all__ = ["FrameSource"]


@runtime_checkable
class FrameSource(Protocol):
    """Returns the image of one frame.

    Contract:
        - ``frame`` is the internal 0-based frame number (CVAT's), not the file's numbering.
        - The result is an (H, W, 3) uint8 RGB array in the same pixel space as the boxes.
        - Callers do not keep the array after the call returns, so a source may reuse a
          buffer; callers never write into it.
        - A frame that cannot be read raises :class:`cvat_extension.errors.InputError`.
    """

    def __call__(self, frame: int) -> np.ndarray: ...
