"""Attention checks: which machine boxes to withhold from annotators, and whether they came back.

Why: pre-annotations that are nearly right make annotators stop looking. A few *planted
misses* (clearly visible objects whose box we deliberately leave out of one frame of a
pre-annotated track) measure whether each annotator still checks every frame: a vigilant
annotator adds the box back; one who clicks through does not. The tracking-dataset guidance
is to retrain annotators who miss more than 30 % of them, hence the default 70 % bar.

A planted miss must be fair: the object has to be *clearly* visible, or missing it says
nothing about the annotator. So a candidate box is

- confident (``min_score``), not tiny (``min_height_px`` and ``min_area_fraction``),
- not truncated (at least ``edge_margin_px`` inside the image),
- not occluded (no other box on that frame covers more than ``max_covered_fraction`` of it),
- inside its track with a box on the frames before and after (the removed frame then
  shows as a one-frame gap of a track the annotator is already looking at, not as a
  shorter track), and away from job edges and overlap frames (each miss belongs to exactly
  one job and does not change how CVAT cuts tracks at job boundaries).

Misses are spread: per job at most ``per_job``, at most one per frame, other tracks
preferred (one track's misses at least two frames apart), the job's frames split into
equal bins with at most one miss per bin, chosen with a seeded
generator so the same input and seed plant the same misses (a resumed run plants again
exactly what it recorded).

Scoring is simple on purpose: a miss is *restored* when the annotated job has any visible
box on that frame with IoU >= ``min_iou`` (0.5) with the planted box, whatever its track or
label (a restored box under another label is a label error, not an attention lapse).

This module does no I/O; ``cvat/attention.py`` records plans in the state store and reads
CVAT.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_extension.core.geometry import area_xyxy, iou_xyxy_batch
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError

__all__ = ["AttentionConfig", "JobSpan", "PlantedMisses", "remove_planted", "restored_mask", "select_planted_misses"]


@dataclass(frozen=True, slots=True)
class AttentionConfig:
    """How many misses to plant and what counts as clearly visible.

    Attributes:
        per_job: misses planted per job (fewer when a job has too few fair candidates).
            More misses measure an annotator more precisely (5 misses: a step of 20 %), but
            each one is a box the annotator must add back.
        min_score: detector confidence floor of a candidate; lower it only for a weak model.
        min_height_px: smallest box height; raise it for high-resolution footage.
        min_area_fraction: smallest box area as a fraction of the frame area.
        edge_margin_px: a box closer than this to the image border counts as truncated.
        max_covered_fraction: a box with more than this fraction of its area inside another
            box of the same frame counts as occluded.
        min_iou: IoU with the planted box above which an annotated box restores the miss.
        seed: seed of the choice; recorded with the plan.
    """

    per_job: int = 5
    min_score: float = 0.6
    min_height_px: float = 24.0
    min_area_fraction: float = 0.002
    edge_margin_px: float = 4.0
    max_covered_fraction: float = 0.1
    min_iou: float = 0.5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.per_job < 1:
            raise ConfigError(f"attention per_job: expected >= 1, got {self.per_job}")
        for name in ("min_score", "min_area_fraction", "max_covered_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"attention {name}: expected a number in [0, 1], got {value}")
        if not 0.0 < self.min_iou <= 1.0:
            raise ConfigError(f"attention min_iou: expected a number in (0, 1], got {self.min_iou}")
        if self.min_height_px < 0 or self.edge_margin_px < 0:
            raise ConfigError("attention min_height_px and edge_margin_px must be >= 0")


@dataclass(frozen=True, slots=True)
class JobSpan:
    """A CVAT annotation job: id and first/last task frame (inclusive)."""

    job_id: int
    start_frame: int
    stop_frame: int


@dataclass(frozen=True, slots=True)
class PlantedMisses:
    """Aligned columns of planted misses, sorted by (job_id, frame).

    Attributes:
        job_id: (n,) int64.
        frame: (n,) int64 task frame.
        track_id: (n,) int64 id of the pre-annotated track the box was removed from.
        label: (n,) label names.
        xyxy: (n, 4) float64 the removed box.
    """

    job_id: npt.NDArray[np.int64]
    frame: npt.NDArray[np.int64]
    track_id: npt.NDArray[np.int64]
    label: tuple[str, ...]
    xyxy: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def empty(cls) -> PlantedMisses:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), (), np.zeros((0, 4)))


def _candidates(tracks: Tracks, width: int, height: int, cfg: AttentionConfig) -> npt.NDArray[np.bool_]:
    """(n,) rows of ``tracks`` that are clearly visible and inside their track."""
    vis = ~tracks.outside
    xyxy = tracks.xyxy
    h = xyxy[:, 3] - xyxy[:, 1]
    area = area_xyxy(xyxy)
    ok = vis & (tracks.score >= cfg.min_score) & (h >= cfg.min_height_px)
    ok &= area >= cfg.min_area_fraction * float(width) * float(height)
    m = cfg.edge_margin_px
    ok &= (xyxy[:, 0] >= m) & (xyxy[:, 1] >= m) & (xyxy[:, 2] <= width - m) & (xyxy[:, 3] <= height - m)
    # Interior of its track: the same track has a visible box on frame-1 and frame+1 (rows
    # are sorted by (track_id, frame), so neighbours are the adjacent rows).
    same_prev = np.zeros(len(tracks), bool)
    same_next = np.zeros(len(tracks), bool)
    if len(tracks) > 1:
        adj = (tracks.track_id[1:] == tracks.track_id[:-1]) & (tracks.frame[1:] == tracks.frame[:-1] + 1)
        adj &= vis[1:] & vis[:-1]
        same_prev[1:] = adj
        same_next[:-1] = adj
    ok &= same_prev & same_next
    # Not occluded: no other visible box on the frame covers much of it. Loop over frames
    # that still hold candidates (a body of array operations per frame).
    for f in np.unique(tracks.frame[ok]):
        on = np.flatnonzero((tracks.frame == f) & vis)
        if len(on) < 2:
            continue
        b = xyxy[on]
        w = np.minimum(b[:, None, 2], b[None, :, 2]) - np.maximum(b[:, None, 0], b[None, :, 0])
        hh = np.minimum(b[:, None, 3], b[None, :, 3]) - np.maximum(b[:, None, 1], b[None, :, 1])
        inter = np.clip(w, 0, None) * np.clip(hh, 0, None)
        np.fill_diagonal(inter, 0.0)
        own = area[on][:, None]
        covered = np.divide(inter, own, out=np.zeros_like(inter), where=own > 0).max(axis=1)
        ok[on[covered > cfg.max_covered_fraction]] = False
    return ok


def select_planted_misses(
    tracks: Tracks,
    jobs: Sequence[JobSpan],
    frame_size: tuple[int, int],
    config: AttentionConfig = AttentionConfig(),
) -> PlantedMisses:
    """Choose the boxes to withhold from the pre-annotation of a task.

    Args:
        tracks: the per-frame machine boxes about to be uploaded (one row per visible box).
        jobs: the task's annotation jobs.
        frame_size: ``(width, height)`` of the frames.
        config: how many and which boxes.

    Returns:
        The chosen misses (possibly fewer than ``per_job`` per job, or none).
    """
    width, height = frame_size
    if not len(tracks) or not jobs:
        return PlantedMisses.empty()
    ok = _candidates(tracks, width, height, config)
    starts = np.array([j.start_frame for j in jobs])
    stops = np.array([j.stop_frame for j in jobs])
    # How many jobs hold each frame (overlap frames are held by two).
    holders = ((tracks.frame[:, None] >= starts[None, :]) & (tracks.frame[:, None] <= stops[None, :])).sum(axis=1)
    ok &= holders == 1
    rng = np.random.default_rng(config.seed)
    picked: list[tuple[int, int]] = []  # (job_id, row)
    for job in sorted(jobs, key=lambda j: (j.start_frame, j.job_id)):
        # Job edges are excluded: the frames before and after a miss stay in the same job.
        in_job = ok & (tracks.frame > job.start_frame) & (tracks.frame < job.stop_frame)
        rows = np.flatnonzero(in_job)
        if not len(rows):
            continue
        bins = np.linspace(job.start_frame + 1, job.stop_frame, config.per_job + 1)
        chosen: list[int] = []

        def fits(r: int) -> bool:
            # One miss per frame; misses of one track at least two frames apart, so a
            # visible box stays between them and each shows as a one-frame gap.
            f, t = int(tracks.frame[r]), int(tracks.track_id[r])
            return all(int(tracks.frame[c]) != f
                       and (int(tracks.track_id[c]) != t or abs(int(tracks.frame[c]) - f) >= 2)
                       for c in chosen)

        def prefer_new_tracks(pool: npt.NDArray[np.int64]) -> list[int]:
            used = {int(tracks.track_id[c]) for c in chosen}
            shuffled = [int(r) for r in rng.permutation(pool)]
            return [r for r in shuffled if int(tracks.track_id[r]) not in used] + \
                [r for r in shuffled if int(tracks.track_id[r]) in used]

        for lo, hi in zip(bins[:-1], bins[1:], strict=True):
            pool = rows[(tracks.frame[rows] >= lo) & (tracks.frame[rows] < hi)]
            pick = next((r for r in prefer_new_tracks(pool) if fits(r)), None)
            if pick is not None:
                chosen.append(pick)
        # Bins without a candidate: fill from the rest of the job under the same rules.
        for r in prefer_new_tracks(rows):
            if len(chosen) >= config.per_job:
                break
            if fits(r):
                chosen.append(r)
        picked.extend((job.job_id, r) for r in chosen)
    if not picked:
        return PlantedMisses.empty()
    picked.sort(key=lambda p: (p[0], int(tracks.frame[p[1]])))
    rows_arr = np.array([r for _, r in picked], dtype=np.int64)
    return PlantedMisses(
        job_id=np.array([j for j, _ in picked], dtype=np.int64),
        frame=tracks.frame[rows_arr].copy(),
        track_id=tracks.track_id[rows_arr].copy(),
        label=tuple(tracks.labels[int(c)] for c in tracks.label[rows_arr]),
        xyxy=tracks.xyxy[rows_arr].copy(),
    )


def remove_planted(tracks: Tracks, planted: PlantedMisses, *, min_iou: float = 0.5) -> Tracks:
    """``tracks`` without the planted boxes.

    Each miss removes, on its frame, the box that overlaps the recorded one best (IoU >=
    ``min_iou``), preferring its recorded track: a resumed run whose tracker numbered the
    objects differently still withholds the same objects, and a miss whose object is no
    longer detected removes nothing.
    """
    if not len(planted) or not len(tracks):
        return tracks
    drop = np.zeros(len(tracks), bool)
    for i in range(len(planted)):  # a handful of misses per job
        rows = np.flatnonzero((tracks.frame == planted.frame[i]) & ~tracks.outside & ~drop)
        if not len(rows):
            continue
        iou = iou_xyxy_batch(planted.xyxy[i:i + 1], tracks.xyxy[rows])[0]
        iou = iou + (tracks.track_id[rows] == planted.track_id[i]) * 1e-3  # ties: the recorded track
        best = int(np.argmax(iou))
        if iou[best] >= min_iou:
            drop[rows[best]] = True
    return tracks[~drop]


def restored_mask(planted: PlantedMisses, annotated: Tracks, *, min_iou: float = 0.5) -> npt.NDArray[np.bool_]:
    """(n,) whether each planted miss has an annotated visible box with IoU >= ``min_iou``.

    ``annotated`` holds one row per visible box per frame (expanded tracks and plain shapes
    alike); track ids and labels are ignored.

    >>> p = PlantedMisses(np.array([1, 1]), np.array([3, 4]), np.array([7, 7]), ("a", "a"),
    ...                   np.array([[0., 0, 10, 10], [0, 0, 10, 10]]))
    >>> ann = Tracks.from_columns(frame=[3], track_id=[1], xyxy=[[1., 0, 11, 10]])
    >>> restored_mask(p, ann).tolist()
    [True, False]
    """
    out = np.zeros(len(planted), bool)
    vis = annotated[~annotated.outside] if len(annotated) else annotated
    for i in range(len(planted)):  # a handful of misses per job
        boxes = vis.xyxy[vis.frame == planted.frame[i]]
        if len(boxes):
            out[i] = bool(iou_xyxy_batch(planted.xyxy[i:i + 1], boxes).max() >= min_iou)
    return out
