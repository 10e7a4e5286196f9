"""``cvat-track eval GT PRED``: MOTA, IDF1, HOTA (DetA, AssA), MT/ML, FP/FN/IDSW.

Both files may be MOT CSV, CVAT XML or CVAT JSON (CVAT keyframes are expanded as CVAT does,
job-boundary pieces stitched). The numbers come from TrackEval's own metric classes, so they
match what MOT papers report. Only visible boxes count; all labels are pooled.
"""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the ``eval`` subcommand."""
    p = subparsers.add_parser(
        "eval", help="compare tracks with ground truth (HOTA, MOTA, IDF1 via TrackEval)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("gt", metavar="GT", help="ground-truth tracks (MOT CSV, CVAT XML or CVAT JSON)")
    p.add_argument("pred", metavar="PRED", help="tracks to score, in any of the same formats")
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON")
    p.add_argument("--gt-ignore-zero-conf", action="store_true",
                   help="drop ground-truth rows with conf 0 (MOTChallenge 'ignore' rows)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit code."""
    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.io.formats import read_tracks
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks

    gt = read_tracks(args.gt)
    pred = read_tracks(args.pred)
    gt_tracks = gt.tracks
    if args.gt_ignore_zero_conf:
        gt_tracks = gt_tracks[gt_tracks.score > 0]
    if gt.info.frame_base != pred.info.frame_base:
        # Internal frames are 0-based for both; only the user's numbering differs. Say so,
        # because mixing a MOT file with a CVAT export is a common source of off-by-one.
        print(f"note: {args.gt} numbers frames from {gt.info.frame_base}, {args.pred} from "
              f"{pred.info.frame_base}; both were aligned to frame 0 = first frame")
    num_frames = max(gt.info.num_frames, pred.info.num_frames)
    m = evaluate_tracks(gt_tracks, pred.tracks, num_frames=num_frames)
    if args.json:
        write_json(args.json, {"gt": str(args.gt), "pred": str(args.pred), "metrics": m.to_json()})
    print(f"HOTA {100 * m.hota:.2f}  DetA {100 * m.deta:.2f}  AssA {100 * m.assa:.2f}  "
          f"MOTA {100 * m.mota:.2f}  IDF1 {100 * m.idf1:.2f}")
    print(f"MT {m.mt}  PT {m.pt}  ML {m.ml}  FP {m.fp}  FN {m.fn}  IDSW {m.idsw}  Frag {m.frag}  "
          f"(GT {m.num_gt_ids} tracks / {m.num_gt_dets} boxes, pred {m.num_pred_ids} / {m.num_pred_dets})")
    return 0
