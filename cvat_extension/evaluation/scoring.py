"""Findings scored against real error events: recall, precision, average precision.

A finding **hits** an event when

- the finding's frame range, widened by :data:`TOLERANCE` frames on each side (a check may
  fire a few frames before or after the frame a matcher calls the switch), reaches where
  the event can be seen: for a change of identity (``id_jump``, ``gt_switch``,
  ``fragment``) the last frame before or the first frame after the change, for a run
  (``fp_run``, ``short_false_track``, ``missed_run``) any frame of it
  (:meth:`ErrorEvent.spans`), and
- the finding names one of the event's predicted tracks; an event without predicted tracks
  (``missed_run``) is hit by a finding without tracks (``missing_object``) whose box overlaps
  the person's box (IoU ≥ :data:`MISSED_IOU`) on the finding's first frame.

Measures (``CONFIDENT`` = score ≥ 0.5, the summary's ``confident_score``):

- recall of an event kind: share of its events hit by at least one finding (confident ones /
  any score), overall and by each check kind;
- precision of confident findings: share of them that hit at least one event of any kind
  (several findings on one error all count as true: a reviewer fixes it once);
- AP: findings ranked by score (ties as one step); after each step ``P`` = share of findings
  so far that hit an event, ``R`` = share of events hit so far; ``AP = Σ (R_k − R_{k−1}) P_k``.

Findings about boxes the MOTChallenge preprocessing removes (distractors, ignore regions)
cannot be judged and are left out of all three (:func:`judgeable`).

Where events are dense (low frame rates, crowds) a finding can hit one by chance.
:func:`chance_level` measures that: the same confident findings, each moved to a random
frame of its own track's lifetime, scored the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.geometry import iou_xyxy_batch
from cvat_extension.core.tracks import Tracks
from cvat_extension.evaluation.events import EVENT_KINDS, ErrorEvent, MatchTable

__all__ = ["CONFIDENT", "MISSED_IOU", "TOLERANCE", "average_precision", "chance_level", "hit_matrix",
           "judgeable", "score_findings"]

TOLERANCE = 5
CONFIDENT = 0.5
MISSED_IOU = 0.3


def judgeable(findings: Sequence[Finding], tab: MatchTable, unscored: Tracks,
              tolerance: int = TOLERANCE) -> list[Finding]:
    """The findings the events can judge.

    MOTChallenge preprocessing removes predicted boxes on distractors and ignore regions (a
    seated person, a reflection): no event can exist there, so a finding about a track with
    no kept box within ``tolerance`` frames of it, or a trackless finding whose box lies on
    an unscored ground-truth box (``unscored``, IoU >= 0.5), is neither right nor wrong and
    is left out of precision, recall and AP. Without this, checks were charged with false
    alarms on tracks the evaluation itself ignores.
    """
    kept = {int(t): tab.p_frame[tab.p_track == t] for t in np.unique(tab.p_track)}
    out = []
    for f in findings:
        if not f.track_ids:
            there = unscored[unscored.frame == f.frames[0]]
            if f.box is not None and len(there) and \
                    iou_xyxy_batch(np.asarray(f.box, dtype=float)[None], there.xyxy).max() >= 0.5:
                continue
            out.append(f)
            continue
        lo, hi = f.frames[0] - tolerance, f.frames[1] + tolerance
        near = [kept[t] for t in f.track_ids if t in kept]
        if any(((fr >= lo) & (fr <= hi)).any() for fr in near):
            out.append(f)
    return out


def hit_matrix(findings: Sequence[Finding], events: Sequence[ErrorEvent],
               tolerance: int = TOLERANCE) -> np.ndarray:
    """(findings × events) bool: finding i hits event j (see the module docstring)."""
    nf, ne = len(findings), len(events)
    hits = np.zeros((nf, ne), dtype=bool)
    if not nf or not ne:
        return hits
    spans = np.array([e.spans() for e in events], dtype=np.int64)  # (events, 2, 2)
    lo, hi = spans[:, :, 0] - tolerance, spans[:, :, 1] + tolerance
    width = max(1, max(len(e.pred_ids) for e in events))
    e_ids = np.full((ne, width), np.iinfo(np.int64).min, dtype=np.int64)
    for j, e in enumerate(events):
        e_ids[j, :len(e.pred_ids)] = e.pred_ids
    trackless = np.array([not e.pred_ids for e in events])
    for i, f in enumerate(findings):
        near = ((f.frames[0] <= hi) & (f.frames[1] >= lo)).any(axis=1)
        if not near.any():
            continue
        if f.track_ids:
            hits[i] = near & np.isin(e_ids, f.track_ids).any(axis=1)
        elif f.box is not None:
            for col in np.flatnonzero(near & trackless).tolist():
                ev = events[col]
                assert ev.boxes is not None
                k = int(np.clip(f.frames[0] - ev.frames[0], 0, len(ev.boxes) - 1))
                iou = iou_xyxy_batch(np.asarray(f.box, dtype=float)[None], ev.boxes[k][None])[0, 0]
                hits[i, col] = iou >= MISSED_IOU
    return hits


def average_precision(scores: np.ndarray, hits: np.ndarray) -> float:
    """AP of findings ranked by ``scores`` against events (``hits``: findings × events)."""
    ne = hits.shape[1]
    if not ne or not len(scores):
        return 0.0
    order = np.argsort(-scores, kind="stable")
    s, h = scores[order], hits[order]
    true = np.asarray(h.any(axis=1))
    covered = np.zeros(ne, dtype=bool)
    ap, prev_r, k = 0.0, 0.0, 0
    n_true = 0
    while k < len(s):
        j = k
        while j < len(s) and s[j] == s[k]:
            j += 1
        covered |= h[k:j].any(axis=0)
        n_true += int(true[k:j].sum())
        r = covered.sum() / ne
        ap += (r - prev_r) * (n_true / j)
        prev_r = r
        k = j
    return float(ap)


def _recall(hits: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> list[int]:
    """[events hit, events] for the events ``cols`` by the findings ``rows``."""
    total = int(cols.sum())
    if not total or not rows.any():
        return [0, total]
    return [int(hits[np.ix_(rows, cols)].any(axis=0).sum()), total]


def score_findings(findings: Sequence[Finding], events: Sequence[ErrorEvent]) -> dict[str, Any]:
    """Recall per event kind, precision, AP, overall and per check kind (JSON-ready).

    Recalls are ``[events hit, events]`` pairs so that sequences can be pooled.
    """
    hits = hit_matrix(findings, events)
    scores = np.array([f.score for f in findings], dtype=float)
    conf = scores >= CONFIDENT
    anyf = np.ones(len(findings), dtype=bool)
    ev_kind = np.array([e.kind for e in events])
    f_kind = np.array([f.kind for f in findings])
    true = np.asarray(hits.any(axis=1)) if len(events) else np.zeros(len(findings), dtype=bool)
    out: dict[str, Any] = {
        "events": {k: int((ev_kind == k).sum()) for k in EVENT_KINDS},
        "findings": len(findings),
        "confident_findings": int(conf.sum()),
        "confident_true": int((conf & true).sum()),
        "precision_confident": float(true[conf].mean()) if conf.any() else None,
        "precision_any": float(true.mean()) if len(findings) else None,
        "ap": average_precision(scores, hits),
        "recall_confident": {k: _recall(hits, conf, ev_kind == k) for k in EVENT_KINDS},
        "recall_any": {k: _recall(hits, anyf, ev_kind == k) for k in EVENT_KINDS},
        "events_hit_confident": int(hits[conf].any(axis=0).sum()) if len(events) else 0,
        "events_hit_any": int(hits.any(axis=0).sum()) if len(events) else 0,
        "by_check": {},
    }
    for kind in sorted(set(f_kind.tolist())):
        mine = f_kind == kind
        c = mine & conf
        out["by_check"][kind] = {
            "findings": int(mine.sum()),
            "confident": int(c.sum()),
            "confident_true": int((c & true).sum()),
            "precision_confident": float(true[c].mean()) if c.any() else None,
            "recall_confident": {k: _recall(hits, c, ev_kind == k) for k in EVENT_KINDS},
            "recall_any": {k: _recall(hits, mine, ev_kind == k) for k in EVENT_KINDS},
        }
    return out


def chance_level(findings: Sequence[Finding], events: Sequence[ErrorEvent],
                 lifetimes: dict[int, tuple[int, int]], *, seeds: int = 5) -> dict[str, float | None]:
    """Precision and identity-jump recall of the confident findings moved to random frames.

    Each finding keeps its tracks, kind and length; its first frame is drawn uniformly from
    the lifetime (first, last visible frame) of its first track. Mean over ``seeds`` draws.
    """
    conf = [f for f in findings if f.score >= CONFIDENT and f.track_ids and f.track_ids[0] in lifetimes]
    jumps = np.array([e.kind == "id_jump" for e in events], dtype=bool)
    if not conf or not events:
        return {"precision_confident": None, "id_jump_recall_confident": None}
    prec, rec = [], []
    for s in range(seeds):
        rng = np.random.default_rng(7 + s)
        moved = []
        for f in conf:
            a, b = lifetimes[f.track_ids[0]]
            start = int(rng.integers(a, b + 1))
            moved.append(Finding(f.kind, f.track_ids, (start, start + f.frames[1] - f.frames[0]), f.box,
                                 f.score, f.message))
        h = hit_matrix(moved, events)
        prec.append(float(h.any(axis=1).mean()))
        if jumps.any():
            rec.append(float(h[:, jumps].any(axis=0).mean()))
    return {"precision_confident": float(np.mean(prec)),
            "id_jump_recall_confident": float(np.mean(rec)) if rec else None}
