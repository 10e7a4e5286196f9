"""Rival explanations of a fragment link, and the colour appearance that can rule them out.

A link between the end of one track and the start of another is ambiguous when a third
track passes close by during the gap (people passing each other is where trackers lose
identities): such links are reviewed, not applied, unless the pixels show that every rival
looks clearly unlike both pieces.
"""

from __future__ import annotations

import math

import numpy as np

from cvat_extension.core.merge_ends import Ends
from cvat_extension.core.merge_types import FrameGetter, MergeConfig
from cvat_extension.core.tracks import Tracks

__all__ = ["APPEARANCE_MARGIN", "REVIEW_ONLY_FACTOR", "Rivals", "colour_embedding", "hellinger"]


def colour_embedding(
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


def hellinger(a: np.ndarray, b: np.ndarray) -> float:
    """Hellinger distance of two L1-normalised histograms, 0 (same) .. 1 (disjoint)."""
    bc = float(np.sqrt(a * b).sum())
    return math.sqrt(max(0.0, 1.0 - bc))


#: Score factor of a review-only link's finding: at most 0.45, below the confident 0.5.
REVIEW_ONLY_FACTOR = 0.45

#: How much further (Hellinger) a rival must look from both pieces than they from each other.
APPEARANCE_MARGIN = 0.1


class Rivals:
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
        return colour_embedding(frames, clear.frame[pick], clear.xyxy[pick])

    def look_different(self, ends: Ends, i: int, j: int, near: tuple[int, ...],
                       frames: FrameGetter, config: MergeConfig) -> bool:
        """With pixels: every rival looks clearly unlike both pieces, which look alike.

        A rival is ruled out when its colour distance to each piece exceeds the pieces'
        distance to each other by ``APPEARANCE_MARGIN``: the pieces then share a look the
        rival does not have. A piece or rival without a usable crop keeps the link ambiguous.
        """
        mid = 0.5 * float(ends.last[i] + ends.first[j])
        ea = self._look(int(ends.ids[i]), mid, frames, config)
        eb = self._look(int(ends.ids[j]), mid, frames, config)
        if ea is None or eb is None:
            return False
        own = hellinger(ea, eb)
        for r in near:
            er = self._look(r, mid, frames, config)
            if er is None or min(hellinger(ea, er), hellinger(eb, er)) < own + APPEARANCE_MARGIN:
                return False
        return True

    def near(self, ends: Ends, i: int, j: int, distance: float) -> tuple[int, ...]:
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
