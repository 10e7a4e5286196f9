"""``cvat-track card INPUT... --out DIR``: a dataset card (card.md, card.json, PNG plots).

Inputs are track files (MOT CSV, CVAT XML/JSON), MOT Challenge sequence folders
(``SEQ/gt/gt.txt`` + ``seqinfo.ini``), dataset folders of those, or CVAT tasks
(``--task ID``, connection from ``--config``'s ``sync:`` section). Per sequence and in total:
frames, tracks, boxes, boxes per frame, track lengths, occlusion events, re-entries, ID
consistency (from the QA checks), categories, visibility and box sizes, QA findings.

``--compare BEFORE`` (a previous ``card.json``, or the inputs of the previous version) adds
a before/after table and draws both versions in the plots. Everything is written at the
end: a failure leaves ``--out`` as it was. An existing ``--out`` is replaced as a whole (no
stale plots of an older card), and only if it holds a ``card.json``.
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli._inputs import positive_int


def add_dataset_inputs(p: argparse.ArgumentParser) -> None:
    """The input options every dataset command shares."""
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="track files, MOT sequence folders (SEQ/gt/gt.txt) or dataset folders")
    p.add_argument("--task", type=positive_int, action="append", default=[], metavar="ID",
                   help="a CVAT task as one sequence (repeat; connection from --config)")
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section for CVAT inputs (default serverless.yaml)")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept track files without boxes (a sequence nobody appears in); otherwise refused as a likely wrong file")


def register(subparsers: Any) -> None:
    """Add the ``card`` subcommand."""
    p = subparsers.add_parser(
        "card", help="dataset card: numbers, plots and QA summary (card.md, card.json)",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_dataset_inputs(p)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for card.md, card.json and plots")
    p.add_argument("--compare", nargs="+", metavar="PATH",
                   help="previous version: its card.json, or its inputs (files/folders)")
    p.add_argument("--title", default="Dataset card", help="heading of card.md")
    p.add_argument("--no-checks", action="store_true",
                   help="skip the QA checks (no ID consistency or findings)")
    p.add_argument("--no-plots", action="store_true", help="write no PNG plots")
    p.add_argument("--json", metavar="FILE", help="also write card.json here ('-' for stdout)")
    p.set_defaults(func=run)


def _before(paths: list[str], checks: bool, allow_empty: bool) -> dict[str, Any]:
    import json
    from pathlib import Path

    from cvat_extension.dataset.card import build_card
    from cvat_extension.dataset.sequences import load_sequences
    from cvat_extension.errors import InputError

    if len(paths) == 1 and Path(paths[0]).suffix == ".json":
        p = Path(paths[0])
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{p}: cannot read the previous card: {exc}") from exc
        if isinstance(data, dict) and "total" in data and "sequences" in data:
            return data
        if isinstance(data, dict) and data.get("version") is None:
            raise InputError(f"{p}: not a card.json (no 'total' and 'sequences')")
    return build_card(load_sequences(list(paths), allow_empty=allow_empty), checks=checks).to_json()


def _import_plotting() -> None:
    """Import what :func:`~cvat_extension.dataset.plots.write_plots` needs (or fail there)."""
    try:
        import matplotlib.backends.backend_agg  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError:
        pass  # write_plots raises the install hint


def run(args: argparse.Namespace) -> int:
    """Build and write the card; returns the exit code."""
    import json
    import sys

    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.dataset.card import build_card, card_markdown, compare_cards
    from cvat_extension.dataset.sequences import load_dataset
    from cvat_extension.io.outputs import OutputPlan

    plan = OutputPlan(inputs=[*args.inputs, *(args.compare or []), args.config if args.task else None])
    out = plan.folder(args.out, option="--out", marker="card.json")
    json_out = plan.file(None if args.json == "-" else args.json, option="--json", kind="json")
    assert out is not None  # --out is required by the parser
    warm = None
    if not args.no_plots:
        # matplotlib takes about a second to import: do it while the sequences load and
        # the checks run (their kernels release the GIL), not after them.
        import threading

        warm = threading.Thread(target=_import_plotting, name="import-matplotlib", daemon=True)
        warm.start()
    seqs = load_dataset(args.inputs, tasks=args.task, config=args.config, allow_empty=args.allow_empty)
    card = build_card(seqs, checks=not args.no_checks).to_json()
    before = _before(args.compare, not args.no_checks, args.allow_empty) if args.compare else None
    compare = compare_cards(before, card) if before is not None else None
    if compare is not None:
        card["compare"] = compare
    with plan.staged() as stage:
        folder = stage[out]
        plots: list[str] = []
        if not args.no_plots:
            from cvat_extension.dataset.plots import write_plots

            if warm is not None:
                warm.join()

            plots = write_plots(card, folder, compare=before)
        (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
        (folder / "card.md").write_text(card_markdown(card, title=args.title, plots=plots, compare=compare),
                                        encoding="utf-8")
        if json_out is not None:
            write_json(stage[json_out], card)
    if args.json == "-":
        print(json.dumps(card, indent=1))
    t = card["total"]
    for w in card["warnings"]:
        print(f"warning: {w}", file=sys.stderr)
    out = sys.stderr if args.json == "-" else sys.stdout
    print(f"card: {t['sequences']} sequences, {t['frames']} frames, {t['tracks']} tracks, {t['boxes']} boxes, "
          f"ID consistency {100 * t['id_consistency']:.1f} %, {t['findings']} findings -> {args.out}/card.md",
          file=out)
    if compare is not None:
        d = compare["total"]
        changes = ", ".join(f"{k} {v['delta']:+g}" for k, v in d.items() if v["delta"])
        print(f"compared with the previous version: {changes or 'no change'}", file=out)
    return 0
