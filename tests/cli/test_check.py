"""``cvat-track check``: JSON contract, frame numbering, exit codes, report, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli._scenes import scene_with_errors, write
from PIL import Image

from cvat_extension.adapters.cli.main import main


@pytest.fixture(scope="module")
def scene():
    return scene_with_errors()


def test_json_contract_in_mot_numbering(scene, tmp_path, capsys):
    _gt, bad, info, truth = scene
    src = write(tmp_path / "bad.txt", bad, info, "mot")
    out = tmp_path / "out.json"
    assert main(["check", str(src), "--json", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert set(doc) == {"findings", "review", "summary"}
    for f in doc["findings"]:
        assert {"kind", "track_ids", "frames", "box", "score", "message"} <= set(f)
        assert 0 <= f["score"] <= 1
    # Every injected error is named by some finding, in MOT's 1-based numbering.
    for e in truth:
        lo, hi = e.frames[0] + 1 - 3, e.frames[1] + 1 + 3
        assert any(set(e.track_ids) & set(f["track_ids"]) and f["frames"][0] <= hi and f["frames"][1] >= lo
                   for f in doc["findings"]), e
    # Injected splits come back as fragment findings naming both pieces.
    frag = {tuple(f["track_ids"]) for f in doc["findings"] if f["kind"] == "fragment"}
    assert {e.track_ids for e in truth if e.kind == "split"} <= frag
    # Messages use the same numbering as the frames field.
    f = next(f for f in doc["findings"] if f["kind"] == "fragment")
    assert f"at frame {f['frames'][1]}" in f["message"]
    for f in doc["findings"]:  # every check writes its message in the user's numbering
        if f["track_ids"] and f["kind"] != "fragment":
            assert f"at frame {f['frames'][0]}:" in f["message"], f
    for it in doc["review"]:
        lo, hi = it["frames"]
        assert (f"at frame {lo}:" if lo == hi else f"at frames {lo}-{hi}:") in it["message"], it
    s = doc["summary"]
    assert s["frame_base"] == 1 and s["format"] == "mot" and s["tracks"] == len(bad.ids)
    # Densest first: expected errors (score) per frame the reviewer looks at (span, at most 3).
    density = [it["score"] / min(it["frames"][1] - it["frames"][0] + 1, 3) for it in doc["review"]]
    assert len(doc["review"]) >= 1 and density == sorted(density, reverse=True)
    assert "review items" in capsys.readouterr().out


def test_same_findings_from_cvat_xml_in_cvat_numbering(scene, tmp_path):
    _gt, bad, info, _ = scene
    mot, xml = tmp_path / "bad.txt", tmp_path / "bad.xml"
    write(mot, bad, info, "mot")
    write(xml, bad, info, "cvat_xml")
    assert main(["check", str(mot), "--json", str(tmp_path / "a.json")]) == 0
    assert main(["check", str(xml), "--json", str(tmp_path / "b.json")]) == 0
    a = json.loads((tmp_path / "a.json").read_text())["findings"]
    b = json.loads((tmp_path / "b.json").read_text())["findings"]
    frag_a = sorted((f["track_ids"], [x - 1 for x in f["frames"]]) for f in a if f["kind"] == "fragment")
    frag_b = sorted((f["track_ids"], f["frames"]) for f in b if f["kind"] == "fragment")
    assert frag_a == frag_b


def test_fail_on_and_clean_input(scene, tmp_path):
    gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad, info, "mot")
    assert main(["check", str(src), "--fail-on", "0.5"]) == 1
    clean = write(tmp_path / "gt.txt", gt, info, "mot")
    assert main(["check", str(clean), "--fail-on", "0.99", "--json", str(tmp_path / "c.json")]) == 0
    doc = json.loads((tmp_path / "c.json").read_text())
    assert doc["summary"]["merges_proposed"] == 0
    s = doc["summary"]
    assert s["confident_score"] == 0.5
    assert 0 <= s["fraction_with_confident_findings"] <= s["fraction_with_any_finding"] <= 1
    assert s["frames_with_confident_findings"] <= s["frames_with_any_finding"]
    assert s["confident_findings"] + s["hint_findings"] == s["findings"]


def test_report_frames_and_detections(scene, tmp_path):
    gt, bad, info, _ = scene
    from cvat_extension.synthetic.render import render_frame

    src = write(tmp_path / "bad.txt", bad[bad.frame < 60], info, "mot")
    frames = tmp_path / "img1"
    frames.mkdir()
    for f in range(60):
        Image.fromarray(render_frame(gt, info, f)[::4, ::4].repeat(4, 0).repeat(4, 1)).save(frames / f"{f + 1:06d}.jpg")
    det = tmp_path / "det.txt"
    vis = gt[(gt.frame < 60) & ~gt.outside]
    det.write_text("".join(
        f"{int(fr) + 1},-1,{b[0]:.1f},{b[1]:.1f},{b[2] - b[0]:.1f},{b[3] - b[1]:.1f},0.9\n"
        for fr, b in zip(vis.frame, vis.xyxy)))
    rep = tmp_path / "rep"
    assert main(["check", str(src), "--frames", str(frames), "--detections", str(det),
                 "--report", str(rep), "--budget", "0.5"]) == 0
    html = (rep / "index.html").read_text()
    assert "<svg" in html and (rep / "img").is_dir()


def test_config_yaml(scene, tmp_path):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad, info, "mot")
    cfg = tmp_path / "c.yaml"
    cfg.write_text("merge:\n  max_gap_frames: 0\n")
    assert main(["check", str(src), "--config", str(cfg), "--json", str(tmp_path / "o.json")]) == 0
    assert json.loads((tmp_path / "o.json").read_text())["summary"]["merges_proposed"] == 0


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("ghost: {no_such_setting: 1}\n", "no_such_setting"),
        ("nonsense_check: {}\n", "nonsense_check"),
        ("merge: {max_gap_frames: -2}\n", "max_gap_frames"),
        ("merge: {bogus: 1}\n", "bogus"),
        ("[1, 2\n", "invalid YAML"),
    ],
)
def test_bad_config_is_one_line_exit_2(scene, tmp_path, capsys, config, message):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad[bad.frame < 30], info, "mot")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(config)
    assert main(["check", str(src), "--config", str(cfg), "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.json").exists()


def test_bad_input_names_file_and_line(tmp_path, capsys):
    src = tmp_path / "bad.txt"
    src.write_text("1,1,0,0,10,10,1,1,1\n2,1,0,0,nan,10,1,1,1\n")
    assert main(["check", str(src), "--json", str(tmp_path / "o.json")]) == 2
    err = capsys.readouterr().err
    assert "bad.txt:2" in err and not (tmp_path / "o.json").exists()


def test_bad_detections_file(scene, tmp_path, capsys):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad[bad.frame < 30], info, "mot")
    det = tmp_path / "det.txt"
    det.write_text("1,-1,0,0,10,10,0.9\n2,-1,0,0,10\n")
    assert main(["check", str(src), "--detections", str(det)]) == 2
    assert "det.txt:2" in capsys.readouterr().err


def test_missing_frames_folder(scene, tmp_path, capsys):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad[bad.frame < 30], info, "mot")
    assert main(["check", str(src), "--frames", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


@pytest.mark.parametrize("budget", ["0", "1.5", "x"])
def test_bad_budget_is_usage_error(tmp_path, budget):
    with pytest.raises(SystemExit) as exc:
        main(["check", str(tmp_path / "x.txt"), "--budget", budget])
    assert exc.value.code == 2


def test_review_respects_budget(scene, tmp_path):
    _gt, bad, info, _ = scene
    src = write(tmp_path / "bad.txt", bad, info, "mot")
    for budget, out in (("0.01", "a.json"), ("0.2", "b.json")):
        assert main(["check", str(src), "--budget", budget, "--json", str(tmp_path / out)]) == 0
    small = json.loads((tmp_path / "a.json").read_text())["review"]
    big = json.loads((tmp_path / "b.json").read_text())["review"]
    assert 1 <= len(small) < len(big)
    cost = sum(min(r["frames"][1] - r["frames"][0] + 1, 3) for r in small)
    assert cost <= max(3, int(0.01 * 300))
    # Densest first: expected errors (score) per frame looked at (span, at most 3 frames).
    density = [r["score"] / min(r["frames"][1] - r["frames"][0] + 1, 3) for r in big]
    assert np.all(np.diff(density) <= 0)
