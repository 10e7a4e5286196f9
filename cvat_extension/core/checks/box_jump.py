"""``box_jump``: a single box displaced from its track's path (out and back in one frame).

Typical cause: a mis-click or a keyframe dragged on the wrong frame. The box at frame f is
compared with the midpoint of its neighbours at f-1 and f+1 in camera-compensated
coordinates, relative to the object's size, and the neighbours must agree with each other
(under constant velocity): otherwise the track *continues* from the new place, which is an
identity jump, reported by ``id_switch`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cvat_extension.core.checks._common import (
    Prepared,
    block_view,
    blocks,
    box_tuple,
    check_range,
    prepare,
)
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.geometry import iou_xyxy_pairwise
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["BoxJumpConfig", "check_box_jump"]


@dataclass(frozen=True)
class BoxJumpConfig:
    """Thresholds of :func:`check_box_jump`.

    Attributes:
        min_offset_ratio: smallest displacement from the neighbours' midpoint, in object
            sizes (sqrt of box area). Lower finds smaller slips but flags annotation jitter
            on small objects; raise for noisy machine tracks.
        max_iou: the displaced box must overlap the interpolated box less than this. Lower
            keeps only blatant jumps.
        max_consistency_ratio: the neighbours may disagree with each other (after constant
            velocity) by at most this share of the displacement. Raising it accepts zig-zags
            as jumps; lowering it sends more cases to ``id_switch``.
        min_visibility: boxes less visible than this (or flagged occluded) are not judged:
            occlusion explains a misplaced estimate.
    """

    min_offset_ratio: float = 0.5
    max_iou: float = 0.5
    max_consistency_ratio: float = 0.35
    min_visibility: float = 0.5

    def for_time_scale(self, scale: float) -> BoxJumpConfig:
        """These thresholds for frames ``scale`` reference intervals apart: the offset a
        single box may have from its neighbours' line grows with the time between them."""
        return replace(self, min_offset_ratio=self.min_offset_ratio * scale)

    def __post_init__(self) -> None:
        check_range("BoxJumpConfig", "min_offset_ratio", self.min_offset_ratio, 0.05, 100.0)
        check_range("BoxJumpConfig", "max_iou", self.max_iou, 0.0, 1.0)
        check_range("BoxJumpConfig", "max_consistency_ratio", self.max_consistency_ratio, 0.0, 1.0)
        check_range("BoxJumpConfig", "min_visibility", self.min_visibility, 0.0, 1.0)


def single_outliers(p: Prepared, config: BoxJumpConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Row indices (into ``p``) of displaced single boxes, their offset ratio and IoU."""
    n = len(p.frame)
    if n < 3:
        e = np.zeros(0, dtype=np.int64)
        return e, np.zeros(0), np.zeros(0)
    # Cheap screen first (offset from the neighbours' midpoint, one kernel pass); the
    # rest only for survivors.
    cand, d = p.kernels.offset_screen(p.prev_ok, np.ascontiguousarray(p.cx),
                                      np.ascontiguousarray(p.cy), p.size,
                                      float(config.min_offset_ratio))

    def c(idx: np.ndarray) -> np.ndarray:
        return np.stack([p.cx[idx], p.cy[idx]], axis=1)

    vb = np.where(p.prev_ok[cand - 1][:, None], c(cand - 1) - c(np.maximum(cand - 2, 0)), np.nan)
    nn_ok = np.zeros(len(cand), dtype=bool)
    inside = cand + 2 < n
    nn_ok[inside] = p.prev_ok[cand[inside] + 2]
    va = np.where(nn_ok[:, None], c(np.minimum(cand + 2, n - 1)) - c(cand + 1), np.nan)
    both = np.stack([vb, va])
    cnt = np.sum(~np.isnan(both), axis=0)
    span = c(cand + 1) - c(cand - 1)
    v = np.divide(np.nansum(both, axis=0), cnt, out=span / 2, where=cnt > 0)
    e = np.hypot(*(span - 2 * v).T) / p.size[cand]
    interp = (p.xyxy[cand - 1] + p.xyxy[cand + 1]) / 2
    iou = iou_xyxy_pairwise(p.xyxy[cand], interp)
    quiet = p.occluded[cand] | (p.visibility[cand] < config.min_visibility)
    keep = ((d > config.min_offset_ratio) & (e <= config.max_consistency_ratio * d)
            & (iou < config.max_iou) & ~quiet)
    return cand[keep], d[keep], iou[keep]


def check_box_jump(tracks: Tracks, config: BoxJumpConfig = BoxJumpConfig(),
                   *, info: SequenceInfo | None = None, prepared: Prepared | None = None, **_: object) -> list[Finding]:
    """Find single boxes displaced from their track's path.

    Score grows with the displacement: 0.5 at ``min_offset_ratio``, 0.95 two sizes further.
    """
    p = prepared if prepared is not None else prepare(tracks)
    found = [(idx + r0, d, iou) for r0, r1 in blocks(p)
             for idx, d, iou in [single_outliers(block_view(p, r0, r1), config)]]
    idx = np.concatenate([f[0] for f in found]) if found else np.zeros(0, np.int64)
    d = np.concatenate([f[1] for f in found]) if found else np.zeros(0)
    iou = np.concatenate([f[2] for f in found]) if found else np.zeros(0)
    score = 0.5 + 0.45 * np.clip((d - config.min_offset_ratio) / 2.0, 0, 1)
    out = [
        Finding(
            kind="box_jump",
            track_ids=(int(p.tid[i]),),
            frames=(int(p.frame[i]), int(p.frame[i])),
            box=box_tuple(p.xyxy[i]),
            score=float(s),
            message=(f"track {int(p.tid[i])} at frame {frame_label(p.frame[i], info)}: box displaced by "
                     f"{dd:.1f} object sizes from its neighbours (IoU {io:.2f} with interpolation)"),
            metrics={"offset_ratio": float(dd), "iou": float(io)},
        )
        for i, dd, io, s in zip(idx, d, iou, score)
    ]
    return sorted(out, key=Finding.sort_key)
