"""A self-contained HTML review report: one folder with ``index.html`` and its images.

Layout, top to bottom:

1. summary numbers (frames, tracks, findings per check, review items, merges);
2. the track timeline (:mod:`cvat_extension.report.timeline`), with review items and merges
   marked on it, linking down to the items;
3. one card per review item: the full frame with the item's tracks thick and the offending
   box red, zoomed crops just before, at and just after the problem, and for fragment merges
   the "before" (two ids) and "after" (one id) pictures side by side;
4. the list of all merges.

No scripts, no external assets: the folder can be zipped, mailed or served from anywhere.
Frame numbers are shown in the user's own numbering (``SequenceInfo.frame_base``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding, ReviewItem
from cvat_extension.core.merge import Merge
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import InputError
from cvat_extension.report.draw import FrameView, render_view, track_color
from cvat_extension.report.timeline import timeline_svg

__all__ = ["write_report"]

logger = logging.getLogger(__name__)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#14161b;color:#e6e8ee;
margin:0;padding:24px 32px;max-width:1200px}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 10px;color:#fff}
.sub{color:#9aa3b2;margin-bottom:18px}
.stats{display:flex;flex-wrap:wrap;gap:10px;margin:12px 0}
.stat{background:#1f232b;border-radius:8px;padding:10px 14px;min-width:110px}
.stat b{display:block;font-size:22px;color:#fff} .stat span{color:#9aa3b2;font-size:12px}
.card{background:#1f232b;border-radius:10px;padding:14px 16px;margin:14px 0;border-left:5px solid #555}
.card h3{margin:0 0 6px;font-size:15px} .score{float:right;font-weight:700}
.kind{display:inline-block;background:#2d3340;border-radius:4px;padding:1px 6px;margin-right:4px;font-size:12px}
.pics{display:flex;flex-wrap:wrap;gap:8px;align-items:flex-start;margin-top:8px}
.pics figure{margin:0} figcaption{font-size:11px;color:#9aa3b2;text-align:center}
.pics img{border-radius:4px;display:block} .ba{border:1px solid #3ddc84;border-radius:6px;padding:4px}
.msg{color:#c8ccd6;font-size:13px;margin:2px 0} table{border-collapse:collapse;font-size:13px}
td,th{padding:3px 10px;border-bottom:1px solid #2a2f3a;text-align:left} a{color:#7fb3ff}
.timeline{max-width:100%;height:auto;border-radius:6px}
.crops{display:grid;grid-template-columns:repeat(2,auto);gap:8px}
.note{background:#2a2417;border-radius:6px;padding:8px 12px;color:#e8d9a8;font-size:13px;margin:10px 0}
"""


def _score_colour(score: float) -> str:
    if score >= 0.8:
        return "#ff3b3b"
    if score >= 0.5:
        return "#ffa53b"
    return "#e0d341"


def _track_box(tracks: Tracks, tid: int, frame: int) -> tuple[float, float, float, float] | None:
    rows = tracks.track(tid)
    rows = rows[(rows.frame == frame) & ~rows.outside]
    if len(rows) == 0:
        return None
    return tuple(float(v) for v in rows.xyxy[0])  # type: ignore[return-value]


class _Writer:
    def __init__(self, out: Path, tracks: Tracks, info: SequenceInfo,
                 frames: Callable[[int], np.ndarray] | None) -> None:
        self.out = out
        self.tracks = tracks
        self.info = info
        self.frames = frames
        self.base = info.frame_base
        self.count = 0
        (out / "img").mkdir(parents=True, exist_ok=True)

    def picture(self, view: FrameView, tracks: Tracks | None = None, caption: str = "") -> str:
        img = render_view(view, tracks if tracks is not None else self.tracks, self.info,
                          frames=self.frames)
        self.count += 1
        name = f"img/{self.count:05d}.jpg"
        img.save(self.out / name, quality=85)
        return (f'<figure><img src="{name}" width="{img.width}" height="{img.height}" alt="">'
                f"<figcaption>{escape(caption)}</figcaption></figure>")

    def last_frame(self) -> int:
        if self.info.num_frames:
            return self.info.num_frames - 1
        return int(self.tracks.frame.max()) if len(self.tracks) else 0

    def item_pictures(self, item: ReviewItem) -> str:
        """The whole frame beside a two-column grid of crops (so no crop wraps alone).

        Items of up to three frames show every one of their frames; longer ones the frame
        before, the item's frame, the middle (past 20 frames) and the frame after.
        """
        focus = item.track_ids
        labels = "label_change" in item.kinds
        whole = self.picture(
            FrameView(item.frame, focus, item.box, caption=f"frame {item.frame + self.base}",
                      show_labels=labels),
            caption="whole frame, offending box in red")
        first, last = item.frames
        inner = range(first, last + 1) if last - first < 3 else (item.frame,)
        views = sorted({max(first - 1, 0), *inner, min(last + 1, self.last_frame())})
        if last - first > 20:  # long items (ghosts): show the middle too
            views = sorted({*views, (first + last) // 2})
        crops = []
        for f in views:
            zoom = item.box
            for tid in focus:
                b = _track_box(self.tracks, tid, f)
                if b is not None:
                    zoom = b
                    break
            if zoom is None:
                continue
            where = "before" if f < first else "after" if f > last else "at"
            hl = item.box if f == item.frame else None
            crops.append(self.picture(
                FrameView(f, focus, hl, zoom_box=zoom, caption=f"{f + self.base}", show_labels=labels),
                caption=f"{where} frame {f + self.base}"))
        return f'<div class="pics">{whole}<div class="crops">{"".join(crops)}</div></div>'

    def merge_pictures(self, m: Merge, merged: Tracks | None) -> str:
        before_a = _track_box(self.tracks, m.previous, m.end_frame)
        before_b = _track_box(self.tracks, m.from_, m.start_frame)
        if before_a is None or before_b is None:
            return ""
        ids = (m.previous, m.from_)
        before = [
            self.picture(FrameView(m.end_frame, ids, zoom_box=before_a,
                                   caption=f"{m.end_frame + self.base}"),
                         caption=f"track {m.previous} ends at {m.end_frame + self.base}"),
            self.picture(FrameView(m.start_frame, ids, zoom_box=before_b,
                                   caption=f"{m.start_frame + self.base}"),
                         caption=f"track {m.from_} starts at {m.start_frame + self.base}"),
        ]
        id_map = {m.previous: m.into, m.from_: m.into}
        after = [
            self.picture(FrameView(m.end_frame, ids, zoom_box=before_a, id_map=id_map,
                                   caption=f"{m.end_frame + self.base}"),
                         caption=f"track {m.into}"),
            self.picture(FrameView(m.start_frame, ids, zoom_box=before_b, id_map=id_map,
                                   caption=f"{m.start_frame + self.base}"),
                         caption=f"track {m.into}"),
        ]
        return (f'<div class="pics"><div class="ba"><div class="msg">before: two tracks</div>'
                f'<div class="pics">{"".join(before)}</div></div>'
                f'<div class="ba"><div class="msg">after merge: one track, gap of '
                f"{m.gap_frames} frames closed with an outside keyframe</div>"
                f'<div class="pics">{"".join(after)}</div></div></div>')


def _finding_key(f: Finding) -> tuple[Any, ...]:
    return (f.kind, tuple(f.track_ids), tuple(f.frames), f.message)


def _not_shown_note(findings: Sequence[Finding] | None, items: Sequence[ReviewItem]) -> str:
    """"N findings are not shown (kind × n, …) because …", or "" when all are shown."""
    if not findings:
        return ""
    shown = {_finding_key(f) for it in items for f in it.findings}
    hidden: dict[str, int] = {}
    for f in findings:
        if _finding_key(f) not in shown:
            hidden[f.kind] = hidden.get(f.kind, 0) + 1
    total = sum(hidden.values())
    if not total:
        return ""
    kinds = ", ".join(f"{k} × {n}" for k, n in sorted(hidden.items()))
    return (f"{total} of {len(findings)} findings are not shown here ({kinds}): the review plan "
            "keeps the highest-scoring items that fit the frame budget (check --budget), and "
            "these ranked below it. Every finding is in the JSON output (check --json).")


def write_report(
    out_dir: str | Path,
    *,
    tracks: Tracks,
    info: SequenceInfo,
    items: Sequence[ReviewItem],
    merges: Sequence[Merge] = (),
    merged_tracks: Tracks | None = None,
    frames: Callable[[int], np.ndarray] | None = None,
    summary: Mapping[str, Any] | None = None,
    findings: Sequence[Finding] | None = None,
    title: str = "Track review",
) -> Path:
    """Write the report folder and return the path of its ``index.html``.

    Args:
        out_dir: folder to create (or reuse); ``index.html`` and ``img/`` go there.
        tracks: the tracks as annotated (per-frame boxes), what the reviewer will fix.
        info: sequence info (size, frame base, name).
        items: review items to show, in order.
        merges: proposed fragment merges (before/after pictures).
        merged_tracks: the tracks after merging (unused for drawing; reserved).
        frames: optional frame source; without it boxes are drawn on a blank canvas.
        summary: extra numbers shown at the top (e.g. recall in the demo); a name that is
            already a tile (``tracks``) replaces that tile instead of adding a second one.
        findings: every finding of the run; those in no review item are counted in a note
            that says why they are not shown, so a short report never passes for a clean one.
        title: page title.

    Raises:
        InputError: the folder cannot be written.
    """
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        writer = _Writer(out, tracks, info, frames)
    except OSError as exc:
        raise InputError(f"{out}: cannot write the report folder: {exc}") from exc
    base = info.frame_base
    num_frames = info.num_frames or (int(tracks.frame.max()) + 1 if len(tracks) else 0)
    merge_by_pair = {(m.previous, m.from_): m for m in merges}
    merge_by_pair.update({(m.from_, m.previous): m for m in merges})

    kinds: dict[str, int] = {}
    for it in items:
        for f in it.findings:
            kinds[f.kind] = kinds.get(f.kind, 0) + 1
    stats: list[tuple[str, Any]] = [
        ("frames", num_frames),
        ("tracks", len(tracks.ids)),
        ("boxes", int((~tracks.outside).sum())),
        ("review items", len(items)),
        ("merges proposed", len(merges)),
    ]
    tiles = dict(stats)
    tiles.update(summary or {})  # one tile per name: a caller's value replaces ours in place
    stats = list(tiles.items())
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<div class="sub">{escape(info.name or "sequence")} · '
        + (f"{info.width}×{info.height} · " if info.width and info.height else "")
        + f"frames numbered from {base}"
        + ("" if frames is not None else " · no images given: boxes drawn on a blank canvas")
        + "</div>",
        '<div class="stats">',
        *[f'<div class="stat"><b>{escape(str(v))}</b><span>{escape(str(k))}</span></div>'
          for k, v in stats],
        "</div>",
    ]
    if kinds:
        parts.append('<div class="msg">findings in review items: ' + ", ".join(
            f'<span class="kind">{escape(k)} × {n}</span>' for k, n in sorted(kinds.items())) + "</div>")
    note = _not_shown_note(findings, items)
    if note:
        parts.append(f'<div class="note">{escape(note)}</div>')
    parts.append("<h2>Timeline</h2>")
    parts.append('<div class="msg">One row per track, coloured bars where it is visible. '
                 "Red frames: review items (click). Green lines: proposed merges.</div>")
    parts.append(timeline_svg(tracks, num_frames=num_frames, items=items, merges=merges,
                              frame_base=base))
    parts.append(f"<h2>Review items ({len(items)})</h2>")
    if not items:
        parts.append('<div class="msg">Nothing to review.</div>')
    for n, it in enumerate(items, start=1):
        colour = _score_colour(it.score)
        frames_txt = (f"frame {it.frames[0] + base}" if it.frames[0] == it.frames[1]
                      else f"frames {it.frames[0] + base}–{it.frames[1] + base}")
        ids = ", ".join(
            f'<span style="color:rgb{track_color(t)}">{t}</span>' for t in it.track_ids) or "—"
        parts.append(f'<div class="card" id="item-{n}" style="border-left-color:{colour}">')
        parts.append(f'<h3>#{n} · track {ids} · {frames_txt}'
                     f'<span class="score" style="color:{colour}">{it.score:.2f}</span></h3>')
        parts.append("<div>" + "".join(f'<span class="kind">{escape(k)}</span>' for k in it.kinds)
                     + "</div>")
        for f in it.findings[:6]:
            parts.append(f'<div class="msg">{escape(f.message)}</div>')
        if len(it.findings) > 6:
            parts.append(f'<div class="msg">… and {len(it.findings) - 6} more findings</div>')
        merge = None
        if len(it.track_ids) == 2:
            merge = merge_by_pair.get((it.track_ids[0], it.track_ids[1]))
        if merge is not None and "fragment" in it.kinds:
            parts.append(writer.merge_pictures(merge, merged_tracks))
        else:
            parts.append(writer.item_pictures(it))
        parts.append("</div>")
    if merges:
        parts.append(f"<h2>Merges ({len(merges)})</h2><table><tr><th>into</th><th>from</th>"
                     "<th>after track</th><th>gap (frames)</th><th>last / first frame</th>"
                     "<th>score</th></tr>")
        for m in merges:
            parts.append(f"<tr><td>{m.into}</td><td>{m.from_}</td><td>{m.previous}</td>"
                         f"<td>{m.gap_frames}</td><td>{m.end_frame + base} / "
                         f"{m.start_frame + base}</td><td>{m.score:.2f}</td></tr>")
        parts.append("</table>")
    parts.append("</body></html>")
    index = out / "index.html"
    try:
        index.write_text("\n".join(parts), encoding="utf-8")
    except OSError as exc:
        raise InputError(f"{index}: cannot write the report: {exc}") from exc
    logger.info("report written to %s (%d pictures)", index, writer.count)
    return index
