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

from dataclasses import dataclass, replace

import numpy as np

from cvat_extension.core.checks._common import (
    Prepared,
    WindowMotion,
    block_view,
    blocks,
    box_tuple,
    check_range,
    prepare,
    rows_near_frames,
    window_motion_kept,
)
from cvat_extension.core.checks.box_jump import BoxJumpConfig, single_outliers
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.geometry import iou_xyxy_pairwise
from cvat_extension.core.tracks import SequenceInfo, Tracks

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
        drift_min_jump_ratio: smallest fit disagreement (object sizes) reported as a possible
            *drift*: the box sliding onto another object over a few frames instead of
            jumping. On real tracker output (ByteTrack on MOT17-02/-04) nine in ten identity
            jumps show a disagreement of at least 0.15 sizes, but so do many honest turns
            and re-drawn boxes, so drifts score 0.2..0.45: below the confident level, ranked
            in the review queue by how large the disagreement is. Raise to review fewer.
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
    drift_min_jump_ratio: float = 0.15

    def for_time_scale(self, scale: float) -> IdSwitchConfig:
        """These thresholds for frames ``scale`` reference intervals apart (``core/timebase.py``).

        Jumps, breaks and swap gains are distances between motion fits at a boundary: the
        motion an object makes between two annotated frames grows with the time between
        them, so they grow linearly with it; the window stays in rows.
        """
        return replace(self, min_jump_ratio=self.min_jump_ratio * scale,
                       min_jump_px=self.min_jump_px * scale,
                       occluded_jump_ratio=self.occluded_jump_ratio * scale,
                       swap_candidate_break=self.swap_candidate_break * scale,
                       min_swap_gain=self.min_swap_gain * scale,
                       drift_min_jump_ratio=self.drift_min_jump_ratio * scale)

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
        check_range("IdSwitchConfig", "drift_min_jump_ratio", self.drift_min_jump_ratio, 0.01, 100.0)


@dataclass(frozen=True, eq=False)
class _Fits:
    """Window fits at the screened boundaries only (compact arrays, ``rows`` global)."""

    rows: np.ndarray
    valid: np.ndarray
    pos_before: np.ndarray
    pos_after: np.ndarray
    vel_before: np.ndarray
    vel_after: np.ndarray
    size: np.ndarray
    jump: np.ndarray
    turn: np.ndarray
    outlier: np.ndarray  # the row itself is a single displaced box (box_jump's business)


def _screened_fits(p: Prepared, config: IdSwitchConfig, *, compact: bool = True) -> _Fits:
    """Screen every row cheaply, then fit windows where the screen fires; block by block.

    Screen: a jump or a velocity step shows as a large second difference of the
    (compensated) centre at or next to the boundary. Rows near a single displaced box are
    fitted with that box left out; track ends are always fitted (handover partners).

    With ``compact`` only the fits :func:`check_id_switch` can use are kept: swap/handover
    candidates, jump candidates at the lower of the two jump bounds, and track ends. On
    jittery tracks the screen passes about a third of all rows, nine in ten of which fail
    every test; dropping them per block keeps the check body and the concatenation small.
    Findings are the same either way (``compact=False`` is the reference in the tests).
    """
    switch_screen = p.kernels.switch_screen
    half = config.window_frames
    thr = 0.5 * min(config.swap_candidate_break / half, config.min_jump_ratio)
    jump_min = min(config.min_jump_ratio, config.occluded_jump_ratio)
    parts: list[tuple[np.ndarray, WindowMotion, np.ndarray]] = []
    for r0, r1 in blocks(p):
        b = block_view(p, r0, r1)
        n = r1 - r0
        outl, _, _ = single_outliers(b, BoxJumpConfig())
        weight = np.ones(n)
        weight[outl] = 0.0
        hot = switch_screen(b.prev_ok, b.cx, b.cy, b.size, b.start, b.end, b.tid, outl, np.float32(thr))
        rows = np.flatnonzero(hot)
        is_out = np.zeros(n, dtype=bool)
        is_out[outl] = True
        out = is_out[rows]
        keep = ((rows == b.end[rows] - 1, out, config.swap_candidate_break, jump_min, config.min_jump_px)
                if compact else None)
        w, kept = window_motion_kept(b, half, weight, rows, keep)
        if compact:
            rows, out = rows[kept], out[kept]
        parts.append((rows + r0, w, out))
    if not parts:
        z = np.zeros(0)
        z2 = np.zeros((0, 2))
        return _Fits(np.zeros(0, np.int64), np.zeros(0, bool), z2, z2, z2, z2, z, z, z, np.zeros(0, bool))

    def cat(name: str) -> np.ndarray:
        return np.concatenate([getattr(w, name) for _, w, _ in parts])

    return _Fits(
        rows=np.concatenate([r for r, _, _ in parts]), valid=cat("valid"),
        pos_before=cat("pos_before"), pos_after=cat("pos_after"), vel_before=cat("vel_before"),
        vel_after=cat("vel_after"), size=cat("size"), jump=cat("jump"), turn=cat("turn"),
        outlier=np.concatenate([o for _, _, o in parts]),
    )


def _fit_cost(wm: _Fits, b: np.ndarray, a: np.ndarray, half: int) -> np.ndarray:
    """Disagreement (sizes) between fit b's before-part and fit a's after-part."""
    size = np.sqrt(wm.size[b] * wm.size[a])
    dp = np.hypot(*(wm.pos_before[b] - wm.pos_after[a]).T)
    dv = np.hypot(*(wm.vel_before[b] - wm.vel_after[a]).T) * half
    return (dp + dv) / size


def _pred_iou(p: Prepared, wm: _Fits, q: np.ndarray) -> np.ndarray:
    """IoU of the box predicted from before (shape of row i-1) with the fitted box at i."""
    i = wm.rows[q]

    def box(centre: np.ndarray, r: np.ndarray) -> np.ndarray:
        s = p.size[r]
        asp = (p.xyxy[r, 2] - p.xyxy[r, 0]) / np.maximum(p.xyxy[r, 3] - p.xyxy[r, 1], 1e-6)
        hw = np.stack([s * np.sqrt(asp), s / np.sqrt(asp)], axis=1) / 2
        return np.concatenate([centre - hw, centre + hw], axis=1)

    return iou_xyxy_pairwise(box(wm.pos_before[q], i - 1), box(wm.pos_after[q], i))


def _quiet_near(p: Prepared, rows: np.ndarray, min_visibility: float) -> np.ndarray:
    """Rows with an occluded/low-visibility box among rows i-2..i+1 of the same track."""
    # float32 bound: numpy compared the float32 visibility with the bound in float32.
    return p.kernels.quiet_near(p.start, p.end, p.occluded, p.visibility,
                                np.ascontiguousarray(rows, dtype=np.int64), np.float32(min_visibility))


def check_id_switch(tracks: Tracks, config: IdSwitchConfig = IdSwitchConfig(),
                    *, info: SequenceInfo | None = None, prepared: Prepared | None = None, **_: object) -> list[Finding]:
    """Find identity jumps and swaps; swaps name both tracks and the frame.

    Scores: a swap 0.6..0.98 by how much better the crossed fit is; a handover 0.55..0.95;
    a jump 0.45..0.95 by its size, halved near occlusion.
    """
    p = prepared if prepared is not None else prepare(tracks)
    if len(p.frame) < 3:
        return []
    half = config.window_frames
    wm = _screened_fits(p, config)
    g = wm.rows  # compact position q -> global row
    m = len(g)
    quiet = _quiet_near(p, g, config.min_visibility)
    brk = wm.jump + wm.turn
    findings: list[Finding] = []
    used = np.zeros(m, dtype=bool)
    swaps: list[tuple[int, int]] = []  # (track, frame) of reported swap boundaries

    # ---- swaps: pair candidate boundaries of different tracks within one frame.
    cand = np.flatnonzero(wm.valid & (brk >= config.swap_candidate_break) & ~wm.outlier)
    if len(cand) > 1:
        order = cand[np.argsort(p.frame[g[cand]], kind="stable")]
        fr = p.frame[g[order]]
        tid = p.tid[g[order]]
        # Neighbours in frame order (few candidates share a frame); swaps happen between
        # neighbours, so pairs more than 3 sizes apart are skipped. One kernel pass.
        A, B = p.kernels.swap_pairs(order, fr, tid, wm.pos_after, wm.size, 15)
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
                k = int(min(p.frame[g[a]], p.frame[g[b]]))
                ta, tb = sorted((int(p.tid[g[a]]), int(p.tid[g[b]])))
                # Neighbouring boundaries of the same swap share windows: keep the best one.
                if any(abs(k - k2) <= 2 * half for k2 in chosen.get((ta, tb), [])):
                    continue
                chosen.setdefault((ta, tb), []).append(k)
                used[a] = used[b] = True
                swaps += [(ta, k), (tb, k)]
                score = float(np.clip(0.6 + 0.38 * (1 - cross[j] / keep[j]) * min(1.0, gain[j]), 0, 0.98))
                findings.append(Finding(
                    kind="id_switch", track_ids=(ta, tb), frames=(k, k),
                    box=box_tuple(p.xyxy[g[a]]), score=score,
                    message=(f"tracks {ta} and {tb} at frame {frame_label(k, info)}: identities look swapped "
                             f"(motion fits {keep[j]:.2f} kept vs {cross[j]:.2f} crossed)"),
                    metrics={"cost_kept": float(keep[j]), "cost_crossed": float(cross[j]),
                             "variant_swap": 1.0},
                ))
    if swaps:
        # A swap's neighbouring boundaries (same track, within the window) are explained.
        key = np.array([t for t, _ in swaps], np.float64) * 1e7 + np.array([k for _, k in swaps])
        key.sort()
        mine = p.tid[g].astype(np.float64) * 1e7 + p.frame[g]
        lo = np.searchsorted(key, mine - half, side="left")
        hi = np.searchsorted(key, mine + half, side="right")
        used |= hi > lo

    # ---- handovers: a track continues on the object of a track that ends just before.
    free = cand[~used[cand]]
    last = np.flatnonzero((g == p.end[g] - 1) & (g - p.start[g] >= 2))
    if len(free) and len(last):
        last = last[np.argsort(p.frame[g[last]], kind="stable")]
        lf = p.frame[g[last]]
        ff = p.frame[g[free]]
        lo = np.searchsorted(lf, ff - 2, side="left")
        hi = np.searchsorted(lf, ff - 1, side="right")
        cnt = hi - lo
        A = np.repeat(free, cnt)
        off = np.arange(int(cnt.sum())) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        E = last[np.repeat(lo, cnt) + off]
        ok = p.tid[g[A]] != p.tid[g[E]]
        A, E = A[ok], E[ok]
        if len(A):
            # Carry E's fit forward to A's boundary time (absolute frames).
            ga, ge = g[A], g[E]
            tb_a = (p.frame[ga - 1] + p.frame[ga]) / 2.0
            tb_e = (p.frame[ge - 1] + p.frame[ge]) / 2.0
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
                k, ta, te = int(p.frame[g[a]]), int(p.tid[g[a]]), int(p.tid[g[e]])
                gain = keep[j] - cross[j]
                score = float(np.clip(0.55 + 0.4 * (1 - cross[j] / keep[j]) * min(1.0, gain), 0, 0.95))
                findings.append(Finding(
                    kind="id_switch", track_ids=tuple(sorted((ta, te))), frames=(k, k),
                    box=box_tuple(p.xyxy[g[a]]), score=score,
                    message=(f"track {ta} at frame {frame_label(k, info)}: continues on the object of track {te}, "
                             f"which ends at frame {frame_label(p.frame[g[e]], info)}"),
                    metrics={"cost_kept": float(keep[j]), "cost_crossed": float(cross[j]),
                             "variant_swap": 0.0},
                ))

    # ---- jumps on single tracks.
    thr = np.where(quiet, config.occluded_jump_ratio, config.min_jump_ratio)
    jc = np.flatnonzero(wm.valid & (wm.jump >= thr) & (wm.jump * wm.size >= config.min_jump_px)
                        & ~used & ~wm.outlier)
    if len(jc):
        iou = _pred_iou(p, wm, jc)
        keep_j = iou < config.min_iou
        jc, iou = jc[keep_j], iou[keep_j]
        # A jump spreads over neighbouring boundaries; keep each cluster's largest.
        if len(jc):
            gj = g[jc]
            grp = np.concatenate([[True], (np.diff(gj) > half) | (np.diff(p.tid[gj]) != 0)])
            gid = np.cumsum(grp) - 1
            o = np.lexsort((-wm.jump[jc], gid))
            firsts = o[np.concatenate([[True], gid[o][1:] != gid[o][:-1]])]
            used[jc] = True  # every boundary of a reported jump's cluster is explained
            for q, io in zip(jc[firsts], iou[firsts]):
                i = int(g[q])
                t, k = int(p.tid[i]), int(p.frame[i])
                jr = float(wm.jump[q])
                score = 0.45 + 0.5 * float(np.clip((jr - config.min_jump_ratio) / 1.5, 0, 1))
                if quiet[q]:
                    score *= 0.5
                findings.append(Finding(
                    kind="id_switch", track_ids=(t,), frames=(k, k), box=box_tuple(p.xyxy[i]),
                    score=score,
                    message=(f"track {t} at frame {frame_label(k, info)}: continues {jr:.1f} object sizes away from "
                             f"its predicted position (IoU {io:.2f} with prediction)"),
                    metrics={"jump_ratio": jr, "iou_pred": float(io), "variant_swap": 0.0},
                ))
    findings += _drifts(p, wm, used, quiet, config, info)
    return sorted(findings, key=Finding.sort_key)


def _near_other(p: Prepared, rows: np.ndarray, half: int, max_sizes: float) -> np.ndarray:
    """Per row in ``rows``: another track's box centre within ``max_sizes`` object sizes of
    this row's on some frame within ``half`` frames (image coordinates).

    All pairs at once (``_common.rows_near_frames``): the cost follows the candidates.
    """
    if not len(rows):
        return np.zeros(0, dtype=bool)
    which, other, _ = rows_near_frames(p, p.frame[rows], half, half)
    mine = rows[which]
    box_m, box_o = p.xyxy[mine], p.xyxy[other]
    dx = 0.5 * ((box_o[:, 0] + box_o[:, 2]) - (box_m[:, 0] + box_m[:, 2]))
    dy = 0.5 * ((box_o[:, 1] + box_o[:, 3]) - (box_m[:, 1] + box_m[:, 3]))
    size = np.sqrt(np.clip((box_m[:, 2] - box_m[:, 0]) * (box_m[:, 3] - box_m[:, 1]), 1e-12, None))
    close = (np.hypot(dx, dy) < max_sizes * size) & (p.tid[other] != p.tid[mine])
    out = np.zeros(len(rows), dtype=bool)
    out[which[close]] = True
    return out


def _drifts(p: Prepared, wm: _Fits, used: np.ndarray, quiet: np.ndarray, config: IdSwitchConfig,
            info: SequenceInfo | None) -> list[Finding]:
    """Possible drifts: boundaries whose fits disagree but that no swap or jump explains.

    An identity rarely jumps on real tracker output: the box slides onto the overlapping
    person over a few frames, and each boundary disagrees only a little. One finding per
    cluster of such boundaries (within a window), at its largest disagreement, scored
    0.2..0.45 by it; only where another track is close (something to drift onto) and no
    occlusion flag explains the disagreement. ``used`` marks boundaries already explained;
    the swap and jump neighbourhoods are excluded through it and by the window below.
    """
    half = config.window_frames
    g = wm.rows
    # Occlusion flags explain a moderate disagreement (a box re-drawn around the visible
    # part); a drift needs none to show.
    cand = np.flatnonzero(wm.valid & ~used & ~wm.outlier & ~quiet
                          & (wm.jump >= config.drift_min_jump_ratio))
    if not len(cand):
        return []
    # One representative per cluster (same track, boundaries within a window): the largest.
    gc = g[cand]
    grp = np.concatenate([[True], (np.diff(gc) > half) | (np.diff(p.tid[gc]) != 0)])
    gid = np.cumsum(grp) - 1
    o = np.lexsort((-wm.jump[cand], gid))
    reps = cand[o[np.concatenate([[True], gid[o][1:] != gid[o][:-1]])]]
    # Not next to a reported swap or jump (the same event).
    explained = g[np.flatnonzero(used)]
    ex_key = np.sort(p.tid[explained].astype(np.float64) * 1e7 + p.frame[explained])
    key = p.tid[g[reps]].astype(np.float64) * 1e7 + p.frame[g[reps]]
    lo = np.searchsorted(ex_key, key - 2 * half, side="left")
    hi = np.searchsorted(ex_key, key + 2 * half, side="left")
    reps = reps[hi == lo]
    if not len(reps):
        return []
    # A box can only drift onto another object if one is there: keep boundaries with
    # another track's box within one object size on the boundary's frames (k - 1 .. k + 1).
    reps = reps[_near_other(p, g[reps], 1, 1.0)]
    out: list[Finding] = []
    for q in reps:
        i = int(g[q])
        t, k = int(p.tid[i]), int(p.frame[i])
        jr = float(wm.jump[q])
        score = 0.2 + 0.25 * float(np.clip((jr - config.drift_min_jump_ratio)
                                           / max(config.min_jump_ratio - config.drift_min_jump_ratio, 1e-6), 0, 1))
        out.append(Finding(
            kind="id_switch", track_ids=(t,), frames=(k, k),
            box=box_tuple(p.xyxy[i]), score=score,
            message=(f"track {t} at frame {frame_label(k, info)}: motion before and after disagrees by "
                     f"{jr:.2f} object sizes; the box may have drifted onto another object"),
            metrics={"jump_ratio": jr, "variant_swap": 0.0, "variant_drift": 1.0},
        ))
    return out
