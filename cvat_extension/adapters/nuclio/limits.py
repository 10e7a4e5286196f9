"""Work limits of our Nuclio functions, checked before any expensive work.

Why: a request of a few kilobytes can ask for gigabytes (a 9000×9000 PNG, 10,000 boxes for
the tracker, an 8000-vertex polygon for SAM2) or minutes of compute (thousands of SAM2
objects in one call). Every such request is refused with a 400 naming the limit, before the
image is decoded or the model runs, so one caller cannot starve or crash the function for
everybody else.

Each limit is an environment variable of the function, so it is set per function in the
``env:`` of ``serverless.yaml`` (or ``function.yaml``); the defaults below suit CVAT's own
use (4K video frames, crowded MOT scenes, a handful of SAM2 objects per click):

====================================  =========  ============================================
variable                              default    what it bounds
====================================  =========  ============================================
``LIMIT_IMAGE_PIXELS``                25000000   width × height of a frame (read from the
                                                 header; larger → 400 before decoding)
``LIMIT_MIN_IMAGE_SIDE``              1          smallest width/height accepted (the reid
                                                 functions with camera-motion compensation
                                                 need at least 32 and enforce it)
``LIMIT_MAX_BOXES``                   1000       rectangles per ``boxes0``/``boxes1`` (reid)
``LIMIT_MAX_OBJECTS``                 32         shapes/states per tracker request (SAM2)
``LIMIT_MAX_POLYGON_VERTICES``        1000       vertices of one polygon
``LIMIT_MAX_MASK_VALUES``             200000     numbers in one mask's RLE ``points``
``LIMIT_COORD_MARGIN``                1.0        coordinates must lie within the frame
                                                 widened by this many frame sizes each side
====================================  =========  ============================================

Image formats: JPEG, PNG, WebP and BMP (what CVAT serves as frames). PIL is asked to try only
these decoders, so no other plugin (EPS through Ghostscript, for one) ever sees a request.

Degenerate input, per the CVAT protocols:

- reid boxes with zero width or height, or wholly outside the frame, are *dropped* from
  tracking: the request is answered and such a ``boxes0`` entry gets ``-1`` (no link), a
  ``boxes1`` entry is never linked. CVAT sends every rectangle of a frame; refusing the whole
  pair for one sliver would fail a batch annotation of thousands of frames;
- a tracker *start* shape with zero area or outside the frame is a 400: there is nothing to
  track, and the user has to draw it again anyway.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from cvat_extension.errors import ConfigError, InputError

__all__ = ["ALLOWED_IMAGE_FORMATS", "WorkLimits"]

#: PIL format names we decode; CVAT frames are JPEG or PNG, WebP and BMP are common uploads.
ALLOWED_IMAGE_FORMATS = ("JPEG", "PNG", "WEBP", "BMP")


@dataclass(frozen=True, slots=True)
class WorkLimits:
    """Per-request limits (see the module docstring for the environment variables).

    Attributes:
        image_pixels: largest ``width * height``. Raising it admits bigger frames at the cost
            of ~3 bytes per pixel per copy in RAM.
        min_image_side: smallest frame side; camera-motion compensation needs a few pixels.
        max_boxes: rectangles per reid box list. Association is O(n·m) in boxes.
        max_objects: objects per tracker request. Each costs one SAM2 step (~0.1-1 s on CPU).
        max_polygon_vertices: vertices of one polygon; rasterisation is O(vertices · pixels).
        max_mask_values: numbers in one RLE mask.
        coord_margin: coordinates may lie up to this many frame widths/heights outside the
            frame (CVAT lets boxes hang over the border; 1e300 is not a box).
    """

    image_pixels: int = 25_000_000
    min_image_side: int = 1
    max_boxes: int = 1000
    max_objects: int = 32
    max_polygon_vertices: int = 1000
    max_mask_values: int = 200_000
    coord_margin: float = 1.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
                raise ConfigError(f"work limit {f.name}: expected a positive number, got {value!r}")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkLimits:
        """Limits from ``LIMIT_*`` variables (unset → default).

        Raises:
            ConfigError: a value that is not a positive number, naming the variable.
        """
        env = os.environ if env is None else env
        kwargs: dict[str, float | int] = {}
        for f in fields(cls):
            name = "LIMIT_" + f.name.upper()
            raw = env.get(name)
            if not raw:
                continue
            try:
                kwargs[f.name] = float(raw) if f.name == "coord_margin" else int(raw)
            except ValueError as exc:
                raise ConfigError(f"{name}: expected a number, got {raw!r}") from exc
        return cls(**kwargs)

    # ------------------------------------------------------------------ checks
    def check_image_size(self, width: int, height: int, *, field: str) -> None:
        """Raise InputError when a frame's header size is outside the limits."""
        if width * height > self.image_pixels:
            raise InputError(
                f"{field}: image is {width}x{height}, above the {self.image_pixels} pixel limit"
            )
        if min(width, height) < self.min_image_side:
            raise InputError(
                f"{field}: image is {width}x{height}, below the {self.min_image_side} px minimum side"
            )

    def check_count(self, count: int, limit: int, *, field: str, what: str) -> None:
        """Raise InputError when a list is longer than ``limit``."""
        if count > limit:
            raise InputError(f"{field}: {count} {what}, above the limit of {limit} per request")

    def check_coordinates(self, points: list[float], width: int, height: int, *, field: str) -> None:
        """Raise InputError for coordinates far outside the frame (``coord_margin``).

        ``points`` alternate x, y and are already known to be finite.
        """
        mx, my = self.coord_margin * width, self.coord_margin * height
        xs, ys = points[0::2], points[1::2]
        if xs and (min(xs) < -mx or max(xs) > width + mx):
            raise InputError(f"{field}: x coordinates must lie within [{-mx:g}, {width + mx:g}]")
        if ys and (min(ys) < -my or max(ys) > height + my):
            raise InputError(f"{field}: y coordinates must lie within [{-my:g}, {height + my:g}]")

    def coordinate_bound(self, width: int | None, height: int | None) -> float:
        """Largest |coordinate| plausible before the frame size is known (no decode yet)."""
        if width is None or height is None:
            side = math.sqrt(self.image_pixels)
            return side * (1 + self.coord_margin) * 4
        return max(width, height) * (1 + self.coord_margin)
