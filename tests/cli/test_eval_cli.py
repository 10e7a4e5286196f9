"""``cvat-track eval``: TrackEval numbers through the CLI."""

from __future__ import annotations

import json

import pytest
from cli._scenes import scene_with_errors, write

from cvat_extension.adapters.cli.main import main


def test_identical_files_score_100(tmp_path, capsys):
    gt, _bad, info, _ = scene_with_errors()
    a = write(tmp_path / "gt.txt", gt, info, "mot")
    out = tmp_path / "m.json"
    assert main(["eval", str(a), str(a), "--json", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert (m["hota"], m["mota"], m["idf1"], m["idsw"], m["fp"], m["fn"]) == (1.0, 1.0, 1.0, 0, 0, 0)
    assert "HOTA 100.00" in capsys.readouterr().out


def test_errors_lower_idf1_and_merge_raises_it(tmp_path):
    gt, bad, info, _ = scene_with_errors()
    g = write(tmp_path / "gt.txt", gt, info, "mot")
    b = write(tmp_path / "bad.txt", bad, info, "mot")
    assert main(["eval", str(g), str(b), "--json", str(tmp_path / "b.json")]) == 0
    assert main(["merge", str(b), "--out", str(tmp_path / "m.txt")]) == 0
    assert main(["eval", str(g), str(tmp_path / "m.txt"), "--json", str(tmp_path / "m.json")]) == 0
    before = json.loads((tmp_path / "b.json").read_text())["metrics"]
    after = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert before["idf1"] < 1.0 and before["idsw"] > 0
    assert after["idf1"] > before["idf1"]
    assert after["num_pred_ids"] < before["num_pred_ids"]


def test_cross_format_alignment(tmp_path, capsys):
    gt, _bad, info, _ = scene_with_errors()
    g = write(tmp_path / "gt.txt", gt, info, "mot")
    x = write(tmp_path / "gt.xml", gt, info, "cvat_xml")
    assert main(["eval", str(g), str(x), "--json", str(tmp_path / "m.json")]) == 0
    m = json.loads((tmp_path / "m.json").read_text())["metrics"]
    assert m["mota"] == 1.0 and m["idf1"] == 1.0  # thinned keyframes within 1 px
    assert "numbers frames from 1" in capsys.readouterr().out


def test_motchallenge_ignore_rows(tmp_path):
    rows = ["1,1,0,0,10,20,1,1,1", "1,2,50,0,10,20,0,7,1", "2,1,1,0,10,20,1,1,1"]
    g = tmp_path / "gt.txt"
    g.write_text("\n".join(rows) + "\n")
    p = tmp_path / "pred.txt"
    p.write_text("\n".join([rows[0], rows[2]]) + "\n")
    assert main(["eval", str(g), str(p), "--gt-ignore-zero-conf", "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["fn"] == 0


@pytest.mark.parametrize("name", ["missing.txt"])
def test_missing_file_exit_2(tmp_path, capsys, name):
    assert main(["eval", str(tmp_path / name), str(tmp_path / name)]) == 2
    assert name in capsys.readouterr().err
