"""Draw boxes and track ids onto frames with Pillow, for the HTML report.

Why pictures: a reviewer decides "same person or not" in a second from a crop, and takes a
minute from a table of IoUs. Every track gets a stable colour (golden-ratio hues, so that
neighbouring ids differ), context boxes are thin, the item's tracks are thick, and the box a
finding points at is drawn red with a halo so it stands out on any background.
"""

from __future__ import annotations

import colorsys
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from cvat_extension.core.tracks import SequenceInfo, Tracks

logger = logging.getLogger(__name__)

__all__ = ["HIGHLIGHT", "RED_HUE_MARGIN", "FrameView", "render_view", "track_color"]

HIGHLIGHT = (235, 30, 30)
_BLANK = (58, 62, 70)


#: Hues (0..1) within this distance of red are kept for :data:`HIGHLIGHT`: a track drawn in
#: red would look like the offending box.
RED_HUE_MARGIN = 0.08


def track_color(track_id: int) -> tuple[int, int, int]:
    """A stable, saturated RGB colour for a track id, never close to the highlight red."""
    hue = RED_HUE_MARGIN + ((int(track_id) * 0.61803398875) % 1.0) * (1 - 2 * RED_HUE_MARGIN)
    r, g, b = colorsys.hsv_to_rgb(hue, 0.75, 1.0)
    return int(r * 255), int(g * 255), int(b * 255)


@dataclass(frozen=True, slots=True)
class FrameView:
    """What one picture shows.

    Attributes:
        frame: internal frame number.
        focus_ids: tracks drawn thick and labelled (the item's tracks).
        highlight_box: the offending box, drawn red; None for none.
        id_map: shown id per track id (for "after merge" pictures); identity when absent.
        zoom_box: crop around this box (xyxy) instead of the full frame; None = full frame.
        caption: text drawn in the top-left corner.
        show_labels: write each box's label name beside its id (label-change items).
    """

    frame: int
    focus_ids: tuple[int, ...] = ()
    highlight_box: tuple[float, float, float, float] | None = None
    id_map: Mapping[int, int] | None = None
    zoom_box: tuple[float, float, float, float] | None = None
    caption: str = ""
    show_labels: bool = False


def _canvas(
    frames: Callable[[int], np.ndarray] | None, frame: int, width: int, height: int, base: int = 0
) -> Image.Image:
    if frames is not None:
        try:
            arr = np.asarray(frames(frame))
            return Image.fromarray(np.ascontiguousarray(arr[..., :3]).astype(np.uint8), "RGB")
        except Exception as exc:  # noqa: BLE001 - a missing frame must not kill the report
            logger.warning(
                "frame %d could not be read for the report (%s); drawing on a blank canvas",
                frame + base,  # the user's numbering (MOT from 1), as everywhere they read
                exc,
            )
    return Image.new("RGB", (max(width, 16), max(height, 16)), _BLANK)


def _font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has no sized default font
        return ImageFont.load_default()


def render_view(
    view: FrameView,
    tracks: Tracks,
    info: SequenceInfo,
    *,
    frames: Callable[[int], np.ndarray] | None = None,
    max_width: int = 560,
) -> Image.Image:
    """Draw one frame (or a zoomed crop) with its boxes; returns an RGB image.

    Without ``frames`` a dark canvas of the sequence size stands in for the image, so the
    geometry of the mistake is still visible.
    """
    width, height = info.width, info.height
    if not width or not height:
        width = int(np.ceil(tracks.xyxy[:, 2].max())) + 10 if len(tracks) else 640
        height = int(np.ceil(tracks.xyxy[:, 3].max())) + 10 if len(tracks) else 360
    img = _canvas(frames, view.frame, int(width), int(height), info.frame_base)
    rows = tracks[(tracks.frame == view.frame) & ~tracks.outside]
    focus = set(view.focus_ids)
    id_map = view.id_map or {}

    x0, y0, scale = 0.0, 0.0, 1.0
    if view.zoom_box is not None:
        bx1, by1, bx2, by2 = view.zoom_box
        side = max(bx2 - bx1, by2 - by1) * 2.2 + 20
        cx, cy = (bx1 + bx2) / 2, (by1 + by2) / 2
        x0, y0 = cx - side / 2, cy - side / 2
        img = img.crop((int(x0), int(y0), int(x0 + side), int(y0 + side)))
        scale = 260 / side
    else:
        scale = min(1.0, max_width / img.width)
    if scale != 1.0:
        img = img.resize((max(1, int(img.width * scale)), max(1, int(img.height * scale))),
                         Image.Resampling.BILINEAR)
    draw = ImageDraw.Draw(img)
    font = _font(max(11, int(14 * min(1.0, scale * 1.6) + 2)))

    def tr(box: Iterable[float]) -> list[float]:
        b = list(box)
        return [(b[0] - x0) * scale, (b[1] - y0) * scale, (b[2] - x0) * scale, (b[3] - y0) * scale]

    order = np.argsort([int(t) in focus for t in rows.track_id])  # focus tracks on top
    for i in order.tolist():
        tid = int(rows.track_id[i])
        shown = id_map.get(tid, tid)
        colour = track_color(shown)
        box = tr(rows.xyxy[i])
        thick = tid in focus
        draw.rectangle(box, outline=colour, width=3 if thick else 1)
        if thick or view.zoom_box is not None or len(rows) <= 40:
            text = f"{shown} {rows.labels[int(rows.label[i])]}" if view.show_labels else str(shown)
            tb = draw.textbbox((box[0], box[1]), text, font=font)
            ty = box[1] - (tb[3] - tb[1]) - 4
            ty = ty if ty >= 0 else box[1] + 1
            draw.rectangle([box[0], ty, box[0] + (tb[2] - tb[0]) + 4, ty + (tb[3] - tb[1]) + 4],
                           fill=colour)
            draw.text((box[0] + 2, ty + 1), text, fill=(0, 0, 0), font=font)
    if view.highlight_box is not None:
        _draw_highlight(draw, tr(view.highlight_box), img.width, img.height)
    if view.caption:
        tb = draw.textbbox((4, 4), view.caption, font=font)
        draw.rectangle([0, 0, tb[2] + 6, tb[3] + 6], fill=(0, 0, 0))
        draw.text((4, 4), view.caption, fill=(255, 255, 255), font=font)
    return img


def _draw_highlight(draw: ImageDraw.ImageDraw, box: list[float], width: int, height: int) -> None:
    """The offending box in red; off the picture, its visible part plus an arrow to it.

    Annotation boxes may lie partly or wholly outside the image (a person leaving the frame,
    a typo in a coordinate). Drawing them unclipped showed nothing, so the reviewer saw a
    "whole frame" with no highlight. The visible part is drawn, and an arrow at the border
    points to where the box really is.
    """
    x1, y1, x2, y2 = box
    inside = x1 >= 0 and y1 >= 0 and x2 <= width and y2 <= height
    cx1, cy1 = min(max(x1, 0), width - 1), min(max(y1, 0), height - 1)
    cx2, cy2 = min(max(x2, 0), width - 1), min(max(y2, 0), height - 1)
    pad = 3
    if cx2 > cx1 and cy2 > cy1:
        draw.rectangle([cx1 - pad, cy1 - pad, cx2 + pad, cy2 + pad], outline=(255, 255, 255), width=1)
        draw.rectangle([cx1, cy1, cx2, cy2], outline=HIGHLIGHT, width=3)
    bx, by = (x1 + x2) / 2, (y1 + y2) / 2
    if inside or (0 <= bx < width and 0 <= by < height):
        return  # the clipped box shows where it is
    # Arrow from inside the picture to the border point nearest the box centre.
    margin = 6.0
    tip = (min(max(bx, margin), width - 1 - margin), min(max(by, margin), height - 1 - margin))
    dx, dy = bx - tip[0], by - tip[1]
    norm = max((dx * dx + dy * dy) ** 0.5, 1e-9)
    ux, uy = dx / norm, dy / norm
    length = min(40.0, max(width, height) / 4)
    tail = (tip[0] - ux * length, tip[1] - uy * length)
    draw.line([tail, tip], fill=(255, 255, 255), width=6)
    draw.line([tail, tip], fill=HIGHLIGHT, width=4)
    head = 12.0
    left = (tip[0] - ux * head - uy * head * 0.6, tip[1] - uy * head + ux * head * 0.6)
    right = (tip[0] - ux * head + uy * head * 0.6, tip[1] - uy * head - ux * head * 0.6)
    draw.polygon([tip, left, right], fill=HIGHLIGHT, outline=(255, 255, 255))
