"""``short_track``: very short or flickering tracks.

A track of one or two boxes is usually a stray click, a tracker's false positive, or a
fragment of another track; a track that keeps switching between visible and outside is
usually an object annotated on some frames only. Tracks that start or end at the image
border (the object enters or leaves the view) are more often legitimate and score lower.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cvat_extension.core.checks._common import Prepared, box_tuple, check_range, prepare
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.timebase import frames_for
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["ShortTrackConfig", "check_short_track"]


@dataclass(frozen=True)
class ShortTrackConfig:
    """Thresholds of :func:`check_short_track`.

    Attributes:
        min_length_frames: tracks with fewer visible frames are reported. Raise for
            datasets where every object is expected to stay long (cars on a highway).
        max_segments: tracks split into more visible segments than this by outside gaps...
        max_mean_segment_frames: ...whose segments average fewer frames than this are
            reported as flickering.
        border_margin_px: a short track touching the image border within this margin scores
            lower (entering/leaving objects); needs ``info``. So does a track cut by the
            first or last frame of the sequence (``info.num_frames``).
        min_visibility: a short or flickering track whose boxes are on average less visible
            than this (or all flagged occluded) scores half: a person glimpsed between
            occluders is really there briefly. On MOT17-05/-13 ground truth at 10 fps, 9 of 11
            short tracks were such glimpses.
    """

    min_length_frames: int = 5
    max_segments: int = 3
    max_mean_segment_frames: float = 5.0
    border_margin_px: float = 10.0
    min_visibility: float = 0.5

    def for_time_scale(self, scale: float) -> ShortTrackConfig:
        """These thresholds for frames ``scale`` reference intervals apart: lengths stay the
        same number of seconds (at least two frames)."""
        return replace(self, min_length_frames=frames_for(self.min_length_frames, scale, 2),
                       max_mean_segment_frames=max(1.0, self.max_mean_segment_frames / scale))

    def __post_init__(self) -> None:
        check_range("ShortTrackConfig", "min_length_frames", self.min_length_frames, 1, 1e6)
        check_range("ShortTrackConfig", "max_segments", self.max_segments, 1, 1e6)
        check_range("ShortTrackConfig", "max_mean_segment_frames", self.max_mean_segment_frames, 1, 1e6)
        check_range("ShortTrackConfig", "border_margin_px", self.border_margin_px, 0, 1e4)
        check_range("ShortTrackConfig", "min_visibility", self.min_visibility, 0, 1)


def check_short_track(
    tracks: Tracks, config: ShortTrackConfig = ShortTrackConfig(), *, info: SequenceInfo | None = None,
    prepared: Prepared | None = None, **_: object,
) -> list[Finding]:
    """Report tracks shorter than ``min_length_frames`` and flickering tracks."""
    p = prepared if prepared is not None else prepare(tracks)
    n = len(p.frame)
    if n == 0:
        return []
    # One kernel pass: first rows, segments and border contact per track.
    m = float(config.border_margin_px)
    width, height = (info.width, info.height) if info is not None else (0, 0)
    with_border = bool(width and height)
    first, segs, border = p.kernels.track_summary(
        p.start, p.end, p.frame, p.xyxy, m, float(width - m) if with_border else 0.0,
        float(height - m) if with_border else 0.0, with_border)
    length = p.end[first] - first
    mean_seg = length / segs
    if info is not None and info.num_frames:
        last_f = p.frame[p.end[first] - 1]
        border |= (p.frame[first] == 0) | (last_f >= info.num_frames - 1)
    short = length < config.min_length_frames
    flicker = (segs > config.max_segments) & (mean_seg < config.max_mean_segment_frames)
    out = []
    hits = np.flatnonzero(short | flicker)
    # Per reported track only: mean visibility, and whether every box is flagged occluded.
    vis_sum = np.add.reduceat(np.asarray(p.visibility, np.float64), first) if len(first) else np.zeros(0)
    occ_all = np.logical_and.reduceat(np.asarray(p.occluded, bool), first) if len(first) else np.zeros(0, bool)
    hidden = (vis_sum / np.maximum(length, 1) < config.min_visibility) | occ_all
    for k in hits:
        i = int(first[k])
        t, f0, f1 = int(p.tid[i]), int(p.frame[i]), int(p.frame[p.end[i] - 1])
        if short[k]:
            score = 0.75 - 0.35 * (length[k] - 1) / max(config.min_length_frames - 1, 1)
            msg = f"track {t} at frame {frame_label(f0, info)}: only {int(length[k])} visible frame(s)"
        else:
            score = 0.6
            msg = (f"track {t} at frame {frame_label(f0, info)}: flickers, {int(segs[k])} visible segments of "
                   f"{mean_seg[k]:.1f} frames on average")
        if border[k]:
            score *= 0.5
            msg += " (at the image or sequence border)"
        if hidden[k]:
            score *= 0.5
            msg += " (mostly occluded)"
        out.append(Finding(
            kind="short_track", track_ids=(t,), frames=(f0, f1), box=box_tuple(p.xyxy[i]),
            score=float(np.clip(score, 0, 1)), message=msg,
            metrics={"length_frames": float(length[k]), "segments": float(segs[k])},
        ))
    return sorted(out, key=Finding.sort_key)
