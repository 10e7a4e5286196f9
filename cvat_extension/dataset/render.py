"""Frames with colour-stable ids, trails, dashed occluded boxes and highlighted review items.

What the temporal-linking pass needs to see: every track in one colour for its whole life
(:func:`cvat_extension.report.draw.track_color`, the HTML report's colours), its id on the
box, where it came from (a trail of its last centres), which boxes are occluded (dashed),
and which frames a review item is about (the item's tracks in red, a banner naming the
item). Drawing uses Pillow on one frame at a time, so memory stays one frame whatever the
video's length.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvat_extension.core.findings import ReviewItem
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError

__all__ = ["RenderConfig", "TrackPainter", "blank_frames", "render_frames"]

_REVIEW = (255, 40, 40)


@dataclass(frozen=True)
class RenderConfig:
    """How frames are drawn.

    Attributes:
        trail_frames: frames of past centres drawn behind each box (0: no trails).
        line_px: box line width; 0 picks ~1/400 of the frame height (at least 2).
        dash_px: dash length of occluded boxes.
        show_labels: draw the label name after the id.
    """

    trail_frames: int = 30
    line_px: int = 0
    dash_px: int = 10
    show_labels: bool = False

    def __post_init__(self) -> None:
        if self.trail_frames < 0 or self.line_px < 0 or self.dash_px < 1:
            raise ConfigError(f"render settings out of range: {self}")


def blank_frames(width: int, height: int, frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """A dark grey canvas per frame, for rendering without images."""
    canvas = np.full((height, width, 3), 40, dtype=np.uint8)
    for f in frames:
        yield f, canvas


class TrackPainter:
    """Draws the tracks of one sequence onto its frames, one frame per call.

    Args:
        tracks: dense per-frame boxes (``outside`` rows are not drawn).
        items: review items to highlight on their frame ranges.
        config: drawing settings.
        frame_base: the user's numbering for the frame counter and banners.
    """

    def __init__(self, tracks: Tracks, *, items: Sequence[ReviewItem] = (), config: RenderConfig = RenderConfig(),
                 frame_base: int = 0) -> None:
        from cvat_extension.report.draw import track_color

        vis = tracks.visible()
        self._vis = vis
        self._config = config
        self._base = frame_base
        self._by_frame = np.argsort(vis.frame, kind="stable")
        self._frames_sorted = vis.frame[self._by_frame]
        self._centre = (vis.xyxy[:, :2] + vis.xyxy[:, 2:]) / 2
        starts = vis.track_starts
        self._track_start = np.repeat(starts[:-1], np.diff(starts)) if len(vis) else np.zeros(0, np.int64)
        self._colour = {int(t): track_color(int(t)) for t in vis.ids}
        self._items = list(items)
        self._font: Any = None
        self._font_px = 0
        self._sprites: dict[tuple[str, tuple[int, int, int], int], Any] = {}

    def _fonts(self, height: int) -> Any:
        from PIL import ImageFont

        px = max(12, height // 45)
        if self._font is None or px != self._font_px:
            try:
                self._font = ImageFont.load_default(size=px)
            except TypeError:  # Pillow < 10.1 has no sized default font
                self._font = ImageFont.load_default()
            self._font_px = px
        return self._font

    def _sprite(self, text: str, colour: tuple[int, int, int], height: int) -> Any:
        """The id tag as a small image, rendered once per (text, colour): text rendering is
        most of the drawing time otherwise."""
        from PIL import Image, ImageDraw

        key = (text, colour, height)
        sprite = self._sprites.get(key)
        if sprite is None:
            font = self._fonts(height)
            box = font.getbbox(text)
            sprite = Image.new("RGB", (box[2] - box[0] + 6, box[3] - box[1] + 4), colour)
            ImageDraw.Draw(sprite).text((3 - box[0], 2 - box[1]), text, fill=(0, 0, 0), font=font)
            if len(self._sprites) > 4096:
                self._sprites.clear()
            self._sprites[key] = sprite
        return sprite

    def active_items(self, frame: int) -> list[tuple[int, ReviewItem]]:
        """``(rank, item)`` of the review items covering ``frame`` (rank from 1)."""
        return [(n, it) for n, it in enumerate(self._items, start=1) if it.frames[0] <= frame <= it.frames[1]]

    def draw(self, frame: int, image: np.ndarray) -> np.ndarray:
        """``image`` (RGB uint8, not modified) with the boxes of ``frame`` drawn on it."""
        from PIL import Image, ImageDraw

        im = Image.fromarray(np.asarray(image, dtype=np.uint8), "RGB")  # Pillow's own copy
        d = ImageDraw.Draw(im)
        h = im.height
        lw = self._config.line_px or max(2, h // 400)
        font = self._fonts(h)
        a, b = np.searchsorted(self._frames_sorted, [frame, frame + 1])
        rows = self._by_frame[a:b]
        active = self.active_items(frame)
        flagged = {int(t) for _, it in active for t in it.track_ids}
        vis = self._vis
        trail = self._config.trail_frames
        for r in rows.tolist():
            tid = int(vis.track_id[r])
            colour = _REVIEW if tid in flagged else self._colour[tid]
            if trail:
                lo = max(int(self._track_start[r]), r - trail)
                pts = self._centre[lo:r + 1][vis.frame[lo:r + 1] >= frame - trail]
                if len(pts) > 1:
                    d.line([tuple(p) for p in pts.tolist()], fill=colour, width=max(1, lw // 2))
            x1, y1, x2, y2 = (float(v) for v in vis.xyxy[r])
            width = lw * 2 if tid in flagged else lw
            if vis.occluded[r] or vis.visibility[r] < 0.5:
                _dashed_rect(d, (x1, y1, x2, y2), colour, width, self._config.dash_px)
            else:
                d.rectangle((x1, y1, x2, y2), outline=colour, width=width)
            text = str(tid) + (f" {vis.label_name(int(vis.label[r]))}" if self._config.show_labels else "")
            sprite = self._sprite(text, colour, h)
            ty = y1 - sprite.height if y1 - sprite.height >= 0 else y1
            im.paste(sprite, (int(x1), int(ty)))
        banner = f"frame {frame + self._base}"
        if active:
            banner += "   " + " | ".join(f"review #{n}: {', '.join(it.kinds)} (tracks {', '.join(map(str, it.track_ids)) or '-'})"
                                         for n, it in active[:2])
            d.rectangle((0, 0, im.width - 1, im.height - 1), outline=_REVIEW, width=lw * 3)
        tb = d.textbbox((0, 0), banner, font=font)
        d.rectangle((lw * 3, lw * 3, lw * 3 + tb[2] + 12, lw * 3 + tb[3] + 8),
                    fill=(120, 0, 0) if active else (0, 0, 0))
        d.text((lw * 3 + 6, lw * 3 + 4), banner, fill=(255, 255, 255), font=font)
        return np.asarray(im)


def _dashed_rect(d: Any, box: tuple[float, float, float, float], colour: tuple[int, int, int], width: int,
                 dash: int) -> None:
    """A dashed rectangle outline (Pillow has none): dash, gap, dash along each edge."""
    x1, y1, x2, y2 = box
    line = d.line
    for ax, ay, bx, by in ((x1, y1, x2, y1), (x2, y1, x2, y2), (x2, y2, x1, y2), (x1, y2, x1, y1)):
        n = max(1, int(max(abs(bx - ax), abs(by - ay)) // (2 * dash)))
        sx, sy = (bx - ax) / (2 * n), (by - ay) / (2 * n)
        for k in range(0, 2 * n, 2):  # plain floats: numpy per dash costs more than the dash
            line([(ax + k * sx, ay + k * sy), (ax + (k + 1) * sx, ay + (k + 1) * sy)], fill=colour, width=width)


def render_frames(
    painter: TrackPainter,
    frames: Iterable[tuple[int, np.ndarray]],
    writers: Sequence[Any],
    *,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Draw each ``(frame, image)`` and hand it to every writer; returns frames written."""
    n = 0
    for frame, image in frames:
        out = painter.draw(frame, image)
        for w in writers:
            w.write(out)
        n += 1
        if progress is not None:
            progress(1)
    return n
