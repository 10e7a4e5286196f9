"""``cvat-track convert INPUT OUTPUT [--stop-frame N]``: between MOT, CVAT XML and CVAT JSON.

CVAT JSON → MOT expands keyframes exactly as CVAT would and stitches job-boundary pieces;
MOT → CVAT JSON/XML writes thinned keyframes with outside keyframes at gaps. Output is
written atomically: on any error nothing is written.
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli._inputs import nonnegative_int, number_type, positive_int


_tolerance = number_type("a number >= 0", lambda v: v >= 0)


def register(subparsers: Any) -> None:
    """Add the ``convert`` subcommand."""
    p = subparsers.add_parser(
        "convert",
        help="convert tracks between MOT CSV, CVAT for video XML and CVAT JSON",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="MOT .txt/.csv, CVAT .xml or CVAT .json (told apart by content)")
    p.add_argument("output", metavar="OUTPUT", help="output file; its format from --to, else from its extension")
    p.add_argument("--to", choices=["mot", "cvat_xml", "cvat_json"], metavar="FORMAT",
                   help="output format: mot, cvat_xml or cvat_json (default: from the extension)")
    p.add_argument(
        "--stop-frame", type=nonnegative_int, default=None, metavar="N",
        help="last frame, in the input's numbering, to expand CVAT keyframes to (default: the task size)",
    )
    p.add_argument(
        "--job-size", type=positive_int, default=None, metavar="N",
        help="CVAT segment size, to stitch job-boundary pieces when the input has no job meta",
    )
    p.add_argument("--tolerance", type=_tolerance, default=1.0, metavar="PX",
                   help="keyframe thinning tolerance in pixels (default 1)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an input without boxes (otherwise refused as a likely wrong file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert ``args.input`` to ``args.output``; returns the exit code."""
    from pathlib import Path

    from cvat_extension.errors import InputError
    from cvat_extension.io.formats import _EXT, Format, detect_format, read_tracks, write_tracks
    from cvat_extension.io.outputs import OutputPlan

    out = Path(args.output)
    if args.to:
        fmt = Format(args.to)
    else:
        fmt_or_none = _EXT.get(out.suffix.lower())
        if fmt_or_none is None:
            raise InputError(f"{out}: cannot tell the output format from {out.suffix!r}; use --to")
        fmt = fmt_or_none
    plan = OutputPlan(inputs=[args.input])
    plan.file(out, option="OUTPUT", kind=fmt.value)
    in_fmt = detect_format(args.input)
    base = 1 if in_fmt is Format.MOT else 0
    stop = None if args.stop_frame is None else args.stop_frame - base
    if stop is not None and stop < 0:
        raise InputError(f"--stop-frame {args.stop_frame} is before the first frame ({base})")
    starts = None
    if args.job_size:
        loaded0 = read_tracks(args.input, fmt=in_fmt, stop_frame=stop, allow_empty=args.allow_empty)
        starts = list(range(0, loaded0.info.num_frames, args.job_size))
    loaded = read_tracks(args.input, fmt=in_fmt, stop_frame=stop, job_starts=starts, allow_empty=args.allow_empty)
    with plan.staged() as stage:
        write_tracks(stage[out], loaded, fmt=fmt, tolerance_px=args.tolerance)
    n_in = len(loaded.tracks.visible())
    print(f"{args.input} ({in_fmt.value}) -> {out} ({fmt.value}): {len(loaded.tracks.ids)} tracks, {n_in} boxes")
    return 0
