"""HTML report: a self-contained folder whose pictures show the items."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from PIL import Image

from cvat_extension.core.findings import Finding
from cvat_extension.core.merge import merge_fragments
from cvat_extension.core.review import plan_review
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.report.draw import HIGHLIGHT, FrameView, render_view
from cvat_extension.report.html import write_report


def _scene() -> tuple[Tracks, SequenceInfo]:
    f = np.arange(0, 40)
    a = Tracks.from_columns(frame=f[:20], track_id=np.full(20, 1),
                            xyxy=np.c_[10 + 2 * f[:20], 50 + 0 * f[:20], 40 + 2 * f[:20], 120 + 0 * f[:20]])
    b = Tracks.from_columns(frame=f[25:], track_id=np.full(15, 2),
                            xyxy=np.c_[10 + 2 * f[25:], 50 + 0 * f[25:], 40 + 2 * f[25:], 120 + 0 * f[25:]])
    c = Tracks.from_columns(frame=f, track_id=np.full(40, 3),
                            xyxy=np.c_[200 + 0 * f, 30 + 0 * f, 230 + 0 * f, 90 + 0 * f])
    return Tracks.concat([a, b, c]), SequenceInfo(num_frames=40, width=320, height=200, frame_base=1)


def test_report_folder_is_self_contained(tmp_path: Path) -> None:
    tracks, info = _scene()
    result = merge_fragments(tracks)
    findings = [
        Finding("fragment", (1, 2), (19, 25), None, 0.8, "track 1 → 2: gap 5"),
        Finding("ghost", (3,), (0, 39), (200, 30, 230, 90), 0.9, "track 3 at frame 0: static"),
    ]
    items = plan_review(findings, num_frames=40, budget_frames_fraction=1.0, frame_base=info.frame_base)
    assert "track 3 at frames 1-40" in " ".join(it.message for it in items)  # MOT numbering
    index = write_report(tmp_path / "rep", tracks=tracks, info=info, items=items,
                         merges=result.merges, summary={"recall": "1.00"})
    html = index.read_text()
    assert "<script" not in html
    srcs = re.findall(r'src="([^"]+)"', html)
    assert srcs and all((index.parent / s).is_file() for s in srcs)
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from outside
    assert 'id="item-1"' in html and 'id="item-2"' in html
    assert "after merge" in html  # fragment item drawn as before/after
    assert "<svg" in html and 'href="#item-1"' in html  # timeline links to items
    assert "frames 1–40" in html  # user's numbering (frame_base 1)


def test_offending_box_is_drawn_in_red_on_blank_canvas() -> None:
    tracks, info = _scene()
    img = render_view(FrameView(5, (3,), (200, 30, 230, 90)), tracks, info)
    arr = np.asarray(img)
    assert arr.shape == (200, 320, 3)
    red = np.all(arr == np.array(HIGHLIGHT, dtype=np.uint8), axis=-1)
    ys, xs = np.nonzero(red)
    assert xs.min() >= 198 and xs.max() <= 232 and ys.min() >= 28 and ys.max() <= 92


def test_frames_are_drawn_when_given(tmp_path: Path) -> None:
    tracks, info = _scene()
    frame = np.zeros((200, 320, 3), np.uint8)
    frame[:, :, 1] = 200  # green video
    img = render_view(FrameView(5), tracks, info, frames=lambda f: frame)
    assert np.asarray(img)[199, 0].tolist() == [0, 200, 0]
    Image.fromarray(np.asarray(img)).save(tmp_path / "x.png")


def test_empty_report(tmp_path: Path) -> None:
    index = write_report(tmp_path / "empty", tracks=Tracks.empty(), info=SequenceInfo(), items=[])
    assert "Nothing to review" in index.read_text()
