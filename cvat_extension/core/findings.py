"""What checks report (:class:`Finding`) and what reviewers get (:class:`ReviewItem`).

Findings use internal 0-based frames; adapters add ``SequenceInfo.frame_base`` when they
show frames to users (:meth:`Finding.to_json`). Human text (``message``) is written in the
user's numbering from the start, through :func:`frame_label`, so no later layer rewrites it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = ["Finding", "ReviewItem", "frame_label"]


class _HasFrameBase(Protocol):
    @property
    def frame_base(self) -> int: ...


def frame_label(frame: int, info: _HasFrameBase | int | None = None) -> str:
    """An internal 0-based frame as the user numbers it, for messages.

    ``info`` is a :class:`~cvat_extension.core.tracks.SequenceInfo` (its ``frame_base``), a
    plain base, or None (CVAT's own 0-based numbering). Messages are the only place this is
    applied: ``Finding.frames`` stay internal, and :meth:`Finding.to_json` shifts them.

    >>> frame_label(41, 1), frame_label(41, None), frame_label(41)
    ('42', '41', '41')
    """
    base = 0 if info is None else info if isinstance(info, int) else int(info.frame_base)
    return str(int(frame) + base)


@dataclass(frozen=True, slots=True)
class Finding:
    """One suspected annotation error.

    Attributes:
        kind: the check that raised it (``"id_switch"``, ``"ghost"``, ...).
        track_ids: the track(s) involved; two for a swap.
        frames: inclusive ``(first, last)`` internal frame range.
        box: ``x1, y1, x2, y2`` of the offending box at ``frames[0]`` (where a reviewer
            should look), or None when there is no single box (e.g. a missing object
            without a detection box).
        score: confidence that this is a real error, 0..1; review plans rank by it.
        message: location first, in CVAT terms: ``"track 12 at frame 418: IoU 0.21 ..."``.
        metrics: the numbers behind the score, for reports and tuning.
    """

    kind: str
    track_ids: tuple[int, ...]
    frames: tuple[int, int]
    box: tuple[float, float, float, float] | None
    score: float
    message: str
    metrics: Mapping[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0.0 <= self.score <= 1.0:
            raise ValueError(f"Finding.score must be in 0..1, got {self.score}")
        if self.frames[0] > self.frames[1]:
            raise ValueError(f"Finding.frames must be (first, last), got {self.frames}")

    def sort_key(self) -> tuple[tuple[int, int], tuple[int, ...], str]:
        """Order used by every check: frames, then tracks, then kind."""
        return (self.frames, self.track_ids, self.kind)

    def to_json(self, frame_base: int = 0) -> dict[str, Any]:
        """The stable JSON form of the CLI contract, frames in the user's numbering."""
        return {
            "kind": self.kind,
            "track_ids": list(self.track_ids),
            "frames": [self.frames[0] + frame_base, self.frames[1] + frame_base],
            "box": None if self.box is None else [float(v) for v in self.box],
            "score": round(float(self.score), 4),
            "message": self.message,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
        }


@dataclass(frozen=True, slots=True)
class ReviewItem:
    """One unit of review work: findings about the same track(s) over one frame range.

    A reviewer opens the item at ``frame`` (where ``box`` is drawn) and fixes the range.
    The CVAT loop turns each item into one CVAT issue on the job that holds ``frame``.

    Attributes:
        track_ids: tracks the item is about.
        frames: inclusive ``(first, last)`` internal frame range covered.
        frame: the frame to open (the highest-scoring finding's first frame).
        box: where to draw the issue on ``frame``; None when unknown.
        score: the item's rank score, 0..1 (the maximum of its findings).
        kinds: the distinct check kinds in the item, sorted.
        findings: the findings grouped here.
        message: one line for humans naming checks, tracks and frames.
    """

    track_ids: tuple[int, ...]
    frames: tuple[int, int]
    frame: int
    box: tuple[float, float, float, float] | None
    score: float
    kinds: tuple[str, ...]
    findings: tuple[Finding, ...]
    message: str

    def to_json(self, frame_base: int = 0) -> dict[str, Any]:
        """The stable JSON form, frames in the user's numbering."""
        return {
            "track_ids": list(self.track_ids),
            "frames": [self.frames[0] + frame_base, self.frames[1] + frame_base],
            "frame": self.frame + frame_base,
            "box": None if self.box is None else [float(v) for v in self.box],
            "score": round(float(self.score), 4),
            "kinds": list(self.kinds),
            "message": self.message,
            "findings": [f.to_json(frame_base) for f in self.findings],
        }
