"""Match findings to injected errors: recall per kind and share of frames flagged.

Used by tests, the demo and ``scripts/eval_checks_motgt.py`` so that every number we
report is computed the same way.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.tracks import Tracks
from cvat_extension.synthetic.inject import InjectedError

__all__ = ["FINDING_KINDS_FOR", "frames_flagged", "matched", "recall_by_kind"]

#: Which finding kinds count as catching each injected error kind.
FINDING_KINDS_FOR: dict[str, tuple[str, ...]] = {
    "id_switch": ("id_switch", "appearance_jump"),
    "ghost": ("ghost",),
    "box_jump": ("box_jump",),
    "size_jump": ("size_jump",),
    "label_change": ("label_change",),
    "missing_object": ("missing_object",),
}


def matched(error: InjectedError, findings: Sequence[Finding], *, clean: Tracks | None = None,
            tol_frames: int = 3, min_score: float = 0.0) -> bool:
    """True when a finding of a matching kind names one of the error's tracks (or, for a
    missing object, lies on the removed object's box in ``clean``) within ``tol_frames``."""
    kinds = FINDING_KINDS_FOR.get(error.kind, ())
    lo, hi = error.frames[0] - tol_frames, error.frames[1] + tol_frames
    for f in findings:
        if f.kind not in kinds or f.score < min_score or f.frames[1] < lo or f.frames[0] > hi:
            continue
        if error.kind == "missing_object":
            if clean is None or f.box is None:
                continue
            row = np.flatnonzero((clean.track_id == error.track_ids[0]) & (clean.frame == f.frames[0]))
            if len(row):
                b = clean.xyxy[row[0]]
                cx, cy = (f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2
                if b[0] <= cx <= b[2] and b[1] <= cy <= b[3]:
                    return True
            continue
        if set(f.track_ids) & set(error.track_ids):
            return True
    return False


def recall_by_kind(errors: Sequence[InjectedError], findings: Sequence[Finding], *,
                   clean: Tracks | None = None, tol_frames: int = 3,
                   min_score: float = 0.0) -> dict[str, tuple[int, int]]:
    """``{kind: (found, injected)}`` over the kinds in :data:`FINDING_KINDS_FOR`."""
    out: dict[str, tuple[int, int]] = {}
    for e in errors:
        if e.kind not in FINDING_KINDS_FOR:
            continue
        hit = matched(e, findings, clean=clean, tol_frames=tol_frames, min_score=min_score)
        a, b = out.get(e.kind, (0, 0))
        out[e.kind] = (a + int(hit), b + 1)
    return out


def frames_flagged(findings: Sequence[Finding], num_frames: int, *, min_score: float = 0.0) -> float:
    """Share of the sequence's frames covered by at least one finding's frame range."""
    if num_frames <= 0:
        return 0.0
    diff = np.zeros(num_frames + 1, dtype=np.int64)
    for f in findings:
        if f.score >= min_score:
            diff[max(f.frames[0], 0)] += 1
            diff[min(f.frames[1], num_frames - 1) + 1] -= 1
    return float((np.cumsum(diff[:num_frames]) > 0).mean())
