"""``cvat-track split INPUT... --out DIR``: sequence-level train/val/test splits.

Whole sequences only (never frames). Each sequence gets a difficulty score (density,
occlusion, object and camera motion, small boxes; see ``cvat_extension/dataset/difficulty.py``)
and a tier (easy/medium/hard: thirds of this dataset's scores); the test set is drawn per
tier so that it holds at least 2 easy, 3 medium and 2 hard sequences when there are enough,
else a warning says what was used instead (``--strict``: an error). Seeded: the same inputs
and ``--seed`` give the same split.

Writes ``DIR/seqmaps/<BENCHMARK>-{train,val,test}.txt`` (TrackEval seqmaps) and
``DIR/split.json`` (each sequence's split, tier, score and why). Nothing is written on error;
an existing ``DIR`` is replaced as a whole, and only if it holds a ``split.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli._inputs import nonnegative_int, number_type
from cvat_extension.adapters.cli.cmd_card import add_dataset_inputs

_share = number_type("a share in [0, 1)", lambda v: 0 <= v < 1)


def _tier_minimums(text: str) -> tuple[int, int, int]:
    parts = text.split(",")
    try:
        values = tuple(int(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or min(values) < 0:
        raise argparse.ArgumentTypeError(f"expected EASY,MEDIUM,HARD counts like 2,3,2, got {text!r}")
    return values[0], values[1], values[2]


def benchmark_name(text: str) -> str:
    """argparse type: a benchmark name usable in TrackEval folder names."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.]*", text):
        raise argparse.ArgumentTypeError(f"a benchmark name is letters, digits, '_' and '.', got {text!r}")
    return text


def register(subparsers: Any) -> None:
    """Add the ``split`` subcommand."""
    p = subparsers.add_parser(
        "split", help="sequence-level train/val/test split stratified by difficulty (seqmaps + JSON)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_inputs(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for seqmaps/ and split.json")
    p.add_argument("--test", type=_share, default=0.2, metavar="FRACTION", help="share of sequences in test (default 0.2)")
    p.add_argument("--val", type=_share, default=0.1, metavar="FRACTION", help="share of sequences in val (default 0.1)")
    p.add_argument("--seed", type=nonnegative_int, default=0, help="random seed (default 0)")
    p.add_argument("--min-test-per-tier", type=_tier_minimums, default=(2, 3, 2), metavar="E,M,H",
                   help="test-set minimum of easy,medium,hard sequences (default 2,3,2)")
    p.add_argument("--strict", action="store_true", help="fail instead of warning when the minimums cannot be met")
    p.add_argument("--benchmark", type=benchmark_name, default="dataset",
                   help="seqmap name prefix: <BENCHMARK>-<split>.txt (default 'dataset')")
    p.add_argument("--json", metavar="FILE", help="also write the manifest here ('-' for stdout)")
    p.set_defaults(func=run)


def write_seqmap(path: Any, names: list[str]) -> None:
    """A TrackEval seqmap: a ``name`` header, then one sequence per line."""
    path.write_text("name\n" + "".join(f"{n}\n" for n in names), encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    """Plan and write the split; returns the exit code."""
    import json
    import sys

    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.dataset.difficulty import Tier, sequence_difficulty
    from cvat_extension.dataset.sequences import load_dataset
    from cvat_extension.dataset.split import SPLITS, plan_split
    from cvat_extension.io.outputs import OutputPlan

    outputs = OutputPlan(inputs=[*args.inputs, args.config if args.task else None])
    out = outputs.folder(args.out, option="--out", marker="split.json")
    json_out = outputs.file(None if args.json == "-" else args.json, option="--json", kind="json")
    assert out is not None  # --out is required by the parser
    seqs = load_dataset(args.inputs, tasks=args.task, config=args.config, allow_empty=args.allow_empty)
    diffs = [sequence_difficulty(s.tracks, s.num_frames, name=s.name) for s in seqs]
    easy, medium, hard = args.min_test_per_tier
    plan = plan_split(diffs, test_fraction=args.test, val_fraction=args.val, seed=args.seed,
                      min_test_per_tier={Tier.EASY: easy, Tier.MEDIUM: medium, Tier.HARD: hard},
                      strict=args.strict)
    extra = {s.name: {"frames": s.num_frames, "tracks": len(s.tracks.ids), "source": s.source} for s in seqs}
    manifest = plan.to_json(extra)
    manifest["benchmark"] = args.benchmark
    manifest["warnings"] = [w for s in seqs for w in s.warnings] + manifest["warnings"]
    with outputs.staged() as stage:
        folder = stage[out]
        (folder / "seqmaps").mkdir()
        for split in SPLITS:
            write_seqmap(folder / "seqmaps" / f"{args.benchmark}-{split}.txt", plan.members(split))
        (folder / "split.json").write_text(json.dumps(manifest, indent=1) + "\n", encoding="utf-8")
        if json_out is not None:
            write_json(stage[json_out], manifest)
    if args.json == "-":
        print(json.dumps(manifest, indent=1))
    out = sys.stderr if args.json == "-" else sys.stdout
    for w in plan.warnings:
        print(f"warning: {w}", file=sys.stderr)
    for split in SPLITS:
        names = plan.members(split)
        tiers = ", ".join(f"{sum(plan.tiers[n] is t for n in names)} {t.value}" for t in Tier)
        print(f"{split}: {len(names)} sequences ({tiers}): {' '.join(names)}", file=out)
    return 0
