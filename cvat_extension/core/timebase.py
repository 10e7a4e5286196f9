"""Time between annotated frames, and how per-frame thresholds follow it.

The checks and the merge were tuned on 25–30 fps video, where a walking person moves a few
pixels between frames. Annotation teams often label every 2nd or 3rd frame (CVAT's
``frame_filter`` step) or get 10–15 fps footage from walking and vehicle cameras: between two
annotated frames an object then moves, grows and turns several times as much, and a
threshold written "per frame" flags real motion as a jump. Thresholds are therefore kept at
their 30 fps values and scaled here by :func:`time_scale`, the number of reference frame
intervals one annotated frame interval spans:

- motion and size tolerances per frame interval grow with it (a jump of 0.4 object sizes
  between frames 1/30 s apart is 1.2 sizes at 1/10 s);
- durations counted in frames (short tracks, frozen boxes, merge gaps) shrink with it, so
  they stay the same number of *seconds*.

Each config dataclass has ``for_time_scale(scale)``; :func:`run_checks` and the merge apply
it from ``SequenceInfo.fps``. An unknown rate (0) means the reference rate: behaviour is
unchanged for inputs that say nothing.
"""

from __future__ import annotations

import math

__all__ = ["REFERENCE_FPS", "frames_for", "time_scale"]

#: The frame rate the default thresholds were tuned at (MOT17 is 30 fps; 25 fps is close).
REFERENCE_FPS = 30.0

_MIN_SCALE, _MAX_SCALE = 0.25, 10.0


def time_scale(fps: float, reference_fps: float = REFERENCE_FPS) -> float:
    """Reference frame intervals per annotated frame interval (1.0 when ``fps`` is unknown).

    Clamped to 0.25..10: below 3 fps consecutive annotated boxes are too far apart in time
    for frame-to-frame motion reasoning to mean much, and thresholds stop growing there.

    >>> time_scale(10.0), time_scale(0.0), time_scale(30.0), time_scale(60.0)
    (3.0, 1.0, 1.0, 0.5)
    """
    if not fps or not math.isfinite(fps) or fps <= 0:
        return 1.0
    return min(_MAX_SCALE, max(_MIN_SCALE, reference_fps / float(fps)))


def frames_for(frames_at_reference: float, scale: float, minimum: int = 1) -> int:
    """A duration given in reference frames, as a whole number of annotated frames.

    >>> frames_for(30, 3.0), frames_for(5, 3.0, minimum=2), frames_for(30, 1.0)
    (10, 2, 30)
    """
    return max(minimum, int(round(frames_at_reference / scale)))
