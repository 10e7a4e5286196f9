"""Evaluate the QA checks on real human ground truth (MOT17/MOT20 from ../shared/data/motgt).

For each sequence:
- clean file: findings by kind, share of frames flagged (all / confident >= 0.5), and the
  share a naive "consecutive IoU < 0.5" rule would flag (what moving cameras do to it);
- the same file with known errors injected (``cvat_extension.synthetic.inject``), plus
  simulated detections from the clean file for ghost/missing-object support: recall per
  kind (any score / score >= 0.5).

The data is non-commercial (CC BY-NC-SA 3.0): it is read in place, never copied.

Usage: python scripts/eval_checks_motgt.py [--data DIR] [--seqs MOT17-10 ...] [--count N]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvat_extension.core.checks import run_checks  # noqa: E402
from cvat_extension.core.geometry import iou_xyxy_pairwise  # noqa: E402
from cvat_extension.core.tracks import SequenceInfo, Tracks  # noqa: E402
from cvat_extension.synthetic.inject import inject_errors, make_detections  # noqa: E402
from cvat_extension.synthetic.score import frames_flagged, recall_by_kind  # noqa: E402

DEFAULT_DATA = REPO.parent / "shared" / "data" / "motgt"
KINDS = ("id_switch", "ghost", "box_jump", "size_jump", "label_change", "missing_object")


def load_gt(seq_dir: Path) -> tuple[Tracks, SequenceInfo]:
    """Pedestrian rows (conf != 0, class 1) of a MOT gt.txt, 0-based frames."""
    path = seq_dir / "gt.txt"
    if not path.exists():
        path = seq_dir / "gt" / "gt.txt"
    from cvat_extension.io.mot import read_mot

    tracks, info = read_mot(path)
    keep = (tracks.score != 0) & (tracks.data["mot_class"] == 1)
    tracks = tracks[keep].with_columns(score=np.ones(int(keep.sum()), np.float32))
    return tracks, info  # read_mot reads the seqinfo.ini beside gt.txt


def naive_iou_frames(t: Tracks, num_frames: int) -> float:
    """Share of frames where some track's box has IoU < 0.5 with its box on the previous frame."""
    same = (t.track_id[1:] == t.track_id[:-1]) & (np.diff(t.frame) == 1)
    iou = iou_xyxy_pairwise(t.xyxy[1:], t.xyxy[:-1])
    bad = np.unique(t.frame[1:][same & (iou < 0.5)])
    return len(bad) / max(num_frames, 1)


def evaluate(seq_dir: Path, count: int, seed: int) -> dict[str, object]:
    gt, info = load_gt(seq_dir)
    n = info.num_frames
    t0 = time.perf_counter()
    clean = run_checks(gt, info=info)
    dt = time.perf_counter() - t0
    by_kind: dict[str, int] = {}
    for f in clean:
        by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    conf = [f for f in clean if f.score >= 0.5]
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, jitter_px=2.0, seed=seed, info=info)
    clean_det = run_checks(gt, info=info, detections=det)
    bad, truth = inject_errors(gt, kinds=KINDS, count_per_kind=count, seed=seed, info=info)
    found = run_checks(bad, info=info, detections=det)
    rec = recall_by_kind(truth, found, clean=gt)
    rec_conf = recall_by_kind(truth, found, clean=gt, min_score=0.5)
    return {
        "seq": seq_dir.name, "frames": n, "tracks": len(gt.ids), "boxes": len(gt),
        "clean_findings": len(clean), "clean_by_kind": by_kind, "clean_confident": len(conf),
        "clean_pct": 100 * frames_flagged(clean, n),
        "clean_conf_pct": 100 * frames_flagged(clean, n, min_score=0.5),
        "clean_det_confident": sum(f.score >= 0.5 for f in clean_det),
        "clean_det_conf_pct": 100 * frames_flagged(clean_det, n, min_score=0.5),
        "naive_pct": 100 * naive_iou_frames(gt, n),
        "recall": rec, "recall_conf": rec_conf, "seconds": dt,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seqs", nargs="*", default=None)
    ap.add_argument("--count", type=int, default=5, help="errors injected per kind")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if not a.data.is_dir():
        print(f"no data folder {a.data}", file=sys.stderr)
        return 2
    seqs = sorted(p for p in a.data.iterdir() if p.is_dir() and (not a.seqs or p.name in a.seqs))
    tot: dict[str, list[int]] = {}
    totc: dict[str, list[int]] = {}
    for seq in seqs:
        r = evaluate(seq, a.count, a.seed)
        print(f"\n{r['seq']}: {r['frames']} frames, {r['tracks']} tracks, {r['boxes']} boxes "
              f"(checks {r['seconds']:.2f}s)")
        print(f"  clean: {r['clean_findings']} findings {r['clean_by_kind']}; frames flagged "
              f"{r['clean_pct']:.1f}% (confident>=0.5: {r['clean_confident']} findings, "
              f"{r['clean_conf_pct']:.1f}% of frames); with simulated detections: "
              f"{r['clean_det_confident']} confident, {r['clean_det_conf_pct']:.1f}%; "
              f"naive IoU<0.5 rule: {r['naive_pct']:.1f}% of frames")
        parts = []
        for k, (h, m) in r["recall"].items():  # type: ignore[union-attr]
            hc = r["recall_conf"][k][0]  # type: ignore[index]
            parts.append(f"{k} {h}/{m} (conf {hc}/{m})")
            tot.setdefault(k, [0, 0])
            tot[k][0] += h
            tot[k][1] += m
            totc.setdefault(k, [0, 0])
            totc[k][0] += hc
        print("  injected recall: " + ", ".join(parts))
    print("\nTOTAL recall: " + ", ".join(
        f"{k} {h}/{m}={100 * h / max(m, 1):.0f}% (conf {100 * totc[k][0] / max(m, 1):.0f}%)"
        for k, (h, m) in tot.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
