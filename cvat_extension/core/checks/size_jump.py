"""``size_jump``: a box's area changes by more than a threshold between consecutive frames.

Typical causes: a corner dragged on one keyframe, a box snapped to a neighbour's size, or
interpolation between a full-body and a head-only box. Areas are compared after removing
the camera's zoom (``_common.prepare``); boxes cut by the image border and occluded boxes
legitimately change size and are not judged. Consecutive flags of one track within a few
frames (the jump out and the jump back) form one finding.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cvat_extension.core.checks._common import (
    Prepared,
    box_tuple,
    check_range,
    prepare,
    runs,
)
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.timebase import frames_for
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["SizeJumpConfig", "check_size_jump"]


@dataclass(frozen=True)
class SizeJumpConfig:
    """Thresholds of :func:`check_size_jump`.

    Attributes:
        max_area_change: relative area change between consecutive frames tolerated (0.5 =
            grows by 50 % or shrinks to 1/1.5). Lower catches subtler edits and flags more
            walking-pose changes.
        min_visibility: boxes less visible than this (or flagged occluded) are not judged.
        border_margin_px: a pair of boxes both within this many pixels of the image border is
            not judged (the object is only partly in view); needs ``info`` with the frame size.
        max_run_gap_frames: flags of one track this close form one finding.
    """

    max_area_change: float = 0.5
    min_visibility: float = 0.5
    border_margin_px: float = 2.0
    max_run_gap_frames: int = 10

    def for_time_scale(self, scale: float) -> SizeJumpConfig:
        """These thresholds for frames ``scale`` reference intervals apart: an approaching
        object grows by a factor per second, so the allowed area ratio is raised to the power
        ``scale``; the run gap stays the same number of seconds."""
        return replace(self, max_area_change=(1.0 + self.max_area_change) ** scale - 1.0,
                       max_run_gap_frames=frames_for(self.max_run_gap_frames, scale))

    def __post_init__(self) -> None:
        check_range("SizeJumpConfig", "max_area_change", self.max_area_change, 0.01, 100.0)
        check_range("SizeJumpConfig", "min_visibility", self.min_visibility, 0.0, 1.0)
        check_range("SizeJumpConfig", "border_margin_px", self.border_margin_px, 0.0, 1e4)
        check_range("SizeJumpConfig", "max_run_gap_frames", self.max_run_gap_frames, 1, 1e6)


def check_size_jump(
    tracks: Tracks, config: SizeJumpConfig = SizeJumpConfig(), *, info: SequenceInfo | None = None,
    prepared: Prepared | None = None, **_: object,
) -> list[Finding]:
    """Find boxes whose area jumps between consecutive frames.

    Score 0.5 at the threshold, rising to 0.95 when the area doubles beyond it.
    """
    p = prepared if prepared is not None else prepare(tracks)
    n = len(p.frame)
    if n < 2:
        return []
    # One kernel pass: jumps, the occlusion skip (the row and the next) and the border skip.
    m = float(config.border_margin_px)
    width, height = (info.width, info.height) if info is not None else (0, 0)
    with_border = bool(width and height)
    thr = float(np.log1p(config.max_area_change))
    flag, dflag = p.kernels.size_flags(
        p.prev_ok, p.start, p.log_area, p.occluded, p.visibility, np.float32(config.min_visibility),
        p.xyxy, m, float(width - m) if with_border else 0.0,
        float(height - m) if with_border else 0.0, with_border, thr)
    out = []
    for r in runs(flag, p.tid, p.frame, config.max_run_gap_frames):
        i0, i1 = int(r[0]), int(r[-1])
        f0 = int(p.frame[i0])
        f1 = max(f0, int(p.frame[i1]) - 1) if len(r) > 1 else f0
        big = float(dflag[np.searchsorted(flag, r)].max())
        score = 0.5 + 0.45 * float(np.clip((big - thr) / np.log(2.0), 0, 1))
        t = int(p.tid[i0])
        out.append(Finding(
            kind="size_jump", track_ids=(t,), frames=(f0, f1), box=box_tuple(p.xyxy[i0]),
            score=score,
            message=(f"track {t} at frame {frame_label(f0, info)}: box area changes x{np.exp(big):.2f} from the "
                     f"previous frame" + (f" (back at frame {frame_label(f1 + 1, info)})" if f1 > f0 else "")),
            metrics={"area_ratio": float(np.exp(big))},
        ))
    return sorted(out, key=Finding.sort_key)
