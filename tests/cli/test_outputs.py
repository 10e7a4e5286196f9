"""Issue 13 points 2, 3, 4 and 10: a command writes all of its outputs or none, never an input.

Before: ``merge --out DIR`` and ``convert IN DIR`` crashed with IsADirectoryError (exit 1),
``merge --out o/m.txt --json DIR`` wrote o/m.txt and then failed, ``convert IN IN`` rewrote
its input, and a ``.xml`` output name silently received MOT CSV.
"""

from __future__ import annotations

import json

import pytest

from cvat_extension.adapters.cli.main import main

_MOT = "".join(f"{f},1,{10 + f},20,30,40,1,1,1\n" for f in range(1, 31))


@pytest.fixture
def src(tmp_path):
    path = tmp_path / "in" / "gt.txt"
    path.parent.mkdir()
    path.write_text(_MOT)
    return path


def _files(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["merge", "{src}", "--out", "{out}"], "--out is a folder"),
        (["convert", "{src}", "{out}", "--to", "mot"], "OUTPUT is a folder"),
        (["merge", "{src}", "--out", "{out}/o/m.txt", "--json", "{out}"], "--json is a folder"),
        (["convert", "{src}", "{src}"], "would overwrite the input"),
        (["merge", "{src}", "--out", "{src}"], "would overwrite the input"),
        (["merge", "{src}", "--out", "{out}/m.xml"], "MOT CSV content under a .xml name"),
        (["convert", "{src}", "{out}/m.xml", "--to", "mot"], "MOT CSV content under a .xml name"),
        (["check", "{src}", "--json", "{out}/f.json", "--report", "{out}/f.json"], "given to both --json and --report"),
        (["check", "{src}", "--json", "{out}/a/f.json", "--report", "{src}"], "--report must be a folder"),
        (["check", "{src}", "--json", "{out}/f.json", "--report", "{foreign}"], "holds other files"),
    ],
)
def test_bad_output_paths_exit_2_and_write_nothing(tmp_path, src, capsys, argv, match):
    out = tmp_path / "outdir"
    out.mkdir()
    foreign = tmp_path / "docs"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    before = _files(tmp_path)
    content = src.read_bytes()
    args = [a.format(src=src, out=out, foreign=foreign) for a in argv]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("InputError: ") and match in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert _files(tmp_path) == before and src.read_bytes() == content


def test_all_outputs_are_written_together(tmp_path, src):
    out = tmp_path / "new" / "deep"
    assert main(["merge", str(src), "--out", str(out / "m.txt"), "--json", str(out / "merges.json")]) == 0
    assert _files(tmp_path / "new") == ["deep", "deep/m.txt", "deep/merges.json"]
    assert json.loads((out / "merges.json").read_text())["merges"] == []


def test_report_folder_is_replaced_whole(tmp_path, src):
    rep = tmp_path / "rep"
    assert main(["check", str(src), "--report", str(rep)]) == 0
    stale = rep / "img" / "99999.jpg"
    stale.write_bytes(b"old")
    assert main(["check", str(src), "--report", str(rep), "--json", str(tmp_path / "f.json")]) == 0
    assert (rep / "index.html").is_file() and not stale.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left behind
