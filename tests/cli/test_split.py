"""``cvat-track split`` through the CLI: seqmaps, manifest, warnings, bad input."""

from __future__ import annotations

import json

from dataset._fixture import write_sequence

from cvat_extension.adapters.cli.main import main


def test_split_writes_seqmaps_and_manifest(tmp_path, capsys):
    data = tmp_path / "data"
    for i in range(6):
        write_sequence(data, f"S-{i:02d}", rows=[f"{f},{t},{10 * t + f * i},0,{20 + 8 * i},40,1,1,{1 - i / 7:.3f}"
                                                  for f in range(1, 11) for t in range(1, 2 + i)])
    out = tmp_path / "split"
    assert main(["split", str(data), "--out", str(out), "--seed", "3", "--benchmark", "MYDS"]) == 0
    cap = capsys.readouterr()
    assert "cannot hold 2 easy, 3 medium, 2 hard" in cap.err
    maps = {p.name: p.read_text().splitlines() for p in (out / "seqmaps").iterdir()}
    assert sorted(maps) == ["MYDS-test.txt", "MYDS-train.txt", "MYDS-val.txt"]
    assert all(lines[0] == "name" for lines in maps.values())
    names = sorted(n for lines in maps.values() for n in lines[1:])
    assert names == [f"S-{i:02d}" for i in range(6)]  # every sequence in exactly one split
    m = json.loads((out / "split.json").read_text())
    assert {s["name"]: s["split"] for s in m["sequences"]} == {n: k for k, v in m["splits"].items() for n in v}
    assert all({"tier", "score", "why", "features", "frames"} <= set(s) for s in m["sequences"])
    assert m["warnings"] and m["seed"] == 3
    again = tmp_path / "again"
    assert main(["split", str(data), "--out", str(again), "--seed", "3", "--benchmark", "MYDS"]) == 0
    assert json.loads((again / "split.json").read_text())["splits"] == m["splits"]


def test_split_errors(tmp_path, capsys):
    write_sequence(tmp_path / "one")
    assert main(["split", str(tmp_path / "one"), "--out", str(tmp_path / "o")]) == 2
    assert "at least 2 sequences" in capsys.readouterr().err
    write_sequence(tmp_path / "one", "TINY-02")
    assert main(["split", str(tmp_path / "one"), "--out", str(tmp_path / "o"), "--strict"]) == 2
    assert "cannot hold" in capsys.readouterr().err and not (tmp_path / "o").exists()
