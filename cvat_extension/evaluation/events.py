"""Error events: what a tracker got wrong, read off its per-frame matches to ground truth.

The matches are TrackEval's CLEAR matches (:mod:`.matching`) after MOTChallenge
preprocessing, in our track ids. From them:

- ``id_jump``: a predicted track's matched person changes (its box moved from one person to
  another). ``category`` says how: ``drift`` when the two people's boxes overlapped around
  the change (the box slid over), ``gap`` when the track matched nobody (or was absent) for
  some frames in between, ``jump`` otherwise.
- ``gt_switch``: a person's matched predicted track changes (CLEAR's IDSW, one each).
- ``fragment``: one person, two predicted tracks A then B: A's last boxes and B's first
  boxes mostly match that person, A ends before B starts (no temporal overlap) and the gap
  is at most :data:`FRAGMENT_MAX_GAP` frames. Exactly the pairs a fragment merge should link.
- ``fp_run``: at least :data:`MIN_RUN` consecutive frames on which a predicted track matches
  nobody (predictions on distractors were removed by the preprocessing and do not count).
- ``short_false_track``: a whole predicted track shorter than :data:`MIN_RUN` frames whose
  boxes mostly match nobody.
- ``missed_run``: a person, at least half visible, matched by no prediction for at least
  :data:`MIN_RUN` consecutive frames (what ``missing_object`` looks for).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.core.geometry import iou_xyxy_batch
from cvat_extension.core.tracks import Tracks
from cvat_extension.evaluation.matching import ClearMatches
from cvat_extension.metrics.mot_preprocess import MotSequenceData

__all__ = ["CHANGE_KINDS", "EVENT_KINDS", "FRAGMENT_MAX_GAP", "MIN_RUN", "ErrorEvent", "MatchTable", "find_events",
           "majority", "match_table"]

FRAGMENT_MAX_GAP = 30
MIN_RUN = 10
#: Boxes at a track's end (start) whose majority person names the piece at that end.
END_BOXES = 10
#: Events that are a change of identity: seen at the frames on either side of the change.
CHANGE_KINDS = frozenset({"id_jump", "gt_switch", "fragment"})
EVENT_KINDS = ("id_jump", "gt_switch", "fragment", "fp_run", "short_false_track", "missed_run")


@dataclass(frozen=True)
class ErrorEvent:
    """One real error of a tracker output.

    Attributes:
        kind: one of :data:`EVENT_KINDS`.
        frames: inclusive internal (0-based) frame range where it happens.
        pred_ids: predicted tracks involved (a finding must name one of them to hit it);
            empty for ``missed_run``.
        gt_ids: ground-truth persons involved.
        detail: numbers behind it (``gap_frames``, ``gt_overlap``, ``category``, ...).
        boxes: for ``missed_run``, the person's box on each frame of ``frames`` (not in JSON).
    """

    kind: str
    frames: tuple[int, int]
    pred_ids: tuple[int, ...]
    gt_ids: tuple[int, ...]
    detail: dict[str, Any] = field(default_factory=dict)
    boxes: np.ndarray | None = None

    def spans(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """Two frame ranges where the error can be seen (equal for a single range).

        A change of identity is seen at its two ends (the last frame before, the first frame
        after), not in the middle of a long gap; a false run or a missed run anywhere in it.
        """
        a, b = self.frames
        if self.kind in CHANGE_KINDS:
            return (a, a), (b, b)
        return (a, b), (a, b)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "frames": list(self.frames), "pred_ids": list(self.pred_ids),
                "gt_ids": list(self.gt_ids), **self.detail}


@dataclass(frozen=True)
class MatchTable:
    """Every kept box of both sides with its match, in our ids, as flat arrays.

    ``p_*``: predicted boxes (frame, track id, matched gt track id or -1, xyxy), sorted by
    (track, frame). ``g_*``: scored ground-truth boxes (frame, track id, matched predicted
    track id or -1, xyxy, visibility), sorted by (track, frame).
    """

    p_frame: np.ndarray
    p_track: np.ndarray
    p_gt: np.ndarray
    p_xyxy: np.ndarray
    g_frame: np.ndarray
    g_track: np.ndarray
    g_pred: np.ndarray
    g_xyxy: np.ndarray
    g_vis: np.ndarray
    pred_all_frames: dict[int, np.ndarray]  # every visible frame of each predicted track

    def gt_box(self, gt_id: int, frame: int) -> np.ndarray | None:
        a, b = np.searchsorted(self.g_track, [gt_id, gt_id + 1])
        k = a + np.searchsorted(self.g_frame[a:b], frame)
        if k < b and self.g_frame[k] == frame:
            return self.g_xyxy[k]
        return None


def match_table(seq: MotSequenceData, matches: ClearMatches, gt: Tracks, pred: Tracks) -> MatchTable:
    """Flatten ``matches`` into :class:`MatchTable` (``gt``/``pred`` as given to preprocessing)."""
    g, p = gt.visible(), pred.visible()
    data = seq.data
    pf, pt, pg, prow = [], [], [], []
    gf, gtk, gp, grow = [], [], [], []
    for t in range(seq.num_frames):
        pr, gr = seq.pred_rows[t], seq.gt_rows[t]
        pm, gm = matches.pred_match[t], matches.gt_match[t]
        g_ids = seq.gt_track_ids[data["gt_ids"][t]] if len(gr) else np.zeros(0, np.int64)
        p_ids = seq.pred_track_ids[data["tracker_ids"][t]] if len(pr) else np.zeros(0, np.int64)
        pf.append(np.full(len(pr), t))
        pt.append(p_ids)
        pg.append(np.where(pm >= 0, g_ids[np.maximum(pm, 0)] if len(g_ids) else -1, -1))
        prow.append(pr)
        gf.append(np.full(len(gr), t))
        gtk.append(g_ids)
        gp.append(np.where(gm >= 0, p_ids[np.maximum(gm, 0)] if len(p_ids) else -1, -1))
        grow.append(gr)
    cat = np.concatenate
    p_frame, p_track, p_gt, p_row = cat(pf), cat(pt), cat(pg), cat(prow)
    g_frame, g_track, g_pred, g_row = cat(gf), cat(gtk), cat(gp), cat(grow)
    po, go = np.lexsort((p_frame, p_track)), np.lexsort((g_frame, g_track))
    all_frames = {int(tid): p.frame[p.track_id == tid] for tid in np.unique(p.track_id)}
    return MatchTable(
        p_frame=p_frame[po].astype(np.int64), p_track=p_track[po].astype(np.int64),
        p_gt=p_gt[po].astype(np.int64), p_xyxy=p.xyxy[p_row[po].astype(np.int64)],
        g_frame=g_frame[go].astype(np.int64), g_track=g_track[go].astype(np.int64),
        g_pred=g_pred[go].astype(np.int64), g_xyxy=g.xyxy[g_row[go].astype(np.int64)],
        g_vis=g.visibility[g_row[go].astype(np.int64)].astype(np.float64),
        pred_all_frames=all_frames,
    )


def _segments(ids: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) of each run of equal ``ids`` (sorted input)."""
    if not len(ids):
        return []
    cuts = np.flatnonzero(np.diff(ids)) + 1
    starts = np.r_[0, cuts]
    stops = np.r_[cuts, len(ids)]
    return list(zip(starts.tolist(), stops.tolist()))


def _runs(mask: np.ndarray, frames: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index runs where ``mask`` holds on consecutive frames."""
    out = []
    k = 0
    n = len(mask)
    while k < n:
        if not mask[k]:
            k += 1
            continue
        j = k + 1
        while j < n and mask[j] and frames[j] == frames[j - 1] + 1:
            j += 1
        out.append((k, j))
        k = j
    return out


def majority(ids: np.ndarray) -> int:
    """The id most of ``ids`` name if at least half of them do (-1 counts as nobody)."""
    if not len(ids):
        return -1
    (top, n), = Counter(ids.tolist()).most_common(1)
    return int(top) if top >= 0 and 2 * n >= len(ids) else -1


def find_events(tab: MatchTable) -> list[ErrorEvent]:
    """All error events of one sequence, sorted by (frames, kind)."""
    events: list[ErrorEvent] = []
    ends: dict[int, tuple[int, int, int]] = {}  # pred id -> (first frame, last frame, end gt)
    starts: dict[int, int] = {}  # pred id -> start gt
    for a, b in _segments(tab.p_track):
        tid = int(tab.p_track[a])
        fr, gt = tab.p_frame[a:b], tab.p_gt[a:b]
        # Identity jumps along the matched boxes.
        m = np.flatnonzero(gt >= 0)
        for i, j in zip(m[:-1], m[1:]):
            if gt[i] == gt[j]:
                continue
            f0, f1 = int(fr[i]), int(fr[j])
            old, new = int(gt[i]), int(gt[j])
            overlap = 0.0
            for f in (f0, f1):
                bo, bn = tab.gt_box(old, f), tab.gt_box(new, f)
                if bo is not None and bn is not None:
                    overlap = max(overlap, float(iou_xyxy_batch(bo[None], bn[None])[0, 0]))
            gap = f1 - f0 - 1
            category = "drift" if overlap > 0.1 else "gap" if gap > 0 else "jump"
            events.append(ErrorEvent("id_jump", (f0, f1), (tid,), (old, new),
                                     {"gap_frames": gap, "gt_overlap": round(overlap, 3),
                                      "category": category}))
        # False-positive runs.
        for i, j in _runs(gt < 0, fr):
            if j - i >= MIN_RUN:
                events.append(ErrorEvent("fp_run", (int(fr[i]), int(fr[j - 1])), (tid,), (),
                                         {"length": j - i}))
        ends[tid] = (int(fr[0]), int(fr[-1]), majority(gt[m[-END_BOXES:]]) if len(m) else -1)
        starts[tid] = majority(gt[m[:END_BOXES]]) if len(m) else -1
    # Short false tracks: the whole track (all its visible frames) is short and mostly false.
    for tid, frames in tab.pred_all_frames.items():
        if len(frames) >= MIN_RUN:
            continue
        a, b = np.searchsorted(tab.p_track, [tid, tid + 1])
        unmatched = int(np.sum(tab.p_gt[a:b] < 0))
        if 2 * unmatched > len(frames):
            events.append(ErrorEvent("short_false_track", (int(frames.min()), int(frames.max())), (tid,), (),
                                     {"length": len(frames), "unmatched": unmatched}))
    # Fragments: each track's end linked to the earliest later track starting on the same person.
    track_span = {tid: (int(f.min()), int(f.max())) for tid, f in tab.pred_all_frames.items()}
    by_start_gt: dict[int, list[int]] = {}
    for tid, g in starts.items():
        if g >= 0:
            by_start_gt.setdefault(g, []).append(tid)
    for tid, (_f0, _f1, g) in ends.items():
        if g < 0:
            continue
        last = track_span[tid][1]
        best = None
        for other in by_start_gt.get(g, []):
            first = track_span[other][0]
            if other != tid and last < first and first - last - 1 <= FRAGMENT_MAX_GAP:
                if best is None or first < track_span[best][0]:
                    best = other
        if best is not None:
            first = track_span[best][0]
            events.append(ErrorEvent("fragment", (last, first), (tid, best), (g,),
                                     {"gap_frames": first - last - 1}))
    # Person-side: switches (CLEAR's IDSW) and missed runs.
    for a, b in _segments(tab.g_track):
        gid = int(tab.g_track[a])
        fr, pr, vis = tab.g_frame[a:b], tab.g_pred[a:b], tab.g_vis[a:b]
        m = np.flatnonzero(pr >= 0)
        for i, j in zip(m[:-1], m[1:]):
            if pr[i] != pr[j]:
                events.append(ErrorEvent("gt_switch", (int(fr[i]), int(fr[j])), (int(pr[i]), int(pr[j])),
                                         (gid,), {"gap_frames": int(fr[j] - fr[i] - 1)}))
        for i, j in _runs(pr < 0, fr):
            if j - i >= MIN_RUN and float(vis[i:j].mean()) >= 0.5:
                events.append(ErrorEvent("missed_run", (int(fr[i]), int(fr[j - 1])), (), (gid,),
                                         {"length": j - i}, boxes=tab.g_xyxy[a + i:a + j]))
    events.sort(key=lambda e: (e.frames, e.kind, e.pred_ids, e.gt_ids))
    return events
