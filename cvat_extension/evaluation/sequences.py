"""The sequences of the real-error evaluation, and how each is read (and time-subsampled).

Ground truth is MOTChallenge's full human annotation in ``<data>/motgt/<seq>/`` (all rows:
pedestrians, distractors and ignore rows, which the MOTChallenge preprocessing needs). The
public FRCNN detections exist for MOT17-02 and -04 (``<data>/MOT17-mini/train/*/det``); the
other sequences get simulated detections (:mod:`.simulate`).

A ``-sub2``/``-sub3`` variant keeps every 2nd/3rd frame (renumbered 0, 1, 2, ...) and
divides the frame rate accordingly: it stands in for footage annotated at 10–15 fps, where
people move two or three times as far between annotated frames.
"""

from __future__ import annotations

import configparser
import math
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.io.mot import read_mot, read_mot_detections

__all__ = ["HOLDOUT", "SEQUENCES", "TUNE", "Sequence", "SequenceSpec", "load_sequence", "sequence_info",
           "subsample"]


@dataclass(frozen=True)
class SequenceSpec:
    """One evaluated sequence.

    Attributes:
        name: e.g. ``MOT17-05-sub2``.
        base: the MOT sequence it comes from (``MOT17-05``).
        step: keep every ``step``-th frame.
        public_detections: run the trackers on MOTChallenge's FRCNN detections (else simulated).
        split: ``tune`` (thresholds may be tuned on it) or ``holdout`` (report only).
        trackers: which of our trackers run on it.
    """

    name: str
    base: str
    step: int
    public_detections: bool
    split: str
    trackers: tuple[str, ...]

    @property
    def benchmark(self) -> str:
        return "MOT20" if self.base.startswith("MOT20") else "MOT17"


def _specs() -> list[SequenceSpec]:
    out = [SequenceSpec(b, b, 1, True, "tune", ("bytetrack", "botsort")) for b in ("MOT17-02", "MOT17-04")]
    for base, split, sub in (("MOT17-05", "tune", True), ("MOT17-09", "tune", False),
                             ("MOT17-10", "holdout", True), ("MOT17-11", "holdout", False),
                             ("MOT17-13", "holdout", True), ("MOT20-01", "holdout", False)):
        for step in ((1, 2, 3) if sub else (1,)):
            name = base if step == 1 else f"{base}-sub{step}"
            out.append(SequenceSpec(name, base, step, False, split, ("bytetrack",)))
    return out


#: Every evaluated sequence, in table order.
SEQUENCES: dict[str, SequenceSpec] = {s.name: s for s in _specs()}
TUNE = tuple(n for n, s in SEQUENCES.items() if s.split == "tune")
HOLDOUT = tuple(n for n, s in SEQUENCES.items() if s.split == "holdout")


@dataclass(frozen=True)
class Sequence:
    """A loaded (possibly subsampled) sequence.

    Attributes:
        gt: all ground-truth rows (0-based frames), ``data["mot_class"]`` the MOT class and
            ``score`` the consider flag (column 7).
        public_detections: MOTChallenge's detections, or None where there are none.
        num_frames, width, height, fps: of the (subsampled) sequence.
    """

    spec: SequenceSpec
    gt: Tracks
    public_detections: Tracks | None
    num_frames: int
    width: int
    height: int
    fps: float

    @property
    def gt_class(self) -> np.ndarray:
        return np.asarray(self.gt.data["mot_class"])

    @property
    def gt_consider(self) -> np.ndarray:
        return np.asarray(self.gt.score)

    def scored(self) -> np.ndarray:
        """Per ground-truth row: a pedestrian MOTChallenge scores (class 1, not ignored)."""
        return (self.gt_class == 1) & (self.gt_consider != 0)

    def scored_gt(self) -> Tracks:
        """The clean human annotation of pedestrians (what MOTChallenge scores)."""
        return self.gt[self.scored()]

    def unscored_gt(self) -> Tracks:
        """Annotated boxes MOTChallenge ignores: distractors, ignore regions, other classes."""
        return self.gt[~self.scored()]


def subsample(tracks: Tracks, step: int) -> Tracks:
    """Rows on every ``step``-th frame, renumbered ``frame // step``."""
    if step == 1:
        return tracks
    keep = tracks.frame % step == 0
    kept = tracks[keep]
    return kept.with_columns(frame=kept.frame // step)


def sequence_info(seq: Sequence) -> SequenceInfo:
    """What the checks are told about the sequence (MOT numbering from 1).

    The frame rate goes in only if :class:`SequenceInfo` has a field for it (``fps`` or
    ``frame_rate``), so the evaluation runs before and after the checks learn about time.
    """
    names = {f.name for f in fields(SequenceInfo)}
    extra: dict[str, float] = {}
    for key in ("fps", "frame_rate"):
        if key in names:
            extra[key] = seq.fps
    return SequenceInfo(num_frames=seq.num_frames, width=seq.width, height=seq.height, frame_base=1,
                        name=seq.spec.name, **extra)  # type: ignore[arg-type]


def load_sequence(data: Path, spec: SequenceSpec) -> Sequence:
    """Read ground truth (and public detections) of ``spec`` from the shared data folder."""
    folder = data / "motgt" / spec.base
    gt, info = read_mot(folder / "gt.txt")
    cp = configparser.ConfigParser()
    cp.read(folder / "seqinfo.ini", encoding="utf-8")
    fps = float(cp["Sequence"].get("frameRate", "30"))
    dets = None
    if spec.public_detections:
        dets = read_mot_detections(data / "MOT17-mini" / "train" / f"{spec.base}-FRCNN" / "det" / "det.txt")
        dets = subsample(dets, spec.step)
    return Sequence(spec=spec, gt=subsample(gt, spec.step), public_detections=dets,
                    num_frames=math.ceil(info.num_frames / spec.step), width=info.width,
                    height=info.height, fps=fps / spec.step)
