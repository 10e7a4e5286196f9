"""The ground truth a calibration is scored against, and the checks that make it trustworthy.

A calibration is only as good as its ground truth: a frame the annotators never looked at
would count every pre-annotated box there as a false positive and push the chosen threshold
up. So every frame the sweep scores must be *annotated* — a frame of a MOT file that holds at
least one row, or a frame of an accepted CVAT job — and a gap is one clear error, not a
silently lower precision.

MOTChallenge ground truth (``mot_class`` column present) is scored by MOTChallenge's rules,
as ``cvat-track eval --motchallenge`` does, through TrackEval's own preprocessing
(:mod:`cvat_extension.metrics.mot_preprocess`): only boxes with the consider flag set count,
and a prediction matched (IoU ≥ 0.5, Hungarian over every ground-truth box of its frame) to a
distractor (person on vehicle, static person, distractor, reflection) is dropped instead of
being counted as a false positive. (A copy of that rule here matched against fewer boxes and
counted 78 fewer false positives on MOT17-02 than TrackEval.)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import InputError
from cvat_extension.metrics.mot_preprocess import BENCHMARKS, preprocess_mot

__all__ = ["CalibrationTruth", "LabelMap", "frame_ranges", "parse_label_map"]


@dataclass(frozen=True, slots=True)
class LabelMap:
    """Model label → ground-truth label pairs; only these labels are scored (pooled)."""

    pairs: tuple[tuple[str, str], ...] = ()

    @property
    def model_labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(m for m, _ in self.pairs))

    @property
    def gt_labels(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g for _, g in self.pairs))

    def resolve(self, model_labels: Sequence[str], gt_labels: Sequence[str]) -> LabelMap:
        """This map checked against both label sets, or the shared names when it is empty.

        Raises:
            InputError: a mapped label the model or the ground truth does not have, or no
                mapping given and no shared name.
        """
        if not self.pairs:
            shared = tuple((name, name) for name in model_labels if name in gt_labels)
            if not shared:
                raise InputError(
                    f"label mapping: the model's labels ({_names(model_labels)}) and the ground truth's "
                    f"({_names(gt_labels)}) share no name; map them with --map MODEL=GT, e.g. "
                    f"--map {model_labels[0] if model_labels else 'person'}="
                    f"{gt_labels[0] if gt_labels else 'pedestrian'}"
                )
            return LabelMap(shared)
        for model, gt in self.pairs:
            if model not in model_labels:
                raise InputError(
                    f"--map {model}={gt}: the model has no label {model!r} (its labels: {_names(model_labels)})"
                )
            if gt not in gt_labels:
                raise InputError(
                    f"--map {model}={gt}: the ground truth has no label {gt!r} (its labels: {_names(gt_labels)})"
                )
        return self


def _names(labels: Sequence[str]) -> str:
    shown = ", ".join(labels[:12]) + (f", … {len(labels) - 12} more" if len(labels) > 12 else "")
    return shown or "none"


def parse_label_map(items: Iterable[str]) -> LabelMap:
    """``["person=pedestrian", ...]`` → :class:`LabelMap`.

    Raises:
        InputError: an item without exactly one ``=`` or with an empty side.
    """
    pairs = []
    for item in items:
        model, sep, gt = item.partition("=")
        if not sep or not model.strip() or not gt.strip() or "=" in gt:
            raise InputError(f"--map {item!r}: expected MODEL_LABEL=GT_LABEL, e.g. person=pedestrian")
        pairs.append((model.strip(), gt.strip()))
    return LabelMap(tuple(pairs))


def frame_ranges(frames: npt.NDArray[np.int64], *, limit: int = 4) -> str:
    """``"0–9, 20, 30–39"`` for sorted frame numbers (at most ``limit`` ranges shown)."""
    if len(frames) == 0:
        return "none"
    cuts = np.flatnonzero(np.diff(frames) != 1) + 1
    starts = np.concatenate([[0], cuts])
    ends = np.concatenate([cuts, [len(frames)]]) - 1
    parts = [f"{frames[a]}" if a == b else f"{frames[a]}–{frames[b]}" for a, b in zip(starts, ends)]
    more = f", … {len(parts) - limit} more ranges" if len(parts) > limit else ""
    return ", ".join(parts[:limit]) + more


@dataclass(frozen=True)
class CalibrationTruth:
    """Ground truth ready for scoring.

    Attributes:
        scored: visible boxes that count (mapped labels; MOT consider flag set).
        annotated: sorted frames whose annotation is complete (possibly without boxes).
        label_map: which model labels are scored against which ground-truth labels.
        mot_gt: MOTChallenge ground truth only: every visible row, all classes, which
            TrackEval's preprocessing matches predictions against; None otherwise.
        benchmark: whose distractor rules apply (``MOT17``, ``MOT20``; MOT16 = MOT17).
    """

    scored: Tracks
    annotated: npt.NDArray[np.int64]
    label_map: LabelMap
    mot_gt: Tracks | None = None
    benchmark: str = "MOT17"

    @classmethod
    def from_tracks(
        cls,
        gt: Tracks,
        *,
        label_map: LabelMap,
        model_labels: Sequence[str],
        annotated: npt.ArrayLike | None = None,
        benchmark: str = "MOT17",
    ) -> CalibrationTruth:
        """From dense ground-truth boxes (MOT file, CVAT export or a read CVAT task).

        Args:
            gt: per-frame boxes; ``outside`` rows are dropped.
            label_map: pairs to score (empty: the names both sides share).
            model_labels: the labels the detector can produce.
            annotated: frames known to be fully annotated (CVAT: accepted jobs); default
                the frames holding at least one ground-truth row.
            benchmark: MOTChallenge distractor rules for MOT ground truth (``MOT20`` adds
                non-motorised vehicles).

        Raises:
            InputError: the label mapping does not fit (see :meth:`LabelMap.resolve`).
        """
        vis = gt.visible()
        used = tuple(vis.labels[c] for c in np.unique(vis.label)) if len(vis) else ()
        resolved = label_map.resolve(tuple(model_labels), used)
        names = np.asarray(vis.labels, dtype=object)[vis.label] if len(vis) else np.zeros(0, dtype=object)
        wanted = np.isin(names, resolved.gt_labels)
        mot_gt = None
        if "mot_class" in vis.data:
            if benchmark not in BENCHMARKS:
                raise InputError(f"benchmark {benchmark!r}: expected one of {', '.join(BENCHMARKS)}")
            scored = wanted & (vis.score != 0)
            mot_gt = vis
        else:
            scored = wanted
        frames = np.unique(gt.frame) if annotated is None else np.unique(np.asarray(annotated, dtype=np.int64))
        return cls(scored=vis[scored], annotated=frames, label_map=resolved,
                   mot_gt=mot_gt, benchmark=benchmark)

    def check_covers(self, frames: npt.NDArray[np.int64], *, hint: str = "") -> None:
        """Refuse to score frames that are not annotated.

        Raises:
            InputError: some of ``frames`` are not annotated (the ranges are named).
        """
        missing = np.setdiff1d(frames, self.annotated)
        if len(missing):
            raise InputError(
                f"ground truth: {len(missing)} of the {len(frames)} frames to calibrate on have no ground truth "
                f"(frames {frame_ranges(missing)}, counted from 0); every scored frame needs complete ground "
                f"truth{hint}"
            )

    def restricted(self, first: int, last: int) -> CalibrationTruth:
        """The same truth on frames ``first..last`` only."""

        def cut(t: Tracks) -> Tracks:
            return t[(t.frame >= first) & (t.frame <= last)]

        inside = self.annotated[(self.annotated >= first) & (self.annotated <= last)]
        return CalibrationTruth(cut(self.scored), inside, self.label_map,
                                None if self.mot_gt is None else cut(self.mot_gt), self.benchmark)

    def predictions_to_score(self, pred: Tracks, frames: npt.NDArray[np.int64]) -> Tracks:
        """``pred`` on ``frames`` with mapped labels; for MOT ground truth minus the
        predictions TrackEval's MOTChallenge preprocessing removes (matched to distractors)."""
        vis = pred.visible()
        names = np.asarray(vis.labels, dtype=object)[vis.label] if len(vis) else np.zeros(0, dtype=object)
        vis = vis[np.isin(names, self.label_map.model_labels) & np.isin(vis.frame, frames)]
        if self.mot_gt is None or not len(vis):
            return vis
        gt = self.mot_gt[np.isin(self.mot_gt.frame, frames)]
        cls = np.asarray(gt.data["mot_class"])
        seq = preprocess_mot(gt, np.where(cls <= 0, 1, cls), gt.score, vis, benchmark=self.benchmark)
        keep = np.ones(len(vis), dtype=bool)
        keep[seq.removed_pred_rows] = False
        return vis[keep]
