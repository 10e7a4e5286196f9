"""``cvat-track propagate`` offline, through the CLI entry point (random-weight SAM2, tiny)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvat_extension.adapters.cli.main import main

pytest.importorskip("sam2")


@pytest.fixture()
def clip(tmp_path: Path, shared_data: Path) -> Path:
    from PIL import Image

    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        Image.open(shared_data / "bedroom" / f"{i:05d}.jpg").resize((160, 90)).save(folder / f"{i:05d}.jpg")
    return folder


def _mot(path: Path) -> Path:
    # frame,id,x,y,w,h,conf,class,vis (1-based frames): keyframes at frames 1 and 6
    path.write_text(
        "1,1,20,10,40,60,1,1,1\n6,1,30,12,40,60,1,1,1\n"
        "1,2,90,20,30,40,1,1,1\n6,2,95,20,30,40,1,1,1\n"
    )
    return path


@pytest.mark.slow
def test_offline_propagation_writes_tracks_and_review(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ann = _mot(tmp_path / "gt.txt")
    out = tmp_path / "out.txt"
    review = tmp_path / "review.json"
    code = main([
        "propagate", "--frames", str(clip), "--annotations", str(ann), "--out", str(out),
        "--review", str(review), "--image-size", "128", "--device", "cpu", "--random-weights",
        "--format", "json",
    ])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["segments"] == 1  # both tracks share the keyframe pair: one batched pass
    assert summary["frames_propagated"] == 8  # 2 tracks x frames 2..5
    assert 0 <= summary["frames_flagged"] <= 8
    assert summary["flagged_share"] == pytest.approx(summary["frames_flagged"] / 8, abs=1e-4)
    rows = np.loadtxt(out, delimiter=",", ndmin=2)
    for tid in (1, 2):
        t = rows[rows[:, 1] == tid]
        assert {1, 6} <= set(t[:, 0].astype(int).tolist())  # the human keyframes survive
    kf = rows[(rows[:, 0] == 1) & (rows[:, 1] == 1)][0]
    assert kf[2:6].tolist() == [20, 10, 40, 60]
    items = json.loads(review.read_text())
    assert sum(it["frames"][1] - it["frames"][0] + 1 for it in items) >= summary["frames_flagged"] > 0 or items == []
    for it in items:
        assert it["kinds"] == ["propagation_disagreement"] and 2 <= it["frame"] <= 5  # MOT frames are 1-based


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["propagate", "--frames", str(tmp_path), "--random-weights"]) == 2
    assert "needs --frames, --annotations and --out" in capsys.readouterr().err
    ann = _mot(tmp_path / "gt.txt")
    code = main(["propagate", "--frames", str(tmp_path / "nope"), "--annotations", str(ann),
                 "--out", str(tmp_path / "o.txt"), "--random-weights", "--image-size", "128"])
    assert code == 2
    assert "--frames" in capsys.readouterr().err
    from PIL import Image

    (tmp_path / "one").mkdir()
    Image.new("RGB", (8, 8)).save(tmp_path / "one" / "0.png")
    assert main(["propagate", "--frames", str(tmp_path / "one"), "--annotations", str(ann), "--out",
                 str(tmp_path / "o.txt"), "--track", "9", "--random-weights", "--image-size", "128"]) == 2
    assert "no track with id 9" in capsys.readouterr().err


@pytest.mark.slow
def test_offline_write_masks_with_real_sam2(clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cvat_extension.core.masks import rle_to_mask

    out = tmp_path / "out.json"
    code = main(["propagate", "--frames", str(clip), "--annotations", str(_mot(tmp_path / "gt.txt")),
                 "--out", str(out), "--write", "masks", "--image-size", "128", "--device", "cpu",
                 "--random-weights", "--format", "json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    doc = json.loads(out.read_text())
    masks = [t for t in doc["tracks"] if t["shapes"][0]["type"] == "mask"]
    boxes = {t["group"]: t for t in doc["tracks"] if t["shapes"][0]["type"] == "rectangle"}
    visible = [s for t in masks for s in t["shapes"] if not s["outside"]]
    assert len(visible) == summary["mask_keyframes"]
    for t in masks:
        assert t["group"] in boxes and boxes[t["group"]]["label_id"] == t["label_id"]
    for s in visible:  # random weights: any shape, but every mask decodes at frame size
        assert rle_to_mask(s["points"], 160, 90).any()
