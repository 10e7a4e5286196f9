"""Issue 13: an empty annotation file is refused (naming --allow-empty) unless the flag is given.

An empty prediction file is what a tracker that found nothing writes, and a sequence nobody
appears in has an empty ground truth: both are legitimate with the flag. Without it, the
usual cause is a wrong or truncated file, which must not pass as "HOTA 0" or "0 tracks".
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dataset._fixture import write_sequence

from cvat_extension.adapters.cli.main import main

#: command → (argv with {empty}, {full}, {data}, {out}; exit code with --allow-empty).
COMMANDS = {
    "eval": (["eval", "{full}", "{empty}", "--json", "{out}/e.json"], 0),
    "eval, both empty": (["eval", "{empty}", "{empty}"], 0),
    "agreement": (["agreement", "{empty}", "{empty}", "--json", "{out}/a.json"], 1),  # nothing agreed on
    "card": (["card", "{data}", "--out", "{out}/card", "--no-plots"], 0),
    "split": (["split", "{data}", "--out", "{out}/split"], 0),
    "export": (["export", "{data}", "--out", "{out}/exp", "--to", "both"], 0),
    "render": (["render", "{empty}", "--out", "{out}/v.mp4"], 0),
    "check": (["check", "{empty}", "--json", "{out}/f.json"], 0),
    "merge": (["merge", "{empty}", "--out", "{out}/m.txt"], 0),
    "convert": (["convert", "{empty}", "{out}/c.txt"], 0),
}


@pytest.fixture
def paths(tmp_path: Path) -> dict[str, str]:
    data = tmp_path / "data"
    write_sequence(data, "FULL-01")
    empty = write_sequence(data, "EMPTY-01", rows=[]) / "gt" / "gt.txt"
    empty.write_text("")
    return {"empty": str(empty), "full": str(data / "FULL-01" / "gt" / "gt.txt"), "data": str(data),
            "out": str(tmp_path / "out")}


@pytest.mark.parametrize("name", COMMANDS)
def test_empty_input_needs_allow_empty(name: str, paths: dict[str, str], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(**paths) for a in COMMANDS[name][0]]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "empty" in err and "--allow-empty" in err, err
    assert not (tmp_path / "out").exists()
    if name == "render":
        pytest.importorskip("av", reason="the dataset extra (PyAV) is not installed")
    assert main([*argv, "--allow-empty"]) == COMMANDS[name][1], capsys.readouterr()


def test_eval_scores_an_empty_prediction_as_all_misses(paths: dict[str, str]) -> None:
    assert main(["eval", paths["full"], paths["empty"], "--allow-empty", "--json", paths["out"] + "/e.json"]) == 0
    m = json.loads(Path(paths["out"], "e.json").read_text())["metrics"]
    assert m["num_pred_dets"] == 0 and m["fn"] == m["num_gt_dets"] > 0 and m["idf1"] == 0


def test_an_empty_sequence_keeps_its_seqinfo(paths: dict[str, str]) -> None:
    assert main(["card", paths["data"], "--out", paths["out"], "--no-plots", "--allow-empty"]) == 0
    card = json.loads(Path(paths["out"], "card.json").read_text())
    empty = next(s for s in card["sequences"] if s["name"] == "EMPTY-01")
    assert empty["frames"] == 10 and empty["boxes"] == 0
