"""Issue 13 points 8 and 11: MOT ignore rows can be skipped, the summary says what it counts,
and messages use the user's frame numbers."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvat_extension.adapters.cli._inputs import ImageFolderFrames
from cvat_extension.adapters.cli.main import main
from cvat_extension.errors import InputError


@pytest.fixture
def gt_with_ignore_rows(tmp_path):
    rows = []
    for f in range(1, 301):
        rows.append(f"{f},1,{100 + 3 * f},200,40,90,1,1,1")
        rows.append(f"{f},2,500,300,40,90,0,8,1")  # a static distractor, conf 0 = "ignore"
    path = tmp_path / "gt.txt"
    path.write_text("\n".join(rows) + "\n")
    return path


def test_ignore_zero_conf_skips_ignore_rows(gt_with_ignore_rows, tmp_path, capsys):
    plain, skipped = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["check", str(gt_with_ignore_rows), "--json", str(plain)]) == 0
    assert any(2 in f["track_ids"] for f in json.loads(plain.read_text())["findings"])
    assert main(["check", str(gt_with_ignore_rows), "--ignore-zero-conf", "--json", str(skipped)]) == 0
    doc = json.loads(skipped.read_text())
    assert not any(2 in f["track_ids"] for f in doc["findings"])
    assert doc["summary"]["ignored_zero_conf_rows"] == 300 and doc["summary"]["tracks"] == 1
    assert "300 ignore rows skipped" in capsys.readouterr().out


def test_summary_counts_confident_findings_and_hints_apart(gt_with_ignore_rows, tmp_path):
    out = tmp_path / "a.json"
    assert main(["check", str(gt_with_ignore_rows), "--json", str(out)]) == 0
    s = json.loads(out.read_text())["summary"]
    # One low-score hint over all 300 frames, nothing confident: both are said plainly.
    assert (s["confident_findings"], s["hint_findings"]) == (0, 1)
    assert s["frames_with_confident_findings"] == 0 and s["frames_with_any_finding"] == 300
    assert "flagged_frames" not in s and "flagged_fraction_any_score" not in s


def test_ignore_zero_conf_needs_mot(fixtures_dir, capsys):
    assert main(["check", str(fixtures_dir / "io" / "task_annotations.json"), "--ignore-zero-conf"]) == 2
    assert "--ignore-zero-conf needs MOT input" in capsys.readouterr().err


def test_missing_image_is_named_in_the_users_numbering(tmp_path):
    from PIL import Image

    for i in range(8):
        Image.new("RGB", (8, 8)).save(tmp_path / f"{i + 1:06d}.jpg")
    frames = ImageFolderFrames(tmp_path, frame_base=1)
    with pytest.raises(InputError, match=r"no image for frame 9 \(the folder has 8 images: frames 1-8\)"):
        frames(8)


def test_report_warning_in_the_users_numbering(caplog):
    from cvat_extension.core.tracks import SequenceInfo, Tracks
    from cvat_extension.report.draw import FrameView, render_view

    def no_frame(frame: int) -> np.ndarray:
        raise InputError("gone")

    tracks = Tracks.from_columns(frame=[8], track_id=[1], xyxy=[[0, 0, 5, 5]])
    with caplog.at_level("WARNING"):
        render_view(FrameView(8), tracks, SequenceInfo(10, 32, 32, 1), frames=no_frame)
    assert "frame 9 could not be read" in caplog.text
