"""Fragment merge: re-link tracks that one object left behind as several pieces.

Annotators (and trackers) lose an object during an occlusion or a missed stretch and start a
new track when it comes back: one object, two ids. This module links the end of one track to
the start of a later one when

- the gap between them is at most :attr:`MergeConfig.max_gap_frames` missing frames,
- the earlier track's motion, extrapolated at constant velocity across the gap, lands on the
  later track's first box (and the later track, extrapolated backwards, lands on the earlier
  one's last box),
- the box size agrees, and, when frames are given, the colour appearance agrees,
- the labels are equal and the two tracks never overlap in time.

Every end is matched against every start at once (min-cost assignment with a gating cost), so
one good candidate cannot be stolen by a greedy earlier choice; a track can be both an end and
a start, which gives chains ``A → B → C``.

The merged tracks follow CVAT's own merge rules (``cvat-interfaces.md`` §3.4, §3.10): the
pieces take the id of the first piece, there is one visible shape per frame (guaranteed since
pieces never overlap), and an ``outside`` row closes every visible run that a gap follows, so
CVAT does not interpolate across the gap.

Input tracks are per-frame boxes (expand CVAT keyframes first with
``core.keyframes.expand_keyframes``): the ends and starts of a keyframe track are not its
stored rows.

Pieces that CVAT itself cut at job boundaries are not fragments: stitch them first
(``core/stitch.py``); the readers do that for CVAT JSON.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.core.checks._common import Prepared, prepare
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.geometry import center_xyxy
from cvat_extension.core.timebase import frames_for, time_scale
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import ConfigError

__all__ = [
    "Merge",
    "MergeConfig",
    "MergeResult",
    "applicable_merges",
    "apply_merges",
    "merge_findings",
    "merge_fragments",
    "propose_merges",
]

logger = logging.getLogger(__name__)

#: Anything that returns an RGB uint8 (H, W, 3) image for a 0-based frame number.
FrameGetter = Callable[[int], npt.NDArray[np.uint8]]

_INFEASIBLE = 1e9


@dataclass(frozen=True, slots=True)
class MergeConfig:
    """Settings of the fragment merge.

    Attributes:
        max_gap_frames: most frames missing between a track's last box and the next track's
            first box. Raising it re-links longer occlusions but gives wrong pairs (someone
            leaves, someone else arrives nearby) more chances; lowering it is safer in crowds.
        history_frames: frames at each end whose boxes give the velocity (Theil-Sen: the
            median of pairwise slopes, so one re-drawn or occlusion-shrunk box does not tilt
            it). More frames smooth jitter of hand-drawn boxes; fewer follow recent turns.
        position_tolerance: allowed centre error at a gap of one frame, in units of box size
            (square root of the stabilised area). Lower to be stricter about where the object
            reappears; a tighter gate also removes rivals, which raises the margin of the
            right link (MOT17: 0.6 → 0.4 gave +3 points of recall and fewer wrong links).
        position_tolerance_per_frame: how much the allowed centre error grows per frame of
            gap, in box sizes; constant-velocity extrapolation gets worse the longer the gap.
        max_size_change: largest allowed width or height ratio between the two ends at a gap
            of one frame (1.5 = 50 % bigger or smaller).
        size_change_per_frame: extra allowed log size ratio per frame of gap (objects approach
            or recede during long occlusions).
        max_appearance_distance: largest allowed colour-histogram (Hellinger) distance, 0..1,
            between the crops at the two ends; used only when frames are given.
        appearance_frames: crops averaged at each end for the appearance embedding.
        appearance_search_frames: boxes searched at each end for well-visible crops. Fragments
            usually end in an occlusion, where the last boxes show the occluder; looking
            further back finds the object itself.
        min_appearance_visibility: only boxes at least this visible (MOT visibility, and not
            flagged occluded) give crops; without such boxes the appearance gate is skipped
            for that end rather than judged on an occluder's colours.
        compensate_camera: undo the camera's per-frame zoom and shift (estimated from the
            tracks present in both frames, used only where it stands out of their own
            spread: ``core.checks._common.prepare``) and extrapolate in those stabilised
            coordinates. A pan during the gap otherwise moves where the object reappears.
            On MOT17/20 ground truth (scripts/eval_merge_motgt.py) it raises re-linked
            injected splits on the moving-camera sequences (MOT17-05: 55 → 62 %, -10:
            60 → 82 %, -11: 58 → 78 %, -13: 63 → 85 %) at the cost of more clean-file
            merges on MOT17-05/-11/-13 (25 → 39 together); turn it off for a fixed camera.
        min_score: merges scoring below this are not applied. A score is
            ``exp(-cost / 2)`` times a rival margin from the *regret* (how much the best
            global assignment worsens without this link): a lone candidate, or one whose
            rivals are explained better elsewhere (the next piece of a chain), keeps its
            motion score; one of several similar candidates in a crowd scores near 0. A false
            merge silently corrupts an identity, a missed one leaves a visible fragment, so
            the default leans to precision: on MOT17/20 ground truth, 0.55 against 0.35
            removes 8 of 56 clean-file merges and 3 of 28 wrong links for 5 points of
            split recall (90 % → 85 %).
        rival_distance: another track whose box comes within this many object sizes of the
            earlier piece's last box or the later piece's first box during the gap is a
            *rival explanation*: the piece may be that person's, and trackers lose an identity
            exactly where people pass each other. A link with a rival is never applied, only
            reviewed (both candidates named); its review finding scores at most 0.45. With
            frames, a rival that looks clearly unlike both pieces is ruled out. Measured with
            ``scripts/eval_real_errors.py`` (ByteTrack/BoT-SORT output on 16 MOT17/MOT20
            sequence variants against the human GT; links that ``sync`` applies): without
            rivals 220 links applied, 92 joining two different people; at 1.0 sizes 27
            applied, 5 wrong; 2.0: 11 applied, 1 wrong; 2.5: 7 applied, 6 right, 0 wrong.
            The default is 2.5 because a wrong merge silently corrupts an identity while a
            missed one stays a review item. Lower it in sparse scenes to apply more merges.
        min_piece_frames: a link whose earlier or later piece has fewer visible frames than
            this (at 30 fps) is reviewed, never applied: short pieces of tracker output are
            mostly false tracks, and their motion says little.
    """

    max_gap_frames: int = 30
    history_frames: int = 8
    position_tolerance: float = 0.4
    position_tolerance_per_frame: float = 0.03
    max_size_change: float = 1.25
    size_change_per_frame: float = 0.01
    max_appearance_distance: float = 0.45
    appearance_frames: int = 3
    appearance_search_frames: int = 20
    min_appearance_visibility: float = 0.7
    compensate_camera: bool = True
    min_score: float = 0.55
    rival_distance: float = 2.5
    min_piece_frames: int = 5

    def __post_init__(self) -> None:
        if self.max_gap_frames < 0:
            raise ConfigError(f"MergeConfig.max_gap_frames must be >= 0, got {self.max_gap_frames}")
        if self.history_frames < 1:
            raise ConfigError(f"MergeConfig.history_frames must be >= 1, got {self.history_frames}")
        if self.appearance_frames < 1:
            raise ConfigError(
                f"MergeConfig.appearance_frames must be >= 1, got {self.appearance_frames}"
            )
        for name in ("position_tolerance", "max_size_change"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"MergeConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_size_change < 1:
            raise ConfigError(
                f"MergeConfig.max_size_change must be >= 1 (a ratio), got {self.max_size_change}"
            )
        for name in ("position_tolerance_per_frame", "size_change_per_frame"):
            if getattr(self, name) < 0:
                raise ConfigError(f"MergeConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.max_appearance_distance <= 1:
            raise ConfigError(
                "MergeConfig.max_appearance_distance must be in (0, 1], got "
                f"{self.max_appearance_distance}"
            )
        if self.appearance_search_frames < self.appearance_frames:
            raise ConfigError(
                "MergeConfig.appearance_search_frames must be >= appearance_frames, got "
                f"{self.appearance_search_frames} < {self.appearance_frames}"
            )
        if not 0 <= self.min_appearance_visibility <= 1:
            raise ConfigError(
                "MergeConfig.min_appearance_visibility must be in 0..1, got "
                f"{self.min_appearance_visibility}"
            )
        if not 0 <= self.min_score <= 1:
            raise ConfigError(f"MergeConfig.min_score must be in 0..1, got {self.min_score}")
        if self.rival_distance < 0:
            raise ConfigError(f"MergeConfig.rival_distance must be >= 0, got {self.rival_distance}")
        if self.min_piece_frames < 1:
            raise ConfigError(f"MergeConfig.min_piece_frames must be >= 1, got {self.min_piece_frames}")

    def for_time_scale(self, scale: float) -> MergeConfig:
        """These settings for frames ``scale`` reference intervals apart (``core/timebase.py``).

        The longest gap and the velocity history stay the same number of seconds; how much
        the position and size tolerances grow per frame of gap grows with the time a frame
        spans.
        """
        if scale == 1.0:
            return self
        return replace(
            self,
            max_gap_frames=frames_for(self.max_gap_frames, scale, 0),
            history_frames=frames_for(self.history_frames, scale, 3),
            min_piece_frames=frames_for(self.min_piece_frames, scale, 2),
            position_tolerance_per_frame=self.position_tolerance_per_frame * scale,
            size_change_per_frame=self.size_change_per_frame * scale,
        )


@dataclass(frozen=True, slots=True)
class Merge:
    """One link: track ``from_`` was appended to track ``into``.

    Attributes:
        into: id the merged object keeps (the first piece of its chain).
        from_: id of the later piece that was re-linked.
        gap_frames: frames missing between the previous piece's last box and ``from_``'s first.
        score: confidence of the link, 0..1.
        end_frame: last visible frame of the previous piece (internal, 0-based).
        start_frame: first visible frame of ``from_`` (internal, 0-based).
        previous: id of the piece directly before ``from_`` (``into`` unless in a chain).
        rivals: other tracks that pass close to either end during the gap (see
            :attr:`MergeConfig.rival_distance`): the pieces may belong to one of them.
        reason: why the link must be reviewed rather than applied (rivals, a short piece);
            empty when nothing speaks against applying it.
    """

    into: int
    from_: int
    gap_frames: int
    score: float
    end_frame: int = 0
    start_frame: int = 0
    previous: int = 0
    rivals: tuple[int, ...] = ()
    reason: str = ""

    @property
    def unambiguous(self) -> bool:
        """True when no rival explanation or short piece speaks against applying the link."""
        return not self.reason

    def applicable(self, min_score: float) -> bool:
        """Whether the link may be applied without a person: unambiguous and scoring at
        least ``min_score``. Everything else is a review item."""
        return self.unambiguous and self.score >= min_score

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form of the CLI contract: ``{"into", "from", "gap", "score"}``."""
        out: dict[str, Any] = {
            "into": int(self.into),
            "from": int(self.from_),
            "gap": int(self.gap_frames),
            "score": round(float(self.score), 4),
        }
        if self.reason:
            out["review_only"] = self.reason
        if self.rivals:
            out["rivals"] = [int(r) for r in self.rivals]
        return out


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Merged tracks, the links that made them, and the links left for review."""

    tracks: Tracks
    merges: tuple[Merge, ...]
    review: tuple[Merge, ...] = ()


@dataclass(frozen=True, slots=True)
class _Ends:
    """Per-track summaries of the first and last visible boxes, one row per track."""

    ids: np.ndarray  # (k,) int64
    label_first: np.ndarray  # (k,) int32
    label_last: np.ndarray  # (k,) int32
    first: np.ndarray  # (k,) int64 first visible frame
    last: np.ndarray  # (k,) int64 last visible frame
    length: np.ndarray  # (k,) int64 visible frames
    centre_first: np.ndarray  # (k, 2) stabilised centre of the first box
    centre_last: np.ndarray  # (k, 2) stabilised centre of the last box
    vel_first: np.ndarray  # (k, 2) centre velocity at the start, px/frame
    vel_last: np.ndarray  # (k, 2) centre velocity at the end, px/frame
    wh_first: np.ndarray  # (k, 2) stabilised width, height of the first box
    wh_last: np.ndarray  # (k, 2) stabilised width, height of the last box
    frames_first: tuple[np.ndarray, ...]  # frames used for appearance at the start
    frames_last: tuple[np.ndarray, ...]
    boxes_first: tuple[np.ndarray, ...]
    boxes_last: tuple[np.ndarray, ...]


def _velocity(frames: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Least-squares centre velocity (px/frame) of a few boxes; 0 for a single box."""
    if len(frames) < 2:
        return np.zeros(2)
    t = frames.astype(np.float64) - frames.mean()
    den = float(np.dot(t, t))
    if den <= 0:
        return np.zeros(2)
    return np.asarray((t[:, None] * (centers - centers.mean(axis=0))).sum(axis=0) / den, dtype=np.float64)


def _velocity_robust(frames: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """Theil-Sen centre velocity (px/frame): median of the slopes between box pairs.

    Hand-drawn boxes jump when an annotator re-draws a keyframe or shrinks the box to the
    visible part as the object walks into an occlusion; a least-squares fit follows such a
    jump, the median of pairwise slopes ignores it. Pairs less than half the window apart
    are left out (their slopes are mostly jitter).
    """
    n = len(frames)
    if n < 2:
        return np.zeros(2)
    if n < 4:
        return _velocity(frames, centers)
    i, j = np.triu_indices(n, k=max(1, n // 2))
    df = (frames[j] - frames[i]).astype(np.float64)
    slopes = (centers[j] - centers[i]) / df[:, None]
    return np.asarray(np.median(slopes, axis=0), dtype=np.float64)


def _stabilised(vis: Tracks, compensate: bool,
                prepared: Prepared | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per visible row: centre (n, 2) and width/height (n, 2) in stabilised coordinates.

    With ``compensate``, the per-frame camera similarity transform (zoom + shift) of the
    checks (:func:`cvat_extension.core.checks._common.prepare`: medians over the tracks
    present in both frames, kept only where the shift stands out of the tracks' own spread)
    is undone, so that a pan or a forward-moving camera during a gap does not move where
    the object reappears. Without it, image coordinates. ``prepared`` is the checks'
    ``prepare`` of the tracks ``vis`` was taken from (the same visible rows, in order).
    """
    wh = np.clip(vis.xyxy[:, 2:] - vis.xyxy[:, :2], 1e-3, None)
    if not compensate or len(vis) < 2:
        return center_xyxy(vis.xyxy), wh
    p = prepared if prepared is not None else prepare(vis)
    # prepare keeps every row of an all-visible Tracks, in the same order.
    zoom = np.divide(np.sqrt(wh[:, 0] * wh[:, 1]), p.size.astype(np.float64))
    return np.c_[p.cx, p.cy], wh / zoom[:, None]


def _summarise(vis: Tracks, centre: np.ndarray, wh: np.ndarray, config: MergeConfig) -> _Ends:
    cf: list[np.ndarray] = []
    cl: list[np.ndarray] = []
    ids, lf, ll, first, last, length, vf, vl = ([] for _ in range(8))
    whf: list[np.ndarray] = []
    whl: list[np.ndarray] = []
    ff: list[np.ndarray] = []
    fl: list[np.ndarray] = []
    xf: list[np.ndarray] = []
    xl: list[np.ndarray] = []
    h = config.history_frames
    na = config.appearance_frames
    ns = config.appearance_search_frames
    starts = vis.track_starts.tolist()
    for a, b in zip(starts[:-1], starts[1:]):
        # Array slices, not ``vis[a:b]``: a Tracks per track re-validates its rows, which
        # costs more than the summary itself.
        tid = int(vis.track_id[a])
        fr, box = vis.frame[a:b], vis.xyxy[a:b]
        c = centre[a:b]
        size = wh[a:b]
        cf.append(c[0])
        cl.append(c[-1])
        whf.append(size[0])
        whl.append(size[-1])
        clear = (vis.visibility[a:b] >= config.min_appearance_visibility) & ~vis.occluded[a:b]
        head = np.flatnonzero(clear[:ns])[:na]
        tail_start = max(len(fr) - ns, 0)
        tail = tail_start + np.flatnonzero(clear[tail_start:])[-na:]
        ids.append(tid)
        lf.append(vis.label[a])
        ll.append(vis.label[b - 1])
        first.append(fr[0])
        last.append(fr[-1])
        length.append(len(fr))
        # Velocity from the boxes within the last ``h`` frames (not rows: a track with
        # holes must not reach back to a stale stretch).
        head_v = fr <= fr[0] + h - 1
        tail_v = fr >= fr[-1] - h + 1
        vf.append(_velocity_robust(fr[head_v], c[head_v]))
        vl.append(_velocity_robust(fr[tail_v], c[tail_v]))
        ff.append(fr[head])
        fl.append(fr[tail])
        xf.append(box[head])
        xl.append(box[tail])
    k = len(ids)
    return _Ends(
        ids=np.asarray(ids, dtype=np.int64),
        label_first=np.asarray(lf, dtype=np.int32),
        label_last=np.asarray(ll, dtype=np.int32),
        first=np.asarray(first, dtype=np.int64),
        last=np.asarray(last, dtype=np.int64),
        length=np.asarray(length, dtype=np.int64),
        centre_first=np.asarray(cf, dtype=np.float64).reshape(k, 2),
        centre_last=np.asarray(cl, dtype=np.float64).reshape(k, 2),
        vel_first=np.asarray(vf, dtype=np.float64).reshape(k, 2),
        vel_last=np.asarray(vl, dtype=np.float64).reshape(k, 2),
        wh_first=np.asarray(whf, dtype=np.float64).reshape(k, 2),
        wh_last=np.asarray(whl, dtype=np.float64).reshape(k, 2),
        frames_first=tuple(ff),
        frames_last=tuple(fl),
        boxes_first=tuple(xf),
        boxes_last=tuple(xl),
    )


def _colour_embedding(
    frames: FrameGetter, frame_numbers: np.ndarray, boxes: np.ndarray, bins: int = 6
) -> np.ndarray | None:
    """Joint RGB histogram of the inner part of the crops, L1-normalised; None if no crop.

    The inner 60 % (width) × 80 % (height) of each box is used: box edges hold background.
    """
    hist = np.zeros(bins**3, dtype=np.float64)
    for f, b in zip(frame_numbers, boxes):
        img = frames(int(f))
        hgt, wid = img.shape[:2]
        x1, y1, x2, y2 = (float(v) for v in b)
        dx, dy = 0.2 * (x2 - x1), 0.1 * (y2 - y1)
        xa, xb = int(max(0, math.floor(x1 + dx))), int(min(wid, math.ceil(x2 - dx)))
        ya, yb = int(max(0, math.floor(y1 + dy))), int(min(hgt, math.ceil(y2 - dy)))
        if xb <= xa or yb <= ya:
            continue
        crop = np.asarray(img[ya:yb, xa:xb, :3], dtype=np.int64) * bins // 256
        codes = (crop[..., 0] * bins + crop[..., 1]) * bins + crop[..., 2]
        hist += np.bincount(codes.reshape(-1), minlength=bins**3)
    total = hist.sum()
    return hist / total if total > 0 else None


def _hellinger(a: np.ndarray, b: np.ndarray) -> float:
    """Hellinger distance of two L1-normalised histograms, 0 (same) .. 1 (disjoint)."""
    bc = float(np.sqrt(a * b).sum())
    return math.sqrt(max(0.0, 1.0 - bc))


#: Score factor of a review-only link's finding: at most 0.45, below the confident 0.5.
_REVIEW_ONLY_FACTOR = 0.45

#: How much further (Hellinger) a rival must look from both pieces than they from each other.
_APPEARANCE_MARGIN = 0.1


class _Rivals:
    """Finds other tracks passing close to a link's two ends during its gap."""

    def __init__(self, vis: Tracks, centre: np.ndarray) -> None:
        order = np.argsort(vis.frame, kind="stable")
        self.frame = vis.frame[order]
        self.tid = vis.track_id[order]
        self.centre = centre[order]
        self.vis = vis

    def _look(self, tid: int, frame: float, frames: FrameGetter, config: MergeConfig) -> np.ndarray | None:
        """Colour embedding of a track's clear boxes nearest in time to ``frame``.

        Fragments end in occlusions, so the boxes right at an end are often hidden: the
        whole track is searched for the nearest well-visible boxes.
        """
        rows = self.vis.track(tid)
        clear = rows[(rows.visibility >= config.min_appearance_visibility) & ~rows.occluded]
        if not len(clear):
            return None
        pick = np.argsort(np.abs(clear.frame - frame), kind="stable")[: config.appearance_frames]
        return _colour_embedding(frames, clear.frame[pick], clear.xyxy[pick])

    def look_different(self, ends: _Ends, i: int, j: int, near: tuple[int, ...],
                       frames: FrameGetter, config: MergeConfig) -> bool:
        """With pixels: every rival looks clearly unlike both pieces, which look alike.

        A rival is ruled out when its colour distance to each piece exceeds the pieces'
        distance to each other by ``_APPEARANCE_MARGIN``: the pieces then share a look the
        rival does not have. A piece or rival without a usable crop keeps the link ambiguous.
        """
        mid = 0.5 * float(ends.last[i] + ends.first[j])
        ea = self._look(int(ends.ids[i]), mid, frames, config)
        eb = self._look(int(ends.ids[j]), mid, frames, config)
        if ea is None or eb is None:
            return False
        own = _hellinger(ea, eb)
        for r in near:
            er = self._look(r, mid, frames, config)
            if er is None or min(_hellinger(ea, er), _hellinger(eb, er)) < own + _APPEARANCE_MARGIN:
                return False
        return True

    def near(self, ends: _Ends, i: int, j: int, distance: float) -> tuple[int, ...]:
        """Tracks (not i's or j's) with a box within ``distance`` sizes of track i's last
        box or track j's first box on a frame from i's last to j's first (stabilised)."""
        a = int(np.searchsorted(self.frame, ends.last[i], side="left"))
        b = int(np.searchsorted(self.frame, ends.first[j], side="right"))
        tid = self.tid[a:b]
        other = (tid != ends.ids[i]) & (tid != ends.ids[j])
        if not other.any():
            return ()
        c = self.centre[a:b][other]
        size_a = math.sqrt(float(np.prod(ends.wh_last[i])))
        size_b = math.sqrt(float(np.prod(ends.wh_first[j])))
        d = np.minimum(np.hypot(*(c - ends.centre_last[i]).T) / size_a,
                       np.hypot(*(c - ends.centre_first[j]).T) / size_b)
        return tuple(sorted({int(t) for t in tid[other][d < distance]}))


def _pair_costs(ends: _Ends, config: MergeConfig, frames: FrameGetter | None) -> np.ndarray:
    """(k, k) gated cost of linking the end of track i to the start of track j."""
    dt = (ends.first[None, :] - ends.last[:, None]).astype(np.float64)
    gap = dt - 1
    feasible = (dt >= 1) & (gap <= config.max_gap_frames)
    feasible &= ends.label_last[:, None] == ends.label_first[None, :]
    np.fill_diagonal(feasible, False)

    c_last = ends.centre_last
    c_first = ends.centre_first
    pred_fwd = c_last[:, None, :] + ends.vel_last[:, None, :] * dt[..., None]
    pred_bwd = c_first[None, :, :] - ends.vel_first[None, :, :] * dt[..., None]
    err_fwd = np.linalg.norm(pred_fwd - c_first[None, :, :], axis=-1)
    err_bwd = np.linalg.norm(pred_bwd - c_last[:, None, :], axis=-1)
    scale = np.sqrt(
        0.5 * (np.prod(ends.wh_last, axis=1)[:, None] + np.prod(ends.wh_first, axis=1)[None, :])
    )
    radius = scale * (config.position_tolerance + config.position_tolerance_per_frame * dt)
    motion = np.divide(
        0.5 * (err_fwd + err_bwd), radius, out=np.full_like(radius, np.inf), where=radius > 0
    )

    wh_last, wh_first = ends.wh_last, ends.wh_first
    log_ratio = np.abs(np.log(wh_first[None, :, :] / wh_last[:, None, :])).max(axis=-1)
    size_tol = math.log(config.max_size_change) + config.size_change_per_frame * dt
    size = log_ratio / size_tol

    cost = motion**2 + size**2
    feasible &= (motion <= 1.0) & (size <= 1.0)
    appearance = np.zeros_like(cost)
    if frames is not None and feasible.any():
        rows, cols = np.nonzero(feasible)
        emb_last: dict[int, np.ndarray | None] = {}
        emb_first: dict[int, np.ndarray | None] = {}
        for i, j in zip(rows.tolist(), cols.tolist()):
            if i not in emb_last:
                emb_last[i] = _colour_embedding(frames, ends.frames_last[i], ends.boxes_last[i])
            if j not in emb_first:
                emb_first[j] = _colour_embedding(frames, ends.frames_first[j], ends.boxes_first[j])
            ea, eb = emb_last[i], emb_first[j]
            if ea is None or eb is None:
                continue
            d = _hellinger(ea, eb) / config.max_appearance_distance
            appearance[i, j] = d
        feasible &= appearance <= 1.0
        cost = cost + appearance**2
    return np.where(feasible, cost, _INFEASIBLE)


_UNLINKED = 1.0  # cost of leaving an end or a start unlinked (a link must cost < 2)


def _assign(sub: np.ndarray) -> tuple[float, list[tuple[int, int]]]:
    """Min-cost links between ends (rows) and starts (columns), each may stay unlinked.

    The matrix is padded with an "unlinked" option per row and per column so that the
    solver never has to take an infeasible pair. Since :data:`_UNLINKED` exceeds every
    gated link cost, as many feasible links as possible are made, then the cheapest set.
    Returns the total cost and the chosen (row, column) pairs.
    """
    n, m = sub.shape
    big = np.full((n + m, m + n), _INFEASIBLE)
    big[:n, :m] = sub
    big[np.arange(n), m + np.arange(n)] = _UNLINKED
    big[n + np.arange(m), np.arange(m)] = _UNLINKED
    big[n:, m:] = 0.0
    from scipy.optimize import linear_sum_assignment  # ~0.3-0.6 s to import: only when needed

    r, c = linear_sum_assignment(big)
    total = float(big[r, c].sum())
    pairs = [(int(a), int(b)) for a, b in zip(r, c) if a < n and b < m and big[a, b] < _INFEASIBLE]
    return total, pairs


def propose_merges(
    tracks: Tracks,
    *,
    config: MergeConfig | None = None,
    frames: FrameGetter | None = None,
    info: SequenceInfo | None = None,
    prepared: Prepared | None = None,
) -> list[Merge]:
    """Find fragment links without changing the tracks.

    Args:
        tracks: per-frame boxes (expanded keyframes), CVAT job-boundary pieces stitched.
        config: thresholds; :class:`MergeConfig` defaults when None.
        frames: optional frame source (0-based frame → RGB uint8) for the appearance gate.
        info: the sequence; its ``fps`` scales the per-frame settings
            (:meth:`MergeConfig.for_time_scale`), ``config`` holding the 30 fps values.
        prepared: the checks' ``prepare(tracks)`` when the caller has it (``run_qa``):
            the camera-compensated coordinates are then not computed a second time.

    Returns:
        Merges sorted by (into, start_frame); ``into`` is the first piece of each chain.

    >>> f = np.r_[0:6, 8:14]  # frames 6 and 7 missing; the object moves 2 px per frame
    >>> t = Tracks.from_columns(frame=f, track_id=np.repeat([1, 2], 6),
    ...     xyxy=np.c_[2 * f, 0 * f, 2 * f + 10, 0 * f + 20])
    >>> [m.to_json() for m in propose_merges(t)]
    [{'into': 1, 'from': 2, 'gap': 2, 'score': 1.0}]
    >>> [m.to_json()["review_only"] for m in propose_merges(t[t.frame != 13][2:])]
    ['a piece has fewer than 5 frames']
    """
    config = (config or MergeConfig()).for_time_scale(time_scale(info.fps) if info else 1.0)
    if len(tracks) == 0:
        return []
    vis = tracks.visible()
    centre, wh = _stabilised(vis, config.compensate_camera, prepared)
    ends = _summarise(vis, centre, wh, config)
    if len(ends.ids) < 2:
        return []
    cost = _pair_costs(ends, config, frames)
    # Only rows/columns with at least one feasible pair enter the assignment: keeps the
    # problem small on long sequences with hundreds of tracks.
    live_rows = np.flatnonzero((cost < _INFEASIBLE).any(axis=1))
    live_cols = np.flatnonzero((cost < _INFEASIBLE).any(axis=0))
    if len(live_rows) == 0:
        return []
    sub = cost[np.ix_(live_rows, live_cols)]
    total, chosen = _assign(sub)
    rivals = _Rivals(vis, centre)
    # end index -> (start index, score, gap, rivals, reason)
    links: dict[int, tuple[int, float, int, tuple[int, ...], str]] = {}
    for ri, ci in chosen:
        i, j = int(live_rows[ri]), int(live_cols[ci])
        c = float(sub[ri, ci])
        # Regret: how much the best assignment worsens without this link. A link with a
        # rival explanation nearly as cheap (this end to another free start, or this start
        # to another free end) is a coin toss in a crowd, and its score says so; a rival
        # already explained better elsewhere (the next piece of a chain) costs nothing.
        forbidden = sub.copy()
        forbidden[ri, ci] = _INFEASIBLE
        regret = _assign(forbidden)[0] - total
        # A lone candidate's regret is leaving both pieces unlinked (2 * _UNLINKED - c):
        # margin 1. A rival exactly as good: margin 0.
        lone = 1.0 - math.exp(-0.5 * max(2 * _UNLINKED - c, 1e-9))
        margin = min(1.0, (1.0 - math.exp(-0.5 * max(regret, 0.0))) / lone)
        score = math.exp(-0.5 * c) * margin
        # Rival explanations the assignment cannot see: a track that is there during the
        # gap (people passing each other is where trackers lose identities), or a piece too
        # short to say where it goes. Such links are reviewed, never applied.
        near = rivals.near(ends, i, j, config.rival_distance)
        if near and frames is not None and rivals.look_different(ends, i, j, near, frames, config):
            near = ()  # the pixels rule every rival out
        reason = ""
        if near:
            reason = "track(s) " + ", ".join(map(str, near)) + " pass close by during the gap"
        elif min(ends.length[i], ends.length[j]) < config.min_piece_frames:
            reason = f"a piece has fewer than {config.min_piece_frames} frames"
        if score < config.min_score:
            continue
        links[i] = (j, score, int(ends.first[j] - ends.last[i] - 1), near, reason)
    # Follow chains from their roots (pieces that are nobody's successor).
    successors = {link[0] for link in links.values()}
    merges: list[Merge] = []
    for i in sorted(links, key=lambda x: int(ends.last[x])):
        if i in successors:
            continue
        root = int(ends.ids[i])
        cur = i
        while cur in links:
            j, score, gap, near, reason = links[cur]
            merges.append(
                Merge(
                    into=root,
                    from_=int(ends.ids[j]),
                    gap_frames=gap,
                    score=score,
                    end_frame=int(ends.last[cur]),
                    start_frame=int(ends.first[j]),
                    previous=int(ends.ids[cur]),
                    rivals=near,
                    reason=reason,
                )
            )
            cur = j
    merges.sort(key=lambda m: (m.into, m.start_frame))
    logger.debug("proposed %d merges among %d tracks", len(merges), len(ends.ids))
    return merges


def applicable_merges(merges: list[Merge] | tuple[Merge, ...], min_score: float) -> list[Merge]:
    """The links that may be applied without a person, chains re-rooted over them.

    A link is applied only when :meth:`Merge.applicable` (unambiguous, scoring at least
    ``min_score``); the rest stay review items. Dropping a link in the middle of a chain
    ``A → B → C`` splits it, so ``into`` is recomputed over the kept links: with ``A → B``
    reviewed, ``B → C`` merges into ``B``, not ``A``.

    >>> ms = [Merge(1, 2, 3, 0.9, 10, 14, 1, reason="track 5 passes close by"),
    ...       Merge(1, 3, 2, 0.9, 20, 23, 2)]
    >>> [(m.into, m.from_) for m in applicable_merges(ms, 0.5)]
    [(2, 3)]
    """
    kept = [m for m in merges if m.applicable(min_score)]
    into_of = {m.from_: m.previous for m in kept}

    def root(tid: int) -> int:
        while tid in into_of:
            tid = into_of[tid]
        return tid

    out = [replace(m, into=root(m.previous)) for m in kept]
    return sorted(out, key=lambda m: (m.into, m.start_frame))


def apply_merges(tracks: Tracks, merges: list[Merge] | tuple[Merge, ...]) -> Tracks:
    """Relabel merged pieces to their chain's id and place CVAT outside rows at the gaps.

    For each merged track: outside rows of the pieces are dropped, an outside row is added on
    the frame after every visible run that a gap follows (CVAT would otherwise interpolate
    across the gap), and the last piece's own trailing outside rows are kept (a track from a
    CVAT export ends with one; a MOT track has none).
    """
    if not merges:
        return tracks
    mapping = {m.from_: m.into for m in merges}
    new_id = tracks.track_id.copy()
    for src, dst in mapping.items():
        new_id[tracks.track_id == src] = dst
    relabelled = tracks.with_columns(track_id=new_id)
    merged_ids = sorted(set(mapping.values()))
    last_piece: dict[int, int] = {}
    for m in sorted(merges, key=lambda m: m.start_frame):
        last_piece[m.into] = m.from_
    keep = np.ones(len(relabelled), dtype=bool)
    added: list[Tracks] = []
    # Each relabelled row's original id (relabelled rows are sorted by (new id, frame)).
    orig_id = tracks.track_id[np.lexsort((tracks.frame, new_id))]
    for tid in merged_ids:
        a, b = np.searchsorted(relabelled.track_id, [tid, tid + 1])
        rows = relabelled[slice(int(a), int(b))]
        vis_mask = ~rows.outside
        vis_frames = rows.frame[vis_mask]
        last_vis = int(vis_frames.max())
        tail_src = last_piece[tid]
        seg_orig = orig_id[a:b]
        # Keep only visible rows, plus the last piece's own trailing outside rows.
        drop = rows.outside & ~((seg_orig == tail_src) & (rows.frame > last_vis))
        keep[a:b] &= ~drop
        # Outside rows after every visible run followed by a gap.
        run_end = np.flatnonzero(np.diff(vis_frames) > 1)
        if len(run_end):
            vis_rows = rows[vis_mask]
            closing = vis_rows[run_end]
            added.append(
                closing.with_columns(
                    frame=closing.frame + 1,
                    outside=np.ones(len(closing), dtype=bool),
                    keyframe=np.ones(len(closing), dtype=bool),
                )
            )
    return Tracks.concat([relabelled[keep], *added]) if added else relabelled[keep]


def merge_fragments(
    tracks: Tracks,
    *,
    config: MergeConfig | None = None,
    frames: FrameGetter | None = None,
    info: SequenceInfo | None = None,
) -> MergeResult:
    """Propose fragment links and apply the unambiguous ones; see :func:`propose_merges`.

    ``MergeResult.merges`` holds the applied links (:func:`applicable_merges` at the
    config's ``min_score``); ``MergeResult.review`` the proposed links left for a person.

    >>> f = np.r_[0:5, 7:12]  # frames 5 and 6 missing
    >>> t = Tracks.from_columns(frame=f, track_id=np.repeat([1, 2], 5),
    ...     xyxy=np.c_[f, 0 * f, f + 10, 0 * f + 20])
    >>> r = merge_fragments(t)
    >>> r.tracks.track_id.tolist(), r.tracks.frame.tolist(), r.tracks.outside.nonzero()[0].tolist()
    ([1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11], [5])
    """
    proposed = propose_merges(tracks, config=config, frames=frames, info=info)
    merges = applicable_merges(proposed, (config or MergeConfig()).min_score)
    applied = {(m.previous, m.from_) for m in merges}
    review = tuple(m for m in proposed if (m.previous, m.from_) not in applied)
    return MergeResult(tracks=apply_merges(tracks, merges), merges=tuple(merges), review=review)


def merge_findings(
    merges: list[Merge] | tuple[Merge, ...], tracks: Tracks, *, frame_base: int = 0
) -> list[Finding]:
    """Proposed merges as ``fragment`` findings, so that they enter review plans and reports.

    Messages show frames in the user's numbering (``frame_base``, as in
    ``SequenceInfo.frame_base``); ``Finding.frames`` stay internal.

    Each finding names the piece before and the piece after (``track_ids``), spans from
    the last frame of the first to the first frame of the second, and points at the first
    box of the later piece (where a reviewer confirms the identity). A review-only link
    (:attr:`Merge.reason`) scores 0.45 of its motion score and its message names the rivals.
    """
    out = []
    for m in merges:
        rows = tracks.track(m.from_)
        rows = rows[(rows.frame == m.start_frame) & ~rows.outside]
        box = tuple(float(v) for v in rows.xyxy[0]) if len(rows) else None
        chain = "" if m.previous == m.into else f" (chain of track {m.into})"
        # A link with a rival explanation is about as likely someone else's: under half the
        # confidence, so a review-only link never counts as a confident finding.
        score = m.score * (_REVIEW_ONLY_FACTOR if m.reason else 1.0)
        why = f" if they are one object; not merged automatically: {m.reason}" if m.reason else ""
        out.append(
            Finding(
                kind="fragment",
                track_ids=(m.previous, m.from_),
                frames=(m.end_frame, m.start_frame),
                box=box,  # type: ignore[arg-type]
                score=float(min(1.0, max(0.0, score))),
                message=(
                    f"track {m.previous} → {m.from_} at frame {frame_label(m.start_frame, frame_base)}: "
                    f"track {m.previous} ends at frame {frame_label(m.end_frame, frame_base)}, "
                    f"track {m.from_} starts "
                    f"{m.gap_frames + 1} frames later where its motion leads{chain}; "
                    f"merge {m.from_} into {m.into}{why}"
                ),
                metrics={"gap_frames": float(m.gap_frames), "score": float(m.score),
                         "rivals": float(len(m.rivals)), "review_only": float(bool(m.reason))},
            )
        )
    return sorted(out, key=Finding.sort_key)
