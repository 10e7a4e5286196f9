"""Render synthetic frames for a ground-truth scene (pure numpy).

Why: appearance checks, detectors, trackers and the HTML report need pixels. Each object
gets its own colour pair and stripe pattern (keyed by its ground-truth track id), so that an
identity switch shows up as an appearance change; the background is textured so that a
colour histogram of a box crop is not trivially the object's colour alone.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["object_colors", "render_frame"]


def object_colors(track_ids: np.ndarray, *, seed: int = 0) -> np.ndarray:
    """(n, 2, 3) uint8 primary and secondary colour of each object id (stable per id).

    Hues are spread by the golden ratio so that neighbouring ids differ strongly.
    """
    ids = np.asarray(track_ids, dtype=np.int64)
    hue = np.mod(ids * 0.61803398875 + seed * 0.1234, 1.0)
    hue2 = np.mod(hue + 0.5, 1.0)
    return np.stack([_hsv_to_rgb(hue, 0.85, 0.95), _hsv_to_rgb(hue2, 0.6, 0.55)], axis=1)


def _hsv_to_rgb(h: np.ndarray, s: float, v: float) -> np.ndarray:
    i = np.floor(h * 6).astype(np.int64) % 6
    f = h * 6 - np.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    vv = np.full_like(h, v)
    pp, qq, tt = np.full_like(h, p), q, t
    r = np.choose(i, [vv, qq, pp, pp, tt, vv])
    g = np.choose(i, [tt, vv, vv, qq, pp, pp])
    b = np.choose(i, [pp, pp, tt, vv, vv, qq])
    return (np.stack([r, g, b], axis=-1) * 255).astype(np.uint8)


@lru_cache(maxsize=4)
def _texture(width: int, height: int, seed: int, pan_x: float, pan_y: float) -> np.ndarray:
    """(H, W, 3) float32 gratings of :func:`_background`, the same for every frame of a
    scene: computed once (three transcendental passes over the image were most of the
    demo's rendering time). Read-only, since the cache hands out the same array."""
    rng = np.random.default_rng(seed)
    fx, fy = rng.uniform(0.01, 0.05, 2)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    # numpy float64 scalars, as the pan array's items were: under NEP 50 they make the
    # gratings float64, where a Python float would keep them float32 (other pixels).
    x = x - np.float64(pan_x)
    y = y - np.float64(pan_y)
    base = 110 + 25 * np.sin(x * fx) * np.cos(y * fy) + 15 * np.sin((x + y) * 0.11)
    out = np.stack([base * 0.9, base * 1.0, base * 0.85], axis=-1)
    out.flags.writeable = False
    return out


def _background(width: int, height: int, frame: int, seed: int, pan: np.ndarray) -> np.ndarray:
    """Low-contrast grey-green texture: two gratings plus seeded noise (moves with the pan)."""
    texture = _texture(width, height, seed, float(pan[0]), float(pan[1]))
    noise = np.random.default_rng(seed * 100003 + frame).integers(-8, 9, (height, width))
    img = texture + noise[..., None]
    return np.clip(img, 0, 255).astype(np.uint8)


def render_frame(gt: Tracks, info: SequenceInfo, frame: int, *, seed: int = 0) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of ``frame``: textured background, one striped patch per box.

    Boxes are painted far to near (by bottom edge), matching how
    :func:`~cvat_extension.synthetic.scene.make_scene` computes visibility. Outside rows are
    not drawn. Pass the *clean* ground truth: pixels show the true objects, so tracks with
    injected errors disagree with them exactly where the errors are.

    >>> from cvat_extension.synthetic.scene import SceneConfig, make_scene
    >>> gt, info = make_scene(SceneConfig(num_frames=5, num_objects=2, width=64, height=64))
    >>> render_frame(gt, info, 0).shape
    (64, 64, 3)
    """
    width, height = int(info.width), int(info.height)
    rows = np.flatnonzero((gt.frame == frame) & ~gt.outside)
    img = _background(width, height, frame, seed, np.zeros(2))
    if len(rows) == 0:
        return img
    boxes = gt.xyxy[rows]
    order = np.argsort(boxes[:, 3], kind="stable")
    colors = object_colors(gt.track_id[rows], seed=seed)
    for j in order:  # one loop per object, not per pixel
        x1, y1, x2, y2 = boxes[j]
        a, b = max(int(round(x1)), 0), min(int(round(x2)), width)
        c, d = max(int(round(y1)), 0), min(int(round(y2)), height)
        if a >= b or c >= d:
            continue
        yy = np.arange(c, d)[:, None] - y1
        xx = np.arange(a, b)[None, :] - x1
        period = max((y2 - y1) / 4.0, 2.0)
        # Horizontal stripes whose phase depends on the id: a texture, not a flat colour.
        stripe = (np.floor(yy / period + 0.3 * (gt.track_id[rows][j] % 3)) % 2 == 0)
        stripe = np.broadcast_to(stripe, (d - c, b - a))
        img[c:d, a:b] = np.where(stripe[..., None], colors[j, 0], colors[j, 1])
        # A darker "head" band on the top fifth so that shapes are not uniform.
        top = int(min(d, c + max(1, (d - c) // 5)))
        if xx.size:
            img[c:top, a:b] = (colors[j, 0].astype(np.int32) * 2 // 3).astype(np.uint8)
    return img
