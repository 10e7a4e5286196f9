"""Detections simulated from ground truth, for sequences without public detections.

The model (all draws from one generator seeded by the sequence name, so reruns are equal):

- **Who is detected**: every person-like ground-truth box (pedestrian, person on vehicle,
  static person, distractor, reflection: what a person detector fires on), with probability
  ``0.10 + 0.85 * min(1, visibility / 0.6)``, halved for boxes under 30 px tall. Misses
  come in streaks as in a real detector: per track, a Gaussian noise smoothed over 7 frames
  (renormalised to unit variance) is thresholded at that probability, so a person behind a
  pole is lost for several frames, not one frame in ten.
- **Where**: the centre moves by N(0, 0.05·w) and N(0, 0.03·h), width and height are scaled
  by exp(N(0, 0.06)) and exp(N(0, 0.04)): jitter proportional to size.
- **Confidence**: ``0.30 + 0.65 * visibility + N(0, 0.1)``, clipped to 0.05..0.99.
- **False positives**: clutter, Poisson(0.3) boxes per frame at uniform positions with sizes
  of random ground-truth boxes and confidences U(0.1, 0.55) (mostly below the trackers'
  new-track threshold); plus persistent ghosts (a sign, a reflection a detector keeps
  firing on), ``max(3, frames // 100)`` per sequence, each a fixed box active for U(5, 40)
  frames at a random time, detected on 80 % of those frames with confidence U(0.5, 0.85) and
  2 % jitter. These give the trackers' false-positive runs and short false tracks.
"""

from __future__ import annotations

import zlib

import numpy as np

from cvat_extension.core.tracks import SOURCES, Source, Tracks

__all__ = ["PERSON_CLASSES", "simulate_detections"]

#: MOT classes a person detector fires on.
PERSON_CLASSES = (1, 2, 7, 8, 12)
_AUTO = SOURCES.index(Source.AUTO)


def _streak_noise(rng: np.random.Generator, track: np.ndarray, width: int = 7) -> np.ndarray:
    """Unit-variance Gaussian noise, smoothed along each track (rows sorted by track, frame)."""
    z = rng.standard_normal(len(track))
    out = np.empty_like(z)
    cuts = np.r_[0, np.flatnonzero(np.diff(track)) + 1, len(track)]
    ones = np.ones(width)
    half = width // 2
    for a, b in zip(cuts[:-1], cuts[1:]):
        total = np.convolve(z[a:b], ones)[half:half + b - a]
        # Near a track's ends fewer samples are summed: divide by the root of their count
        # so that every row has unit variance.
        count = np.convolve(np.ones(b - a), ones)[half:half + b - a]
        out[a:b] = total / np.sqrt(count)
    return out


def simulate_detections(gt: Tracks, gt_class: np.ndarray, *, num_frames: int, width: int,
                        height: int, seed_name: str) -> Tracks:
    """Detections for one sequence from its ground truth (see the module docstring)."""
    from scipy.special import ndtr

    rng = np.random.default_rng(zlib.crc32(seed_name.encode()))
    keep = np.isin(np.asarray(gt_class), PERSON_CLASSES) & ~gt.outside
    g = gt[keep]
    vis = g.visibility.astype(np.float64)
    h = g.xyxy[:, 3] - g.xyxy[:, 1]
    w = g.xyxy[:, 2] - g.xyxy[:, 0]
    p_det = 0.10 + 0.85 * np.minimum(1.0, vis / 0.6)
    p_det = np.where(h < 30, p_det / 2, p_det)
    detected = ndtr(_streak_noise(rng, g.track_id)) < p_det
    cx = (g.xyxy[:, 0] + g.xyxy[:, 2]) / 2 + rng.normal(0, 0.05, len(g)) * w
    cy = (g.xyxy[:, 1] + g.xyxy[:, 3]) / 2 + rng.normal(0, 0.03, len(g)) * h
    w2 = w * np.exp(rng.normal(0, 0.06, len(g)))
    h2 = h * np.exp(rng.normal(0, 0.04, len(g)))
    conf = np.clip(0.30 + 0.65 * vis + rng.normal(0, 0.1, len(g)), 0.05, 0.99)
    frames = [g.frame[detected]]
    boxes = [np.c_[cx - w2 / 2, cy - h2 / 2, cx + w2 / 2, cy + h2 / 2][detected]]
    scores = [conf[detected]]
    sizes = np.c_[w, h][h > 0] if len(g) else np.array([[40.0, 100.0]])
    # Clutter.
    n = rng.poisson(0.3, num_frames)
    f = np.repeat(np.arange(num_frames), n)
    wh = sizes[rng.integers(0, len(sizes), len(f))]
    x = rng.uniform(0, np.maximum(width - wh[:, 0], 1))
    y = rng.uniform(0, np.maximum(height - wh[:, 1], 1))
    frames.append(f)
    boxes.append(np.c_[x, y, x + wh[:, 0], y + wh[:, 1]])
    scores.append(rng.uniform(0.1, 0.55, len(f)))
    # Persistent ghosts.
    for _ in range(max(3, num_frames // 100)):
        bw, bh = sizes[rng.integers(0, len(sizes))]
        x0 = rng.uniform(0, max(width - bw, 1))
        y0 = rng.uniform(0, max(height - bh, 1))
        length = int(rng.integers(5, 41))
        start = int(rng.integers(0, max(num_frames - length, 1)))
        f = np.arange(start, min(start + length, num_frames))
        f = f[rng.random(len(f)) < 0.8]
        jit = rng.normal(0, 0.02, (len(f), 4)) * np.array([bw, bh, bw, bh])
        frames.append(f)
        boxes.append(np.array([x0, y0, x0 + bw, y0 + bh]) + jit)
        scores.append(rng.uniform(0.5, 0.85, len(f)))
    fr = np.concatenate(frames).astype(np.int64)
    bx = np.concatenate(boxes)
    sc = np.concatenate(scores)
    ok = (bx[:, 2] > bx[:, 0] + 1) & (bx[:, 3] > bx[:, 1] + 1) & (fr >= 0) & (fr < num_frames)
    return Tracks.from_columns(frame=fr[ok], track_id=np.full(int(ok.sum()), -1), xyxy=bx[ok],
                               score=sc[ok], source=np.full(int(ok.sum()), _AUTO),
                               labels=("person",))
