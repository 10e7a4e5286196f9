"""Issue 13 points 6 and 7: the report never hides or misattributes what it shows."""

from __future__ import annotations

import colorsys
import re
from pathlib import Path

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.review import plan_review
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.report import html as html_module
from cvat_extension.report.draw import HIGHLIGHT, FrameView, render_view, track_color

INFO = SequenceInfo(num_frames=60, width=320, height=200, frame_base=1)


def _tracks() -> Tracks:
    f = np.arange(60)
    a = Tracks.from_columns(frame=f, track_id=np.full(60, 1),
                            xyxy=np.c_[10 + f, 50 + 0 * f, 40 + f, 120 + 0 * f],
                            label=(f >= 30).astype(np.int32), labels=("person", "car"))
    b = Tracks.from_columns(frame=f, track_id=np.full(60, 2),
                            xyxy=np.c_[200 + 0 * f, 30 + 0 * f, 230 + 0 * f, 90 + 0 * f],
                            labels=("person", "car"))
    return Tracks.concat([a, b])


def _red_pixels(img) -> int:
    arr = np.asarray(img).astype(int)
    return int((np.abs(arr - np.array(HIGHLIGHT)).sum(axis=2) < 30).sum())


def test_off_image_box_gets_an_arrow():
    view = FrameView(5, (1,), highlight_box=(400.0, 50.0, 450.0, 120.0))  # right of a 320-px frame
    img = render_view(view, _tracks(), INFO)
    assert _red_pixels(img) > 50
    right = np.asarray(img)[:, -40:].astype(int)
    assert (np.abs(right - np.array(HIGHLIGHT)).sum(axis=2) < 30).any()  # the arrow at the right edge


def test_partly_visible_box_is_clipped_to_the_picture():
    view = FrameView(5, (1,), highlight_box=(-30.0, 50.0, 20.0, 120.0))
    img = render_view(view, _tracks(), INFO)
    left = np.asarray(img)[:, :4].astype(int)
    assert (np.abs(left - np.array(HIGHLIGHT)).sum(axis=2) < 30).any()  # left edge drawn at x=0


def test_no_track_colour_is_the_highlight_red():
    for tid in range(5000):
        r, g, b = track_color(tid)
        hue = colorsys.rgb_to_hsv(r / 255, g / 255, b / 255)[0]
        assert min(hue, 1 - hue) >= 0.07, tid


def _write(tmp_path: Path, planned: list[Finding], budget: float = 1.0, **kw):
    items = plan_review(planned, num_frames=60, budget_frames_fraction=budget, frame_base=1)
    index = html_module.write_report(tmp_path / "rep", tracks=_tracks(), info=INFO, items=items, **kw)
    return index.read_text(), items


def test_label_change_cards_show_labels(tmp_path, monkeypatch):
    seen: list[FrameView] = []
    real = html_module.render_view

    def spy(view, *a, **k):
        seen.append(view)
        return real(view, *a, **k)

    monkeypatch.setattr(html_module, "render_view", spy)
    _write(tmp_path, [Finding("label_change", (1,), (30, 30), (40, 50, 70, 120), 0.9,
                              "track 1 at frame 31: label person → car")])
    assert seen and all(v.show_labels for v in seen)


def test_short_item_shows_every_frame_and_crops_in_a_grid(tmp_path):
    text, _ = _write(tmp_path, [Finding("box_jump", (1,), (57, 58), (67, 50, 97, 120), 0.9,
                                        "track 1 at frames 58-59: jump")])
    for caption in ("before frame 57", "at frame 58", "at frame 59", "after frame 60"):
        assert caption in text
    card = text[text.index('id="item-1"'):]
    assert re.search(r'<div class="pics"><figure>.*?</figure><div class="crops">(<figure>.*?</figure>){4}</div>', card)
    assert "grid-template-columns:repeat(2,auto)" in text


def test_stat_tiles_once_and_note_of_findings_not_shown(tmp_path):
    shown = Finding("ghost", (2,), (0, 59), (200, 30, 230, 90), 0.9, "track 2: static")
    hidden = [Finding("missing_object", (), (f, f), (5, 5, 20, 20), 0.2, f"frame {f + 1}: missed")
              for f in range(10, 20)]
    text, items = _write(tmp_path, [shown, *hidden], budget=0.02,
                         summary={"tracks": "2", "findings": "11"}, findings=[shown, *hidden])
    assert all("missing_object" not in it.kinds for it in items)
    assert text.count("<span>tracks</span>") == 1 and text.count("<span>findings</span>") == 1
    assert "10 of 11 findings are not shown here (missing_object × 10)" in text
    assert "frame budget" in text
