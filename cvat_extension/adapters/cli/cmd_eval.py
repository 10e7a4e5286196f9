"""``cvat-track eval GT PRED``: MOTA, IDF1, HOTA (DetA, AssA), MT/ML, FP/FN/IDSW.

Both files may be MOT CSV, CVAT XML or CVAT JSON (CVAT keyframes are expanded as CVAT does,
job-boundary pieces stitched). The numbers come from TrackEval's own metric classes, so they
match what MOT papers report. Only visible boxes count; all labels are pooled.

With --motchallenge (alias --gt-ignore-zero-conf) the MOTChallenge rules apply, through
TrackEval's own MotChallenge2DBox preprocessing: a prediction matched (IoU >= 0.5) to a
distractor (person on vehicle, static person, distractor, reflection; on MOT20 also
non-motorised vehicles) is removed rather than counted, and only pedestrian ground-truth
rows whose column 7 is not 0 are scored. Classes come from the MOT class column or, for CVAT
files, from label names (pedestrian/person, static person, ...); ground-truth rows without
a class count as pedestrians. Prediction rows of other classes (cars, occluders: a ground-
truth file given as the prediction) are left out, with a note. The numbers equal TrackEval's
file-based MOTChallenge evaluation.

Example: cvat-track eval gt/gt.txt tracker.txt --motchallenge --json metrics.json
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
    p.add_argument("--json", metavar="FILE", help="write the metrics as JSON ('-' for stdout)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept files without boxes (a tracker that found nothing, an empty sequence); "
                        "otherwise refused as a likely wrong file")
    p.add_argument("--motchallenge", "--gt-ignore-zero-conf", dest="motchallenge", action="store_true",
                   help="MOTChallenge rules: ignore rows and distractor classes as TrackEval does")
    p.add_argument("--mot-benchmark", choices=("auto", "MOT17", "MOT20", "MOT16"), default="auto",
                   help="distractor rules of --motchallenge (default MOT20 if the sequence name "
                        "starts with MOT20, else MOT17)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Evaluate; returns the exit code."""
    import json

    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.io.formats import read_tracks
    from cvat_extension.io.outputs import OutputPlan
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks

    plan = OutputPlan(inputs=[args.gt, args.pred])
    json_out = plan.file(None if args.json == "-" else args.json, option="--json", kind="json")
    gt = read_tracks(args.gt, allow_empty=args.allow_empty)
    pred = read_tracks(args.pred, allow_empty=args.allow_empty)
    if gt.info.frame_base != pred.info.frame_base:
        # Internal frames are 0-based for both; only the user's numbering differs. Say so,
        # because mixing a MOT file with a CVAT export is a common source of off-by-one.
        print(f"note: {args.gt} numbers frames from {gt.info.frame_base}, {args.pred} from "
              f"{pred.info.frame_base}; both were aligned to frame 0 = first frame", file=_text_out(args))
    num_frames = max(gt.info.num_frames, pred.info.num_frames)
    if args.motchallenge:
        m = _motchallenge(args, gt, pred, num_frames)
    else:
        m = evaluate_tracks(gt.tracks, pred.tracks, num_frames=num_frames)
    doc = {"gt": str(args.gt), "pred": str(args.pred), "metrics": m.to_json()}
    with plan.staged() as stage:
        if json_out is not None:
            write_json(stage[json_out], doc)
    if args.json == "-":
        print(json.dumps(doc, indent=1))
    out = _text_out(args)
    print(f"HOTA {100 * m.hota:.2f}  DetA {100 * m.deta:.2f}  AssA {100 * m.assa:.2f}  "
          f"MOTA {100 * m.mota:.2f}  IDF1 {100 * m.idf1:.2f}", file=out)
    print(f"MT {m.mt}  PT {m.pt}  ML {m.ml}  FP {m.fp}  FN {m.fn}  IDSW {m.idsw}  Frag {m.frag}  "
          f"(GT {m.num_gt_ids} tracks / {m.num_gt_dets} boxes, pred {m.num_pred_ids} / {m.num_pred_dets})", file=out)
    return 0


def _text_out(args: argparse.Namespace) -> Any:
    """Where the human-readable lines go: stderr when stdout carries the JSON (``--json -``)."""
    import sys

    return sys.stderr if args.json == "-" else sys.stdout


def _motchallenge(args: argparse.Namespace, gt: Any, pred: Any, num_frames: int) -> Any:
    """Metrics under MOTChallenge's rules (TrackEval's preprocessing); prints what it left out."""
    import numpy as np

    from cvat_extension.errors import InputError
    from cvat_extension.metrics.mot_preprocess import mot_classes, person_prediction_rows
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks_mot

    benchmark = args.mot_benchmark
    if benchmark == "auto":
        name = gt.info.name or str(args.gt)
        benchmark = "MOT20" if "MOT20" in name.upper() else "MOT17"
    cls = mot_classes(gt.tracks)
    unknown = sorted({gt.tracks.labels[i] for i in np.unique(gt.tracks.label[cls < 0])}) \
        if "mot_class" not in gt.tracks.data and (cls < 0).any() else []
    if unknown:
        raise InputError(f"{args.gt}: label {unknown[0]!r} is not a MOTChallenge class; --motchallenge "
                         "needs MOT class names (pedestrian, person on vehicle, static person, ...)")
    cls = np.where(cls <= 0, 1, cls)
    keep = person_prediction_rows(pred.tracks, benchmark)
    pred_tracks = pred.tracks
    if not keep.all():
        dropped = int((~keep & ~pred_tracks.outside).sum())
        print(f"note: {dropped} prediction boxes of non-person MOT classes left out "
              f"(MOTChallenge scores pedestrians only)", file=_text_out(args))
        pred_tracks = pred_tracks[keep]
    return evaluate_tracks_mot(gt.tracks, pred_tracks, gt_class=cls, gt_consider=gt.tracks.score,
                               num_frames=num_frames, benchmark=benchmark)
