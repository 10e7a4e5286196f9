"""``cvat-track card`` through the CLI: outputs, --compare, errors leave --out untouched."""

from __future__ import annotations

import json

import pytest
from dataset._fixture import write_sequence

from cvat_extension.adapters.cli.main import main


def test_card_writes_md_json_png_and_compares(tmp_path, capsys):
    pytest.importorskip("matplotlib", reason="the dataset extra (matplotlib) is not installed")
    data = tmp_path / "data"
    write_sequence(data, "TINY-01")
    write_sequence(data, "TINY-02", rows=["1,1,0,0,10,10,1,1,1"])
    out = tmp_path / "card"
    assert main(["card", str(data), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["card.json", "card.md", "card.png"]
    card = json.loads((out / "card.json").read_text())
    assert [s["name"] for s in card["sequences"]] == ["TINY-01", "TINY-02"] and card["total"]["boxes"] == 11
    md = (out / "card.md").read_text()
    assert "| TINY-01 | 10 | 3 | 10 |" in md and "![card](card.png)" in md and "How the numbers are counted" in md
    assert "card: 2 sequences, 20 frames, 4 tracks, 11 boxes" in capsys.readouterr().out
    after = tmp_path / "after"
    assert main(["card", str(data / "TINY-01"), "--out", str(after), "--compare", str(out / "card.json"),
                 "--no-plots", "--json", "-"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["compare"]["total"]["boxes"] == {"before": 11, "after": 10, "delta": -1}
    assert printed["compare"]["only_before"] == ["TINY-02"]
    assert "Compared with the previous version" in (after / "card.md").read_text()


def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "gt.txt").write_text("1,1,0,0,10,10,1,1,1\n2,1,x,0,10,10,1,1,1\n")
    out = tmp_path / "out"
    assert main(["card", str(bad), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "gt.txt:2" in err
    assert main(["card", str(tmp_path / "missing"), "--out", str(out)]) == 2
    assert main(["card", "--out", str(out)]) == 2
    assert "no input" in capsys.readouterr().err
    assert not out.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_seqinfo_warns(tmp_path, capsys):
    write_sequence(tmp_path / "d", seqinfo=False)
    assert main(["card", str(tmp_path / "d"), "--out", str(tmp_path / "c"), "--no-plots", "--no-checks"]) == 0
    assert "warning:" in capsys.readouterr().err and "no seqinfo.ini" in (tmp_path / "c" / "card.md").read_text()
