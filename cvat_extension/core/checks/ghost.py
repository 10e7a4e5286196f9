"""``ghost``: a box with no object under it.

Two signals, both vectorised over all rows:

- **frozen box**: the box does not move in the *image* (centre within a small share of its
  size, area within 5 %) for more than ``min_static_frames``. A standing person also does
  that, and so does a person walking along with a moving camera, so without detections a
  frozen box is only a hint: 0.3, raised to 0.45 when the camera moves meanwhile or when it
  is the frozen tail of a track that moved before (an annotator held the box after the
  object left). Only detections make it confident: unsupported on its visible boxes, it
  scores 0.9; supported, it is dropped (a standing person). A run whose boxes are mostly
  occluded stays a hint: detectors miss hidden people, so their silence proves nothing.
- **no detector support** (needs ``detections``): a run of visible, unoccluded boxes with
  no detection at IoU >= ``min_support_iou`` for more than ``min_unsupported_frames``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cvat_extension.core.checks._common import (
    Prepared,
    box_tuple,
    check_range,
    prepare,
    quiet_rows,
    runs,
)
from cvat_extension.core.checks._matching import DetectionMatch, match_detections
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.timebase import frames_for
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["GhostConfig", "check_ghost"]


@dataclass(frozen=True)
class GhostConfig:
    """Thresholds of :func:`check_ghost`.

    Attributes:
        min_static_frames: a box must stay frozen longer than this. Lower finds short
            ghosts and flags more people who pause.
        static_drift_ratio: centre movement (object sizes) still counted as frozen; raise for
            jittery machine tracks.
        static_drift_px: ...but at least this many pixels (tiny boxes).
        min_camera_motion_px: mean camera motion per frame that makes a frozen box suspect.
        min_det_score: detections below this score are ignored for support.
        min_support_iou: a detection supports a box at this IoU or more.
        max_support_fraction: a frozen box supported on fewer frames than this share is a
            ghost with high score; supported on more than twice this, it is dropped.
        min_unsupported_frames: consecutive unsupported, unoccluded frames reported even for
            moving boxes (detections given only).
        min_visibility: rows below this visibility count as occluded (detectors miss them).
    """

    min_static_frames: int = 30
    static_drift_ratio: float = 0.05
    static_drift_px: float = 1.5
    min_camera_motion_px: float = 1.0
    min_det_score: float = 0.3
    min_support_iou: float = 0.5
    max_support_fraction: float = 0.3
    min_unsupported_frames: int = 30
    min_visibility: float = 0.5

    def for_time_scale(self, scale: float) -> GhostConfig:
        """These thresholds for frames ``scale`` reference intervals apart: a box must stay
        frozen (and unsupported) for the same number of seconds."""
        return replace(self, min_static_frames=frames_for(self.min_static_frames, scale, 3),
                       min_unsupported_frames=frames_for(self.min_unsupported_frames, scale, 3))

    def __post_init__(self) -> None:
        check_range("GhostConfig", "min_static_frames", self.min_static_frames, 2, 1e6)
        check_range("GhostConfig", "static_drift_ratio", self.static_drift_ratio, 0, 10)
        check_range("GhostConfig", "static_drift_px", self.static_drift_px, 0, 1e4)
        check_range("GhostConfig", "min_camera_motion_px", self.min_camera_motion_px, 0, 1e4)
        check_range("GhostConfig", "min_det_score", self.min_det_score, 0, 1)
        check_range("GhostConfig", "min_support_iou", self.min_support_iou, 0, 1)
        check_range("GhostConfig", "max_support_fraction", self.max_support_fraction, 0, 0.5)
        check_range("GhostConfig", "min_unsupported_frames", self.min_unsupported_frames, 1, 1e6)
        check_range("GhostConfig", "min_visibility", self.min_visibility, 0, 1)


def _static_rows(p: Prepared, config: GhostConfig) -> np.ndarray:
    """Rows inside a window of more than ``min_static_frames`` frames with a frozen box.

    The box at i, i + L/2 and i + L (consecutive frames) must agree within the drift bound
    and 5 % of area: three probes instead of a sliding max/min keep this O(n). One kernel
    pass (``static_rows``: numba's, or its numpy twin, which works in chunks of rows).
    """
    return p.kernels.static_rows(np.ascontiguousarray(p.frame), p.end, np.ascontiguousarray(p.xyxy),
                                 int(config.min_static_frames), float(config.static_drift_ratio),
                                 float(config.static_drift_px))


def check_ghost(
    tracks: Tracks, config: GhostConfig = GhostConfig(), *, detections: Tracks | None = None,
    info: SequenceInfo | None = None, prepared: Prepared | None = None,
    matched: DetectionMatch | None = None, **_: object,
) -> list[Finding]:
    """Find frozen boxes and (with detections) unsupported runs; see the module docstring.

    ``matched`` is ``match_detections(prepared, detections, config.min_det_score)`` when the
    caller already has it (``run_checks`` shares it with ``missing_object``).
    """
    p = prepared if prepared is not None else prepare(tracks)
    n = len(p.frame)
    if n == 0:
        return []
    L = config.min_static_frames
    b = p.xyxy
    is_static = _static_rows(p, config)

    def centre(i: int) -> np.ndarray:
        return (b[i, :2] + b[i, 2:]) / 2

    supported = None
    if detections is not None and len(detections):
        if matched is None or matched.min_det_score != config.min_det_score:
            matched = match_detections(p, detections, config.min_det_score)
        supported = matched.support >= config.min_support_iou
    cam = np.hypot(*p.cam_shift.T) + np.abs(np.log(p.cam_scale)) * 500.0
    # Occluded/low-visibility rows (only needed, and computed, with detections).
    quiet = quiet_rows(p, config.min_visibility) if supported is not None else np.zeros(0, dtype=bool)

    out = []
    covered = np.zeros(n, dtype=bool)
    for rr in runs(np.flatnonzero(is_static), p.tid, p.frame, 1, min_len=L + 1):
        i0, i1 = int(rr[0]), int(rr[-1])
        t, f0, f1 = int(p.tid[i0]), int(p.frame[i0]), int(p.frame[i1])
        score, why = 0.3, "frozen box"
        cam_run = float(cam[p.frame[rr] - p.frame0].mean())
        if cam_run >= config.min_camera_motion_px:
            score, why = 0.45, f"frozen while the camera moves {cam_run:.1f} px/frame"
        elif i1 == int(p.end[i0]) - 1 and i0 - int(p.start[i0]) >= 10:
            k = max(int(p.start[i0]), i0 - L)
            moved = float(np.hypot(*(centre(i0) - centre(k))))
            size0 = float(np.sqrt(max((b[i0, 2] - b[i0, 0]) * (b[i0, 3] - b[i0, 1]), 1e-6)))
            if moved > 2 * max(config.static_drift_ratio * size0, config.static_drift_px):
                score, why = 0.45, "frozen at the end of a track that moved before"
        if supported is not None:
            frac = float(supported[rr].mean())
            if frac > 2 * config.max_support_fraction:
                continue  # the detector sees an object there: a standing person
            # Detectors miss hidden people: only the run's visible boxes are evidence.
            seen = rr[~quiet[rr]]
            seen_frac = float(supported[seen].mean()) if len(seen) else 1.0
            if len(seen) * 2 < len(rr):
                why += " (mostly occluded: no detector evidence either way)"
            elif seen_frac < config.max_support_fraction:
                score, why = max(score, 0.9), why + f", detections support {seen_frac:.0%} of its visible boxes"
        covered[rr] = True
        out.append(Finding(
            kind="ghost", track_ids=(t,), frames=(f0, f1), box=box_tuple(b[i0]), score=score,
            message=f"track {t} at frame {frame_label(f0, info)}: {why} for {f1 - f0 + 1} frames (to frame {frame_label(f1, info)})",
            metrics={"frames": float(f1 - f0 + 1), "camera_px_per_frame": cam_run},
        ))

    if supported is not None:
        bad = np.flatnonzero(~supported & ~quiet & ~covered)
        for rr in runs(bad, p.tid, p.frame, 1, min_len=config.min_unsupported_frames + 1):
            i0, i1 = int(rr[0]), int(rr[-1])
            t, f0, f1 = int(p.tid[i0]), int(p.frame[i0]), int(p.frame[i1])
            out.append(Finding(
                kind="ghost", track_ids=(t,), frames=(f0, f1), box=box_tuple(b[i0]), score=0.6,
                message=(f"track {t} at frame {frame_label(f0, info)}: no detection supports its boxes for "
                         f"{len(rr)} frames (to frame {frame_label(f1, info)})"),
                metrics={"frames": float(len(rr)), "camera_px_per_frame": 0.0},
            ))
    return sorted(out, key=Finding.sort_key)
