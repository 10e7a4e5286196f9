"""The numbers of a dataset card, per sequence and in total.

Definitions (also printed in ``card.md``, so a reader of the card knows what was counted):

- **boxes**: visible rows (not CVAT ``outside``); MOT "ignore" rows (conf 0) are counted
  and also reported separately as ``ignored_boxes``.
- **track length**: visible boxes of a track (frames it is annotated on).
- **occluded box**: CVAT's ``occluded`` flag set, or MOT visibility below
  ``occluded_below_visibility`` (0.5).
- **occlusion event**: a run of consecutive occluded boxes of one track; events per 100
  frames divide by the sequence's frames.
- **re-entry**: a track visible again after at least one frame without a box.
- **small box**: area under 32×32 px (COCO's "small").
- **ID consistency**: share of tracks that no temporal-consistency finding (ID switch,
  box/size jump, ghost, label change, short track) scoring at least 0.5 names.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.tracks import Tracks

__all__ = [
    "LENGTH_BINS",
    "SIZE_BINS_PX",
    "VISIBILITY_BINS",
    "SequenceStats",
    "combine_stats",
    "sequence_stats",
]

#: Track-length histogram edges (visible boxes); the last bin is open.
LENGTH_BINS: tuple[int, ...] = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000)
#: Box-size histogram edges, sqrt(area) in px; the last bin is open.
SIZE_BINS_PX: tuple[int, ...] = (0, 16, 32, 64, 128, 256)
#: Visibility histogram edges.
VISIBILITY_BINS: tuple[float, ...] = tuple(round(0.1 * i, 1) for i in range(11))
#: Findings at or above this score count against ID consistency (as ``check``'s summary).
CONSISTENCY_SCORE = 0.5
_SMALL_AREA = 32 * 32


@dataclass(frozen=True)
class SequenceStats:
    """Card numbers of one sequence (or of a whole dataset, see :func:`combine_stats`).

    ``track_lengths`` and the histograms' raw counts are kept so that totals are exact
    (a median of medians is not a median).
    """

    name: str
    sequences: int
    frames: int
    tracks: int
    boxes: int
    ignored_boxes: int
    occluded_boxes: int
    occlusion_events: int
    re_entries: int
    small_boxes: int
    consistent_tracks: int
    track_lengths: np.ndarray
    length_hist: tuple[int, ...]
    visibility_hist: tuple[int, ...]
    size_hist: tuple[int, ...]
    categories: Mapping[str, tuple[int, int]]
    findings_by_kind: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        """The ``card.json`` entry: counts, rates and histograms, rounded for reading."""
        lengths = self.track_lengths
        per100 = 100.0 * self.occlusion_events / self.frames if self.frames else 0.0
        return {
            "name": self.name,
            "sequences": self.sequences,
            "frames": self.frames,
            "tracks": self.tracks,
            "boxes": self.boxes,
            "ignored_boxes": self.ignored_boxes,
            "boxes_per_frame": _r(self.boxes / self.frames if self.frames else 0.0),
            "track_length_mean": _r(float(lengths.mean()) if len(lengths) else 0.0),
            "track_length_median": _r(float(np.median(lengths)) if len(lengths) else 0.0),
            "track_length_hist": {"edges": list(LENGTH_BINS), "counts": list(self.length_hist)},
            "occluded_share": _r(self.occluded_boxes / self.boxes if self.boxes else 0.0),
            "occlusion_events": self.occlusion_events,
            "occlusion_events_per_100_frames": _r(per100),
            "re_entries": self.re_entries,
            "id_consistency": _r(self.consistent_tracks / self.tracks if self.tracks else 1.0),
            "categories": {k: {"boxes": b, "tracks": t} for k, (b, t) in sorted(self.categories.items())},
            "visibility_hist": {"edges": list(VISIBILITY_BINS), "counts": list(self.visibility_hist)},
            "box_size_hist": {"edges_sqrt_area_px": list(SIZE_BINS_PX), "counts": list(self.size_hist)},
            "small_share": _r(self.small_boxes / self.boxes if self.boxes else 0.0),
            "findings_by_kind": dict(sorted(self.findings_by_kind.items())),
        }


def _r(v: float) -> float:
    return round(float(v), 4)


def _hist(values: np.ndarray, edges: Sequence[float], *, closed_last: bool = False) -> tuple[int, ...]:
    """Counts per bin ``[e_i, e_{i+1})``; the last bin is open (or closed at its edge)."""
    bins = np.asarray(edges, dtype=np.float64)
    if closed_last:
        idx = np.clip(np.searchsorted(bins, values, side="right") - 1, 0, len(bins) - 2)
        return tuple(int(c) for c in np.bincount(idx, minlength=len(bins) - 1))
    idx = np.clip(np.searchsorted(bins, values, side="right") - 1, 0, len(bins) - 1)
    return tuple(int(c) for c in np.bincount(idx, minlength=len(bins)))


def sequence_stats(
    tracks: Tracks,
    num_frames: int,
    *,
    name: str = "",
    findings: Iterable[Finding] = (),
    occluded_below_visibility: float = 0.5,
) -> SequenceStats:
    """Card numbers of one sequence of dense per-frame tracks.

    Args:
        tracks: dense boxes (``outside`` rows are ignored).
        num_frames: frames in the sequence.
        name: sequence name.
        findings: QA findings of the sequence (for ID consistency and the QA summary).
        occluded_below_visibility: visibility under which a box counts as occluded; raise
            it to count partly hidden people too.

    >>> t = Tracks.from_columns(frame=[0, 1, 2, 5], track_id=[1, 1, 1, 1],
    ...                         xyxy=[[0, 0, 10, 10]] * 4, occluded=[0, 1, 1, 0])
    >>> s = sequence_stats(t, 10).to_json()
    >>> s["occlusion_events"], s["re_entries"], s["small_share"], s["track_length_median"]
    (1, 1, 1.0, 4.0)
    """
    vis = tracks.visible()
    n = len(vis)
    starts = vis.track_starts
    lengths = np.diff(starts) if n else np.zeros(0, dtype=np.int64)
    same = np.zeros(n, dtype=bool)
    if n > 1:
        same[1:] = vis.track_id[1:] == vis.track_id[:-1]
    step = np.zeros(n, dtype=np.int64)
    if n > 1:
        step[1:] = np.diff(vis.frame)
    occ = vis.occluded | (vis.visibility < occluded_below_visibility)
    prev_occ = np.zeros(n, dtype=bool)
    if n > 1:
        prev_occ[1:] = occ[:-1]
    event_start = occ & ~(same & (step == 1) & prev_occ)
    wh = np.clip(vis.xyxy[:, 2:] - vis.xyxy[:, :2], 0.0, None)
    area = wh[:, 0] * wh[:, 1]
    categories: dict[str, tuple[int, int]] = {}
    if n:
        first_rows = starts[:-1]
        box_counts = np.bincount(vis.label, minlength=len(vis.labels))
        track_counts = np.bincount(vis.label[first_rows], minlength=len(vis.labels))
        for code in np.flatnonzero(box_counts):
            categories[vis.label_name(int(code))] = (int(box_counts[code]), int(track_counts[code]))
    flagged: set[int] = set()
    kinds: Counter[str] = Counter()
    for f in findings:
        kinds[f.kind] += 1
        if f.score >= CONSISTENCY_SCORE:
            flagged.update(int(t) for t in f.track_ids)
    ids = set(int(i) for i in vis.ids)
    return SequenceStats(
        name=name,
        sequences=1,
        frames=int(num_frames),
        tracks=len(ids),
        boxes=n,
        ignored_boxes=int((vis.score == 0).sum()),
        occluded_boxes=int(occ.sum()),
        occlusion_events=int(event_start.sum()),
        re_entries=int((same & (step > 1)).sum()),
        small_boxes=int((area < _SMALL_AREA).sum()),
        consistent_tracks=len(ids - flagged),
        track_lengths=lengths.astype(np.int64),
        length_hist=_hist(lengths, LENGTH_BINS),
        visibility_hist=_hist(vis.visibility.astype(np.float64), VISIBILITY_BINS, closed_last=True),
        size_hist=_hist(np.sqrt(area), SIZE_BINS_PX),
        categories=categories,
        findings_by_kind=dict(kinds),
    )


def combine_stats(parts: Sequence[SequenceStats], *, name: str = "total") -> SequenceStats:
    """Exact totals over sequences: counts add, lengths pool, histograms add."""
    cats: dict[str, tuple[int, int]] = {}
    kinds: Counter[str] = Counter()
    for p in parts:
        for k, (b, t) in p.categories.items():
            b0, t0 = cats.get(k, (0, 0))
            cats[k] = (b0 + b, t0 + t)
        kinds.update(p.findings_by_kind)

    def add(attr: str) -> tuple[int, ...]:
        arrays = [np.asarray(getattr(p, attr)) for p in parts]
        return tuple(int(v) for v in np.sum(arrays, axis=0)) if arrays else ()

    return SequenceStats(
        name=name,
        sequences=sum(p.sequences for p in parts),
        frames=sum(p.frames for p in parts),
        tracks=sum(p.tracks for p in parts),
        boxes=sum(p.boxes for p in parts),
        ignored_boxes=sum(p.ignored_boxes for p in parts),
        occluded_boxes=sum(p.occluded_boxes for p in parts),
        occlusion_events=sum(p.occlusion_events for p in parts),
        re_entries=sum(p.re_entries for p in parts),
        small_boxes=sum(p.small_boxes for p in parts),
        consistent_tracks=sum(p.consistent_tracks for p in parts),
        track_lengths=np.concatenate([p.track_lengths for p in parts]) if parts else np.zeros(0, np.int64),
        length_hist=add("length_hist") or (0,) * len(LENGTH_BINS),
        visibility_hist=add("visibility_hist") or (0,) * (len(VISIBILITY_BINS) - 1),
        size_hist=add("size_hist") or (0,) * len(SIZE_BINS_PX),
        categories=cats,
        findings_by_kind=dict(kinds),
    )
