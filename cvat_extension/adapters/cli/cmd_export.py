"""``cvat-track export INPUT... --out DIR``: MOT Challenge folder and/or COCO-video JSON.

``--to mot`` (default) writes ``DIR/<BENCHMARK>-<SPLIT>/<SEQ>/{gt/gt.txt,seqinfo.ini}``
and ``DIR/seqmaps/<BENCHMARK>-<SPLIT>.txt``: the layout TrackEval's MOT Challenge loader
reads with ``GT_FOLDER=DIR``, ``SEQMAP_FOLDER=DIR/seqmaps``. With ``--split split.json``
(from ``cvat-track split``) each split gets its folder and seqmap; without it every sequence
goes to ``--split-name`` (default ``all``).

``--to coco`` writes ``DIR/annotations.json`` (COCO-video / TAO-style: videos, images,
annotations with ``track_id``); ``--masks`` adds uncompressed COCO RLE masks from CVAT mask
tracks. ``--to both`` writes both.

Inputs: track files, MOT folders, a COCO-video JSON of ours (``--from-coco FILE``), or CVAT
tasks (``--task ID``; job pieces stitched). Everything is written at the end. An existing
``--out`` is replaced as a whole, and only if it is an export (holds ``seqmaps/`` or
``annotations.json``).
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli.cmd_card import add_dataset_inputs
from cvat_extension.adapters.cli.cmd_split import benchmark_name


def register(subparsers: Any) -> None:
    """Add the ``export`` subcommand."""
    p = subparsers.add_parser(
        "export", help="export a MOT Challenge folder (TrackEval) and/or COCO-video JSON",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_inputs(p)
    p.add_argument("--from-coco", metavar="FILE", action="append", default=[],
                   help="a COCO-video JSON as input (repeat)")
    p.add_argument("--out", required=True, metavar="DIR", help="export folder")
    p.add_argument("--to", choices=["mot", "coco", "both"], default="mot", metavar="FORMAT",
                   help="mot, coco or both (default mot)")
    p.add_argument("--split", metavar="JSON", help="split.json from 'cvat-track split' (one folder per split)")
    p.add_argument("--split-name", type=benchmark_name, default="all",
                   help="split name without --split (default 'all')")
    p.add_argument("--benchmark", type=benchmark_name, default="dataset", help="benchmark name (default 'dataset')")
    p.add_argument("--masks", action="store_true", help="COCO: add RLE masks from CVAT mask tracks")
    p.set_defaults(func=run)


def _splits(args: argparse.Namespace, seqs: list[Any]) -> dict[str, list[Any]]:
    import json
    from pathlib import Path

    from cvat_extension.errors import InputError

    if not args.split:
        return {args.split_name: seqs}
    p = Path(args.split)
    try:
        manifest = json.loads(p.read_text(encoding="utf-8"))
        members = {str(k): [str(n) for n in v] for k, v in manifest["splits"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise InputError(f"{p}: not a split.json of 'cvat-track split': {exc}") from exc
    by_name = {s.name: s for s in seqs}
    named = {n for names in members.values() for n in names}
    missing = sorted(named - set(by_name))
    if missing:
        raise InputError(f"{p}: sequence {missing[0]!r} of the split is not among the inputs")
    left = sorted(set(by_name) - named)
    if left:
        raise InputError(f"{p}: input sequence {left[0]!r} is in no split")
    return {k: [by_name[n] for n in v] for k, v in members.items() if v}


def run(args: argparse.Namespace) -> int:
    """Export; returns the exit code."""
    import json
    import sys

    from cvat_extension.dataset.coco_video import coco_video_document, read_coco_video
    from cvat_extension.dataset.mot_export import write_mot_challenge
    from cvat_extension.dataset.sequences import load_dataset
    from cvat_extension.errors import InputError
    from cvat_extension.io.outputs import OutputPlan

    # A re-export replaces an export folder of ours (seqmaps/ or annotations.json) as a
    # whole, so sequences dropped since the last export do not linger for TrackEval to read.
    plan = OutputPlan(inputs=[*args.inputs, *args.from_coco, args.split, args.config if args.task else None])
    out = plan.folder(args.out, option="--out", marker=("seqmaps", "annotations.json"))
    assert out is not None  # --out is required by the parser
    seqs = [s for f in args.from_coco for s in read_coco_video(f)]
    if args.inputs or args.task or not seqs:
        seqs += load_dataset(args.inputs, tasks=args.task, config=args.config, allow_empty=args.allow_empty)
    names = [s.name for s in seqs]
    if len(set(names)) != len(names):
        raise InputError(f"two sequences are named {sorted(n for n in names if names.count(n) > 1)[0]!r}")
    splits = _splits(args, seqs)
    warnings = [w for s in seqs for w in s.warnings]
    if args.masks and not any(s.extra.get("mask_tracks") for s in seqs):
        warnings.append("--masks: no CVAT mask tracks in the inputs; boxes only")
    with plan.staged() as stage:
        folder = stage[out]
        if args.to in ("mot", "both"):
            warnings += write_mot_challenge(folder, splits, benchmark=args.benchmark)
        if args.to in ("coco", "both"):
            doc = coco_video_document([s for v in splits.values() for s in v], masks=args.masks)
            (folder / "annotations.json").write_text(json.dumps(doc) + "\n", encoding="utf-8")
    for w in warnings:
        print(f"warning: {w}", file=sys.stderr)
    total = sum(len(s.tracks.visible()) for s in seqs)
    print(f"exported {len(seqs)} sequences ({total} boxes) as {args.to} into {args.out}: "
          + ", ".join(f"{args.benchmark}-{k} ({len(v)})" for k, v in splits.items()))
    return 0
