"""``scripts/eval_real_errors.py`` end to end on short excerpts (``--quick``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "eval_real_errors.py"


def _script():
    spec = importlib.util.spec_from_file_location("eval_real_errors", SCRIPT)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_quick_run_end_to_end(shared_data, tmp_path, capsys):
    out = tmp_path / "e.json"
    argv = ["--data", str(shared_data), "--quick", "40", "--sequences", "MOT17-09,MOT17-10-sub3",
            "--cache", str(tmp_path / "cache"), "--json", str(out)]
    assert _script().main(argv) == 0
    text = capsys.readouterr().out
    assert "TOTAL TUNE" in text and "TOTAL HOLDOUT" in text
    doc = json.loads(out.read_text())
    seqs = {s["sequence"]: s for s in doc["sequences"]}
    assert set(seqs) == {"MOT17-09", "MOT17-10-sub3"}
    row = seqs["MOT17-10-sub3"]["rows"][0]
    assert row["frames"] == 40 and row["fps"] == 10.0 and row["tracker"] == "bytetrack"
    assert row["clear"]["TP"] > 0 and sum(row["events"].values()) > 0
    assert set(row["reviewer"]) >= {"queue", "random", "oracle"}
    assert doc["totals"]["HOLDOUT"]["rows"] == 1
    # Cached tracker output: the second run reads it and gives the same numbers.
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 2
    assert _script().main(argv) == 0
    again = json.loads(out.read_text())
    assert again["sequences"][1]["rows"][0]["seconds"]["tracker_cached"] is True
    assert again["totals"] == doc["totals"]


def test_bad_arguments_exit_2(tmp_path, capsys):
    assert _script().main(["--data", str(tmp_path)]) == 2
    assert "motgt" in capsys.readouterr().err


def test_evaluation_package_imports_no_heavy_modules():
    code = ("import sys, importlib, pkgutil, cvat_extension.evaluation as e\n"
            "for m in pkgutil.walk_packages(e.__path__, 'cvat_extension.evaluation.'):\n"
            "    importlib.import_module(m.name)\n"
            "print(sorted({'torch', 'boxmot', 'cvat_sdk', 'ultralytics'} & set(sys.modules)))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
