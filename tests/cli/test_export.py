"""``cvat-track export`` through the CLI: MOT layout with splits, COCO round trip, errors."""

from __future__ import annotations

import json

from dataset._fixture import write_sequence

from cvat_extension.adapters.cli.main import main


def test_export_mot_per_split_and_coco_round_trip(tmp_path, capsys):
    data = tmp_path / "data"
    for name in ("A-01", "B-02", "C-03"):
        write_sequence(data, name)
    split = tmp_path / "split"
    assert main(["split", str(data), "--out", str(split), "--test", "0.34", "--val", "0"]) == 0
    out = tmp_path / "export"
    assert main(["export", str(data), "--out", str(out), "--split", str(split / "split.json"),
                 "--to", "both"]) == 0
    manifest = json.loads((split / "split.json").read_text())
    for part in ("train", "test"):
        names = (out / "seqmaps" / f"dataset-{part}.txt").read_text().split()[1:]
        assert names == manifest["splits"][part]
        for n in names:
            assert (out / f"dataset-{part}" / n / "gt" / "gt.txt").is_file()
            assert (out / f"dataset-{part}" / n / "seqinfo.ini").is_file()
    again = tmp_path / "again"
    assert main(["export", "--from-coco", str(out / "annotations.json"), "--out", str(again), "--to", "coco",
                 "--split", str(split / "split.json")]) == 0
    assert (again / "annotations.json").read_bytes() == (out / "annotations.json").read_bytes()
    assert "exported 3 sequences" in capsys.readouterr().out


def test_export_errors_write_nothing(tmp_path, capsys):
    write_sequence(tmp_path / "d")
    bad_split = tmp_path / "s.json"
    bad_split.write_text(json.dumps({"splits": {"test": ["NOPE"]}}))
    out = tmp_path / "out"
    assert main(["export", str(tmp_path / "d"), "--out", str(out), "--split", str(bad_split)]) == 2
    assert "'NOPE'" in capsys.readouterr().err and not out.exists()
    (tmp_path / "c.json").write_text("{}")
    assert main(["export", "--from-coco", str(tmp_path / "c.json"), "--out", str(out)]) == 2
    assert "not COCO-video JSON" in capsys.readouterr().err
