"""Smoothing machine tracks before they become CVAT keyframes.

Why: a detector's box jitters by several pixels from frame to frame, so a tracker's raw
output cannot be thinned to few keyframes without losing accuracy: every frame differs from
the straight line between its neighbours by more than any useful pixel tolerance, and the
annotator who corrects the pre-annotation ends up fixing a box per frame (CVAT issues #349,
#9502). The true motion of a person or a car is smooth over a handful of frames; the jitter
is not. Smoothing removes the jitter first, and :func:`~cvat_extension.core.keyframes.thin_keyframes`
with a tolerance relative to the box size then keeps only the corners of the motion.

The smoother is the Whittaker–Henderson penalised least-squares fit, per track and box
coordinate::

    minimise  Σ_t w_t (x_t − z_t)²  +  λ Σ_t (x_{t+1} − 2 x_t + x_{t−1})²

It is the maximum-a-posteriori estimate — the same numbers a Rauch–Tung–Striebel (Kalman)
smoother gives — of a state-space model whose acceleration is white noise, with
``λ = measurement variance / acceleration variance``; it is solved exactly as one banded
(pentadiagonal) linear system per track, so there is no Python loop over frames. Both terms
scale with the square of the box size, so one ``smoothness`` serves a 20-pixel pedestrian
and a 400-pixel one alike: λ is a time constant in frames (the fit follows motions slower
than about ``2π λ^¼`` frames, about 13 frames for the default λ = 16) and not a pixel count.

Detections that are wrong for a frame or two (a box around two people, a half-occluded
box) would pull the fit towards them; iteratively reweighted least squares with Huber
weights on the residual *measured in box sizes* gives them less weight
(``outlier_box_fraction``). Frames missing inside a track (the tracker kept the id through a
short occlusion) get weight zero: the fit interpolates them along the same smooth curve,
and gaps up to ``max_fill_gap_frames`` are filled with those boxes, flagged ``occluded``
(CVAT draws them dashed: "we did not see it here"), instead of being cut by an ``outside``
keyframe. Longer gaps split the track into pieces smoothed separately.

:class:`SparseTrackConfig` bundles what every uploader of machine tracks does (smooth, then
thin with a size-relative tolerance), with an ``exact`` mode that skips smoothing for users
who want the raw boxes. The defaults come from ``scripts/eval_sparse_tracks.py`` (MOT17-02
and -04, public detections, ByteTrack and BoT-SORT): see the README section "Sparse machine
tracks".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from cvat_extension.core.keyframes import thin_keyframes
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError

__all__ = ["SmoothConfig", "SparseTrackConfig", "smooth_tracks"]


@dataclass(frozen=True, slots=True)
class SmoothConfig:
    """How :func:`smooth_tracks` smooths each track.

    Attributes:
        smoothness: λ, the weight of the second-difference penalty (dimensionless: data and
            penalty both scale with the box size squared). Raising it removes more jitter and
            lets fewer keyframes describe the track, but rounds off sudden turns and stops;
            lowering it follows the detections more closely. 0 returns the boxes unchanged.
        max_fill_gap_frames: frames missing inside a track, up to this many in a row, are
            filled with smoothed boxes (no ``outside`` keyframe there); longer gaps split
            the track. Raising it keeps objects through longer occlusions (fewer keyframes,
            more recall on datasets that annotate occluded objects), at the risk of boxes
            where the object really left; 0 never adds a box.
        outlier_box_fraction: residual, in box widths (x) and heights (y), beyond which a
            detection counts as an outlier and is down-weighted (Huber). Lower rejects more
            (a real sudden move may then be smoothed over); higher trusts every detection.
        iterations: reweighting passes; 1 is a plain least-squares fit.
    """

    smoothness: float = 16.0
    max_fill_gap_frames: int = 30
    outlier_box_fraction: float = 0.1
    iterations: int = 3

    def __post_init__(self) -> None:
        if not np.isfinite(self.smoothness) or self.smoothness < 0:
            raise ConfigError(f"smoothness: expected a finite number >= 0, got {self.smoothness!r}")
        if isinstance(self.max_fill_gap_frames, bool) or int(self.max_fill_gap_frames) != self.max_fill_gap_frames \
                or self.max_fill_gap_frames < 0:
            raise ConfigError(f"max_fill_gap_frames: expected an integer >= 0, got {self.max_fill_gap_frames!r}")
        if not np.isfinite(self.outlier_box_fraction) or self.outlier_box_fraction <= 0:
            raise ConfigError(f"outlier_box_fraction: expected a number > 0, got {self.outlier_box_fraction!r}")
        if isinstance(self.iterations, bool) or int(self.iterations) != self.iterations or self.iterations < 1:
            raise ConfigError(f"iterations: expected an integer >= 1, got {self.iterations!r}")


def _solveh_banded() -> Callable[..., np.ndarray]:
    """scipy's banded solver, imported on first use: ``scipy.linalg`` costs ~0.3 s to import,
    which every ``cvat-track`` command would pay through the CLI's option defaults."""
    from scipy.linalg import solveh_banded

    return solveh_banded


def _second_difference_bands(n: int, lam: float, weights: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Upper banded form (3, n) of ``diag(weights) + λ DᵀD`` for scipy's ``solveh_banded``.

    ``D`` is the (n-2, n) second-difference matrix; ``DᵀD`` has the bands
    ``[1, 5, 6, …, 6, 5, 1]``, ``[-2, -4, …, -4, -2]`` and ``[1, …, 1]``.
    """
    ones = np.ones(n - 2)
    ab = np.zeros((3, n))
    ab[2] = weights + lam * np.convolve(ones, [1.0, 4.0, 1.0])
    ab[1, 1:] = lam * np.convolve(ones, [-2.0, -2.0])
    ab[0, 2:] = lam * ones
    return ab


def _smooth_run(
    z: npt.NDArray[np.float64], observed: npt.NDArray[np.bool_], config: SmoothConfig
) -> npt.NDArray[np.float64]:
    """Fit one run of consecutive frames: ``z`` (n, 4) xyxy, ``observed`` (n,) (gaps False)."""
    n = len(z)
    if n < 3 or config.smoothness == 0 or observed.sum() < 2:
        if observed.all():
            return z.copy()
        # Two observations around a gap: the fit is the straight line through them.
        idx = np.flatnonzero(observed)
        t = np.arange(n)
        return np.column_stack([np.interp(t, idx, z[idx, c]) for c in range(4)])
    w = observed.astype(np.float64)
    zz = np.where(observed[:, None], z, 0.0)
    size = np.abs(np.column_stack([z[:, 2] - z[:, 0], z[:, 3] - z[:, 1]]))
    size = np.where(observed[:, None], np.maximum(size, 1.0), 1.0)
    weights = w
    fit = zz
    for _ in range(int(config.iterations)):
        fit = _solveh_banded()(_second_difference_bands(n, config.smoothness, weights), weights[:, None] * zz,
                            check_finite=False)
        # Residual of each box in its own size units (x by width, y by height).
        r = np.abs(fit - zz) / np.tile(size, 2)[:, [0, 1, 0, 1]]
        worst = r.max(axis=1)
        huber = np.divide(config.outlier_box_fraction, worst, out=np.ones(n), where=worst > config.outlier_box_fraction)
        weights = w * huber
    return fit


def smooth_tracks(tracks: Tracks, config: SmoothConfig | None = None) -> Tracks:
    """Smoothed boxes of every track, with short gaps filled (see the module docstring).

    Rows flagged ``outside`` are dropped; every other column of a filled frame is copied
    from the last observed row before it, with ``score`` 0 (nobody detected it) and
    ``occluded`` set. The result has one visible row per (track, frame).

    Args:
        tracks: dense per-frame boxes (e.g. a tracker's output), one per (track, frame).
        config: smoothing settings; default :class:`SmoothConfig`.

    >>> t = Tracks.from_columns(frame=[0, 1, 2, 3, 5], track_id=[1] * 5,
    ...                         xyxy=[[0, 0, 10, 20], [2, 0, 12, 20], [4, 0, 14, 20], [6, 0, 16, 20],
    ...                               [10, 0, 20, 20]])
    >>> s = smooth_tracks(t, SmoothConfig(max_fill_gap_frames=1))
    >>> s.frame.tolist(), (s.xyxy[:, 0].round(6) + 0.0).tolist(), s.score.tolist()
    ([0, 1, 2, 3, 4, 5], [0.0, 2.0, 4.0, 6.0, 8.0, 10.0], [1.0, 1.0, 1.0, 1.0, 0.0, 1.0])
    >>> s.occluded.tolist()
    [False, False, False, False, True, False]
    """
    config = config or SmoothConfig()
    vis = tracks.visible()
    n = len(vis)
    if n == 0:
        return vis
    f = vis.frame
    new_track = np.ones(n, dtype=bool)
    new_track[1:] = vis.track_id[1:] != vis.track_id[:-1]
    step = np.zeros(n, dtype=np.int64)
    step[1:] = f[1:] - f[:-1]
    if np.any(~new_track & (step == 0)):
        i = int(np.flatnonzero(~new_track & (step == 0))[0])
        raise ValueError(f"track {int(vis.track_id[i])} has two boxes on frame {int(f[i])}")
    run_start = new_track | (step > int(config.max_fill_gap_frames) + 1)
    starts = np.flatnonzero(run_start)
    ends = np.append(starts[1:], n)

    # Rows of the output: every frame of every run.
    lengths = f[ends - 1] - f[starts] + 1
    total = int(lengths.sum())
    run_of = np.repeat(np.arange(len(starts)), lengths)
    offset = np.arange(total) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out_frame = f[starts][run_of] + offset
    # Position of each observed row within the output.
    out_pos = (np.cumsum(lengths) - lengths)[np.repeat(np.arange(len(starts)), ends - starts)] + \
        (f - np.repeat(f[starts], ends - starts))
    observed = np.zeros(total, dtype=bool)
    observed[out_pos] = True
    # The last observed input row at or before each output row (gaps copy its fields).
    src_row = np.maximum.accumulate(np.where(observed, np.cumsum(observed) - 1, -1))

    xyxy = np.zeros((total, 4))
    xyxy[out_pos] = vis.xyxy
    first = np.cumsum(lengths) - lengths
    for a, m in zip(first.tolist(), lengths.tolist()):
        xyxy[a:a + m] = _smooth_run(xyxy[a:a + m], observed[a:a + m], config)

    picked = vis[src_row]
    return Tracks(
        frame=out_frame,
        track_id=picked.track_id,
        xyxy=xyxy,
        label=picked.label,
        outside=np.zeros(total, dtype=bool),
        occluded=picked.occluded | ~observed,
        keyframe=observed & picked.keyframe,
        visibility=picked.visibility,
        source=picked.source,
        score=np.where(observed, picked.score, np.float32(0.0)).astype(np.float32),
        rotation=picked.rotation,
        labels=vis.labels,
        data={k: np.asarray(v) for k, v in picked.data.items()},
    )


@dataclass(frozen=True, slots=True)
class SparseTrackConfig:
    """How machine tracks become CVAT keyframes: smooth, then thin relative to box size.

    Attributes:
        exact: skip smoothing and gap filling and thin with ``tolerance_px`` alone: the
            uploaded boxes are the tracker's own to within that many pixels (one keyframe
            per frame or close to it for jittery detections).
        smooth: smoothing settings (ignored when ``exact``).
        tolerance_px: pixel tolerance of the thinning; the floor of the size-relative one.
        tolerance_box_fraction: allowed deviation per coordinate as a fraction of the box's
            width (x) or height (y) (ignored when ``exact``). Raising it gives fewer
            keyframes and looser boxes.
    """

    exact: bool = False
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    tolerance_px: float = 1.0
    tolerance_box_fraction: float = 0.02

    def __post_init__(self) -> None:
        if not np.isfinite(self.tolerance_px) or self.tolerance_px < 0:
            raise ConfigError(f"tolerance_px: expected a finite number >= 0, got {self.tolerance_px!r}")
        if not np.isfinite(self.tolerance_box_fraction) or not 0 <= self.tolerance_box_fraction < 0.5:
            raise ConfigError(
                f"tolerance_box_fraction: expected a number in [0, 0.5), got {self.tolerance_box_fraction!r}"
            )

    def prepare(self, tracks: Tracks) -> Tracks:
        """Dense boxes to upload: smoothed (gaps filled), or the visible input when ``exact``.

        Run it on whole tracks (the full task), before cutting them per job, so that job
        boundaries do not change the fit.
        """
        return tracks.visible() if self.exact else smooth_tracks(tracks, self.smooth)

    def keyframes(self, dense: Tracks, *, stop_frame: int | None = None) -> Tracks:
        """The CVAT keyframes of already prepared dense boxes (see ``thin_keyframes``)."""
        fraction = 0.0 if self.exact else self.tolerance_box_fraction
        return thin_keyframes(dense, tolerance_px=self.tolerance_px, stop_frame=stop_frame,
                              tolerance_box_fraction=fraction)

    def sparse(self, tracks: Tracks, *, stop_frame: int | None = None) -> Tracks:
        """:meth:`prepare` then :meth:`keyframes`, for one piece (a file, a single job).

        A box moving 3 px a frame with ±2 px of detector jitter:

        >>> f = np.arange(12)
        >>> noise = np.array([0, 2, -2, 1, -1, 2, -2, 0, 2, -1, 1, -2])
        >>> x = 3 * f + noise
        >>> boxes = np.column_stack([x, 100 + noise[::-1], x + 40, 200 + noise])
        >>> t = Tracks.from_columns(frame=f, track_id=[1] * 12, xyxy=boxes)
        >>> len(SparseTrackConfig(exact=True).sparse(t)), len(SparseTrackConfig().sparse(t))
        (12, 2)
        """
        return self.keyframes(self.prepare(tracks), stop_frame=stop_frame)
