"""The fragment merge's settings and results (``core/merge.py`` finds and applies links)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.core.timebase import frames_for
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError

__all__ = ["FrameGetter", "Merge", "MergeConfig", "MergeResult"]

#: Anything that returns an RGB uint8 (H, W, 3) image for a 0-based frame number.
FrameGetter = Callable[[int], npt.NDArray[np.uint8]]


@dataclass(frozen=True, slots=True)
class MergeConfig:
    """Settings of the fragment merge.

    Attributes:
        max_gap_frames: most frames missing between a track's last box and the next track's
            first box. Raising it re-links longer occlusions but gives wrong pairs (someone
            leaves, someone else arrives nearby) more chances; lowering it is safer in crowds.
        history_frames: frames at each end whose boxes give the velocity (Theil-Sen: the
            median of pairwise slopes, so one re-drawn or occlusion-shrunk box does not tilt
            it). More frames smooth jitter of hand-drawn boxes; fewer follow recent turns.
        position_tolerance: allowed centre error at a gap of one frame, in units of box size
            (square root of the stabilised area). Lower to be stricter about where the object
            reappears; a tighter gate also removes rivals, which raises the margin of the
            right link (MOT17: 0.6 → 0.4 gave +3 points of recall and fewer wrong links).
        position_tolerance_per_frame: how much the allowed centre error grows per frame of
            gap, in box sizes; constant-velocity extrapolation gets worse the longer the gap.
        max_size_change: largest allowed width or height ratio between the two ends at a gap
            of one frame (1.5 = 50 % bigger or smaller).
        size_change_per_frame: extra allowed log size ratio per frame of gap (objects approach
            or recede during long occlusions).
        max_appearance_distance: largest allowed colour-histogram (Hellinger) distance, 0..1,
            between the crops at the two ends; used only when frames are given.
        appearance_frames: crops averaged at each end for the appearance embedding.
        appearance_search_frames: boxes searched at each end for well-visible crops. Fragments
            usually end in an occlusion, where the last boxes show the occluder; looking
            further back finds the object itself.
        min_appearance_visibility: only boxes at least this visible (MOT visibility, and not
            flagged occluded) give crops; without such boxes the appearance gate is skipped
            for that end rather than judged on an occluder's colours.
        compensate_camera: undo the camera's per-frame zoom and shift (estimated from the
            tracks present in both frames, used only where it stands out of their own
            spread: ``core.checks._common.prepare``) and extrapolate in those stabilised
            coordinates. A pan during the gap otherwise moves where the object reappears.
            On MOT17/20 ground truth (scripts/eval_merge_motgt.py) it raises re-linked
            injected splits on the moving-camera sequences (MOT17-05: 55 → 62 %, -10:
            60 → 82 %, -11: 58 → 78 %, -13: 63 → 85 %) at the cost of more clean-file
            merges on MOT17-05/-11/-13 (25 → 39 together); turn it off for a fixed camera.
        min_score: merges scoring below this are not applied. A score is
            ``exp(-cost / 2)`` times a rival margin from the *regret* (how much the best
            global assignment worsens without this link): a lone candidate, or one whose
            rivals are explained better elsewhere (the next piece of a chain), keeps its
            motion score; one of several similar candidates in a crowd scores near 0. A false
            merge silently corrupts an identity, a missed one leaves a visible fragment, so
            the default leans to precision: on MOT17/20 ground truth, 0.55 against 0.35
            removes 8 of 56 clean-file merges and 3 of 28 wrong links for 5 points of
            split recall (90 % → 85 %).
        rival_distance: another track whose box comes within this many object sizes of the
            earlier piece's last box or the later piece's first box during the gap is a
            *rival explanation*: the piece may be that person's, and trackers lose an identity
            exactly where people pass each other. A link with a rival is never applied, only
            reviewed (both candidates named); its review finding scores at most 0.45. With
            frames, a rival that looks clearly unlike both pieces is ruled out. Measured with
            ``scripts/eval_real_errors.py`` (ByteTrack/BoT-SORT output on 16 MOT17/MOT20
            sequence variants against the human GT; links that ``sync`` applies): without
            rivals 220 links applied, 92 joining two different people; at 1.0 sizes 27
            applied, 5 wrong; 2.0: 11 applied, 1 wrong; 2.5: 7 applied, 6 right, 0 wrong.
            The default is 2.5 because a wrong merge silently corrupts an identity while a
            missed one stays a review item. Lower it in sparse scenes to apply more merges.
        min_piece_frames: a link whose earlier or later piece has fewer visible frames than
            this (at 30 fps) is reviewed, never applied: short pieces of tracker output are
            mostly false tracks, and their motion says little.
    """

    max_gap_frames: int = 30
    history_frames: int = 8
    position_tolerance: float = 0.4
    position_tolerance_per_frame: float = 0.03
    max_size_change: float = 1.25
    size_change_per_frame: float = 0.01
    max_appearance_distance: float = 0.45
    appearance_frames: int = 3
    appearance_search_frames: int = 20
    min_appearance_visibility: float = 0.7
    compensate_camera: bool = True
    min_score: float = 0.55
    rival_distance: float = 2.5
    min_piece_frames: int = 5

    def __post_init__(self) -> None:
        if self.max_gap_frames < 0:
            raise ConfigError(f"MergeConfig.max_gap_frames must be >= 0, got {self.max_gap_frames}")
        if self.history_frames < 1:
            raise ConfigError(f"MergeConfig.history_frames must be >= 1, got {self.history_frames}")
        if self.appearance_frames < 1:
            raise ConfigError(
                f"MergeConfig.appearance_frames must be >= 1, got {self.appearance_frames}"
            )
        for name in ("position_tolerance", "max_size_change"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"MergeConfig.{name} must be > 0, got {getattr(self, name)}")
        if self.max_size_change < 1:
            raise ConfigError(
                f"MergeConfig.max_size_change must be >= 1 (a ratio), got {self.max_size_change}"
            )
        for name in ("position_tolerance_per_frame", "size_change_per_frame"):
            if getattr(self, name) < 0:
                raise ConfigError(f"MergeConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.max_appearance_distance <= 1:
            raise ConfigError(
                "MergeConfig.max_appearance_distance must be in (0, 1], got "
                f"{self.max_appearance_distance}"
            )
        if self.appearance_search_frames < self.appearance_frames:
            raise ConfigError(
                "MergeConfig.appearance_search_frames must be >= appearance_frames, got "
                f"{self.appearance_search_frames} < {self.appearance_frames}"
            )
        if not 0 <= self.min_appearance_visibility <= 1:
            raise ConfigError(
                "MergeConfig.min_appearance_visibility must be in 0..1, got "
                f"{self.min_appearance_visibility}"
            )
        if not 0 <= self.min_score <= 1:
            raise ConfigError(f"MergeConfig.min_score must be in 0..1, got {self.min_score}")
        if self.rival_distance < 0:
            raise ConfigError(f"MergeConfig.rival_distance must be >= 0, got {self.rival_distance}")
        if self.min_piece_frames < 1:
            raise ConfigError(f"MergeConfig.min_piece_frames must be >= 1, got {self.min_piece_frames}")

    def for_time_scale(self, scale: float) -> MergeConfig:
        """These settings for frames ``scale`` reference intervals apart (``core/timebase.py``).

        The longest gap and the velocity history stay the same number of seconds; how much
        the position and size tolerances grow per frame of gap grows with the time a frame
        spans.
        """
        if scale == 1.0:
            return self
        return replace(
            self,
            max_gap_frames=frames_for(self.max_gap_frames, scale, 0),
            history_frames=frames_for(self.history_frames, scale, 3),
            min_piece_frames=frames_for(self.min_piece_frames, scale, 2),
            position_tolerance_per_frame=self.position_tolerance_per_frame * scale,
            size_change_per_frame=self.size_change_per_frame * scale,
        )


@dataclass(frozen=True, slots=True)
class Merge:
    """One link: track ``from_`` was appended to track ``into``.

    Attributes:
        into: id the merged object keeps (the first piece of its chain).
        from_: id of the later piece that was re-linked.
        gap_frames: frames missing between the previous piece's last box and ``from_``'s first.
        score: confidence of the link, 0..1.
        end_frame: last visible frame of the previous piece (internal, 0-based).
        start_frame: first visible frame of ``from_`` (internal, 0-based).
        previous: id of the piece directly before ``from_`` (``into`` unless in a chain).
        rivals: other tracks that pass close to either end during the gap (see
            :attr:`MergeConfig.rival_distance`): the pieces may belong to one of them.
        reason: why the link must be reviewed rather than applied (rivals, a short piece);
            empty when nothing speaks against applying it.
    """

    into: int
    from_: int
    gap_frames: int
    score: float
    end_frame: int = 0
    start_frame: int = 0
    previous: int = 0
    rivals: tuple[int, ...] = ()
    reason: str = ""

    @property
    def unambiguous(self) -> bool:
        """True when no rival explanation or short piece speaks against applying the link."""
        return not self.reason

    def applicable(self, min_score: float) -> bool:
        """Whether the link may be applied without a person: unambiguous and scoring at
        least ``min_score``. Everything else is a review item."""
        return self.unambiguous and self.score >= min_score

    def to_json(self) -> dict[str, Any]:
        """The stable JSON form of the CLI contract: ``{"into", "from", "gap", "score"}``."""
        out: dict[str, Any] = {
            "into": int(self.into),
            "from": int(self.from_),
            "gap": int(self.gap_frames),
            "score": round(float(self.score), 4),
        }
        if self.reason:
            out["review_only"] = self.reason
        if self.rivals:
            out["rivals"] = [int(r) for r in self.rivals]
        return out


@dataclass(frozen=True, slots=True)
class MergeResult:
    """Merged tracks, the links that made them, and the links left for review."""

    tracks: Tracks
    merges: tuple[Merge, ...]
    review: tuple[Merge, ...] = ()
