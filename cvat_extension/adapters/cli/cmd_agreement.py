"""``cvat-track agreement A B``: inter-annotator agreement on one sequence.

Two annotations of the same sequence: two files (MOT CSV, CVAT XML/JSON), two CVAT tasks
(``--tasks A B``), two CVAT jobs (``--jobs A B``), or the consensus replica jobs of one
job (``--replicas JOB``: the first two replicas). Prints MOTA, IDF1 and HOTA with A as the
reference, B as the reference and their mean (symmetric), computed by TrackEval as
``cvat-track eval A B`` does, and the disagreements of B ranked as review items (identity,
missing, extra, box, label).

Pass: MOTA ≥ ``--min-mota`` (85) and IDF1 ≥ ``--min-idf1`` (80), on A as reference or,
with ``--symmetric``, on the mean of both directions.

``--push`` (CVAT inputs) opens the review items as CVAT issues on B's jobs through the same
path ``sync`` uses (fingerprints, no duplicates, resolved issues respected). ``--report DIR``
writes the HTML review report with an agreement section.

Exit codes: 0 agreement passes, 1 below the thresholds, 2 bad input (different frame sizes
or lengths, unreadable files).
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli._inputs import number_type, positive_int

_percent = number_type("a percentage up to 100", lambda v: v <= 100)


def register(subparsers: Any) -> None:
    """Add the ``agreement`` subcommand."""
    p = subparsers.add_parser(
        "agreement", help="inter-annotator agreement (MOTA/IDF1/HOTA) and ranked disagreements",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("files", nargs="*", metavar="FILE", help="two annotation files of one sequence: A (reference) B")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--tasks", nargs=2, type=positive_int, metavar="ID", help="two CVAT tasks")
    src.add_argument("--jobs", nargs=2, type=positive_int, metavar="ID", help="two CVAT jobs")
    src.add_argument("--replicas", type=positive_int, metavar="JOB",
                     help="the consensus replica jobs of CVAT job JOB (first two)")
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section for CVAT inputs (default serverless.yaml)")
    p.add_argument("--min-mota", type=_percent, default=85.0, metavar="PERCENT", help="pass threshold (default 85)")
    p.add_argument("--min-idf1", type=_percent, default=80.0, metavar="PERCENT", help="pass threshold (default 80)")
    p.add_argument("--symmetric", action="store_true", help="gate on the mean of both directions")
    p.add_argument("--ignore-zero-conf", action="store_true",
                   help="drop rows with conf 0 (MOTChallenge 'ignore' rows) from both")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept annotation files without boxes (both annotators found nothing); "
                        "otherwise refused as a likely wrong file")
    p.add_argument("--json", metavar="FILE", help="write metrics, disagreements and review items as JSON")
    p.add_argument("--report", metavar="DIR", help="write an HTML review report with the agreement")
    p.add_argument("--push", action="store_true", help="CVAT inputs: open the review items as issues on B")
    p.add_argument("--dry-run", action="store_true", help="with --push: print the issues, open none")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any]:
    """(sequence A, sequence B, api or None)."""
    from cvat_extension.dataset.sequences import read_sequence
    from cvat_extension.errors import InputError

    cvat = args.tasks or args.jobs or args.replicas
    if cvat and args.files:
        raise InputError("give either two files or one CVAT source (--tasks, --jobs, --replicas)")
    if not cvat:
        if len(args.files) != 2:
            raise InputError(f"agreement compares two annotations; got {len(args.files)} file(s)")
        if args.push:
            raise InputError("--push needs CVAT inputs (--tasks or --jobs)")
        return (read_sequence(args.files[0], allow_empty=args.allow_empty),
                read_sequence(args.files[1], allow_empty=args.allow_empty), None)
    from cvat_extension.dataset.cvat_source import (
        connect_from_config,
        job_sequence,
        replica_job_ids,
        task_sequence,
    )

    api, cfg = connect_from_config(args.config)
    args._sync_config = cfg
    if args.tasks:
        return task_sequence(api, args.tasks[0]), task_sequence(api, args.tasks[1]), api
    ids = list(args.jobs) if args.jobs else replica_job_ids(api, args.replicas)[:2]
    if args.push and not args.jobs:
        raise InputError("--push needs --tasks or --jobs (replica jobs are merged, not reviewed)")
    return job_sequence(api, ids[0]), job_sequence(api, ids[1]), api


def _push(api: Any, cfg: Any, seq: Any, items: list[Any], dry_run: bool) -> list[str]:
    """Open ``items`` as issues on the jobs of ``seq``'s task; return one line per job."""
    from cvat_extension.cvat.review_push import plan_issue, push_issues
    from cvat_extension.cvat.state_store import open_state_store

    snap = seq.extra["snapshot"]
    per_job: dict[int, list[Any]] = {}
    jobs = {j.id: j for j in snap.jobs}
    for item in items:
        job = snap.job_of_frame(item.frame)
        only = seq.extra.get("job")
        if job is not None and (only is None or job.id == only.id):
            per_job.setdefault(job.id, []).append(plan_issue(snap, job, item))
    lines = []
    store = open_state_store(cfg.state.path)
    try:
        for job_id, plans in sorted(per_job.items()):
            result = push_issues(api, store, job_id, plans, job_issue_count=jobs[job_id].issue_count,
                                 dry_run=dry_run)
            lines.append(f"job {job_id}: {len(result.created)} issue(s) {'would be ' if dry_run else ''}opened, "
                         f"{len(result.still_open) + len(result.adopted)} still open, "
                         f"{len(result.respected_resolved)} resolved and respected")
    finally:
        store.close()
    return lines


def run(args: argparse.Namespace) -> int:
    """Compare; returns the exit code."""
    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.dataset.agreement import (
        AgreementConfig,
        compute_agreement,
        same_sequence_problem,
    )
    from cvat_extension.errors import InputError
    from cvat_extension.io.outputs import OutputPlan

    # Checked before anything is read from CVAT or pushed to it.
    cvat = bool(args.tasks or args.jobs or args.replicas)
    plan = OutputPlan(inputs=[*args.files, args.config if cvat else None])
    json_out = plan.file(args.json, option="--json", kind="json")
    report_out = plan.folder(args.report, option="--report")
    a, b, api = _load(args)
    try:
        problem = same_sequence_problem(a.info, b.info, a.source or a.name, b.source or b.name)
        if problem:
            raise InputError(problem)
        ta, tb = a.tracks, b.tracks
        if args.ignore_zero_conf:
            ta, tb = ta[ta.score > 0], tb[tb.score > 0]
        if a.info.frame_base != b.info.frame_base:
            print(f"note: {a.source} numbers frames from {a.info.frame_base}, {b.source} from "
                  f"{b.info.frame_base}; both were aligned to frame 0 = first frame")
        cfg = AgreementConfig(min_mota=args.min_mota / 100, min_idf1=args.min_idf1 / 100, symmetric=args.symmetric)
        base = b.info.frame_base
        result = compute_agreement(ta, tb, num_frames=max(a.num_frames, b.num_frames), config=cfg,
                                   frame_base=base, names=(a.source or a.name, b.source or b.name))
        doc = result.to_json(base)
        with plan.staged() as stage:
            if report_out is not None:
                from cvat_extension.report.html import write_report

                write_report(stage[report_out], tracks=tb, info=b.info, items=result.review,
                             title=f"Agreement: {b.name} against {a.name}", agreement=doc)
            # Pushed after the report is drawn (a failed report opens no issues), before the
            # JSON that lists what was pushed.
            pushed = _push(api, args._sync_config, b, result.review, args.dry_run) if args.push else []
            if json_out is not None:
                write_json(stage[json_out], {**doc, "pushed": pushed})
        if report_out is not None:
            print(f"report: {report_out / 'index.html'}")
    finally:
        if api is not None:
            api.client.close()
    r, v, s = result.reference, result.reverse, result.symmetric
    print(f"A as reference: MOTA {100 * r.mota:.2f}  IDF1 {100 * r.idf1:.2f}  HOTA {100 * r.hota:.2f}  "
          f"(FP {r.fp} FN {r.fn} IDSW {r.idsw})")
    print(f"B as reference: MOTA {100 * v.mota:.2f}  IDF1 {100 * v.idf1:.2f}  HOTA {100 * v.hota:.2f}")
    print(f"symmetric:      MOTA {100 * s['mota']:.2f}  IDF1 {100 * s['idf1']:.2f}  HOTA {100 * s['hota']:.2f}")
    verdict = "PASS" if result.passed else "FAIL"
    gate = "symmetric" if args.symmetric else "A as reference"
    print(f"{verdict}: MOTA >= {args.min_mota:g} and IDF1 >= {args.min_idf1:g} ({gate}); "
          f"{len(result.findings)} disagreements in {len(result.review)} review items")
    for n, it in enumerate(result.review[:10], start=1):
        print(f"  #{n} {it.score:.2f} {it.message}")
    for line in pushed:
        print(line)
    return 0 if result.passed else 1
