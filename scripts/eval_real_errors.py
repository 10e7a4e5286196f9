"""How well the checks, the merge and the review queue do on the errors trackers really make.

Tracker outputs (our ByteTrack and BoT-SORT on MOTChallenge's public FRCNN detections of
MOT17-02/-04; ByteTrack on simulated detections for MOT17-05/-09/-10/-11/-13 and MOT20-01,
plus every-2nd/3rd-frame variants of the moving-camera sequences 05, 10, 13) are matched to
the full human ground truth as TrackEval does for MOTChallenge (counts asserted equal to
TrackEval's CLEAR), turned into error events (identity jumps, switches, fragments, false
runs, short false tracks, missed runs), and set against what ``cvat-track check`` finds and
how ``sync`` merges, all with default settings. See ``cvat_extension/evaluation/`` for every
definition; the README section "Evaluating the checks on real errors" for the columns.

Thresholds may be tuned on the TUNE block; report HOLDOUT too (style rule 21).

Run: ``python scripts/eval_real_errors.py [--data ../shared/data] [--json OUT] [--quick N]
[--sequences MOT17-02,MOT17-05-sub2] [--trackers bytetrack] [--jobs 2]``

Tracker outputs are cached under ``out/eval_real_errors/cache`` (``--cache``). The MOT data is
non-commercial (CC BY-NC-SA 3.0): it is read in place and never copied.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]


def _one(job: tuple[str, str, tuple[str, ...] | None, int | None, str | None]) -> dict[str, Any]:
    from cvat_extension.evaluation.run import evaluate_sequence
    from cvat_extension.evaluation.sequences import SEQUENCES

    data, name, trackers, quick, cache = job
    return evaluate_sequence(Path(data), SEQUENCES[name], trackers=trackers, quick=quick,
                             cache=Path(cache) if cache else None)


def _init_worker() -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    from cvat_extension.evaluation.report import format_table, totals
    from cvat_extension.evaluation.sequences import HOLDOUT, SEQUENCES, TUNE
    from cvat_extension.evaluation.trackers import TRACKERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data",
                        help="folder with motgt/ and MOT17-mini/ (default ../shared/data)")
    parser.add_argument("--sequences", help=f"comma-separated subset of: {', '.join(SEQUENCES)}")
    parser.add_argument("--trackers", help=f"comma-separated subset of: {', '.join(TRACKERS)}")
    parser.add_argument("--quick", type=int, metavar="N", help="only the first N frames of each sequence")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write every number (and the events) as JSON")
    parser.add_argument("--jobs", type=int, default=1, help="sequences evaluated in parallel (default 1)")
    parser.add_argument("--cache", type=Path, default=REPO / "out" / "eval_real_errors" / "cache",
                        help="tracker output cache (default out/eval_real_errors/cache)")
    parser.add_argument("--no-cache", action="store_true", help="run the trackers again, store nothing")
    args = parser.parse_args(argv)
    if not (args.data / "motgt").is_dir():
        print(f"error: {args.data}/motgt not found (pass --data)", file=sys.stderr)
        return 2
    names = list(SEQUENCES) if not args.sequences else [s.strip() for s in args.sequences.split(",") if s.strip()]
    bad = [n for n in names if n not in SEQUENCES]
    if bad:
        print(f"error: unknown sequence {', '.join(bad)}; valid: {', '.join(SEQUENCES)}", file=sys.stderr)
        return 2
    trackers = None
    if args.trackers:
        trackers = tuple(t.strip() for t in args.trackers.split(",") if t.strip())
        if any(t not in TRACKERS for t in trackers):
            print(f"error: --trackers takes {', '.join(TRACKERS)}", file=sys.stderr)
            return 2
    if args.quick is not None and args.quick < 20:
        print("error: --quick needs at least 20 frames", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print("error: --jobs must be >= 1", file=sys.stderr)
        return 2
    cache = None if args.no_cache else str(args.cache)
    jobs = [(str(args.data), n, trackers, args.quick, cache) for n in names]
    t0 = time.perf_counter()
    if args.jobs == 1:
        results = []
        for j in jobs:
            results.append(_one(j))
            print(f"  {j[1]}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    else:
        with ProcessPoolExecutor(max_workers=args.jobs, initializer=_init_worker) as pool:
            results = list(pool.map(_one, jobs))
    seconds = time.perf_counter() - t0
    blocks = {"TUNE": [r for r in results if r["sequence"] in TUNE],
              "HOLDOUT": [r for r in results if r["sequence"] in HOLDOUT]}
    print(format_table(blocks))
    print("columns: events = id jumps / GT-side switches / fragment pairs / false-positive runs / short false "
          "tracks / missed runs; jump R.5, Rany = identity-jump recall at score >= 0.5 and any score; Pconf = "
          "precision of findings scoring >= 0.5; AP over ranked findings; cov/rand = events the default review "
          "plan covers / events random frames of the same cost cover (item: the item's tracks on its frames; "
          "frame: every track on its frames, as random frames); IDF1+ = IDF1 points a simulated reviewer "
          "gains at 5% of frames (queue, random frames, oracle); sync merges = merges sync applies (count, "
          "precision, wrong-person, recall of fragment pairs); clean/100f = confident findings per 100 frames on "
          "the clean human ground truth, with the detections (check --detections) and without (sync).")
    print(f"runtime: {seconds:.0f} s ({args.jobs} job{'s' if args.jobs > 1 else ''})")
    if args.json:
        doc = {"sequences": results, "totals": {k: totals(v) for k, v in blocks.items() if v},
               "quick": args.quick, "seconds": round(seconds, 1)}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
