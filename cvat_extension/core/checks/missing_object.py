"""``missing_object``: confident detections that no annotation covers.

Coverage is the one error a track-only check cannot see: an object nobody annotated has no
track. Given detections (from any detector, e.g. our YOLO function), every confident
detection is matched to the annotated boxes of its frame; uncovered ones are chained across
consecutive frames (IoU) into objects, and an object seen uncovered over several frames is
reported once with its frame range. Small objects are included: no size floor by default,
because small distant objects are exactly what annotators skip. A detection lying mostly
inside one annotated box is usually the visible part of a partly hidden person annotated in
full, not a missed object: such objects stay hints (score x 0.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_extension.core.checks._common import (
    Prepared,
    box_tuple,
    check_range,
    prepare,
    rows_near_frames,
)
from cvat_extension.core.checks._matching import (
    DetectionMatch,
    best_match_same_frame,
    match_detections,
)
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["MissingObjectConfig", "check_missing_object"]


@dataclass(frozen=True)
class MissingObjectConfig:
    """Thresholds of :func:`check_missing_object`.

    Attributes:
        min_det_score: detections below this are ignored. Lower finds harder objects and
            reports more detector false positives.
        max_cover_iou: a detection overlapping an annotation at this IoU or more is covered.
            Raise to also report badly drawn boxes as missing.
        min_link_iou: uncovered detections in consecutive frames with this IoU are the same
            object.
        min_frames: an uncovered object must be seen in at least this many frames to be
            reported: isolated detector false positives last one or two frames. Lower to
            catch objects that flash by, at the cost of reporting detector noise.
        full_score_frames: objects seen this long get their full detection score; shorter
            ones are scaled down proportionally.
        min_box_size_px: ignore detections smaller than this (height and width); 0 keeps
            small objects.
    """

    min_det_score: float = 0.5
    max_cover_iou: float = 0.3
    min_link_iou: float = 0.3
    min_frames: int = 3
    full_score_frames: int = 10
    min_box_size_px: float = 0.0

    def for_time_scale(self, scale: float) -> MissingObjectConfig:
        """Unchanged at any frame rate: the evidence for a missed object is how many
        annotated frames the detector sees it on, not for how long (on 10 fps ground truth,
        counting seconds turned every lone false detection into a finding)."""
        return self

    def __post_init__(self) -> None:
        check_range("MissingObjectConfig", "min_det_score", self.min_det_score, 0, 1)
        check_range("MissingObjectConfig", "max_cover_iou", self.max_cover_iou, 0, 1)
        check_range("MissingObjectConfig", "min_link_iou", self.min_link_iou, 0, 1)
        check_range("MissingObjectConfig", "min_frames", self.min_frames, 1, 1e6)
        check_range("MissingObjectConfig", "full_score_frames", self.full_score_frames, 1, 1e6)
        check_range("MissingObjectConfig", "min_box_size_px", self.min_box_size_px, 0, 1e4)


#: A detection this much inside one annotated box (intersection over its own area) is
#: probably the visible part of that annotated, partly hidden object.
_INSIDE_FRACTION = 0.7
#: Score factor for such detections: reviewable hints, never confident.
_INSIDE_DISCOUNT = 0.3
#: Detections per reported object tested for lying inside an annotated box.
_INSIDE_SAMPLES = 5


def _inside_annotated(dets: Tracks, p: Prepared) -> np.ndarray:
    """Per detection: the largest share of its area inside one annotated box of its frame.

    IoU misses this case: a person annotated in full behind an occluder and detected by the
    visible half overlaps the annotation by IoU 0.3 at best. Only the few uncovered
    detections are tested, against the annotated boxes of their frames (a sort-based join,
    no per-frame matrix).
    """
    out = np.zeros(len(dets), dtype=np.float64)
    if not len(dets) or not len(p.frame):
        return out
    di, ai, cnt = rows_near_frames(p, dets.frame)
    if not len(di):
        return out
    d, a = dets.xyxy[di], p.xyxy[ai]
    iw = np.clip(np.minimum(d[:, 2], a[:, 2]) - np.maximum(d[:, 0], a[:, 0]), 0, None)
    ih = np.clip(np.minimum(d[:, 3], a[:, 3]) - np.maximum(d[:, 1], a[:, 1]), 0, None)
    area = np.clip((d[:, 2] - d[:, 0]) * (d[:, 3] - d[:, 1]), 0, None)
    share = np.divide(iw * ih, area, out=np.zeros(len(di)), where=area > 0)
    # Pairs are grouped by detection (np.repeat order): one segmented maximum.
    has = np.flatnonzero(cnt)
    out[has] = np.maximum.reduceat(share, (np.cumsum(cnt) - cnt)[has])
    return out


def check_missing_object(
    tracks: Tracks, config: MissingObjectConfig = MissingObjectConfig(), *,
    detections: Tracks | None = None, info: SequenceInfo | None = None,
    prepared: Prepared | None = None, matched: DetectionMatch | None = None, **_: object,
) -> list[Finding]:
    """Report objects that detections show but no annotation covers (needs ``detections``).

    ``matched`` (any ``min_det_score``: coverage counts every annotated box) saves the pair
    search when ``run_checks`` already made it for ``ghost``.
    """
    if detections is None or len(detections) == 0:
        return []
    # Column selections only: a Tracks selection would copy every column of millions of rows.
    wh = detections.xyxy[:, 2:] - detections.xyxy[:, :2]
    keep = (~detections.outside & (detections.score >= config.min_det_score)
            & (wh >= config.min_box_size_px).all(axis=1))
    del wh
    use = np.flatnonzero(keep)
    del keep
    p = prepared if prepared is not None else prepare(tracks)  # visible annotated boxes
    if matched is None:
        matched = match_detections(p, detections, config.min_det_score)
    u = detections[use[np.take(matched.coverage, use) < config.max_cover_iou]]
    m = len(u)
    if m == 0:
        return []
    # Link uncovered detections of frame f to those of frame f - 1.
    link, arg = best_match_same_frame(u.frame - 1, u.xyxy, u.frame, u.xyxy,
                                      min_iou=max(config.min_link_iou, 1e-3))
    src = np.flatnonzero((link >= config.min_link_iou) & (arg >= 0))
    from scipy.sparse import coo_matrix  # imported only when there are detections to group
    from scipy.sparse.csgraph import connected_components

    graph = coo_matrix((np.ones(len(src)), (src, arg[src])), shape=(m, m))
    _, comp = connected_components(graph, directed=False)
    # Per object (component): frames seen, mean score, first/last frame, without a Python
    # loop over the thousands of short detector false-positive chains.
    order = np.lexsort((u.frame, comp))
    fr = u.frame[order]
    cc = comp[order]
    head = np.ones(m, dtype=bool)
    head[1:] = cc[1:] != cc[:-1]
    new_frame = head.copy()
    new_frame[1:] |= fr[1:] != fr[:-1]
    starts = np.flatnonzero(head)
    ends = np.append(starts[1:], m)
    nfr_all = np.add.reduceat(new_frame.astype(np.int64), starts)
    mean_all = np.add.reduceat(u.score[order].astype(np.float64), starts) / (ends - starts)
    # Share of each reported object's detections lying inside an annotated box, from at
    # most _INSIDE_SAMPLES of its detections spread over its frames: only objects seen
    # long enough to report (most uncovered detections are lone false positives), so the
    # cost follows the findings, not the detector's output.
    reported = nfr_all >= config.min_frames
    k_rep = np.flatnonzero(reported)
    n_rep = ends[k_rep] - starts[k_rep]
    n_pick = np.minimum(n_rep, _INSIDE_SAMPLES)
    which = np.repeat(np.arange(len(k_rep)), n_pick)
    step = np.arange(int(n_pick.sum())) - np.repeat(np.cumsum(n_pick) - n_pick, n_pick)
    pos = starts[k_rep][which] + (step * (n_rep[which] - 1)) // np.maximum(n_pick[which] - 1, 1)
    hit = _inside_annotated(u[order[pos]], p) >= _INSIDE_FRACTION
    inside_all = np.zeros(len(starts))
    inside_all[k_rep] = np.bincount(which, weights=hit, minlength=len(k_rep)) / np.maximum(n_pick, 1)
    out = []
    for k in np.flatnonzero(reported):
        nfr = int(nfr_all[k])
        mean_score = float(mean_all[k])
        score = mean_score * min(1.0, nfr / config.full_score_frames)
        hidden = inside_all[k] >= 0.5
        if hidden:
            # The detection lies within an annotated box: most often the visible part of a
            # person annotated in full (amodal) behind an occluder, so only a hint.
            score *= _INSIDE_DISCOUNT
        f0, f1 = int(fr[starts[k]]), int(fr[ends[k] - 1])
        b = u.xyxy[order[starts[k]]]
        out.append(Finding(
            kind="missing_object", track_ids=(), frames=(f0, f1), box=box_tuple(b),
            score=float(np.clip(score, 0, 1)),
            message=(f"frame {frame_label(f0, info)}: a detected object (score {mean_score:.2f}, "
                     f"{b[2] - b[0]:.0f}x{b[3] - b[1]:.0f} px) is not annotated on {nfr} "
                     f"frame(s) up to frame {frame_label(f1, info)}"
                     + (" (inside an annotated box: maybe its visible part)" if hidden else "")),
            metrics={"frames": float(nfr), "det_score": mean_score, "inside_annotated": float(inside_all[k])},
        ))
    return sorted(out, key=Finding.sort_key)
