"""``cvat-track check INPUT``: find annotation errors in tracks without ground truth.

Runs every check (ID switches, jumps, ghosts, label changes, short tracks; missing objects
with ``--detections``; appearance jumps with ``--frames``), proposes fragment merges, and
plans a review that fits the budget. Frame numbers in the output are the input's own (MOT
from 1, CVAT from 0).

Findings scoring at least 0.5 are "confident"; lower scores are hints (a frozen box without
detections, a short track at the image border) that rank low in the review plan. The summary
counts the frames each group touches separately.

Exit codes: 0 done, 1 a finding scored at least --fail-on, 2 bad input or settings (one line
on stderr, nothing written).
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from cvat_extension.adapters.cli._inputs import fps_value, fraction, score


def register(subparsers: Any) -> None:
    """Add the ``check`` subcommand."""
    p = subparsers.add_parser(
        "check", help="find annotation errors in tracks (no ground truth needed)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT",
                   help="tracks: MOT CSV, CVAT for video XML or CVAT JSON (told apart by content)")
    p.add_argument("--frames", metavar="DIR", help="folder of the sequence's images, in frame order")
    p.add_argument("--detections", metavar="FILE", help="detector output (MOT det CSV, CVAT XML/JSON)")
    p.add_argument("--json", metavar="FILE", help="write findings, review plan and summary as JSON")
    p.add_argument("--report", metavar="DIR", help="write an HTML review report into DIR")
    p.add_argument("--budget", type=fraction, default=0.03, metavar="FRACTION",
                   help="share of frames a reviewer looks at (default 0.03)")
    p.add_argument("--fail-on", type=score, default=None, metavar="SCORE",
                   help="exit 1 if any finding scores at least SCORE (for CI gates)")
    p.add_argument("--fps", type=fps_value, default=None, metavar="FPS",
                   help="annotated frames per second (default: seqinfo.ini frameRate, else 30); "
                        "per-frame thresholds scale with the time between annotated frames")
    p.add_argument("--config", metavar="YAML",
                   help="check thresholds as {check: {setting: value}}, plus an optional merge: section")
    p.add_argument("--ignore-zero-conf", action="store_true",
                   help="MOT input: skip rows whose conf column is 0 (MOTChallenge 'ignore' rows: "
                        "distractors, static people, vehicles)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an input without boxes (otherwise refused as a likely wrong file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the checks; returns the exit code."""
    from cvat_extension.adapters.cli._inputs import (
        ImageFolderFrames,
        check_config,
        load_detections,
        load_yaml,
        merge_config,
        write_json,
    )
    from cvat_extension.adapters.cli._qa import run_qa
    from cvat_extension.core.checks.warm_up import most_boxes_in, start_warm_up
    from cvat_extension.core.kernels import uses_numba
    from cvat_extension.errors import InputError
    from cvat_extension.io.formats import Format, read_tracks
    from cvat_extension.io.outputs import OutputPlan

    plan = OutputPlan(inputs=[args.input, args.frames, args.detections, args.config])
    json_out = plan.file(args.json, option="--json", kind="json")
    report_out = plan.folder(args.report, option="--report")
    checks_cfg: Any = {}
    merge_cfg = None
    if args.config:
        checks_cfg, merge_map = check_config(load_yaml(args.config))
        merge_cfg = merge_config(merge_map)
    # numba's kernels load (~1 s) while the input is read, when the run will use them (the
    # options are valid by now); small inputs use the numpy twins and never load numba.
    if uses_numba(most_boxes_in(args.input)):
        start_warm_up(with_detections=args.detections is not None)
    loaded = read_tracks(args.input, allow_empty=args.allow_empty)
    if args.fps is not None:
        loaded = dataclasses.replace(loaded, info=dataclasses.replace(loaded.info, fps=args.fps))
    tracks = loaded.tracks
    ignored = 0
    if args.ignore_zero_conf:
        if loaded.format is not Format.MOT:
            raise InputError(f"{args.input}: --ignore-zero-conf needs MOT input (its conf column); "
                             f"this is {loaded.format.value}")
        keep = tracks.score != 0
        ignored = int((~keep).sum())
        tracks = tracks[keep]
    base = loaded.info.frame_base
    frames = ImageFolderFrames(args.frames, frame_base=base) if args.frames else None
    detections = load_detections(args.detections, allow_empty=args.allow_empty) if args.detections else None
    result = run_qa(tracks, loaded.info, checks_config=checks_cfg, merge_config=merge_cfg,
                    detections=detections, frames=frames, budget=args.budget)
    result.summary["input"] = str(args.input)
    result.summary["format"] = loaded.format.value
    if args.ignore_zero_conf:
        result.summary["ignored_zero_conf_rows"] = ignored
    index = None
    with plan.staged() as stage:
        if json_out is not None:
            write_json(stage[json_out], result.to_json(base))
        if report_out is not None:
            from cvat_extension.report.html import write_report

            write_report(stage[report_out], tracks=tracks, info=loaded.info,
                         items=result.review, merges=result.candidates, frames=frames,
                         findings=result.findings,
                         summary={"estimated errors covered by the review":
                                  f"{100 * result.summary['review_covers_fraction']:.0f}%"},
                         title=f"Track review: {loaded.info.name or args.input}")
            index = report_out / "index.html"
    if index is not None:
        print(f"report: {index}")
    s = result.summary
    print(f"{args.input}: {s['tracks']} tracks, {s['frames']} frames, {s['findings']} findings "
          f"({', '.join(f'{k} {v}' for k, v in s['findings_by_kind'].items()) or 'none'}; "
          f"{s['confident_findings']} confident, {s['hint_findings']} hints), "
          f"{s['merges_proposed']} merges proposed, {s['review_items']} review items"
          + (f", {ignored} ignore rows skipped" if args.ignore_zero_conf else ""))
    print(f"  the review items hold {100 * s['review_covers_fraction']:.0f}% of the estimated errors "
          f"({s['estimated_errors_in_review']:.1f} of {s['estimated_errors']:.1f}) within a "
          f"{100 * args.budget:g}% frame budget")
    for n, it in enumerate(result.review[:10], start=1):
        first, last = it.frames[0] + base, it.frames[1] + base
        where = f"frame {first}" if first == last else f"frames {first}-{last}"
        print(f"  #{n} {it.score:.2f} tracks {','.join(map(str, it.track_ids)) or '-'} {where}: "
              f"{', '.join(it.kinds)}")
    if args.fail_on is not None and any(f.score >= args.fail_on for f in result.findings):
        return 1
    return 0
