"""``label_change``: the label changes inside one track.

CVAT tracks have one label, but stitched pieces, merges, or imports from per-frame formats
can mix labels along an id. A run of a different label that returns to the original label
is almost surely a mistake (high score); a permanent change may be a re-labelled object
(moderate score).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_extension.core.checks._common import Prepared, box_tuple, check_range, prepare
from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["LabelChangeConfig", "check_label_change"]


@dataclass(frozen=True)
class LabelChangeConfig:
    """Scores of :func:`check_label_change`.

    Attributes:
        transient_score: score of a run of another label that returns to the track's label.
            Every such run is reported; this only ranks it.
        permanent_score: score of a change that holds to the end of the track; lower it when
            label changes along tracks are a deliberate convention in your data.
    """

    transient_score: float = 0.9
    permanent_score: float = 0.6

    def __post_init__(self) -> None:
        check_range("LabelChangeConfig", "transient_score", self.transient_score, 0.0, 1.0)
        check_range("LabelChangeConfig", "permanent_score", self.permanent_score, 0.0, 1.0)


def check_label_change(tracks: Tracks, config: LabelChangeConfig = LabelChangeConfig(),
                       *, info: SequenceInfo | None = None, prepared: Prepared | None = None, **_: object) -> list[Finding]:
    """Report each run of rows whose label differs from the row before it in the same track."""
    p = prepared if prepared is not None else prepare(tracks)
    n = len(p.frame)
    if n < 2:
        return []
    change = np.zeros(n, dtype=bool)
    change[1:] = (p.label[1:] != p.label[:-1]) & (p.tid[1:] == p.tid[:-1])
    idx = np.flatnonzero(change)
    out = []
    # Each change opens a run that lasts until the next change in the track (or its end).
    nxt = np.append(idx[1:], n)
    prev = np.concatenate([[-1], idx[:-1]])
    for i_, j_, h_ in zip(idx, nxt, prev):
        i, j, h = int(i_), int(j_), int(h_)
        if h >= 0 and p.tid[h] == p.tid[i] and p.label[i] == p.label[h - 1]:
            continue  # the return at the end of a transient run reported at h
        end = min(j, int(p.end[i]))
        returns = end < int(p.end[i]) and p.label[end] == p.label[i - 1]
        t = int(p.tid[i])
        f0, f1 = int(p.frame[i]), int(p.frame[end - 1])
        old, new = tracks.label_name(int(p.label[i - 1])), tracks.label_name(int(p.label[i]))
        out.append(Finding(
            kind="label_change", track_ids=(t,), frames=(f0, f1), box=box_tuple(p.xyxy[i]),
            score=config.transient_score if returns else config.permanent_score,
            message=(f"track {t} at frame {frame_label(f0, info)}: label changes from {old!r} to {new!r}"
                     + (f" until frame {frame_label(f1, info)}" if returns else " for the rest of the track")),
            metrics={"frames": float(f1 - f0 + 1)},
        ))
    return sorted(out, key=Finding.sort_key)
