"""``cvat-track sync``: check finished CVAT jobs, merge fragments, push review issues.

Reads the ``sync:`` section of ``serverless.yaml`` (``--config``). Credentials come from the
environment variables it names (``CVAT_ACCESS_TOKEN`` by default), never from the command
line. Safe to interrupt at any point: the next run resumes (see ``cvat_extension/cvat``).

Without ``--once`` it runs every ``sync.schedule.interval_min`` minutes until interrupted
(a systemd timer or cron calling ``--once`` is usually the better choice: see ``scripts/``).

Exit codes: 0 every selected job handled, 1 some job failed or was edited meanwhile (it is
retried next run), 2 bad configuration or CVAT refused the login.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from cvat_extension.adapters.cli._inputs import positive_int


def register(subparsers: Any) -> None:
    """Add the ``sync`` subcommand."""
    p = subparsers.add_parser(
        "sync", help="check finished CVAT jobs, merge fragments, push review issues",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section (default serverless.yaml)")
    p.add_argument("--once", action="store_true", help="one pass, then exit (for cron/systemd)")
    p.add_argument("--task", type=positive_int, metavar="ID", help="only this task's finished jobs")
    p.add_argument("--job", type=positive_int, metavar="ID", help="only this job (if finished)")
    p.add_argument("--dry-run", action="store_true",
                   help="print what would change (merges, issues, stages); write nothing")
    p.add_argument("--thin-keyframes", action="store_true", default=None,
                   help="also drop keyframes that interpolation reproduces (sync.merge.thin_tolerance_px)")
    p.add_argument("--no-report", action="store_true", help="skip the per-task HTML report")
    p.add_argument("--json", metavar="FILE", help="write the run summary as JSON ('-' for stdout)")
    p.set_defaults(func=run)


def _print_summary(s: Any, out: Any) -> None:
    d = s.to_json()
    head = "DRY RUN (nothing written): " if s.dry_run else ""
    print(f"{head}{d['jobs_listed']} finished job(s): {d['jobs_checked']} checked, "
          f"{d['jobs_unchanged']} unchanged, {d['jobs_busy']} held by another worker", file=out)
    kinds = ", ".join(f"{k} {v}" for k, v in d["findings_by_kind"].items()) or "none"
    print(f"findings: {kinds}", file=out)
    print(f"review items: {d['review_items']}; issues opened: {d['issues_opened']}, still open: "
          f"{d['issues_still_open']}, resolved and respected: {d['issues_resolved_respected']}",
          file=out)
    print(f"merges applied: {d['merges_applied']}, left for review: {d['merges_refused']}; "
          f"interrupted writes resumed: {d['writes_resumed']}", file=out)
    for c in d["stage_changes"]:
        print(f"job {c['job']}: stage={c.get('stage')} state={c.get('state')}"
              + (f" assignee={c['assignee']}" if c.get("assignee") else ""), file=out)
    if s.dry_run:
        for line in d["planned"]:
            print(f"  would: {line}", file=out)
    for line in d["concurrent_edits"]:
        print(f"skipped (edited meanwhile): {line}", file=out)
    for line in d["failures"]:
        print(f"failed (retried next run): {line}", file=out)
    for path in d["reports"]:
        print(f"report: {path}", file=out)
    print(f"CVAT API calls: {d['api_calls']}", file=out)


def _one_pass(args: argparse.Namespace, cfg: Any) -> Any:
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.state_store import open_state_store
    from cvat_extension.cvat.sync import run_sync

    api = connect(cfg.cvat, cfg.retry)
    store = open_state_store(cfg.state.path)
    bar = None
    try:
        from tqdm import tqdm

        def progress(what: str, done: int, total: int) -> None:
            nonlocal bar
            if bar is None:
                bar = tqdm(total=total, unit="task", desc="sync", file=sys.stderr,
                           disable=not sys.stderr.isatty())
            bar.update(done - bar.n)

        return run_sync(api, store, cfg, task_id=args.task, job_id=args.job, dry_run=args.dry_run,
                        thin_keyframes=args.thin_keyframes, report=not args.no_report,
                        progress=progress)
    finally:
        if bar is not None:
            bar.close()
        store.close()
        api.client.close()


def run(args: argparse.Namespace) -> int:
    """Run one pass (or loop); returns the exit code."""
    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.cvat.config import load_sync_config
    from cvat_extension.io.outputs import OutputPlan

    cfg = load_sync_config(args.config)
    # The summary's path is checked before any CVAT work (not an input, not a folder), and
    # each pass replaces it whole.
    state_file = None if "://" in cfg.state.path else cfg.state.path
    plan = OutputPlan(inputs=[args.config, state_file])
    json_out = plan.file(None if args.json in (None, "-") else args.json, option="--json", kind="json")
    while True:
        summary = _one_pass(args, cfg)
        _print_summary(summary, sys.stdout)
        if args.json == "-":
            print(json.dumps(summary.to_json(), indent=2))
        elif json_out is not None:
            with plan.staged() as stage:
                write_json(stage[json_out], summary.to_json())
        if args.once or args.dry_run or args.job:
            return 0 if summary.ok else 1
        time.sleep(cfg.schedule_interval_min * 60)
