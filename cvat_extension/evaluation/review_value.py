"""What the review queue is worth: event coverage against random frames, and a simulated reviewer.

**Frames an item shows.** A review item opens at ``frame`` and spans ``frames``; the plan
charges ``min(span, 3)`` frames per item (first, worst, last: ``core/review.py``). The
frames it shows are therefore ``{first, frame, last}`` and its cost is that charge.

**Coverage.** An event is covered when a shown frame lies within :data:`TOLERANCE` frames of
where it can be seen (:meth:`ErrorEvent.spans`: either side of a change of identity, any
frame of a false or missed run) and the item names one of its predicted tracks (or, for an
event without tracks, any item). The baseline draws as many random frames as the items
cost (:data:`COVERAGE_DRAWS` draws); a random frame covers every event within the tolerance,
whatever the tracks. Reported: both coverages, their ratio (``ratio_vs_random``), the share
of frames the items cost, and the ratio when the items' frames are judged like random ones,
every track on them (``frames_ratio_vs_random``: is the queue looking at the right frames?).

**Simulated reviewer.** Given a set of frames to look at, the reviewer fixes every box on
each of them and on the :data:`TOLERANCE` frames either side: a box matched to a person gets
that person's right track id (the predicted track that covers the person longest in a
one-to-one assignment, else a new id), a box matched to nobody is deleted. IDF1 (TrackEval's
Identity metric) before and after gives the gain. Budgets are in frames looked at:
``floor(fraction * frames)``. Policies at the same budget:

- ``queue``: the items of ``plan_review`` at that budget, highest first (the frames they show);
- ``queue_item_tracks``: the same frames, but only the item's own tracks are fixed;
- ``random``: that many random frames (mean of :data:`RANDOM_SEEDS` seeds);
- ``oracle``: knows every wrong box; greedily picks the frame whose window holds the most
  wrong boxes not yet fixed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from cvat_extension.core.findings import ReviewItem
from cvat_extension.evaluation.events import ErrorEvent
from cvat_extension.evaluation.matching import ClearMatches
from cvat_extension.metrics.mot_preprocess import MotSequenceData

__all__ = ["RANDOM_SEEDS", "TOLERANCE", "coverage", "item_frames", "reviewer_gains"]

TOLERANCE = 5
RANDOM_SEEDS = 5
COVERAGE_DRAWS = 20


def item_frames(item: ReviewItem) -> tuple[list[int], int]:
    """(frames the item shows, frames it costs), as ``plan_review`` counts them."""
    shown = sorted({item.frames[0], item.frame, item.frames[1]})
    return shown, min(item.frames[1] - item.frames[0] + 1, 3)


def _covers(shown: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Per event: some frame of ``shown`` (sorted) lies in [first - tol, last + tol]."""
    if not len(shown):
        return np.zeros(len(first), dtype=bool)
    k = np.searchsorted(shown, first - TOLERANCE)
    k = np.minimum(k, len(shown) - 1)
    return (shown[k] >= first - TOLERANCE) & (shown[k] <= last + TOLERANCE)


def coverage(items: Sequence[ReviewItem], events: Sequence[ErrorEvent], num_frames: int,
             seed: int = 0) -> dict[str, Any]:
    """Share of events the items cover vs random frames of the same cost."""
    cost = 0
    covered = np.zeros(len(events), dtype=bool)
    all_shown: list[int] = []
    spans = np.array([e.spans() for e in events], dtype=np.int64).reshape(-1, 2, 2)

    def seen(shown: np.ndarray) -> np.ndarray:
        return (_covers(shown, spans[:, 0, 0], spans[:, 0, 1])
                | _covers(shown, spans[:, 1, 0], spans[:, 1, 1]))

    for it in items:
        shown, c = item_frames(it)
        cost += c
        all_shown.extend(shown)
        ids = set(it.track_ids)
        mine = np.array([not e.pred_ids or bool(ids & set(e.pred_ids)) for e in events], dtype=bool)
        if mine.any():
            covered |= mine & seen(np.asarray(shown))
    rng = np.random.default_rng(seed)
    rand = []
    n = min(cost, num_frames)
    for _ in range(COVERAGE_DRAWS):
        frames = np.sort(rng.choice(num_frames, size=n, replace=False)) if n else np.zeros(0, np.int64)
        rand.append(int(seen(frames).sum()))
    ne = len(events)
    q = int(covered.sum())
    qf = int(seen(np.unique(np.asarray(all_shown, dtype=np.int64))).sum()) if ne else 0
    r = float(np.mean(rand)) if rand else 0.0
    return {"events": ne, "covered": q, "covered_frames_only": qf, "covered_random": r,
            "cost_frames": cost, "frames_share": cost / num_frames if num_frames else 0.0,
            "coverage": q / ne if ne else None, "coverage_random": r / ne if ne else None,
            "ratio_vs_random": (q / r) if r > 0 else None,
            "frames_ratio_vs_random": (qf / r) if r > 0 else None}


class _Reviewer:
    """Fixes of one sequence's tracker output on chosen frames, scored by TrackEval IDF1."""

    def __init__(self, seq: MotSequenceData, matches: ClearMatches) -> None:
        self.seq = seq
        self.matches = matches
        data = seq.data
        n_gt, n_tr = int(data["num_gt_ids"]), int(data["num_tracker_ids"])
        counts = np.zeros((max(n_gt, 1), max(n_tr, 1)))
        for gt_ids, tr_ids, gm in zip(data["gt_ids"], data["tracker_ids"], matches.gt_match):
            ok = gm >= 0
            np.add.at(counts, (gt_ids[ok], tr_ids[gm[ok]]), 1)
        rows, cols = linear_sum_assignment(-counts)
        right = np.arange(n_gt) + n_tr  # a new id per person without a track of its own
        good = counts[rows, cols] > 0
        right[rows[good]] = cols[good]
        self.right = right
        # Per frame: which boxes are wrong (false, or matched with a wrong id).
        self.wrong = np.zeros(seq.num_frames, dtype=np.int64)
        for t, (gt_ids, tr_ids, pm) in enumerate(zip(data["gt_ids"], data["tracker_ids"],
                                                     matches.pred_match)):
            ok = pm >= 0
            bad = ~ok
            bad[ok] = right[gt_ids[pm[ok]]] != tr_ids[ok]
            self.wrong[t] = int(bad.sum())
        self.base_idf1 = self.idf1({})

    def idf1(self, fixes: dict[int, set[int] | None]) -> float:
        """IDF1 after fixing frame ``t`` (all boxes, or only tracks in ``fixes[t]``)."""
        from cvat_extension.metrics.trackeval_adapter import trackeval_module

        data = self.seq.data
        tr_ids_all: list[np.ndarray] = []
        sims: list[np.ndarray] = []
        for t, (gt_ids, tr_ids, sim, pm) in enumerate(zip(data["gt_ids"], data["tracker_ids"],
                                                          data["similarity_scores"],
                                                          self.matches.pred_match)):
            if t not in fixes:
                tr_ids_all.append(tr_ids)
                sims.append(sim)
                continue
            only = fixes[t]
            touch = np.ones(len(tr_ids), dtype=bool) if only is None else np.isin(tr_ids, list(only))
            ok = pm >= 0
            new_ids = tr_ids.copy()
            fix_id = touch & ok
            new_ids[fix_id] = self.right[gt_ids[pm[fix_id]]]
            keep = ~(touch & ~ok)
            tr_ids_all.append(new_ids[keep])
            sims.append(sim[:, keep])
        uniq = np.unique(np.concatenate(tr_ids_all)) if tr_ids_all else np.zeros(0, np.int64)
        relabelled = [np.searchsorted(uniq, x) for x in tr_ids_all]
        new = dict(data)
        new.update(tracker_ids=relabelled, similarity_scores=sims, num_tracker_ids=len(uniq),
                   num_tracker_dets=int(sum(len(x) for x in relabelled)))
        te = trackeval_module()
        res = te.metrics.Identity({"PRINT_CONFIG": False}).eval_sequence(new)
        return float(res.get("IDF1", 0.0))

    def windows(self, centres: Sequence[int], only: Sequence[set[int] | None] | None = None
                ) -> dict[int, set[int] | None]:
        fixes: dict[int, set[int] | None] = {}
        n = self.seq.num_frames
        for k, c in enumerate(centres):
            tracks = None if only is None else only[k]
            for t in range(max(0, c - TOLERANCE), min(n, c + TOLERANCE + 1)):
                if tracks is None or fixes.get(t, set()) is None:
                    fixes[t] = None
                else:
                    fixes[t] = set(fixes.get(t) or set()) | tracks
        return fixes

    def oracle_centres(self, budget: int) -> list[int]:
        left = self.wrong.astype(np.float64).copy()
        kernel = np.ones(2 * TOLERANCE + 1)
        centres: list[int] = []
        for _ in range(budget):
            gain = np.convolve(left, kernel, mode="same")
            c = int(np.argmax(gain))
            if gain[c] <= 0:
                break
            centres.append(c)
            left[max(0, c - TOLERANCE):c + TOLERANCE + 1] = 0
        return centres


def _tracker_contig(seq: MotSequenceData, track_ids: Sequence[int]) -> set[int]:
    """Our predicted track ids → TrackEval's contiguous tracker ids."""
    ids = np.asarray(track_ids, dtype=np.int64)
    known = seq.pred_track_ids
    if not len(ids) or not len(known):
        return set()
    k = np.minimum(np.searchsorted(known, ids), len(known) - 1)
    return set(k[known[k] == ids].tolist())


def reviewer_gains(seq: MotSequenceData, matches: ClearMatches, items: Sequence[ReviewItem], *,
                   fraction: float) -> dict[str, Any]:
    """IDF1 gains (points) of the reviewer policies at ``fraction`` of frames (see module doc).

    ``items`` must be ``plan_review``'s output at that budget.
    """
    rev = _Reviewer(seq, matches)
    n = seq.num_frames
    budget = int(math.floor(fraction * n))
    centres: list[int] = []
    only: list[set[int] | None] = []
    cost = 0
    for it in items:
        shown, c = item_frames(it)
        cost += c
        ids = _tracker_contig(seq, it.track_ids)
        for f in shown:
            centres.append(f)
            only.append(ids)
    base = rev.base_idf1
    queue = rev.idf1(rev.windows(centres))
    queue_tracks = rev.idf1(rev.windows(centres, only))
    randoms = []
    for s in range(RANDOM_SEEDS):
        rng = np.random.default_rng(1000 + s)
        pick = rng.choice(n, size=min(budget, n), replace=False).tolist() if budget else []
        randoms.append(rev.idf1(rev.windows(pick)))
    oracle = rev.idf1(rev.windows(rev.oracle_centres(budget)))

    def pts(x: float) -> float:
        return round(100 * (x - base), 3)

    return {"fraction": fraction, "budget_frames": budget, "queue_cost_frames": cost,
            "idf1": round(100 * base, 3), "queue": pts(queue), "queue_item_tracks": pts(queue_tracks),
            "random": pts(float(np.mean(randoms))), "oracle": pts(oracle),
            "wrong_boxes": int(rev.wrong.sum())}
