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

import numpy as np

from cvat_extension.core.checks._common import Prepared
from cvat_extension.core.merge_apply import applicable_merges, apply_merges, merge_findings
from cvat_extension.core.merge_ends import Ends, stabilised, summarise_ends
from cvat_extension.core.merge_rivals import Rivals, colour_embedding, hellinger
from cvat_extension.core.merge_types import FrameGetter, Merge, MergeConfig, MergeResult
from cvat_extension.core.timebase import time_scale
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = [
    "FrameGetter",
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

#: Cost of a pair the gates rule out.
_INFEASIBLE = 1e9


def _pair_costs(ends: Ends, config: MergeConfig, frames: FrameGetter | None) -> np.ndarray:
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
                emb_last[i] = colour_embedding(frames, ends.frames_last[i], ends.boxes_last[i])
            if j not in emb_first:
                emb_first[j] = colour_embedding(frames, ends.frames_first[j], ends.boxes_first[j])
            ea, eb = emb_last[i], emb_first[j]
            if ea is None or eb is None:
                continue
            d = hellinger(ea, eb) / config.max_appearance_distance
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
    centre, wh = stabilised(vis, config.compensate_camera, prepared)
    ends = summarise_ends(vis, centre, wh, config)
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
    rivals = Rivals(vis, centre)
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
