"""``cvat-track convert INPUT OUTPUT [--stop-frame N]``: between MOT, CVAT XML and CVAT JSON.

CVAT JSON → MOT expands keyframes exactly as CVAT would and stitches job-boundary pieces;
MOT → CVAT JSON/XML writes thinned keyframes with outside keyframes at gaps. Output is
written atomically: on any error nothing is written.
"""

from __future__ import annotations

import argparse
from typing import Any


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _tolerance(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def register(subparsers: Any) -> None:
    """Add the ``convert`` subcommand."""
    p = subparsers.add_parser(
        "convert",
        help="convert tracks between MOT CSV, CVAT for video XML and CVAT JSON",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", help="MOT .txt/.csv, CVAT .xml or CVAT .json (detected by content)")
    p.add_argument("output", help="output file; format from --to or the extension")
    p.add_argument("--to", choices=["mot", "cvat_xml", "cvat_json"], help="output format (default: by extension)")
    p.add_argument(
        "--stop-frame", type=_non_negative_int, default=None,
        help="last frame in the input's numbering to expand CVAT keyframes to (default: task size)",
    )
    p.add_argument(
        "--job-size", type=_non_negative_int, default=None,
        help="CVAT segment size, to stitch job-boundary pieces when the input has no job meta",
    )
    p.add_argument("--tolerance", type=_tolerance, default=1.0, help="keyframe thinning tolerance in px (default 1)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Convert ``args.input`` to ``args.output``; returns the exit code."""
    from pathlib import Path

    from cvat_extension.errors import InputError
    from cvat_extension.io.formats import _EXT, Format, detect_format, read_tracks, write_tracks

    out = Path(args.output)
    if args.to:
        fmt = Format(args.to)
    else:
        fmt_or_none = _EXT.get(out.suffix.lower())
        if fmt_or_none is None:
            raise InputError(f"{out}: cannot tell the output format from {out.suffix!r}; use --to")
        fmt = fmt_or_none
    in_fmt = detect_format(args.input)
    base = 1 if in_fmt is Format.MOT else 0
    stop = None if args.stop_frame is None else args.stop_frame - base
    if stop is not None and stop < 0:
        raise InputError(f"--stop-frame {args.stop_frame} is before the first frame ({base})")
    starts = None
    if args.job_size:
        loaded0 = read_tracks(args.input, fmt=in_fmt, stop_frame=stop)
        starts = list(range(0, loaded0.info.num_frames, args.job_size))
    loaded = read_tracks(args.input, fmt=in_fmt, stop_frame=stop, job_starts=starts)
    write_tracks(out, loaded, fmt=fmt, tolerance_px=args.tolerance)
    n_in = len(loaded.tracks.visible())
    print(f"{args.input} ({in_fmt.value}) -> {out} ({fmt.value}): {len(loaded.tracks.ids)} tracks, {n_in} boxes")
    return 0
