"""``cvat-track agreement`` through the CLI: the numbers of ``eval``, exit codes, report."""

from __future__ import annotations

import json

from cli._scenes import scene_with_errors, write

from cvat_extension.adapters.cli.main import main


def test_agreement_reproduces_eval_and_fails_below_thresholds(tmp_path, capsys):
    gt, bad, info, _ = scene_with_errors(num_frames=120)
    a = write(tmp_path / "a.txt", gt, info, "mot")
    b = write(tmp_path / "b.txt", bad, info, "mot")
    assert main(["eval", str(a), str(b), "--json", str(tmp_path / "e.json")]) == 0
    code = main(["agreement", str(a), str(b), "--json", str(tmp_path / "g.json"), "--report", str(tmp_path / "rep")])
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["metrics"]["a_as_reference"] == json.loads((tmp_path / "e.json").read_text())["metrics"]
    assert code == (0 if doc["passed"] else 1)
    assert doc["review"] and doc["review"][0]["kinds"]
    html = (tmp_path / "rep" / "index.html").read_text()
    assert "Inter-annotator agreement" in html
    out = capsys.readouterr().out
    assert "A as reference: MOTA" in out and ("PASS" in out or "FAIL" in out)
    assert main(["agreement", str(a), str(b), "--min-mota", "100", "--min-idf1", "100"]) == 1
    assert main(["agreement", str(a), str(a), "--symmetric"]) == 0


def test_agreement_bad_input(tmp_path, capsys):
    gt, _bad, info, _ = scene_with_errors(num_frames=60)
    a = write(tmp_path / "a.txt", gt, info, "mot")
    other = tmp_path / "o" / "gt.txt"
    other.parent.mkdir()
    other.write_text(a.read_text())
    (tmp_path / "o" / "seqinfo.ini").write_text("[Sequence]\nname=o\nseqLength=9999\nimWidth=10\nimHeight=10\n")
    assert main(["agreement", str(a), str(other)]) == 2
    assert "not annotations of one sequence" in capsys.readouterr().err
    assert main(["agreement", str(a)]) == 2
    assert main(["agreement", str(a), str(a), "--push"]) == 2
    assert "--push needs CVAT inputs" in capsys.readouterr().err
