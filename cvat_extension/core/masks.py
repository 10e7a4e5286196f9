"""Mask ↔ box ↔ polygon ↔ CVAT RLE conversions, in pure numpy (scipy for components).

SAM2 works on binary masks, CVAT stores masks as run lengths and reviewers often want
boxes or polygons: every adapter (Nuclio tracker, cvat-sdk function, ``propagate``) goes
through these functions so that the conversions agree everywhere.

Conventions:

- A mask is a ``(H, W)`` bool array; pixel ``(x, y)`` covers ``[x, x+1) × [y, y+1)``.
- Boxes are ``xyxy`` in pixel-edge coordinates, so a one-pixel mask at ``(3, 4)`` has the
  box ``[3, 4, 4, 5]`` (CVAT's rectangle convention).
- CVAT's mask ``points`` are ``[run lengths..., x1, y1, x2, y2]`` where the runs alternate
  background/foreground over the *inclusive* crop ``mask[y1:y2+1, x1:x2+1]`` in row-major
  order and always start with a (possibly zero) background run. This is the format of
  ``cvat_sdk.masks.encode_mask`` and of CVAT's server; the tests cross-check both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from cvat_extension.errors import InputError

__all__ = [
    "box_to_mask",
    "mask_iou_pairwise",
    "mask_to_polygon",
    "mask_to_rle",
    "masks_to_xyxy",
    "polygon_to_mask",
    "rle_to_mask",
    "simplify_polygon",
]


def mask_to_rle(mask: npt.ArrayLike) -> list[int]:
    """Encode a ``(H, W)`` bool mask as CVAT mask ``points`` (runs + inclusive bbox).

    An empty mask encodes as one background pixel at the origin, as cvat-sdk does, so
    the result always decodes; callers that mean "lost" should send no shape instead.

    >>> mask_to_rle(np.array([[0, 1, 1], [0, 1, 0]], dtype=bool))
    [0, 3, 1, 1, 0, 2, 1]
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise InputError(f"mask must have shape (H, W), got {m.shape}")
    ys, xs = np.nonzero(m)
    if xs.size == 0:
        return [1, 0, 0, 0, 0]
    x1, x2 = int(xs.min()), int(xs.max())
    y1, y2 = int(ys.min()), int(ys.max())
    flat = m[y1 : y2 + 1, x1 : x2 + 1].ravel()
    # Run boundaries are where the value changes; the first run is background by contract.
    change = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], change, [flat.size]])
    runs = np.diff(bounds).tolist()
    if flat[0]:
        runs = [0, *runs]
    return [int(r) for r in runs] + [x1, y1, x2, y2]


def rle_to_mask(points: Sequence[float], width: int, height: int) -> np.ndarray:
    """Decode CVAT mask ``points`` into a ``(height, width)`` bool mask.

    Raises:
        InputError: the points are too short, not integers, the box lies outside the
            image or the runs do not fill the box.
    """
    if len(points) < 5:
        raise InputError(f"mask points need runs and a box (>= 5 numbers), got {len(points)}")
    vals = np.asarray(points, dtype=np.float64)
    if not np.all(np.isfinite(vals)) or not np.all(vals == np.round(vals)):
        raise InputError("mask points must be integers")
    ints = vals.astype(np.int64)
    runs, (x1, y1, x2, y2) = ints[:-4], ints[-4:].tolist()
    if not (0 <= x1 <= x2 < width and 0 <= y1 <= y2 < height):
        raise InputError(
            f"mask box [{x1}, {y1}, {x2}, {y2}] lies outside the {width}x{height} image"
        )
    if np.any(runs < 0):
        raise InputError("mask run lengths must be >= 0")
    bw, bh = x2 - x1 + 1, y2 - y1 + 1
    if int(runs.sum()) != bw * bh:
        raise InputError(f"mask runs cover {int(runs.sum())} pixels, the box has {bw * bh}")
    values = (np.arange(runs.size) % 2).astype(bool)
    out = np.zeros((height, width), dtype=bool)
    out[y1 : y2 + 1, x1 : x2 + 1] = np.repeat(values, runs).reshape(bh, bw)
    return out


def masks_to_xyxy(masks: npt.ArrayLike) -> np.ndarray:
    """``(n, H, W)`` bool masks → ``(n, 4)`` pixel-edge boxes; empty masks give NaN rows.

    >>> masks_to_xyxy(np.pad(np.ones((1, 2, 3), bool), ((0, 0), (1, 0), (2, 0)))).tolist()
    [[2.0, 1.0, 5.0, 3.0]]
    """
    m = np.asarray(masks, dtype=bool)
    if m.ndim != 3:
        raise InputError(f"masks must have shape (n, H, W), got {m.shape}")
    n, h, w = m.shape
    rows: np.ndarray = np.any(m, axis=2)  # (n, H)
    cols: np.ndarray = np.any(m, axis=1)  # (n, W)
    present: np.ndarray = np.any(rows, axis=1)
    out = np.full((n, 4), np.nan, dtype=np.float64)
    if not present.any():
        return out
    r, c = rows[present], cols[present]
    y1 = r.argmax(axis=1)
    y2 = h - r[:, ::-1].argmax(axis=1)
    x1 = c.argmax(axis=1)
    x2 = w - c[:, ::-1].argmax(axis=1)
    out[present] = np.stack([x1, y1, x2, y2], axis=1)
    return out


def mask_iou_pairwise(a: npt.ArrayLike, b: npt.ArrayLike) -> np.ndarray:
    """``(n,)`` IoU of mask i of ``a`` with mask i of ``b``; two empty masks give 1.

    Two empty masks agree (both say "not visible"), which is what the forward/backward
    agreement test needs; one empty and one not gives 0.
    """
    ma = np.asarray(a, dtype=bool)
    mb = np.asarray(b, dtype=bool)
    if ma.shape != mb.shape or ma.ndim != 3:
        raise InputError(f"mask stacks must both be (n, H, W), got {ma.shape} and {mb.shape}")
    inter = np.logical_and(ma, mb).sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
    union = np.logical_or(ma, mb).sum(axis=(1, 2), dtype=np.int64).astype(np.float64)
    return np.divide(inter, union, out=np.ones_like(inter), where=union > 0)


def box_to_mask(xyxy: Sequence[float], width: int, height: int) -> np.ndarray:
    """Rasterise one pixel-edge box: pixels whose centre lies inside are set."""
    x1, y1, x2, y2 = (float(v) for v in xyxy)
    xs = np.arange(width) + 0.5
    ys = np.arange(height) + 0.5
    return ((ys >= y1) & (ys < y2))[:, None] & ((xs >= x1) & (xs < x2))[None, :]


def polygon_to_mask(points: Sequence[float], width: int, height: int) -> np.ndarray:
    """Rasterise a flat CVAT polygon ``[x1, y1, x2, y2, ...]`` (even-odd rule, pixel centres).

    Raises:
        InputError: fewer than 3 vertices or an odd number of coordinates.
    """
    p = np.asarray(points, dtype=np.float64)
    if p.ndim != 1 or p.size < 6 or p.size % 2:
        raise InputError(f"polygon needs >= 3 (x, y) vertices as a flat list, got {p.size} numbers")
    px, py = p[0::2], p[1::2]
    qx, qy = np.roll(px, -1), np.roll(py, -1)
    out = np.zeros((height, width), dtype=bool)
    y_lo = max(int(math.floor(py.min())), 0)
    y_hi = min(int(math.ceil(py.max())), height)
    if y_lo >= y_hi:
        return out
    yc = np.arange(y_lo, y_hi) + 0.5  # scanlines through pixel centres
    xc = np.arange(width) + 0.5
    # Edges crossing each scanline (half-open rule so shared vertices count once).
    crosses = ((py[None, :] <= yc[:, None]) != (qy[None, :] <= yc[:, None]))  # (rows, edges)
    dy = np.where(qy == py, 1.0, qy - py)
    x_at = px[None, :] + (yc[:, None] - py[None, :]) * ((qx - px) / dy)[None, :]
    x_at = np.where(crosses, x_at, np.inf)
    # Pixel centre is inside when an odd number of crossings lie to its left.
    count = (x_at[:, :, None] <= xc[None, None, :]).sum(axis=1)
    out[y_lo:y_hi] = (count % 2).astype(bool)
    return out


_MOORE = np.array(  # clockwise neighbours in image coordinates (y down), starting west
    [(-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1), (0, 1), (-1, 1)], dtype=np.int64
)


def _trace_outer(m: np.ndarray, start: tuple[int, int]) -> np.ndarray:
    """Moore-neighbour trace of the outer boundary of the component holding ``start``.

    ``start`` is the first set pixel in row-major order, so its west neighbour is empty.
    Returns ``(k, 2)`` pixel coordinates ``(x, y)`` in boundary order.
    """
    h, w = m.shape
    pts = [start]
    cur = start
    back = 0  # index in _MOORE of the (empty) pixel we came from: west of start
    first_step: tuple[int, int] | None = None
    for _ in range(4 * h * w + 8):  # bound: each boundary pixel is entered <= 4 times
        for k in range(1, 9):
            d = (back + k) % 8
            nx, ny = cur[0] + _MOORE[d, 0], cur[1] + _MOORE[d, 1]
            if 0 <= nx < w and 0 <= ny < h and m[ny, nx]:
                # The neighbour checked just before (empty) becomes the new backtrack.
                prev = (back + k - 1) % 8
                bx, by = cur[0] + _MOORE[prev, 0], cur[1] + _MOORE[prev, 1]
                nxt = (int(nx), int(ny))
                back = int(np.flatnonzero((_MOORE[:, 0] == bx - nx) & (_MOORE[:, 1] == by - ny))[0])
                break
        else:
            return np.asarray(pts, dtype=np.int64)  # isolated pixel
        if cur == start and first_step is not None and nxt == first_step:
            break  # Jacob's stopping criterion: back at start, about to repeat
        if first_step is None:
            first_step = nxt
        cur = nxt
        pts.append(cur)
    if len(pts) > 1 and pts[-1] == pts[0]:
        pts.pop()
    return np.asarray(pts, dtype=np.int64)


def simplify_polygon(xy: np.ndarray, epsilon: float) -> np.ndarray:
    """Douglas–Peucker simplification of a closed ``(k, 2)`` ring (keeps >= 3 points if it can)."""
    if len(xy) <= 3 or epsilon <= 0:
        return xy
    pts = xy.astype(np.float64)
    # Split the ring at the point farthest from the first one, simplify both chains.
    far = int(np.argmax(((pts - pts[0]) ** 2).sum(axis=1)))
    chain_a = np.vstack([pts[: far + 1]])
    chain_b = np.vstack([pts[far:], pts[:1]])
    keep_a = _dp(chain_a, epsilon)
    keep_b = _dp(chain_b, epsilon)
    ring = np.vstack([chain_a[keep_a], chain_b[keep_b][1:-1]])
    return ring if len(ring) >= 3 else xy


def _dp(chain: np.ndarray, epsilon: float) -> np.ndarray:
    """Indices kept by Douglas–Peucker on an open chain (iterative, no recursion limit)."""
    keep = np.zeros(len(chain), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(chain) - 1)]
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        a, b = chain[i], chain[j]
        seg = chain[i + 1 : j]
        ab = b - a
        norm = math.hypot(ab[0], ab[1])
        if norm == 0:
            d = np.hypot(seg[:, 0] - a[0], seg[:, 1] - a[1])
        else:
            d = np.abs(ab[0] * (seg[:, 1] - a[1]) - ab[1] * (seg[:, 0] - a[0])) / norm
        k = int(np.argmax(d))
        if d[k] > epsilon:
            keep[i + 1 + k] = True
            stack.extend([(i, i + 1 + k), (i + 1 + k, j)])
    return np.flatnonzero(keep)


def mask_to_polygon(mask: npt.ArrayLike, *, epsilon: float = 1.0) -> list[float] | None:
    """Outer contour of the largest connected component as a flat CVAT polygon.

    Holes and smaller components are dropped: a CVAT polygon is one simple ring, and the
    largest component is the object a tracker follows (the same choice as CVAT's SAM2
    agent). Vertices are pixel centres, simplified with ``epsilon`` pixels of tolerance.
    Returns None for an empty mask or one whose contour has fewer than 3 points.
    """
    from scipy import ndimage  # scipy is a core dependency; imported here to keep import light

    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise InputError(f"mask must have shape (H, W), got {m.shape}")
    if not m.any():
        return None
    labels, n = ndimage.label(m, structure=np.ones((3, 3), dtype=bool))
    if n > 1:
        sizes = np.bincount(labels.ravel())[1:]
        m = labels == (int(np.argmax(sizes)) + 1)
    ys, xs = np.nonzero(m)
    first = int(np.argmin(ys * m.shape[1] + xs))
    ring = _trace_outer(m, (int(xs[first]), int(ys[first])))
    if len(ring) < 3:
        return None
    ring = simplify_polygon(ring, epsilon) + 0.5
    if len(ring) < 3:
        return None
    return [float(v) for v in ring.ravel()]
