"""Fragment merge on real human ground truth: re-link rate and false merges per sequence.

Why: synthetic scenes are kind to motion extrapolation. MOTChallenge ground truth is real
annotators' boxes of real crowds (people stop, turn, get occluded for seconds, enter and
leave at the same door), so it tells whether the merge links the right pieces and, just as
important, whether it links pieces that are different people.

For each sequence in ``motgt/`` (read in place, never copied; CC BY-NC-SA 3.0):

1. **clean**: pedestrians with the consider flag (class 1, conf 1). Every merge proposed on
   the clean file joins two different annotated identities. Some are fragments of the
   ground truth itself: the next id starts exactly where the previous one ended (MOT17-02
   ids 14 → 76 → 77 → 78), counted as *coincident* when the first box of the later id has
   IoU > 0.9 with the earlier id's last box or with its constant-velocity extrapolation
   across the gap. The *other* clean merges are counted as false (a few may still be the
   same person re-entering under a new id; without images we cannot tell).
2. **injected**: ``--splits`` tracks are cut (``synthetic.inject_errors(kinds=["split"])``,
   gaps of 1..30 frames with the gap frames deleted). A link is right when both pieces hold
   the same ground-truth person (found by box identity); re-link rate = right links / true
   links, false merges = proposed links joining different people.

Run: ``OMP_NUM_THREADS=1 python scripts/eval_merge_motgt.py [--data ../shared/data] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from cvat_extension.core.geometry import iou_xyxy_batch  # noqa: E402
from cvat_extension.core.merge import MergeConfig, propose_merges  # noqa: E402
from cvat_extension.core.tracks import Tracks  # noqa: E402
from cvat_extension.io.formats import read_tracks  # noqa: E402
from cvat_extension.synthetic.inject import inject_errors  # noqa: E402


def pedestrians(path: Path) -> tuple[Tracks, int]:
    """Considered pedestrians of a MOT gt file, and the sequence length."""
    loaded = read_tracks(path)
    t = loaded.tracks
    ped = t.labels.index("pedestrian") if "pedestrian" in t.labels else 0
    keep = (t.label == ped) & (t.score > 0) & ~t.outside
    return t[keep], loaded.info.num_frames


def coincident(gt: Tracks, earlier: int, later: int, min_iou: float = 0.9) -> bool:
    """Whether ``later`` starts where ``earlier`` ended: a fragment of the ground truth."""
    a, b = gt.track(earlier), gt.track(later)
    k = min(len(a), 5)
    dt = float(b.frame[0] - a.frame[-1])
    vel = (a.xyxy[-1] - a.xyxy[-k]) / max(float(a.frame[-1] - a.frame[-k]), 1.0)
    cand = np.stack([a.xyxy[-1], a.xyxy[-1] + vel * dt])
    return bool(iou_xyxy_batch(b.xyxy[:1], cand).max() > min_iou)


def owners(gt: Tracks, pieces: Tracks) -> dict[int, int]:
    """Ground-truth id of each piece, by box identity at the piece's first frame."""
    own = {}
    for tid, rows in pieces.iter_tracks():
        g = gt[gt.frame == rows.frame[0]]
        own[tid] = int(g.track_id[np.argmax(iou_xyxy_batch(rows.xyxy[:1], g.xyxy)[0])])
    return own


def true_links(gt: Tracks, pieces: Tracks) -> set[tuple[int, int]]:
    """(earlier piece, next piece) pairs of one ground-truth person."""
    own = owners(gt, pieces)
    by_owner: dict[int, list[tuple[int, int]]] = {}
    for tid, rows in pieces.iter_tracks():
        by_owner.setdefault(own[tid], []).append((int(rows.frame[0]), tid))
    links = set()
    for ps in by_owner.values():
        ps.sort()
        links |= {(a, b) for (_, a), (_, b) in zip(ps, ps[1:])}
    return links


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--splits", type=int, default=20, help="splits injected per sequence and seed")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--max-gap", type=int, default=30)
    ap.add_argument("--min-score", type=float, default=MergeConfig().min_score)
    ap.add_argument("--no-camera", action="store_true", help="do not compensate camera motion")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    config = MergeConfig(max_gap_frames=args.max_gap, min_score=args.min_score,
                         compensate_camera=not args.no_camera)
    seqs = sorted((args.data / "motgt").glob("*/gt.txt"))
    if not seqs:
        print(f"no sequences under {args.data / 'motgt'}", file=sys.stderr)
        return 2
    rows = []
    print(f"{'sequence':<10}{'frames':>7}{'tracks':>7}{'clean: coinc.':>14}{'other':>6}"
          f"{'injected':>10}{'re-linked':>10}{'rate':>8}{'false':>7}{'(new)':>8}{'time s':>8}")
    for path in seqs:
        name = path.parent.name
        gt, num_frames = pedestrians(path)
        t0 = time.perf_counter()
        clean = propose_merges(gt, config=config)
        clean_pairs = {(m.previous, m.from_) for m in clean}
        n_coinc = sum(coincident(gt, m.previous, m.from_) for m in clean)
        want_total = hit_total = false_total = caused_total = 0
        for seed in range(args.seeds):
            bad, truth = inject_errors(gt, kinds=["split"], count_per_kind=args.splits, seed=seed)
            want = true_links(gt, bad)
            got = {(m.previous, m.from_) for m in propose_merges(bad, config=config)}
            want_total += len(want)
            hit_total += len(want & got)
            false_total += len(got - want)
            caused_total += len(got - want - clean_pairs)
        dt = (time.perf_counter() - t0) / (args.seeds + 1)
        rate = hit_total / max(want_total, 1)
        rows.append({"sequence": name, "frames": num_frames, "tracks": len(gt.ids),
                     "clean_merges": len(clean), "clean_coincident": n_coinc,
                     "clean_other": len(clean) - n_coinc, "clean_merges_detail": [m.to_json() for m in clean],
                     "injected_links": want_total, "relinked": hit_total, "relink_rate": round(rate, 4),
                     "false_merges": false_total, "false_merges_from_injection": caused_total,
                     "seconds_per_run": round(dt, 3)})
        print(f"{name:<10}{num_frames:>7}{len(gt.ids):>7}{n_coinc:>14}{len(clean) - n_coinc:>6}{want_total:>10}"
              f"{hit_total:>10}{100 * rate:>7.1f}%{false_total:>7}{caused_total:>8}{dt:>8.2f}")
    tot_w = sum(r["injected_links"] for r in rows)
    tot_h = sum(r["relinked"] for r in rows)
    tot_f = sum(r["false_merges"] for r in rows)
    tot_c = sum(r["clean_coincident"] for r in rows)
    tot_o = sum(r["clean_other"] for r in rows)
    tot_n = sum(r["false_merges_from_injection"] for r in rows)
    print(f"{'all':<10}{'':>7}{'':>7}{tot_c:>14}{tot_o:>6}{tot_w:>10}{tot_h:>10}"
          f"{100 * tot_h / max(tot_w, 1):>7.1f}%{tot_f:>7}{tot_n:>8}")
    print("clean: coinc. = merges on the clean file between ground-truth ids whose boxes coincide "
          "across the gap (fragments of the ground truth itself); other = the rest (false)")
    print("false = proposed links joining different people in the injected runs; (new) = of "
          "those, links not already proposed on the clean file (wrong links caused by the split)")
    if args.json:
        args.json.write_text(json.dumps({"config": {"max_gap_frames": args.max_gap,
                                                    "compensate_camera": not args.no_camera,
                                                    "splits": args.splits, "seeds": args.seeds},
                                         "sequences": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
