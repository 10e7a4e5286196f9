"""``id_switch``: a track's identity moves to another object.

Two patterns, both judged in camera-compensated coordinates (``_common.prepare``) so that a
panning or zooming camera does not make every box look displaced:

- **jump**: at frame k the track continues from a different place. Constant-velocity fits
  over a few frames before and after k disagree by more than a share of the object's size,
  and the box predicted from before overlaps the box at k by IoU < ``min_iou``. Because the
  fit carries the velocity forward, a fast object is predicted where it is, not flagged.
- **swap**: two tracks exchange objects at frame k (typically where people cross). Each
  track's motion breaks at k, and crossing the halves (A-before with B-after, B-before with
  A-after) fits much better than keeping them. This catches swaps even where the boxes
  touch and no position jump exists, and names both tracks and the frame.

Occlusion flags/low visibility explain a noisy jump (suppressed), but not a swap: a swap
that fits much better crossed is an error whether or not the objects were occluded.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_extension.core.checks._common import (
    Prepared,
    WindowMotion,
    box_tuple,
    check_range,
    near,
    prepare,
    quiet_rows,
    window_motion,
)
from cvat_extension.core.checks.box_jump import BoxJumpConfig, single_outliers
from cvat_extension.core.findings import Finding
from cvat_extension.core.tracks import Tracks

__all__ = ["IdSwitchConfig", "check_id_switch"]


@dataclass(frozen=True)
class IdSwitchConfig:
    """Thresholds of :func:`check_id_switch`.

    Attributes:
        window_frames: rows on each side of a boundary used for the constant-velocity fits
            (two half-windows each). Longer is steadier on jittery annotation but blurs two
            events that are close in time.
        min_jump_ratio: position disagreement at the boundary, in object sizes, that counts
            as a jump. Lower finds switches between adjacent people but flags re-drawn boxes.
        min_iou: the box predicted from before must overlap the actual box less than this
            (the classic "IoU < 0.5" rule, applied to the *predicted* box).
        min_jump_px: a jump must also be at least this many pixels: on tiny boxes a pixel of
            annotation noise is a large share of the size. Raise on low-resolution video.
        occluded_jump_ratio: jump needed when occlusion flags/low visibility are near the
            boundary (occlusion explains moderate jumps).
        min_visibility: rows below this visibility count as occluded.
        swap_candidate_break: smallest break (jump + velocity change, in sizes) that makes a
            boundary a swap candidate. Lower finds gentler swaps at higher cost.
        max_swap_cost_ratio: crossed fits must cost at most this share of the kept fits.
            Raise to accept weaker swaps (more false alarms at real crossings).
        min_swap_gain: crossed fits must also be better by at least this (in sizes).
    """

    window_frames: int = 5
    min_jump_ratio: float = 0.4
    min_jump_px: float = 4.0
    min_iou: float = 0.5
    occluded_jump_ratio: float = 1.0
    min_visibility: float = 0.5
    swap_candidate_break: float = 0.15
    max_swap_cost_ratio: float = 0.5
    min_swap_gain: float = 0.3

    def __post_init__(self) -> None:
        check_range("IdSwitchConfig", "window_frames", self.window_frames, 2, 100)
        check_range("IdSwitchConfig", "min_jump_ratio", self.min_jump_ratio, 0.01, 100.0)
        check_range("IdSwitchConfig", "min_jump_px", self.min_jump_px, 0.0, 1e4)
        check_range("IdSwitchConfig", "min_iou", self.min_iou, 0.0, 1.0)
        check_range("IdSwitchConfig", "occluded_jump_ratio", self.occluded_jump_ratio, 0.01, 100.0)
        check_range("IdSwitchConfig", "min_visibility", self.min_visibility, 0.0, 1.0)
        check_range("IdSwitchConfig", "swap_candidate_break", self.swap_candidate_break, 0.0, 100.0)
        check_range("IdSwitchConfig", "max_swap_cost_ratio", self.max_swap_cost_ratio, 0.0, 1.0)
        check_range("IdSwitchConfig", "min_swap_gain", self.min_swap_gain, 0.0, 100.0)


def _fit_cost(wm: WindowMotion, b: np.ndarray, a: np.ndarray, half: int) -> np.ndarray:
    """Disagreement (sizes) between row b's before-fit and row a's after-fit."""
    size = np.sqrt(wm.size[b] * wm.size[a])
    dp = np.hypot(*(wm.pos_before[b] - wm.pos_after[a]).T)
    dv = np.hypot(*(wm.vel_before[b] - wm.vel_after[a]).T) * half
    return (dp + dv) / size


def _pred_iou(p: Prepared, wm: WindowMotion, i: np.ndarray) -> np.ndarray:
    """IoU of the box predicted from before (size of row i-1) with the actual box at i."""
    s = p.size[i - 1]
    aspect = (p.xyxy[i - 1, 2] - p.xyxy[i - 1, 0]) / np.maximum(p.xyxy[i - 1, 3] - p.xyxy[i - 1, 1], 1e-6)
    hw = np.stack([s * np.sqrt(aspect), s / np.sqrt(aspect)], axis=1) / 2
    pred = np.concatenate([wm.pos_before[i] - hw, wm.pos_before[i] + hw], axis=1)
    sa = p.size[i]
    aa = (p.xyxy[i, 2] - p.xyxy[i, 0]) / np.maximum(p.xyxy[i, 3] - p.xyxy[i, 1], 1e-6)
    hwa = np.stack([sa * np.sqrt(aa), sa / np.sqrt(aa)], axis=1) / 2
    act = np.concatenate([wm.pos_after[i] - hwa, wm.pos_after[i] + hwa], axis=1)
    from cvat_extension.core.geometry import iou_xyxy_pairwise

    return iou_xyxy_pairwise(pred, act)


def check_id_switch(tracks: Tracks, config: IdSwitchConfig = IdSwitchConfig(), **_: object) -> list[Finding]:
    """Find identity jumps and swaps; swaps name both tracks and the frame.

    Scores: a swap 0.6..0.98 by how much better the crossed fit is; a jump 0.45..0.95 by its
    size, halved near occlusion.
    """
    p = prepare(tracks)
    n = len(p.frame)
    if n < 3:
        return []
    half = config.window_frames
    outl, _, _ = single_outliers(p, BoxJumpConfig())
    weight = np.ones(n)
    weight[outl] = 0.0  # a single displaced box is box_jump's business, not a switch
    # Screen: a jump or a velocity step shows as a large second difference of the
    # (compensated) centre at or next to the boundary; fits are computed only there.
    d2 = np.zeros(n)
    ok2 = np.zeros(n, dtype=bool)
    ok2[2:] = p.prev_ok[2:] & p.prev_ok[1:-1]
    ddx = p.cx[2:] - 2 * p.cx[1:-1] + p.cx[:-2]
    ddy = p.cy[2:] - 2 * p.cy[1:-1] + p.cy[:-2]
    d2[2:] = np.where(ok2[2:], np.sqrt(ddx * ddx + ddy * ddy) / p.size[2:], 0.0)
    # Rows whose own track history is too short for second differences are always fitted.
    ok2 |= np.arange(n) - p.start < 2
    thr = 0.5 * min(config.swap_candidate_break / half, config.min_jump_ratio)
    hot = (d2 >= thr) | ~ok2
    hot[:-1] |= hot[1:] & (p.tid[:-1] == p.tid[1:])
    hot[1:] |= hot[:-1] & (p.tid[:-1] == p.tid[1:])
    hot[outl] = False
    hot2 = np.zeros(n, dtype=bool)  # outliers' neighbours: fits there skip the outlier
    for d in (-2, -1, 1, 2):
        j = np.clip(outl + d, 0, n - 1)
        hot2[j[p.tid[j] == p.tid[outl]]] = True
    hot2[p.end[p.start < p.end] - 1] = True  # track ends: handover partners need their fits
    rows = np.flatnonzero(hot | hot2)
    wm = window_motion(p, half, weight, rows=rows)
    quiet = near(quiet_rows(p, config.min_visibility), p, 2, 1) if (
        p.occluded.any() or (p.visibility < config.min_visibility).any()) else np.zeros(n, dtype=bool)
    brk = wm.jump + wm.turn
    findings: list[Finding] = []

    # ---- swaps: pair candidate boundaries of different tracks within one frame.
    cand = np.flatnonzero(wm.valid & (brk >= config.swap_candidate_break) & (weight > 0))
    used = np.zeros(n, dtype=bool)
    if len(cand) > 1:
        order = cand[np.argsort(p.frame[cand], kind="stable")]
        fr = p.frame[order]
        pa_l, pb_l = [], []
        for d in range(1, 16):  # neighbours in frame order; few candidates share a frame
            a, b = order[:-d], order[d:]
            ok = (np.abs(fr[d:] - fr[:-d]) <= 1) & (p.tid[a] != p.tid[b])
            # Swaps happen between neighbours: skip pairs more than 3 sizes apart.
            ok &= (np.hypot(*(wm.pos_after[a] - wm.pos_after[b]).T)
                   < 3.0 * np.maximum(wm.size[a], wm.size[b]))
            pa_l.append(a[ok])
            pb_l.append(b[ok])
        A = np.concatenate(pa_l)
        B = np.concatenate(pb_l)
        if len(A):
            keep = _fit_cost(wm, A, A, half) + _fit_cost(wm, B, B, half)
            cross = _fit_cost(wm, A, B, half) + _fit_cost(wm, B, A, half)
            good = (cross <= config.max_swap_cost_ratio * keep) & (keep - cross >= config.min_swap_gain)
            A, B, keep, cross = A[good], B[good], keep[good], cross[good]
            gain = keep - cross
            chosen: dict[tuple[int, int], list[int]] = {}
            for j in np.argsort(-gain):  # best pairs first; each boundary used once
                a, b = int(A[j]), int(B[j])
                if used[a] or used[b]:
                    continue
                k = int(min(p.frame[a], p.frame[b]))
                ta, tb = sorted((int(p.tid[a]), int(p.tid[b])))
                # Neighbouring boundaries of the same swap share windows: keep the best one.
                if any(abs(k - k2) <= 2 * half for k2 in chosen.get((ta, tb), [])):
                    continue
                chosen.setdefault((ta, tb), []).append(k)
                used[a] = used[b] = True
                score = float(np.clip(0.6 + 0.38 * (1 - cross[j] / keep[j]) * min(1.0, gain[j]), 0, 0.98))
                findings.append(Finding(
                    kind="id_switch", track_ids=(ta, tb), frames=(k, k),
                    box=box_tuple(p.xyxy[a]), score=score,
                    message=(f"tracks {ta} and {tb} at frame {k}: identities look swapped "
                             f"(motion fits {keep[j]:.2f} kept vs {cross[j]:.2f} crossed)"),
                    metrics={"cost_kept": float(keep[j]), "cost_crossed": float(cross[j]),
                             "variant_swap": 1.0},
                ))

    used = near(used, p, half, half)  # a swap's neighbouring boundaries are explained

    # ---- handovers: a track continues on the object of a track that ends just before.
    free = cand[~used[cand]]
    last = np.flatnonzero((np.arange(n) == p.end - 1) & (np.arange(n) - p.start >= 2))
    if len(free) and len(last):
        lo_o = np.argsort(p.frame[last], kind="stable")
        last = last[lo_o]
        lf = p.frame[last]
        lo = np.searchsorted(lf, p.frame[free] - 2, side="left")
        hi = np.searchsorted(lf, p.frame[free] - 1, side="right")
        cnt = hi - lo
        A = np.repeat(free, cnt)
        off = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        E = last[np.repeat(lo, cnt) + off]
        ok = p.tid[A] != p.tid[E]
        A, E = A[ok], E[ok]
        if len(A):
            # Carry E's fit forward to A's boundary time (absolute frames).
            tb_a = (p.frame[A - 1] + p.frame[A]) / 2.0
            tb_e = (p.frame[E - 1] + p.frame[E]) / 2.0
            pos_e = wm.pos_before[E] + wm.vel_before[E] * (tb_a - tb_e)[:, None]
            size = np.sqrt(wm.size[E] * wm.size[A])
            cross = (np.hypot(*(pos_e - wm.pos_after[A]).T)
                     + np.hypot(*(wm.vel_before[E] - wm.vel_after[A]).T) * half) / size
            keep = _fit_cost(wm, A, A, half)
            good = (cross <= config.max_swap_cost_ratio * keep) & (keep - cross >= config.min_swap_gain)
            A, E, keep, cross = A[good], E[good], keep[good], cross[good]
            for j in np.argsort(cross - keep):
                a, e = int(A[j]), int(E[j])
                if used[a]:
                    continue
                used[a] = True
                k, ta, te = int(p.frame[a]), int(p.tid[a]), int(p.tid[e])
                gain = keep[j] - cross[j]
                score = float(np.clip(0.55 + 0.4 * (1 - cross[j] / keep[j]) * min(1.0, gain), 0, 0.95))
                findings.append(Finding(
                    kind="id_switch", track_ids=tuple(sorted((ta, te))), frames=(k, k),
                    box=box_tuple(p.xyxy[a]), score=score,
                    message=(f"track {ta} at frame {k}: continues on the object of track {te}, "
                             f"which ends at frame {int(p.frame[e])}"),
                    metrics={"cost_kept": float(keep[j]), "cost_crossed": float(cross[j]),
                             "variant_swap": 0.0},
                ))

    # ---- jumps on single tracks.
    thr = np.where(quiet, config.occluded_jump_ratio, config.min_jump_ratio)
    jc = np.flatnonzero(wm.valid & (wm.jump >= thr) & (wm.jump * wm.size >= config.min_jump_px)
                        & ~used & (weight > 0))
    if len(jc):
        iou = _pred_iou(p, wm, jc)
        keep_j = iou < config.min_iou
        jc, iou = jc[keep_j], iou[keep_j]
        # A jump spreads over neighbouring boundaries; keep each track's local maximum.
        if len(jc):
            grp = np.concatenate([[True], (np.diff(jc) > half) | (np.diff(p.tid[jc]) != 0)])
            gid = np.cumsum(grp) - 1
            o = np.lexsort((-wm.jump[jc], gid))
            firsts = o[np.concatenate([[True], gid[o][1:] != gid[o][:-1]])]
            jc, iou = jc[firsts], iou[firsts]
            for i, io in zip(jc, iou):
                i = int(i)
                t, k = int(p.tid[i]), int(p.frame[i])
                jr = float(wm.jump[i])
                score = 0.45 + 0.5 * float(np.clip((jr - config.min_jump_ratio) / 1.5, 0, 1))
                if quiet[i]:
                    score *= 0.5
                findings.append(Finding(
                    kind="id_switch", track_ids=(t,), frames=(k, k), box=box_tuple(p.xyxy[i]),
                    score=score,
                    message=(f"track {t} at frame {k}: continues {jr:.1f} object sizes away from "
                             f"its predicted position (IoU {io:.2f} with prediction)"),
                    metrics={"jump_ratio": jr, "iou_pred": float(io), "variant_swap": 0.0},
                ))
    return sorted(findings, key=Finding.sort_key)
