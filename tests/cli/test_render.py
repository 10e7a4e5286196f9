"""``cvat-track render`` through the CLI: MP4 + GIF from frames or a blank canvas."""

from __future__ import annotations

import json

import numpy as np
import pytest
from dataset._fixture import write_sequence

from cvat_extension.adapters.cli.main import main

pytest.importorskip("av", reason="the dataset extra (PyAV) is not installed")
pytest.importorskip("imageio_ffmpeg", reason="the dataset extra (imageio-ffmpeg) is not installed")


def test_render_with_frames_and_review(tmp_path, capsys):
    from PIL import Image

    seq = write_sequence(tmp_path)
    frames = tmp_path / "img1"
    frames.mkdir()
    for i in range(1, 11):
        Image.fromarray(np.full((48, 64, 3), 20 * i, np.uint8)).resize((640, 480)).save(frames / f"{i:06d}.jpg")
    review = tmp_path / "r.json"
    review.write_text(json.dumps({"review": [{"track_ids": [1], "frames": [2, 3], "frame": 2, "box": None,
                                              "score": 0.9, "kinds": ["id_switch"], "message": "m"}]}))
    out = tmp_path / "v.mp4"
    assert main(["render", str(seq / "gt" / "gt.txt"), "--frames", str(frames), "--out", str(out),
                 "--gif", str(tmp_path / "v.gif"), "--review", str(review), "--stop", "5"]) == 0
    assert "rendered 5 frames (1..5)" in capsys.readouterr().out
    import av

    with av.open(str(out)) as c:
        assert sum(1 for _ in c.decode(video=0)) == 5
    assert (tmp_path / "v.gif").stat().st_size > 0


def test_render_errors(tmp_path, capsys):
    seq = write_sequence(tmp_path)
    gt = str(seq / "gt" / "gt.txt")
    assert main(["render", gt, "--out", str(tmp_path / "v.avi")]) == 2
    assert main(["render", gt, "--out", str(tmp_path / "v.mp4"), "--start", "20"]) == 2
    assert "outside the sequence" in capsys.readouterr().err
    (tmp_path / "r.json").write_text("{}")
    assert main(["render", gt, "--out", str(tmp_path / "v.mp4"), "--review", str(tmp_path / "r.json")]) == 2
    assert "not a review JSON" in capsys.readouterr().err
    assert not (tmp_path / "v.mp4").exists()
    assert main(["render", gt, "--out", str(tmp_path / "v.mp4"), "--encoder", "ffmpeg", "--trail", "0"]) == 0
