"""``appearance_jump``: a track's look changes abruptly between consecutive visible boxes.

An identity switch between two similar-moving people is invisible to motion checks but not
to colour: the crop under the box changes. The embedding is deliberately cheap (no model):
a 4x4x4 RGB histogram of a grid of samples in the central part of the box (the border is
mostly background) plus an 8-bin gradient-orientation histogram for texture. The distance
of the mean embedding of a few boxes before a boundary to a few after it is compared with
a threshold; occluded/low-visibility boxes are left out (another object covers the crop).

Frames are read once each, through the :class:`~cvat_extension.core.frames.FrameSource`
callable; the work per frame is array operations over all its boxes.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cvat_extension.core.checks._common import Prepared, box_tuple, check_range, prepare, quiet_rows
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.frames import FrameSource
from cvat_extension.core.timebase import frames_for
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["AppearanceJumpConfig", "box_embeddings", "check_appearance_jump"]

_GRID = 12  # samples per side inside each box


@dataclass(frozen=True)
class AppearanceJumpConfig:
    """Thresholds of :func:`check_appearance_jump`.

    Attributes:
        max_distance: embedding distance (0..1, half L1 of histograms) tolerated between
            the boxes before and after a boundary. Lower finds subtler switches and flags
            lighting and pose changes.
        window_boxes: boxes averaged on each side; more is steadier, fewer reacts faster.
        min_box_size_px: boxes smaller than this (either side) carry too few pixels to judge.
        min_visibility: boxes below this visibility (or occluded) are skipped.
        max_gap_frames: boxes further apart than this are not compared.
    """

    max_distance: float = 0.45
    window_boxes: int = 3
    min_box_size_px: float = 8.0
    min_visibility: float = 0.7
    max_gap_frames: int = 10

    def for_time_scale(self, scale: float) -> AppearanceJumpConfig:
        """These thresholds for frames ``scale`` reference intervals apart: the largest gap
        compared across stays the same number of seconds."""
        return replace(self, max_gap_frames=frames_for(self.max_gap_frames, scale))

    def __post_init__(self) -> None:
        check_range("AppearanceJumpConfig", "max_distance", self.max_distance, 0, 1)
        check_range("AppearanceJumpConfig", "window_boxes", self.window_boxes, 1, 100)
        check_range("AppearanceJumpConfig", "min_box_size_px", self.min_box_size_px, 1, 1e4)
        check_range("AppearanceJumpConfig", "min_visibility", self.min_visibility, 0, 1)
        check_range("AppearanceJumpConfig", "max_gap_frames", self.max_gap_frames, 1, 1e6)


def box_embeddings(image: np.ndarray, xyxy: np.ndarray) -> np.ndarray:
    """(n, 72) float32 embeddings of (n, 4) boxes in one (H, W, 3) uint8 image.

    64 colour bins + 8 gradient-orientation bins, each part L1-normalised.
    """
    n = len(xyxy)
    if n == 0:
        return np.zeros((0, 72), np.float32)
    h, w = image.shape[:2]
    g = (np.arange(_GRID) + 0.5) / _GRID * 0.6 + 0.2  # central 60 %
    x = xyxy[:, 0:1] + (xyxy[:, 2:3] - xyxy[:, 0:1]) * g[None]
    y = xyxy[:, 1:2] + (xyxy[:, 3:4] - xyxy[:, 1:2]) * g[None]
    xi = np.clip(np.round(x).astype(np.int64), 0, w - 1)
    yi = np.clip(np.round(y).astype(np.int64), 0, h - 1)
    px = image[yi[:, :, None], xi[:, None, :]].astype(np.int64)  # (n, G, G, 3)
    q = px // 64
    code = (q[..., 0] * 16 + q[..., 1] * 4 + q[..., 2]).reshape(n, -1)
    col = np.zeros((n, 64))
    np.add.at(col, (np.repeat(np.arange(n), code.shape[1]), code.ravel()), 1.0)
    col /= code.shape[1]
    gray = px.sum(axis=3).astype(np.float64)
    gx = np.diff(gray, axis=2)[:, :-1, :]
    gy = np.diff(gray, axis=1)[:, :, :-1]
    mag = np.hypot(gx, gy).reshape(n, -1)
    ang = ((np.arctan2(gy, gx) + np.pi) / (2 * np.pi) * 8).astype(np.int64).reshape(n, -1) % 8
    grad = np.zeros((n, 8))
    np.add.at(grad, (np.repeat(np.arange(n), ang.shape[1]), ang.ravel()), mag.ravel())
    tot = grad.sum(axis=1, keepdims=True)
    grad = np.divide(grad, tot, out=np.full_like(grad, 1 / 8), where=tot > 0)
    return np.concatenate([col, grad], axis=1).astype(np.float32)


def _distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """0..1: 0.8 x colour half-L1 + 0.2 x gradient half-L1."""
    return 0.8 * 0.5 * np.abs(a[:, :64] - b[:, :64]).sum(1) + 0.2 * 0.5 * np.abs(a[:, 64:] - b[:, 64:]).sum(1)


def check_appearance_jump(
    tracks: Tracks, config: AppearanceJumpConfig = AppearanceJumpConfig(), *,
    frames: FrameSource | None = None, info: SequenceInfo | None = None,
    prepared: Prepared | None = None, **_: object,
) -> list[Finding]:
    """Find abrupt appearance changes along tracks (needs ``frames``)."""
    if frames is None:
        return []
    p = prepared if prepared is not None else prepare(tracks)
    wh = p.xyxy[:, 2:] - p.xyxy[:, :2]
    use = ~quiet_rows(p, config.min_visibility) & (wh >= config.min_box_size_px).all(axis=1)
    idx = np.flatnonzero(use)
    if len(idx) < 2:
        return []
    emb = np.zeros((len(idx), 72), np.float32)
    order = np.argsort(p.frame[idx], kind="stable")
    fr = p.frame[idx][order]
    cuts = np.flatnonzero(np.diff(fr)) + 1
    for grp in np.split(order, cuts):  # one image read per frame
        image = np.asarray(frames(int(p.frame[idx[grp[0]]])))
        emb[grp] = box_embeddings(image, p.xyxy[idx[grp]])
    # Window means before/after each boundary between consecutive used rows of a track.
    k = config.window_boxes
    tid = p.tid[idx]
    f = p.frame[idx]
    m = len(idx)
    newt = np.concatenate([[True], tid[1:] != tid[:-1]])
    seg_start = np.maximum.accumulate(np.where(newt, np.arange(m), 0))
    seg_end = np.append(np.flatnonzero(newt)[1:], m)[np.cumsum(newt) - 1]
    P = np.zeros((m + 1, 72))
    np.cumsum(emb, axis=0, out=P[1:])
    i = np.arange(1, m)
    ok = (~newt[1:]) & (f[1:] - f[:-1] <= config.max_gap_frames)
    i = i[ok]
    a = np.maximum(seg_start[i], i - k)
    bnd = np.minimum(seg_end[i], i + k)
    before = (P[i] - P[a]) / (i - a)[:, None]
    after = (P[bnd] - P[i]) / (bnd - i)[:, None]
    dist = _distance(before, after)
    flag = dist > config.max_distance
    out = []
    # Neighbouring boundaries share windows: keep the strongest of each cluster.
    fi = i[flag]
    fd = dist[flag]
    if len(fi):
        grp = np.concatenate([[True], (np.diff(fi) > k) | (tid[fi][1:] != tid[fi][:-1])])
        gid = np.cumsum(grp) - 1
        o = np.lexsort((-fd, gid))
        best = o[np.concatenate([[True], gid[o][1:] != gid[o][:-1]])]
        for j in best:
            r = int(idx[fi[j]])
            t, fr0 = int(p.tid[r]), int(p.frame[r])
            dd = float(fd[j])
            score = 0.45 + 0.5 * float(np.clip((dd - config.max_distance) / (1 - config.max_distance), 0, 1))
            out.append(Finding(
                kind="appearance_jump", track_ids=(t,), frames=(fr0, fr0), box=box_tuple(p.xyxy[r]),
                score=score,
                message=f"track {t} at frame {frame_label(fr0, info)}: appearance changes (distance {dd:.2f})",
                metrics={"distance": dd},
            ))
    return sorted(out, key=Finding.sort_key)
