"""The review half of one sync pass: the budget's floor, job-own track ids, the per-job finish.

Split from ``sync.py``: what each job's reviewer gets (items per job with a floor, issues
naming the job's own track ids), then per job the backup, issues, stage change and
processed mark, each only while the job's lease is held.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvat_extension.core.findings import ReviewItem
from cvat_extension.cvat.annotations import FrameCache, TaskSnapshot, job_annotations_by_id
from cvat_extension.cvat.backup import save_backup
from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.content import content_hash
from cvat_extension.cvat.jobs import JobInfo
from cvat_extension.cvat.leases import JobLease
from cvat_extension.cvat.review_push import IssuePlan, push_issues, stage_change, tally_push
from cvat_extension.cvat.state_store import JobRecord, StateStore

if TYPE_CHECKING:
    from cvat_extension.cvat.sync import SyncSummary

__all__ = ["finish_job", "job_track_ids", "jobs_overlap", "with_floor", "write_report"]


def with_floor(snap: TaskSnapshot, items: list[ReviewItem], everything: list[ReviewItem],
               floor: int) -> list[ReviewItem]:
    """``items`` (the frame budget's pick) plus, per job, the best of ``everything`` until
    the job has ``floor`` items (``sync.review.min_items_per_job``).

    The frame budget is a share of the task's frames, so on a short task it admits one item
    and silences real findings; the floor is per job because each job is one person's work
    and one reviewer's queue.
    """
    def key(it: ReviewItem) -> tuple[Any, ...]:
        return (tuple(it.kinds), tuple(it.track_ids), tuple(it.frames))

    chosen = {key(it) for it in items}
    per_job: Counter[int] = Counter()
    for it in items:
        job = snap.job_of_frame(it.frame)
        if job is not None:
            per_job[job.id] += 1
    out = list(items)
    for it in everything:  # highest score first
        job = snap.job_of_frame(it.frame)
        if job is None or key(it) in chosen or per_job[job.id] >= floor:
            continue
        out.append(it)
        chosen.add(key(it))
        per_job[job.id] += 1
    return out


def finish_job(
    api: Any, store: StateStore, cfg: SyncConfig, task_id: int, job: JobInfo,
    snap: TaskSnapshot, items: Sequence[ReviewItem], plans: list[IssuePlan], summary: SyncSummary,
    *, dry_run: bool, thin: bool, merged: bool, reviewer_id: int | None, lease: JobLease | None,
    raw: Any | None = None,
) -> None:
    """Push the job's issues, change its stage, mark it processed (renewing before each).

    Raises:
        LeaseLostError: another worker took the job over; what is written so far is
            idempotent (issues by fingerprint), the new owner finishes it.
    """
    if lease is not None:
        lease.ensure(job.id, "the issue push")
    if not dry_run and (plans or stage_change(cfg, job, 0) is not None):
        # Every write of any kind is preceded by a backup of the job (idempotent per
        # content: a job merged this run already has one of its state before the merge).
        save_backup(store, cfg.state.backup_dir, job_id=job.id, task_id=task_id,
                    annotations=raw if raw is not None else api.get_job_annotations(job.id),
                    updated_date=job.updated_date)
    result = push_issues(api, store, job.id, plans, job_issue_count=job.issue_count, dry_run=dry_run)
    tally_push(summary, result)
    if dry_run:
        for p in plans:
            summary.planned.append(
                f"job {job.id}: issue at frame {p.frame} {[round(v, 1) for v in p.position]}: {p.message}"
            )
    change = stage_change(cfg, job, result.open_count, reviewer_id=reviewer_id)
    final: Mapping[str, Any] | None = None
    if change:
        if dry_run:
            summary.stage_changes.append({"job": job.id, **change})
            summary.planned.append(f"job {job.id}: set {change}")
        else:
            if lease is not None:
                lease.ensure(job.id, "the stage change")
            summary.stage_changes.append({"job": job.id, **change})
            final = api.update_job(job.id, **change)
    if dry_run:
        return
    if final is None and (result.created or merged or thin):
        final = api.get_job(job.id)
    updated = str(final.get("updated_date")) if final else job.updated_date
    job_findings = [f.to_json() for it in items for f in it.findings if job.holds(it.frame)]
    if lease is not None:
        lease.ensure(job.id, "the processed mark")
    store.mark_processed(JobRecord(
        job_id=job.id, task_id=task_id, updated_date=updated,
        content_hash=job_hash(snap, job), processed_at=time.time(), findings=job_findings,
        stage=str((final or {}).get("stage", job.stage)), state=str((final or {}).get("state", job.state)),
    ))


def jobs_overlap(snap: TaskSnapshot) -> bool:
    """True when consecutive jobs share frames (CVAT's segment overlap)."""
    return any(b.start_frame <= a.stop_frame for a, b in zip(snap.jobs, snap.jobs[1:]))


def job_track_ids(api: Any, snap: TaskSnapshot, job: JobInfo, items: Sequence[ReviewItem],
                  raws: dict[int, Any]) -> dict[int, int]:
    """Object id → the id of its track as ``job`` stores it (what its reviewer sees).

    Without overlap every piece of the task-level read lies in one job and the snapshot
    knows which. With overlap the task-level read re-joins the pieces of consecutive jobs
    under the earliest piece's id, so a later job's own id appears only in that job's
    read: one read per job that gets issues (reused when step 3 already made it), the
    pieces found by id when the job stores a task-level id, else by boxes
    (``annotations.match_job_pieces``). Calls do not grow with the number of frames.
    """
    from cvat_extension.cvat.annotations import match_job_pieces

    objects = sorted({int(t) for it in items for t in it.track_ids})
    out: dict[int, int] = {}
    if not jobs_overlap(snap):
        for sid in objects:
            piece = snap.piece_in_job(sid, job.id)
            if piece is not None:
                out[sid] = int(piece)
        return out
    raw = raws.get(job.id)
    if raw is None:
        raw = raws[job.id] = api.get_job_annotations(job.id)
    stored = set(job_annotations_by_id(raw))
    for sid in objects:
        mine = [p for p in snap.pieces_of(sid) if p in stored]
        if mine:
            out[sid] = int(mine[0])
    missing = [sid for sid in objects if sid not in out]
    if missing:
        out.update(match_job_pieces(snap, job, raw, missing))
    return out


def job_hash(snap: TaskSnapshot, job: JobInfo) -> str:
    tracks = [t for t in snap.raw.get("tracks") or [] if snap.job_of_piece(int(t.get("id") or -1)) == job.id]
    return content_hash({"tracks": tracks})


def write_report(api: Any, cfg: SyncConfig, snap: TaskSnapshot, items: Sequence[ReviewItem]) -> Path:
    from cvat_extension.report.html import write_report

    out = Path(cfg.state.report_dir) / f"task-{snap.task_id}"
    return write_report(out, tracks=snap.dense, info=snap.info, items=list(items),
                        frames=FrameCache(api, snap.task_id), title=f"Track review: {snap.name}")
