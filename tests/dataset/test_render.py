"""Drawing: colour-stable ids, dashed occluded boxes, highlighted review items; encoders."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("av", reason="the dataset extra (PyAV) is not installed")
pytest.importorskip("imageio_ffmpeg", reason="the dataset extra (imageio-ffmpeg) is not installed")

from cvat_extension.core.findings import ReviewItem
from cvat_extension.core.tracks import Tracks
from cvat_extension.dataset.encode import Encoder, GifWriter, open_video_writer
from cvat_extension.dataset.render import RenderConfig, TrackPainter, blank_frames, render_frames
from cvat_extension.report.draw import track_color


def tracks() -> Tracks:
    return Tracks.from_columns(frame=[0, 1, 0, 1], track_id=[4, 4, 9, 9],
                               xyxy=[[20, 40, 60, 100], [22, 40, 62, 100], [100, 40, 140, 100], [100, 40, 140, 100]],
                               occluded=[0, 0, 1, 1])


def colour_count(img: np.ndarray, colour) -> int:
    return int((img == np.array(colour, np.uint8)).all(axis=2).sum())


def test_ids_keep_their_colour_and_occluded_boxes_are_dashed():
    painter = TrackPainter(tracks(), config=RenderConfig(line_px=2))
    canvas = np.zeros((160, 200, 3), np.uint8)
    a, b = painter.draw(0, canvas), painter.draw(1, canvas)
    assert canvas.max() == 0  # the input frame is not drawn on
    for img in (a, b):
        assert colour_count(img, track_color(4)) > 100 and colour_count(img, track_color(9)) > 50
    left = a[60:80, 99:101]  # the left edge of occluded box 9: dashes and gaps
    on = (left == np.array(track_color(9), np.uint8)).all(axis=2).any(axis=1)
    assert on.any() and not on.all()
    solid = a[60:80, 20:22]
    assert (solid == np.array(track_color(4), np.uint8)).all(axis=2).any(axis=1).all()


def test_review_items_turn_red_on_their_frames_only():
    item = ReviewItem((4,), (1, 1), 1, None, 0.9, ("id_switch",), (), "track 4")
    painter = TrackPainter(tracks(), items=[item], config=RenderConfig(line_px=2))
    canvas = np.zeros((160, 200, 3), np.uint8)
    assert colour_count(painter.draw(0, canvas), (255, 40, 40)) == 0
    assert colour_count(painter.draw(1, canvas), (255, 40, 40)) > 500  # box + frame border
    assert [n for n, _ in painter.active_items(1)] == [1]


@pytest.mark.parametrize("encoder", list(Encoder))
def test_encoders_write_decodable_h264(tmp_path, encoder):
    import av

    painter = TrackPainter(tracks())
    path = tmp_path / "v.mp4"
    writer = open_video_writer(path, (201, 161), 25, encoder=encoder)  # odd sizes are padded
    gif = GifWriter(tmp_path / "v.gif", 25, width=100, step=1)
    assert render_frames(painter, blank_frames(201, 161, range(2)), [writer, gif]) == 2
    writer.close()
    gif.close()
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 2 and frames[0].shape == (162, 202, 3)
    from PIL import Image

    with Image.open(tmp_path / "v.gif") as im:
        assert im.n_frames == 2 and im.width == 100
