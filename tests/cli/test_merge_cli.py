"""``cvat-track merge``: output in the input's format, merges JSON, boxes preserved."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli._scenes import scene_with_errors, write

from cvat_extension.adapters.cli.main import main
from cvat_extension.io.formats import read_tracks


@pytest.fixture(scope="module")
def scene():
    return scene_with_errors()


@pytest.mark.parametrize("ext,fmt", [("txt", "mot"), ("xml", "cvat_xml"), ("json", "cvat_json")])
def test_merge_relinks_splits_in_every_format(scene, tmp_path, ext, fmt):
    _gt, bad, info, truth = scene
    src = write(tmp_path / f"bad.{ext}", bad, info, fmt)
    out, mj = tmp_path / f"merged.{ext}", tmp_path / "merges.json"
    assert main(["merge", str(src), "--out", str(out), "--json", str(mj)]) == 0
    merges = json.loads(mj.read_text())["merges"]
    assert all(set(m) == {"into", "from", "gap", "score"} for m in merges)
    from cvat_extension.core.merge import propose_merges

    # The CLI applies exactly the core's links (those at or above the default min_score),
    # and each is one of the injected splits.
    expected = {(m.into, m.from_) for m in propose_merges(bad)}
    assert expected and {(m["into"], m["from"]) for m in merges} == expected
    assert expected <= {e.track_ids for e in truth if e.kind == "split"}
    before = read_tracks(src)
    after = read_tracks(out)
    assert after.format == before.format
    assert len(after.tracks.ids) == len(before.tracks.ids) - len(merges)
    # Same visible boxes (within the 1 px keyframe tolerance for CVAT formats), and one
    # visible box per (track, frame).
    a, b = before.tracks.visible(), after.tracks.visible()
    assert len(a) == len(b)
    ka = np.lexsort((a.xyxy[:, 0], a.frame))
    kb = np.lexsort((b.xyxy[:, 0], b.frame))
    assert np.abs(a.xyxy[ka] - b.xyxy[kb]).max() <= 1.0 + 1e-6
    key = b.frame * 10_000 + b.track_id
    assert len(np.unique(key)) == len(key)
    # The gap of a merged track is closed by outside (not interpolated across).
    for m in merges:
        t = after.tracks.track(m["into"]).visible()
        assert np.diff(t.frame).max() >= m["gap"] + 1


def test_unmerged_cvat_json_tracks_keep_their_keyframes(scene, tmp_path):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.json", bad, info, "cvat_json")
    out = tmp_path / "merged.json"
    assert main(["merge", str(src), "--out", str(out)]) == 0
    before = {t["id"]: t for t in json.loads(src.read_text())["tracks"] if "id" in t}
    after = json.loads(out.read_text())["tracks"]
    untouched = [t for t in after if t.get("id") in before and t["id"] not in (2, 9, 13, 14)]
    assert untouched and all(t["shapes"] == before[t["id"]]["shapes"] for t in untouched)


def test_max_gap_option(scene, tmp_path):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad, info, "mot")
    assert main(["merge", str(src), "--out", str(tmp_path / "o.txt"), "--max-gap", "0",
                 "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["merges"] == []


def test_clean_tracks_are_written_unchanged(scene, tmp_path):
    gt, _bad, info, _ = scene
    src = write(tmp_path / "gt.txt", gt, info, "mot")
    out = tmp_path / "o.txt"
    assert main(["merge", str(src), "--out", str(out)]) == 0
    assert out.read_text() == src.read_text()


def test_bad_input_writes_nothing(tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_text("1,1,0,0,10,10,1,1,1\n1,1,0,0,10,10,1,1,1\n")
    out = tmp_path / "o.txt"
    assert main(["merge", str(src), "--out", str(out)]) == 2
    assert "bad.txt" in capsys.readouterr().err and not out.exists()


def test_out_must_differ_from_input(scene, tmp_path, capsys):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad[bad.frame < 30], info, "mot")
    assert main(["merge", str(src), "--out", str(src)]) == 2
    assert "--out would overwrite the input" in capsys.readouterr().err


def test_bad_max_gap_is_usage_error(tmp_path):
    with pytest.raises(SystemExit) as exc:
        main(["merge", "x.txt", "--out", "y.txt", "--max-gap", "-1"])
    assert exc.value.code == 2
