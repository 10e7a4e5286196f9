"""Ranges every reader enforces on numbers that size arrays or index them (private).

A frame number of 1e308 in a MOT file, or ``<size>99999999999999999999</size>`` in a CVAT
XML, used to end in an ``OverflowError`` traceback or a silent wrap-around when cast to
int64, and a plausible but huge one allocates per-frame arrays of that length. Readers
refuse such values with the file, line or element named, like any other malformed input.
"""

from __future__ import annotations

__all__ = ["INT32_MAX", "MAX_COORD", "MAX_FRAMES", "frame_ok", "int32_ok"]

#: Frames per sequence: 10 M is 92 hours at 30 fps, far beyond a CVAT task, and keeps the
#: checks' per-frame arrays (a few of 8 bytes per frame) near 100 MB at worst.
MAX_FRAMES = 10_000_000

#: Ids, labels, z-order and other integers are stored as (at most) 32-bit values.
INT32_MAX = 2**31 - 1

#: Box coordinates and sizes, in pixels: boxes may lie off the image, but not a thousand
#: 8K frames away; beyond this, areas and IoUs would overflow or lose all precision.
MAX_COORD = 1e7


def int32_ok(value: float) -> bool:
    """Whether ``value`` fits a signed 32-bit integer."""
    return -INT32_MAX - 1 <= value <= INT32_MAX


def frame_ok(value: float) -> bool:
    """Whether a 0-based frame index (or a frame count) lies within :data:`MAX_FRAMES`."""
    return 0 <= value <= MAX_FRAMES
