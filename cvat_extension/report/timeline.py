"""Per-track timelines as inline SVG: when each track is visible, where findings and merges are.

Why: fragments, ghosts and switches have a shape in time (a bar that stops and another that
starts just after; a bar that goes on long after everyone left). One glance at the timeline
shows where the trouble sits before any frame is opened. SVG keeps the report one folder with
no scripts, and scales to a few hundred tracks.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import numpy as np

from cvat_extension.core.findings import ReviewItem
from cvat_extension.core.merge import Merge
from cvat_extension.core.tracks import Tracks
from cvat_extension.report.draw import track_color

__all__ = ["timeline_svg"]


def _runs(frames: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive runs of consecutive frames in a sorted frame array."""
    if len(frames) == 0:
        return []
    cuts = np.flatnonzero(np.diff(frames) > 1)
    starts = np.r_[frames[0], frames[cuts + 1]]
    ends = np.r_[frames[cuts], frames[-1]]
    return list(zip(starts.tolist(), ends.tolist()))


def timeline_svg(
    tracks: Tracks,
    *,
    num_frames: int,
    items: Sequence[ReviewItem] = (),
    merges: Sequence[Merge] = (),
    frame_base: int = 0,
    max_tracks: int = 400,
    width: int = 1000,
) -> str:
    """SVG markup: one row per track (by first frame), visible runs as bars.

    Review items are red marks over their tracks' rows (linking to ``#item-N``); merges are
    green connectors from the end of one piece to the start of the next.
    """
    vis = tracks.visible()
    rows: list[tuple[int, np.ndarray]] = [(tid, t.frame) for tid, t in vis.iter_tracks()]
    rows.sort(key=lambda r: (int(r[1][0]), r[0]))
    hidden = max(0, len(rows) - max_tracks)
    rows = rows[:max_tracks]
    num_frames = max(num_frames, int(vis.frame.max()) + 1 if len(vis) else 1)
    label_w, row_h, top = 56, 9, 18
    plot_w = width - label_w - 8
    height = top + row_h * len(rows) + 20
    sx = plot_w / max(num_frames, 1)
    y_of = {tid: top + i * row_h for i, (tid, _) in enumerate(rows)}

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="timeline" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#1d2027"/>',
    ]
    step = max(1, int(round(num_frames / 10 / 50.0)) * 50) if num_frames > 100 else 10
    for f in range(0, num_frames, step):
        x = label_w + f * sx
        out.append(f'<line x1="{x:.1f}" y1="{top - 4}" x2="{x:.1f}" y2="{height - 16}" '
                   'stroke="#333844" stroke-width="1"/>')
        out.append(f'<text x="{x + 2:.1f}" y="12" fill="#9aa" font-size="10">{f + frame_base}</text>')
    for tid, frames in rows:
        y = y_of[tid]
        r, g, b = track_color(tid)
        out.append(f'<text x="{label_w - 4}" y="{y + row_h - 2}" fill="#ccd" font-size="8" '
                   f'text-anchor="end">{tid}</text>')
        for a, e in _runs(frames):
            out.append(
                f'<rect x="{label_w + a * sx:.1f}" y="{y + 1}" width="{max((e - a + 1) * sx, 1.0):.1f}" '
                f'height="{row_h - 3}" fill="rgb({r},{g},{b})" opacity="0.85">'
                f"<title>track {tid}: frames {a + frame_base}-{e + frame_base}</title></rect>"
            )
    for m in merges:
        if m.previous in y_of and m.from_ in y_of:
            x1 = label_w + (m.end_frame + 1) * sx
            x2 = label_w + m.start_frame * sx
            y1 = y_of[m.previous] + row_h / 2
            y2 = y_of[m.from_] + row_h / 2
            out.append(f'<path d="M{x1:.1f},{y1:.1f} L{x2:.1f},{y2:.1f}" stroke="#3ddc84" '
                       f'stroke-width="2" fill="none"><title>merge {m.from_} into {m.into}, '
                       f"gap {m.gap_frames}, score {m.score:.2f}</title></path>")
    for n, it in enumerate(items):
        for tid in it.track_ids:
            if tid not in y_of:
                continue
            x = label_w + it.frames[0] * sx
            w = max((it.frames[1] - it.frames[0] + 1) * sx, 3.0)
            out.append(
                f'<a href="#item-{n + 1}"><rect x="{x:.1f}" y="{y_of[tid]}" width="{w:.1f}" '
                f'height="{row_h - 1}" fill="none" stroke="#ff3b3b" stroke-width="2">'
                f"<title>#{n + 1} {escape(it.message)}</title></rect></a>"
            )
    if hidden:
        out.append(f'<text x="{label_w}" y="{height - 4}" fill="#9aa" font-size="10">'
                   f"{hidden} more tracks not shown</text>")
    out.append("</svg>")
    return "\n".join(out)
