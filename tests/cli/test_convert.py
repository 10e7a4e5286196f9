"""``cvat-track convert``: exit codes, outputs, nothing written on bad input."""

from __future__ import annotations

import pytest

from cvat_extension.adapters.cli.main import main
from cvat_extension.io.formats import read_tracks


def test_json_to_mot_expands_and_stitches(fixtures_dir, tmp_path, capsys):
    out = tmp_path / "out.txt"
    assert main(["convert", str(fixtures_dir / "io" / "task_annotations.json"), str(out)]) == 0
    lines = out.read_text().splitlines()
    assert len(lines) == 14 and {ln.split(",")[1] for ln in lines} == {"11"}  # one object, not two pieces
    assert lines[0].startswith("1,11,0,0,10,10,")  # MOT frames start at 1
    assert "-> " in capsys.readouterr().out


def test_mot_to_json_thins_and_round_trips(tmp_path):
    src = tmp_path / "gt.txt"
    rows = [f"{f},{i},{10 + 2 * f + 50 * i},{20 + f},30,40,1,1,1" for i in (1, 2) for f in range(1, 41) if not (i == 2 and 15 <= f < 20)]
    src.write_text("\n".join(rows) + "\n")
    assert main(["convert", str(src), str(tmp_path / "a.json")]) == 0
    doc = read_tracks(tmp_path / "a.json")
    assert len(doc.keyframes) <= 6  # 2 + 2 + outside at the gap
    assert main(["convert", str(tmp_path / "a.json"), str(tmp_path / "b.txt")]) == 0
    assert sorted((tmp_path / "b.txt").read_text().split()) == sorted(src.read_text().split())


def test_stop_frame_option(fixtures_dir, tmp_path):
    out = tmp_path / "out.txt"
    assert main(["convert", str(fixtures_dir / "io" / "keyframes_only.xml"), str(out), "--stop-frame", "3"]) == 0
    assert [int(ln.split(",")[0]) for ln in out.read_text().splitlines()] == [2, 3, 4]


@pytest.mark.parametrize(
    "content", ["1,1,0,0,-3,4,1,1,1\n", "1,1,0,0,3,4,1,1,1\n1,1,0,0,3,4,1,1,1\n", "garbage\n"]
)
def test_bad_input_exit_2_nothing_written(tmp_path, capsys, content):
    src = tmp_path / "gt.txt"
    src.write_text(content)
    out = tmp_path / "out.json"
    assert main(["convert", str(src), str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("AnnotationFormatError: ") and str(src) in err and "Traceback" not in err
    assert not out.exists() and list(tmp_path.iterdir()) == [src]


def test_unknown_output_extension(tmp_path, capsys):
    src = tmp_path / "gt.txt"
    src.write_text("1,1,0,0,3,4,1,1,1\n")
    assert main(["convert", str(src), str(tmp_path / "out.bin")]) == 2
    assert "use --to" in capsys.readouterr().err
