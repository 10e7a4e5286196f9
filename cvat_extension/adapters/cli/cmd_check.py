"""``cvat-track check INPUT``: find annotation errors in tracks without ground truth.

Runs every check (ID switches, jumps, ghosts, label changes, short tracks; missing objects
with ``--detections``; appearance jumps with ``--frames``), proposes fragment merges, and
plans a review that fits the budget. Frame numbers in the output are the input's own (MOT
from 1, CVAT from 0).

Exit codes: 0 done, 1 a finding scored at least ``--fail-on``, 2 bad input or settings.
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
    p.add_argument("input", help="tracks: MOT CSV, CVAT for video XML or CVAT JSON (detected by content)")
    p.add_argument("--frames", metavar="DIR", help="folder of the sequence's images, in frame order")
    p.add_argument("--detections", metavar="FILE", help="detector output (MOT det CSV, CVAT XML/JSON)")
    p.add_argument("--json", metavar="OUT", help="write findings, review plan and summary as JSON")
    p.add_argument("--report", metavar="DIR", help="write an HTML review report into DIR")
    p.add_argument("--budget", type=fraction, default=0.03, metavar="F",
                   help="share of frames a reviewer looks at (default 0.03)")
    p.add_argument("--fail-on", type=score, default=None, metavar="SCORE",
                   help="exit 1 if any finding scores at least SCORE (for CI gates)")
    p.add_argument("--fps", type=fps_value, default=None, metavar="FPS",
                   help="annotated frames per second (default: seqinfo.ini frameRate, else 30); "
                        "per-frame thresholds scale with the time between annotated frames")
    p.add_argument("--config", metavar="YAML", help="check thresholds: {check: {setting: value}}, plus merge:")
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
    from cvat_extension.io.formats import read_tracks

    checks_cfg: Any = {}
    merge_cfg = None
    if args.config:
        checks_cfg, merge_map = check_config(load_yaml(args.config))
        merge_cfg = merge_config(merge_map)
    loaded = read_tracks(args.input)
    if args.fps is not None:
        loaded = dataclasses.replace(loaded, info=dataclasses.replace(loaded.info, fps=args.fps))
    frames = ImageFolderFrames(args.frames) if args.frames else None
    detections = load_detections(args.detections) if args.detections else None
    result = run_qa(loaded.tracks, loaded.info, checks_config=checks_cfg, merge_config=merge_cfg,
                    detections=detections, frames=frames, budget=args.budget)
    base = loaded.info.frame_base
    result.summary["input"] = str(args.input)
    result.summary["format"] = loaded.format.value
    if args.json:
        write_json(args.json, result.to_json(base))
    if args.report:
        from cvat_extension.report.html import write_report

        index = write_report(args.report, tracks=loaded.tracks, info=loaded.info,
                             items=result.review, merges=result.candidates, frames=frames,
                             summary={"estimated errors covered by the review":
                                      f"{100 * result.summary['review_covers_fraction']:.0f}%"},
                             title=f"Track review: {loaded.info.name or args.input}")
        print(f"report: {index}")
    s = result.summary
    print(f"{args.input}: {s['tracks']} tracks, {s['frames']} frames, {s['findings']} findings "
          f"({', '.join(f'{k} {v}' for k, v in s['findings_by_kind'].items()) or 'none'}), "
          f"{s['merges_proposed']} merges proposed, {s['review_items']} review items")
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
