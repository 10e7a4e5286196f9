"""A difficulty score per sequence, so a test set can hold easy, medium and hard sequences.

Five features, each divided by a reference value and clipped to 0..1 (the reference is
"as hard as it gets" for pedestrian tracking: MOT20 crowds, long occlusions, a moving
camera), then averaged:

============== ============================================================ ===========
feature        definition                                                   reference
============== ============================================================ ===========
density        visible boxes per frame (MOT "ignore" rows left out)        50
occlusion      share of boxes occluded (flag, or visibility < 0.5)          0.5
motion         median per-frame centre displacement / box height            0.1
camera_motion  median over frames of the mean displacement of all objects   0.05
               (coherent motion of everything = the camera), / box height
small          share of boxes under 32×32 px                                0.3
============== ============================================================ ===========

The score is absolute (the same sequence scores the same in any dataset); *tiers* are
relative: easy / medium / hard are the lower, middle and upper third of the dataset's
scores, because a split needs all three whatever the dataset's overall difficulty.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np

from cvat_extension.core.tracks import Tracks

__all__ = ["REFERENCES", "Difficulty", "Tier", "assign_tiers", "sequence_difficulty"]

#: Reference value per feature: a feature at or above it contributes 1 to the score.
REFERENCES: Mapping[str, float] = {
    "density": 50.0, "occlusion": 0.5, "motion": 0.1, "camera_motion": 0.05, "small": 0.3,
}


class Tier(str, Enum):
    """Difficulty tier, relative to the dataset."""

    EASY = "easy"
    MEDIUM = "medium"
    HARD = "hard"


@dataclass(frozen=True)
class Difficulty:
    """A sequence's features, score (0..1) and the sentence that explains it."""

    name: str
    features: Mapping[str, float]
    score: float

    def why(self) -> str:
        """The two features that contribute most, in words."""
        parts = sorted(self.features, key=lambda k: -min(self.features[k] / REFERENCES[k], 1.0))[:2]
        words = {"density": "{:.1f} boxes/frame", "occlusion": "{:.0%} occluded boxes",
                 "motion": "objects move {:.3f} heights/frame", "camera_motion": "camera moves {:.3f} heights/frame",
                 "small": "{:.0%} small boxes"}
        return ", ".join(words[k].format(self.features[k]) for k in parts)

    def to_json(self) -> dict[str, Any]:
        """Features, score and why."""
        return {"score": round(self.score, 4), "features": {k: round(v, 4) for k, v in self.features.items()},
                "why": self.why()}


def sequence_difficulty(tracks: Tracks, num_frames: int, *, name: str = "",
                        occluded_below_visibility: float = 0.5) -> Difficulty:
    """Features and score of one sequence of dense tracks.

    >>> t = Tracks.from_columns(frame=[0, 1, 0, 1], track_id=[1, 1, 2, 2],
    ...                         xyxy=[[0, 0, 10, 20], [2, 0, 12, 20], [50, 0, 60, 20], [52, 0, 62, 20]])
    >>> d = sequence_difficulty(t, 2)
    >>> d.features["density"], d.features["motion"], d.features["camera_motion"]
    (2.0, 0.1, 0.1)
    """
    vis = tracks.visible()
    vis = vis[vis.score > 0]  # MOT "ignore" rows (conf 0) are regions, not objects to track
    n = len(vis)
    if n == 0:
        return Difficulty(name, dict.fromkeys(REFERENCES, 0.0), 0.0)
    h = np.maximum(vis.xyxy[:, 3] - vis.xyxy[:, 1], 1.0)
    w = np.maximum(vis.xyxy[:, 2] - vis.xyxy[:, 0], 0.0)
    centre = (vis.xyxy[:, :2] + vis.xyxy[:, 2:]) / 2
    linked = (vis.track_id[1:] == vis.track_id[:-1]) & (np.diff(vis.frame) == 1)
    d = (centre[1:] - centre[:-1])[linked] / h[1:][linked, None]
    motion = float(np.median(np.hypot(d[:, 0], d[:, 1]))) if len(d) else 0.0
    camera = 0.0
    if len(d):
        frames = vis.frame[1:][linked]
        uniq, inv = np.unique(frames, return_inverse=True)
        cnt = np.bincount(inv)
        mean = np.stack([np.bincount(inv, weights=d[:, k]) / cnt for k in (0, 1)], axis=1)
        camera = float(np.median(np.hypot(mean[:, 0], mean[:, 1])))
    occ = vis.occluded | (vis.visibility < occluded_below_visibility)
    features = {
        "density": n / max(int(num_frames), 1),
        "occlusion": float(occ.mean()),
        "motion": motion,
        "camera_motion": camera,
        "small": float((w * np.maximum(vis.xyxy[:, 3] - vis.xyxy[:, 1], 0.0) < 32 * 32).mean()),
    }
    score = float(np.mean([min(features[k] / REFERENCES[k], 1.0) for k in REFERENCES]))
    return Difficulty(name, features, score)


def assign_tiers(difficulties: Sequence[Difficulty]) -> dict[str, Tier]:
    """Easy/medium/hard by tercile of the dataset's scores (ties broken by name).

    With fewer than three sequences every tier cannot be filled: one sequence is medium,
    two are easy and hard.
    """
    ranked = sorted(difficulties, key=lambda d: (d.score, d.name))
    n = len(ranked)
    out: dict[str, Tier] = {}
    for i, d in enumerate(ranked):
        if n == 1:
            out[d.name] = Tier.MEDIUM
            continue
        third = 3 * i // n if n >= 3 else (0 if i == 0 else 2)
        out[d.name] = (Tier.EASY, Tier.MEDIUM, Tier.HARD)[third]
    return out
