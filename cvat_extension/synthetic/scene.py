"""Synthetic multi-object scenes with exact ground truth.

Why: the checks, the fragment merge, the demo and the benchmarks need sequences whose true
identities are known, with the situations that make tracking QA hard (crossings, occlusions,
entries and exits, fast and small objects, a panning camera). Real data (``motgt``) gives
realism; this module gives control and any size (the benchmark asks for 100k frames).

Everything is vectorised over (frame, object): a 100k-frame, 50-object scene builds in
about a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import ConfigError

__all__ = ["SceneConfig", "make_scene"]

#: Label names of every synthetic scene; ``label`` codes index this tuple.
SCENE_LABELS: tuple[str, ...] = ("person", "car")


@dataclass(frozen=True)
class SceneConfig:
    """What a synthetic scene contains.

    Attributes:
        num_frames: sequence length.
        num_objects: distinct objects (= ground-truth tracks).
        width: frame width in pixels.
        height: frame height in pixels.
        seed: random seed; the same config always gives the same scene.
        crossing_fraction: share of objects placed so that their path crosses another
            object's path at some frame (the situation where annotators swap ids).
        entry_exit_fraction: share of objects that enter after frame 0 or leave before the
            end (tracks that start/stop mid-sequence).
        min_life_frames: shortest lifetime of an entering/exiting object.
        speed_px_per_frame: (min, max) object speed.
        fast_fraction: share of objects moving at 2-3x the max speed (must not look like
            id switches).
        small_fraction: share of small objects (height 12..30 px).
        car_fraction: share of objects labelled "car" (wide boxes) instead of "person".
        occluded_below_visibility: an object whose visible fraction falls below this gets
            CVAT's occluded flag (visibility is always filled in).
        camera_pan_px: amplitude of a slow horizontal/vertical camera pan that moves every box
            together (0 = static camera), mimicking MOT17-10/11/13.
        camera_zoom: relative amplitude of a slow zoom (0 = none).
        jitter_px: per-frame annotation noise added to box corners (humans are not exact).
        compute_visibility: fill visibility/occluded from box overlaps (O(frames x objects^2));
            turn off for very large benchmark scenes, where every box is then fully visible.
    """

    num_frames: int = 300
    num_objects: int = 12
    width: int = 960
    height: int = 540
    seed: int = 0
    crossing_fraction: float = 0.5
    entry_exit_fraction: float = 0.3
    min_life_frames: int = 60
    speed_px_per_frame: tuple[float, float] = (0.8, 4.0)
    fast_fraction: float = 0.1
    small_fraction: float = 0.15
    car_fraction: float = 0.0
    occluded_below_visibility: float = 0.5
    camera_pan_px: float = 0.0
    camera_zoom: float = 0.0
    jitter_px: float = 0.3
    compute_visibility: bool = True

    def __post_init__(self) -> None:
        if self.num_frames < 2 or self.num_objects < 1:
            raise ConfigError(
                f"SceneConfig: need num_frames >= 2 and num_objects >= 1, got "
                f"{self.num_frames} and {self.num_objects}"
            )
        if self.width < 64 or self.height < 64:
            raise ConfigError(f"SceneConfig: frame must be at least 64x64, got {self.width}x{self.height}")
        for name in ("crossing_fraction", "entry_exit_fraction", "fast_fraction",
                     "small_fraction", "car_fraction", "occluded_below_visibility"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ConfigError(f"SceneConfig.{name} must be in 0..1, got {v}")
        lo, hi = self.speed_px_per_frame
        if not 0.0 <= lo <= hi:
            raise ConfigError(f"SceneConfig.speed_px_per_frame must be (min, max) with 0 <= min <= max, got {self.speed_px_per_frame}")
        if self.min_life_frames < 2:
            raise ConfigError(f"SceneConfig.min_life_frames must be >= 2, got {self.min_life_frames}")
        if self.camera_pan_px < 0 or not 0 <= self.camera_zoom < 0.5 or self.jitter_px < 0:
            raise ConfigError("SceneConfig: camera_pan_px, jitter_px must be >= 0 and camera_zoom in 0..0.5")


def _fold(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Map unbounded coordinates into [lo, hi] smoothly: objects slow down and turn at edges.

    A triangle wave would bounce objects elastically, an instant velocity reversal that no
    real object makes; a raised-cosine fold keeps motion smooth (bounded acceleration).
    Points well inside the range move almost linearly.
    """
    span = np.maximum(hi - lo, 1e-6)
    u = np.mod(x - lo, 2 * span) / span  # 0..2
    tri = 1.0 - np.abs(u - 1.0)  # 0..1..0 triangle
    # Linear in the middle, cosine ease over a quarter of the range at both turning points.
    e = 0.25
    ke = e * 2 / np.pi  # eased distance covered over [0, e]

    def ease(v: np.ndarray) -> np.ndarray:
        return ke * (1 - np.cos(np.pi / 2 * np.clip(v, 0, e) / e))

    total = 2 * ke + (1 - 2 * e)
    g = np.where(tri < e, ease(tri), np.where(tri > 1 - e, total - ease(1 - tri), ke + (tri - e)))
    return lo + g / total * span


def make_scene(config: SceneConfig = SceneConfig()) -> tuple[Tracks, SequenceInfo]:
    """Build a scene: dense per-frame ground-truth boxes and the sequence info.

    Objects move at constant velocity plus a smooth random wobble and bounce off the frame
    edges. Depth follows the bottom edge (lower in the image = nearer), and each box's
    ``visibility`` is one minus the share covered by nearer boxes; below
    ``occluded_below_visibility`` the CVAT occluded flag is set. Track ids are 1..num_objects.

    >>> gt, info = make_scene(SceneConfig(num_frames=50, num_objects=3))
    >>> len(gt.ids), info.num_frames, gt.labels
    (3, 50, ('person', 'car'))
    """
    c = config
    rng = np.random.default_rng(c.seed)
    n, F = c.num_objects, c.num_frames
    t = np.arange(F, dtype=np.float64)

    # Sizes: persons are tall, cars wide, some objects small.
    is_car = rng.random(n) < c.car_fraction
    small = rng.random(n) < c.small_fraction
    h = np.where(small, rng.uniform(12, 30, n), rng.uniform(0.12, 0.35, n) * c.height)
    aspect = np.where(is_car, rng.uniform(1.6, 2.4, n), rng.uniform(0.35, 0.5, n))  # w / h
    w = h * aspect
    # A slow size change (walking towards/away from the camera).
    scale = 1.0 + rng.uniform(-0.25, 0.25, n)[None, :] * (t[:, None] / max(F - 1, 1))
    W = w[None, :] * scale
    H = h[None, :] * scale

    # Velocities.
    lo, hi = c.speed_px_per_frame
    speed = rng.uniform(lo, hi, n)
    fast = rng.random(n) < c.fast_fraction
    speed = np.where(fast, speed * rng.uniform(2.0, 3.0, n), speed)
    angle = rng.uniform(0, 2 * np.pi, n)
    vel = np.stack([np.cos(angle), np.sin(angle) * 0.5], axis=1) * speed[:, None]
    # Smooth wobble: a sum of two slow sinusoids per axis.
    wob_amp = rng.uniform(0, 0.3, (n, 2)) * h[:, None]
    wob_per = rng.uniform(60, 240, (n, 2))
    wob_ph = rng.uniform(0, 2 * np.pi, (n, 2))
    wobble = wob_amp[None] * np.sin(2 * np.pi * t[:, None, None] / wob_per[None] + wob_ph[None])

    # Unbounded top-left trajectories, folded into the frame.
    start = np.stack([rng.uniform(0, c.width, n), rng.uniform(0, c.height, n)], axis=1)
    unb = start[None] + vel[None] * t[:, None, None] + wobble
    lo_xy = np.zeros((F, n, 2))
    hi_xy = np.stack([c.width - W, c.height - H], axis=2)
    pos = _fold(unb, lo_xy, hi_xy)

    # Crossings: place object b so that it sits on object a's box at frame k.
    n_cross = min(int(round(c.crossing_fraction * n / 2)), n // 2)
    order = rng.permutation(n)
    for j in range(n_cross):
        a, b = int(order[2 * j]), int(order[2 * j + 1])
        k = int(rng.integers(F // 5, max(F // 5 + 1, 4 * F // 5)))
        target = pos[k, a] + np.array([W[k, a] - W[k, b], H[k, a] - H[k, b]]) / 2
        target = np.clip(target + rng.normal(0, 0.1, 2) * h[a], lo_xy[k, b], hi_xy[k, b])
        # Unbounded path through ``target`` at frame k; folding leaves points in range alone.
        unb_b = target + vel[b] * (t[:, None] - k) + wobble[:, b] - wobble[k, b]
        pos[:, b] = _fold(unb_b, lo_xy[:, b], hi_xy[:, b])

    # Camera: a slow pan and zoom moving every box together.
    if c.camera_pan_px > 0 or c.camera_zoom > 0:
        per = rng.uniform(0.6, 1.2) * F
        pan = c.camera_pan_px * np.stack(
            [np.sin(2 * np.pi * t / per), 0.3 * np.sin(2 * np.pi * t / (0.7 * per))], axis=1
        )
        zoom = 1.0 + c.camera_zoom * np.sin(2 * np.pi * t / (1.3 * per))
        centre = np.array([c.width / 2, c.height / 2])
        cxy = pos + np.stack([W, H], axis=2) / 2
        cxy = (cxy - centre) * zoom[:, None, None] + centre + pan[:, None, :]
        W = W * zoom[:, None]
        H = H * zoom[:, None]
        pos = cxy - np.stack([W, H], axis=2) / 2

    xyxy = np.concatenate([pos, pos + np.stack([W, H], axis=2)], axis=2)  # (F, n, 4)
    if c.jitter_px > 0:
        xyxy = xyxy + rng.normal(0, c.jitter_px, xyxy.shape)

    # Lifetimes: entering/exiting objects live a random sub-interval.
    alive = np.ones((F, n), dtype=bool)
    moving = rng.random(n) < c.entry_exit_fraction
    life = min(c.min_life_frames, F)
    for i in np.flatnonzero(moving):
        length = int(rng.integers(life, F + 1))
        s = int(rng.integers(0, F - length + 1))
        alive[:, i] = (t >= s) & (t < s + length)

    visibility = _visibility(xyxy, alive) if c.compute_visibility else np.ones((F, n))

    fi, oi = np.nonzero(alive)
    boxes = xyxy[fi, oi]
    vis = visibility[fi, oi].astype(np.float32)
    gt = Tracks.from_columns(
        frame=fi,
        track_id=oi + 1,
        xyxy=boxes,
        label=is_car[oi].astype(np.int32),
        occluded=vis < c.occluded_below_visibility,
        visibility=vis,
        labels=SCENE_LABELS,
    )
    info = SequenceInfo(num_frames=F, width=c.width, height=c.height, frame_base=0,
                        name=f"synthetic-{c.seed}")
    return gt, info


def _visibility(xyxy: np.ndarray, alive: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(F, n) visible fraction of each box: 1 - (sum of overlaps with nearer boxes) / area.

    Summing overlaps over-counts where two occluders overlap each other; the clip at 0
    keeps it a fraction. Nearer = larger bottom edge (y2), as in a street scene.
    """
    F, n, _ = xyxy.shape
    out = np.ones((F, n))
    for a in range(0, F, chunk):
        b = xyxy[a:a + chunk]
        al = alive[a:a + chunk]
        iw = np.clip(np.minimum(b[:, :, None, 2], b[:, None, :, 2])
                     - np.maximum(b[:, :, None, 0], b[:, None, :, 0]), 0, None)
        ih = np.clip(np.minimum(b[:, :, None, 3], b[:, None, :, 3])
                     - np.maximum(b[:, :, None, 1], b[:, None, :, 1]), 0, None)
        inter = iw * ih
        nearer = (b[:, None, :, 3] > b[:, :, None, 3]) & al[:, None, :] & al[:, :, None]
        area = (b[:, :, 2] - b[:, :, 0]) * (b[:, :, 3] - b[:, :, 1])
        covered = (inter * nearer).sum(axis=2)
        out[a:a + chunk] = 1.0 - np.clip(np.divide(covered, area, out=np.zeros_like(area),
                                                   where=area > 0), 0, 1)
    return out
