"""``cvat-track attention``: attention checks and per-annotator quality of finished CVAT jobs.

    cvat-track annotate TASK --weights W --attention-checks 5     # plant 5 misses per job
    ... annotators work, jobs are completed ...
    cvat-track attention [--task TASK] --report DIR --json OUT

1. Measures every finished job holding planted misses that was not measured yet (how many
   withheld boxes the annotator added back, IoU >= 0.5 on that frame, any track), stores
   the result and flags jobs below ``--min-restored`` in CVAT (``--flag``: one issue on the
   job, a comment on its open review issue, or nothing). ``sync`` does the same on its own
   when ``sync.attention.enabled`` is true.
2. Writes the per-annotator quality report: attention checks restored, review issues our
   sync opened per 100 annotated frames and how many were resolved, overall and per
   ``--period`` (``annotators.html`` in ``--report``; the same numbers in ``--json``).

Jobs looked at: those of ``--task`` (repeatable), else of every task with attention checks
or whose finished jobs ``sync`` has seen. Settings come from ``sync.attention`` of
``--config``; flags override them. Exit codes: 0 done (annotators below the bar are
reported, not an error), 2 configuration or CVAT error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cvat_extension.adapters.cli._inputs import positive_int, score


def register(subparsers: Any) -> None:
    """Add the ``attention`` subcommand."""
    p = subparsers.add_parser(
        "attention", help="measure attention checks of finished jobs; per-annotator quality report",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section (default serverless.yaml; defaults when absent)")
    p.add_argument("--url", help="CVAT URL (default: sync.cvat.url)")
    p.add_argument("--task", type=positive_int, action="append", metavar="ID", help="only this task (repeatable)")
    p.add_argument("--min-restored", type=score, help="attention bar (default sync.attention.min_restored, 0.7)")
    p.add_argument("--flag", choices=("issue", "comment", "none"), help="how to flag in CVAT (default sync.attention.flag)")
    p.add_argument("--remeasure", action="store_true", help="measure jobs again (a flag is never raised twice)")
    p.add_argument("--period", choices=("day", "week", "month"), default="week", help="time buckets (default week)")
    p.add_argument("--report", type=Path, metavar="DIR", help="write DIR/annotators.html")
    p.add_argument("--json", metavar="FILE", help="write results and quality as JSON ('-' for stdout)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Measure, flag and report; returns the exit code."""
    from dataclasses import replace

    from cvat_extension._enums import parse_enum
    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.core.annotator_quality import Period, summarize_annotators
    from cvat_extension.cvat.annotator_quality import collect_job_quality
    from cvat_extension.cvat.attention import measure_jobs, result_rows
    from cvat_extension.cvat.attention_config import FlagMode
    from cvat_extension.cvat.attention_store import AttentionStore
    from cvat_extension.cvat.config import SyncConfig, load_sync_config
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.state_store import open_state_store
    from cvat_extension.io.outputs import OutputPlan
    from cvat_extension.report.annotators import write_annotator_report

    # Checked before CVAT is measured or flagged: a bad path must not cost a run.
    cfg = load_sync_config(args.config) if Path(args.config).is_file() else SyncConfig()
    plan = OutputPlan(inputs=[args.config, cfg.state.path])
    json_out = plan.file(None if args.json == "-" else args.json, option="--json", kind="json")
    report_out = plan.folder(args.report, option="--report", marker="annotators.html")
    if args.url:
        cfg = replace(cfg, cvat=replace(cfg.cvat, url=args.url))
    settings = cfg.attention
    if args.min_restored is not None:
        settings = replace(settings, min_restored=args.min_restored)
    if args.flag is not None:
        settings = replace(settings, flag=parse_enum(FlagMode, args.flag))
    api = connect(cfg.cvat, cfg.retry)
    store = open_state_store(cfg.state.path)
    try:
        attention = AttentionStore(store)
        tasks = sorted(set(args.task or []) or (set(attention.planned_tasks())
                                                 | {a.task_id for a in attention.annotators().values()}))
        jobs = [j for t in tasks for j in api.list_jobs(task_id=t, type="annotation", page_size=100)]
        measured = measure_jobs(api, attention, settings, jobs, remeasure=args.remeasure)
        quality = summarize_annotators(collect_job_quality(api, attention, jobs),
                                       period=parse_enum(Period, args.period), min_restored=settings.min_restored)
        job_ids = {int(j["id"]) for j in jobs}
        doc = {"tasks": tasks, "measured_now": [r.job_id for r in measured],
               "jobs": result_rows([r for r in attention.results() if r.job_id in job_ids]), **quality}
    finally:
        store.close()
    for name, r in doc["annotators"].items():
        rate = "no checks" if r["attention_rate"] is None else (
            f"{r['attention_restored']}/{r['attention_planted']} checks restored ({r['attention_rate']:.0%})")
        flag = "  BELOW BAR" if r["attention_below"] else ""
        print(f"{name}: {r['jobs']} job(s), {rate}, {r['issues_per_100_frames']:.2f} review issues / 100 frames{flag}",
              file=sys.stdout)
    with plan.staged() as stage:
        if report_out is not None:
            write_annotator_report(doc, stage[report_out])
        if json_out is not None:
            write_json(stage[json_out], doc)
    if report_out is not None:
        print(f"report: {report_out / 'annotators.html'}", file=sys.stdout)
    if args.json == "-":
        print(json.dumps(doc, indent=2), file=sys.stdout)
    return 0
