"""``cvat-track demo``: runs in seconds, writes a report, finds the injected errors."""

from __future__ import annotations

import json
import re

from cvat_extension.adapters.cli.main import main


def test_demo_end_to_end(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    recall = float(re.search(r"recall ([\d.]+)%", text).group(1))
    precision = float(re.search(r"precision ([\d.]+)%", text).group(1))
    assert recall >= 90 and precision >= 90
    assert "(measured against ground truth)" in text  # precision is not "of the injected errors"
    assert "splits re-linked by merge: 2/2" in text
    report = (out / "report" / "index.html").read_text()
    assert report.count("<span>tracks</span>") == 1 and "precision (vs ground truth)" in report
    doc = json.loads((out / "findings.json").read_text())
    assert doc["summary"]["injected_errors"] == len(doc["injected"]) >= 10
    assert doc["summary"]["metrics"]["after_merge"]["idf1"] > doc["summary"]["metrics"]["before_merge"]["idf1"]
    assert (out / "merged.txt").is_file() and (out / "tracks_with_errors.txt").is_file()


def test_match_findings_rules():
    from types import SimpleNamespace

    from cvat_extension.adapters.cli.cmd_demo import match_findings
    from cvat_extension.core.findings import Finding

    truth = [SimpleNamespace(kind="id_switch", track_ids=(3, 4), frames=(100, 100))]
    near = Finding("box_jump", (4,), (103, 103), None, 0.5, "x")
    far = Finding("box_jump", (4,), (200, 200), None, 0.5, "x")
    other = Finding("box_jump", (9,), (100, 100), None, 0.5, "x")
    found, true = match_findings([near, far, other], truth)
    assert found == [True] and true == [True, False, False]
