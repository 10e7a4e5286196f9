"""``eval --motchallenge``: MOTChallenge's ignore/distractor rules, equal to TrackEval's own run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cvat_extension.adapters.cli.main import main
from cvat_extension.core.tracks import Tracks
from cvat_extension.metrics.mot_preprocess import distractor_classes, preprocess_mot
from cvat_extension.metrics.trackeval_adapter import trackeval_module

FRAMES = 120


def _gt_excerpt(shared_data: Path, seq: str, frames: int) -> list[str]:
    rows = (shared_data / "motgt" / seq / "gt.txt").read_text().splitlines()
    return [r for r in rows if r.strip() and int(r.split(",")[0]) <= frames]


def _perturbed(rows: list[str], seed: int = 0) -> list[str]:
    """A tracker-like prediction from ground truth rows: people and distractors detected,
    boxes jittered, some dropped, two identities swapped halfway, a few false boxes."""
    rng = np.random.default_rng(seed)
    vals = np.array([[float(v) for v in r.split(",")[:9]] for r in rows])
    person = np.isin(vals[:, 7], (1, 2, 7, 8, 12))
    vals = vals[person & (rng.random(len(vals)) > 0.1)]
    vals[:, 2:6] += rng.normal(0, 2.0, (len(vals), 4))
    vals[:, 4:6] = np.maximum(vals[:, 4:6], 2)
    ids = np.unique(vals[:, 1])
    a, b = ids[0], ids[1]
    late = vals[:, 0] > FRAMES // 2
    swap_a, swap_b = late & (vals[:, 1] == a), late & (vals[:, 1] == b)
    vals[swap_a, 1], vals[swap_b, 1] = b, a
    fp = np.c_[rng.integers(1, FRAMES + 1, 40), 5000 + np.arange(40), rng.uniform(0, 1500, 40),
               rng.uniform(0, 800, 40), np.full(40, 40.0), np.full(40, 90.0)]
    out = [f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},1,-1,-1" for r in vals]
    out += [f"{int(r[0])},{int(r[1])},{r[2]:.3f},{r[3]:.3f},{r[4]:.3f},{r[5]:.3f},0.9,-1,-1" for r in fp]
    return out


def _trackeval_files(root: Path, seq: str, gt_rows: list[str], pred_rows: list[str], frames: int,
                     benchmark: str) -> dict[str, float]:
    """TrackEval's own file-based MOTChallenge evaluation of one sequence."""
    te = trackeval_module()
    gt_dir = root / "gt" / seq
    (gt_dir / "gt").mkdir(parents=True)
    (gt_dir / "gt" / "gt.txt").write_text("\n".join(gt_rows) + "\n")
    (gt_dir / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={frames}\n")
    tr = root / "trackers" / "mine" / "data"
    tr.mkdir(parents=True)
    (tr / f"{seq}.txt").write_text("\n".join(pred_rows) + "\n")
    evaluator = te.Evaluator({"USE_PARALLEL": False, "PRINT_RESULTS": False, "PRINT_CONFIG": False,
                              "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False, "PLOT_CURVES": False,
                              "PRINT_ONLY_COMBINED": False, "TIME_PROGRESS": False,
                              "DISPLAY_LESS_PROGRESS": True, "OUTPUT_EMPTY_CLASSES": False})
    dataset = te.datasets.MotChallenge2DBox({
        "GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"), "BENCHMARK": benchmark,
        "SKIP_SPLIT_FOL": True, "SEQ_INFO": {seq: frames}, "TRACKERS_TO_EVAL": ["mine"],
        "PRINT_CONFIG": False,
    })
    metrics = [te.metrics.HOTA({"PRINT_CONFIG": False}), te.metrics.CLEAR({"PRINT_CONFIG": False}),
               te.metrics.Identity({"PRINT_CONFIG": False})]
    res, _msg = evaluator.evaluate([dataset], metrics)
    r = res["MotChallenge2DBox"]["mine"][seq]["pedestrian"]
    return {"hota": float(np.mean(r["HOTA"]["HOTA"])), "mota": float(r["CLEAR"]["MOTA"]),
            "idf1": float(r["Identity"]["IDF1"]), "idsw": int(r["CLEAR"]["IDSW"]),
            "fp": int(r["CLEAR"]["CLR_FP"]), "fn": int(r["CLEAR"]["CLR_FN"])}


@pytest.mark.parametrize("seq", ["MOT17-09", "MOT20-01"])
def test_cli_equals_trackeval_file_evaluation(shared_data, tmp_path, capsys, seq):
    gt_rows = _gt_excerpt(shared_data, seq, FRAMES)
    pred_rows = _perturbed(gt_rows)
    benchmark = seq[:5]
    ref = _trackeval_files(tmp_path / "te", seq, gt_rows, pred_rows, FRAMES, benchmark)
    gdir = tmp_path / seq / "gt"
    gdir.mkdir(parents=True)
    (gdir / "gt.txt").write_text("\n".join(gt_rows) + "\n")
    (gdir.parent / "seqinfo.ini").write_text(f"[Sequence]\nname={seq}\nseqLength={FRAMES}\n")
    (tmp_path / "pred.txt").write_text("\n".join(pred_rows) + "\n")
    out = tmp_path / "m.json"
    assert main(["eval", str(gdir / "gt.txt"), str(tmp_path / "pred.txt"), "--motchallenge",
                 "--json", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert {k: m[k] for k in ref} == pytest.approx(ref, abs=1e-6)  # JSON rounds to 6 decimals
    # In memory, to the last bit.
    from cvat_extension.io.formats import read_tracks
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks_mot

    g, p = read_tracks(gdir / "gt.txt").tracks, read_tracks(tmp_path / "pred.txt").tracks
    direct = evaluate_tracks_mot(g, p, gt_class=np.asarray(g.data["mot_class"]), gt_consider=g.score,
                                 num_frames=FRAMES, benchmark=benchmark)
    assert {k: getattr(direct, k) for k in ref} == ref
    assert ref["idsw"] > 0 and ref["fp"] > 0  # the perturbation is seen


def test_ground_truth_against_itself_scores_100(shared_data, tmp_path, capsys):
    gt_rows = _gt_excerpt(shared_data, "MOT17-02", 60)
    g = tmp_path / "MOT17-02" / "gt" / "gt.txt"
    g.parent.mkdir(parents=True)
    g.write_text("\n".join(gt_rows) + "\n")
    out = tmp_path / "m.json"
    # Plain eval counts the ignore rows; --gt-ignore-zero-conf (old name) follows MOTChallenge.
    assert main(["eval", str(g), str(g), "--gt-ignore-zero-conf", "--json", str(out)]) == 0
    m = json.loads(out.read_text())["metrics"]
    assert (m["mota"], m["idf1"], m["fp"], m["fn"], m["idsw"]) == (1.0, 1.0, 0, 0, 0)
    assert "non-person MOT classes left out" in capsys.readouterr().out


@pytest.mark.parametrize("benchmark", ["MOT17", "MOT20"])
def test_distractor_list_matches_trackeval(benchmark):
    """Our copy of the distractor classes (used to keep prediction rows) is TrackEval's."""
    removed = []
    for cls in range(1, 14):
        box = np.array([[0.0, 0.0, 10.0, 20.0]])
        gt = Tracks.from_columns(frame=[0], track_id=[1], xyxy=box, score=[0.0 if cls > 1 else 1.0])
        pred = Tracks.from_columns(frame=[0], track_id=[1], xyxy=box)
        seq = preprocess_mot(gt, np.array([cls]), gt.score, pred, num_frames=1, benchmark=benchmark)
        if len(seq.removed_pred_rows):
            removed.append(cls)
    assert tuple(removed) == distractor_classes(benchmark)


def test_cvat_labels_and_unknown_classes(tmp_path, capsys):
    from cvat_extension.metrics.mot_preprocess import mot_classes

    t = Tracks.from_columns(frame=[0, 0, 0], track_id=[1, 2, 3], xyxy=[[0, 0, 1, 1]] * 3,
                            label=[0, 1, 2], labels=("person", "static_person", "Tree"))
    assert mot_classes(t).tolist() == [1, 7, -1]
    g = tmp_path / "gt.txt"
    g.write_text("1,1,0,0,10,20,1,1,1\n")
    p = tmp_path / "p.txt"
    p.write_text("1,1,0,0,10,20,1,-1,-1\n")
    assert main(["eval", str(g), str(p), "--motchallenge", "--mot-benchmark", "MOT20",
                 "--json", str(tmp_path / "m.json")]) == 0
    assert json.loads((tmp_path / "m.json").read_text())["metrics"]["mota"] == 1.0
