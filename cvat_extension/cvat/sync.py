"""The CVAT loop: finished jobs → checks → merges → issues and stage changes, safely.

One run (:func:`run_sync`):

1. list finished jobs (``jobs.py``); skip those whose ``updated_date`` equals the one we
   last processed and that have no interrupted write (no annotation read at all);
2. claim the task as a whole (a lease under the task's negative key), then each remaining
   job with a lease in the state store (other workers skip the task, so one worker reads it;
   a job another worker processed since this run read the store is not claimed again);
   the leases are renewed at every step below and every write is preceded by a renewal, so
   a job running past ``lease_s`` is not taken over, and a job that was taken over anyway
   is stopped before its next write (``leases.py``);
3. per task: finish interrupted writes (``writeback.resume_journal``), read the task once
   (``annotations.read_task``), stitch job pieces, propose fragment merges, and apply the
   merges that join pieces of one finished job (``writeback``: backup → re-check → PATCH
   update + delete, journaled); merges across a job boundary or below the score threshold
   become review items instead. With segment overlap a gap inside the overlap frames is in
   two jobs, each storing its own copy of both pieces: the merge is written to every job
   holding both pieces (ids of later jobs' copies found by boxes,
   ``annotations.match_job_pieces``), or, when one of them is not finished work or refuses
   it, to none and becomes a review item, so the jobs never disagree. The run's writes to a
   task are one task-level plan (``task_write``): recorded before the first write, every
   holder checked before any is written, rolled back as a whole on a failure, read back
   afterwards (``task_view``), resumed as a whole after a kill; planning is in
   ``sync_merges``;
4. re-read the task if anything was written, run the checks (and, with overlap, compare
   the holders' copies of the shared frames: ``holders``), plan review items (at least
   ``sync.review.min_items_per_job`` per job), push one
   issue per item to the job holding its frame (the earliest one when jobs overlap, so a
   finding in overlap frames is pushed once; ``review_push``), then move the job per
   ``sync.review`` (validation + reviewer, or rejected back to annotation; clean jobs
   optionally to acceptance), each job backed up before its first write of any kind
   (``sync_review``);
5. record the job as processed (its final ``updated_date``), release the lease.

Every step is idempotent or journaled, so a run killed anywhere or a CVAT failure loses
nothing: the next run resumes, on any host (backups and journals live in the state store).

The task lease only saves calls: correctness rests on the job leases, because every write
is per job. A worker whose job list is stale may find a task held and skip its jobs this
run; they are picked up by the next run (the lease is released when the task is done). A job edited by someone while we worked is left untouched
(:class:`ConcurrentEditError`) and checked again next run.

A job's ``updated_date`` moves when we write to it, so the processed mark is taken after our
last call to that job; a second run over unchanged jobs therefore makes no writes and reads
nothing but the job list.
"""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cvat_extension.core.findings import Finding, ReviewItem
from cvat_extension.cvat.annotations import read_task
from cvat_extension.cvat.config import OnFindings, SyncConfig
from cvat_extension.cvat.holders import disagreeing_holders
from cvat_extension.cvat.jobs import JobInfo, list_finished_jobs
from cvat_extension.cvat.leases import JobLease, LeaseLostError
from cvat_extension.cvat.review_push import IssuePlan, plan_issue
from cvat_extension.cvat.state_store import StateStore, task_lease_key
from cvat_extension.cvat.sync_merges import (
    blocked_merges,
    describe_plan,
    fragment_finding,
    key_text,
    plan_job,
    resolve_job_pieces,
    task_plan,
    write_task_plan,
)
from cvat_extension.cvat.sync_review import finish_job, job_track_ids, jobs_overlap, with_floor, write_report
from cvat_extension.cvat.task_write import PlanRolledBack, finish_task_plan, resume_task_plan
from cvat_extension.cvat.writeback import JobWritePlan, resume_journal
from cvat_extension.errors import ConcurrentEditError, ConfigError, CvatSyncError, CvatTrackError

__all__ = ["SyncSummary", "run_sync"]

logger = logging.getLogger(__name__)

#: Progress callback: (what, done, total).
Progress = Callable[[str, int, int], None]


@dataclass
class SyncSummary:
    """What one run did (printed by the CLI, stored in the state store's ``runs`` table)."""

    run_id: str
    dry_run: bool = False
    jobs_listed: int = 0
    jobs_checked: int = 0
    jobs_unchanged: int = 0
    jobs_busy: int = 0
    findings_by_kind: Counter[str] = field(default_factory=Counter)
    items: int = 0
    issues_opened: int = 0
    issues_still_open: int = 0
    issues_resolved_respected: int = 0
    merges_applied: int = 0
    merges_refused: int = 0
    writes_resumed: int = 0
    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    concurrent_edits: list[str] = field(default_factory=list)
    leases_lost: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    reports: list[str] = field(default_factory=list)
    api_calls: int = 0

    def to_json(self) -> dict[str, Any]:
        """JSON form (stable keys)."""
        return {
            "run_id": self.run_id,
            "dry_run": self.dry_run,
            "jobs_listed": self.jobs_listed,
            "jobs_checked": self.jobs_checked,
            "jobs_unchanged": self.jobs_unchanged,
            "jobs_busy": self.jobs_busy,
            "findings_by_kind": dict(sorted(self.findings_by_kind.items())),
            "review_items": self.items,
            "issues_opened": self.issues_opened,
            "issues_still_open": self.issues_still_open,
            "issues_resolved_respected": self.issues_resolved_respected,
            "merges_applied": self.merges_applied,
            "merges_refused": self.merges_refused,
            "writes_resumed": self.writes_resumed,
            "stage_changes": self.stage_changes,
            "concurrent_edits": self.concurrent_edits,
            "leases_lost": self.leases_lost,
            "failures": self.failures,
            "planned": self.planned,
            "reports": self.reports,
            "api_calls": self.api_calls,
        }

    @property
    def ok(self) -> bool:
        """True when every selected job was handled (none failed or was edited meanwhile).

        A lost lease is not a failure: the worker that took the job over handles it."""
        return not self.failures and not self.concurrent_edits


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _dead_local_worker(holder: str | None) -> bool:
    """True when ``holder`` names a process on this host that no longer exists.

    A sync killed mid-run keeps its leases until they expire; the next run on the same
    machine can see that the holder is gone and take over at once.
    """
    if not holder or ":" not in holder:
        return False
    host, _, pid = holder.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _claim(store: StateStore, job_id: int, worker: str, lease_s: float,
           seen: Mapping[int, float] | None) -> bool:
    """Lease the job (or task key) unless another worker holds it or processed it since
    ``seen`` was taken."""
    if store.claim_job(job_id, worker, lease_s, seen=seen):
        return True
    held = store.lease_holder(job_id)
    if held is not None and held[0] != worker and _dead_local_worker(held[0]):
        logger.warning("job %d: taking over the lease of dead worker %s", job_id, held[0])
        return store.claim_job(job_id, worker, lease_s, steal_from=held[0], seen=seen)
    return False


def run_sync(
    api: Any,
    store: StateStore,
    cfg: SyncConfig,
    *,
    task_id: int | None = None,
    job_id: int | None = None,
    dry_run: bool = False,
    thin_keyframes: bool | None = None,
    report: bool = True,
    worker: str | None = None,
    progress: Progress | None = None,
) -> SyncSummary:
    """One pass of the loop over the finished jobs (optionally of one task or one job).

    Transient CVAT failures of a task are recorded in ``summary.failures`` and the other
    tasks go on; the failed task resumes next run.

    Raises:
        CvatSyncError: the job list itself cannot be read (nothing was done).
    """
    summary = SyncSummary(run_id=uuid.uuid4().hex[:12], dry_run=dry_run)
    started = time.time()
    calls_before = sum(api.calls.values())
    worker = worker or _worker_name()
    thin = cfg.merge.thin_keyframes if thin_keyframes is None else thin_keyframes
    _validate_settings(cfg)
    # Taken before listing: a job another worker finishes after this is not claimed again.
    seen = store.processed_marks()
    jobs = list_finished_jobs(api, cfg.jobs, task_id=task_id, job_id=job_id)
    summary.jobs_listed = len(jobs)
    by_task: dict[int, list[JobInfo]] = {}
    for job in jobs:
        by_task.setdefault(job.task_id, []).append(job)
    lease = None if dry_run else JobLease(store, worker, cfg.state.lease_s)
    for n, (tid, tjobs) in enumerate(sorted(by_task.items()), start=1):
        todo: list[JobInfo] = []
        candidates: list[JobInfo] = []
        for job in tjobs:
            rec = store.get_job(job.id)
            journal = store.journal(job.id)
            pending = journal is not None and journal.status == "planned"
            if not pending and rec is not None and rec.updated_date == job.updated_date:
                summary.jobs_unchanged += 1
                continue
            candidates.append(job)
        task_held = False
        if candidates and not dry_run:
            task_held = _claim(store, task_lease_key(tid), worker, cfg.state.lease_s, None)
            if not task_held:
                summary.jobs_busy += len(candidates)  # another worker is on this task
                candidates = []
        for job in candidates:
            if not dry_run and not _claim(store, job.id, worker, cfg.state.lease_s, seen):
                summary.jobs_busy += 1
                continue
            todo.append(job)
        if not todo and task_held:
            store.release_job(task_lease_key(tid), worker)
        if todo:
            try:
                if cfg.attention.enabled and not dry_run:  # before our writes: the annotator's pass
                    from cvat_extension.cvat.attention import sync_attention
                    sync_attention(api, store, cfg.attention, [job.id for job in todo])
                _sync_task(api, store, cfg, tid, todo, summary, dry_run=dry_run, thin=thin,
                           report=report, lease=lease)
            except ConfigError:
                raise
            except CvatTrackError as exc:
                # CVAT failures, and annotations we cannot parse (names the element): this
                # task is left for the next run, the other tasks go on.
                if isinstance(exc, ConcurrentEditError):
                    summary.concurrent_edits.append(str(exc))
                else:
                    summary.failures.append(f"task {tid}: {type(exc).__name__}: {exc}")
                logger.warning("task %d: %s; it will be resumed by the next run", tid, exc)
            finally:
                if not dry_run:
                    for job in todo:
                        store.release_job(job.id, worker)
                    store.release_job(task_lease_key(tid), worker)
        if progress is not None:
            progress("tasks", n, len(by_task))
    summary.api_calls = sum(api.calls.values()) - calls_before
    if not dry_run:
        store.record_run(summary.run_id, started, summary.to_json())
    return summary


def _validate_settings(cfg: SyncConfig) -> None:
    """Fail before touching CVAT when check, merge or review settings are invalid.

    Raises:
        ConfigError: names the ``sync.*`` key.
    """
    import inspect

    from cvat_extension.core.checks import ChecksConfig
    from cvat_extension.core.merge import MergeConfig
    from cvat_extension.core.review import plan_review

    try:
        ChecksConfig.from_mapping(dict(cfg.checks))
    except ConfigError as exc:
        raise ConfigError(f"sync.checks: {exc}") from exc
    try:
        MergeConfig(**dict(cfg.merge.options))
    except TypeError as exc:
        raise ConfigError(f"sync.merge.options: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"sync.merge.options: {exc}") from exc
    allowed = set(inspect.signature(plan_review).parameters) - {"findings", "num_frames", "min_score"}
    unknown = sorted(set(cfg.review.options) - allowed)
    if unknown:
        raise ConfigError(f"sync.review.options: unknown key(s) {unknown}; valid: {sorted(allowed)}")


# ---------------------------------------------------------------------- one task
def _sync_task(
    api: Any,
    store: StateStore,
    cfg: SyncConfig,
    task_id: int,
    todo: list[JobInfo],
    summary: SyncSummary,
    *,
    dry_run: bool,
    thin: bool,
    report: bool,
    lease: JobLease | None = None,
) -> None:
    todo = list(todo)
    extra: list[int] = []  # holders of an interrupted plan that are not finished work now
    try:
        _sync_task_steps(api, store, cfg, task_id, todo, summary, dry_run=dry_run, thin=thin,
                         report=report, lease=lease, extra=extra)
    finally:
        if lease is not None:
            for jid in extra:
                store.release_job(jid, lease.worker)


def _resume_plan(api: Any, store: StateStore, task_id: int, todo: list[JobInfo],
                 summary: SyncSummary, lease: JobLease | None, extra: list[int]) -> Any:
    """Roll an interrupted task-level plan forward or back (as a whole) before anything else.

    Returns:
        The plan record when it was written (its read-back check is still due), else None.

    Raises:
        CvatSyncError: CVAT failed, or a holder is held by another worker: the plan stays
            pending and the task waits for the next run (nothing else is written to it).
    """
    rec = store.task_plan(task_id)
    if rec is None or rec.status not in ("planned", "written"):
        return None
    holders = [int(j["job_id"]) for j in rec.doc["jobs"]]
    mine = {j.id for j in todo}
    for jid in holders:
        if jid in mine or lease is None:
            continue
        if not _claim(store, jid, lease.worker, lease.lease_s, None):
            raise CvatSyncError(f"task {task_id}: job {jid} of an interrupted write is held by "
                                "another worker; the plan is resumed when it is free")
        extra.append(jid)
    try:
        rec = resume_task_plan(api, store, rec, lease=lease)
    except PlanRolledBack as exc:
        summary.writes_resumed += len(holders)
        summary.concurrent_edits.append(str(exc))
        for job in [j for j in todo if j.id in exc.edited]:
            todo.remove(job)  # edited meanwhile: checked again next run
        return None
    summary.writes_resumed += len(holders)
    return rec


def _sync_task_steps(
    api: Any, store: StateStore, cfg: SyncConfig, task_id: int, todo: list[JobInfo],
    summary: SyncSummary, *, dry_run: bool, thin: bool, report: bool, lease: JobLease | None,
    extra: list[int],
) -> None:
    from cvat_extension.core.merge import MergeConfig, applicable_merges, propose_merges

    # 1. Interrupted writes first: they were planned on the state the backup holds. A
    #    task-level plan (several holders) is completed or rolled back as a whole.
    written = None
    if not dry_run:
        written = _resume_plan(api, store, task_id, todo, summary, lease, extra)
        resumed: set[int] = set()
        if written is not None:
            resumed.update(int(j["job_id"]) for j in written.doc["jobs"])
        for job in list(todo):
            journal = store.journal(job.id)
            if journal is None or journal.status != "planned" or job.id in resumed:
                continue
            try:
                resume_journal(api, store, journal, lease=lease)
                summary.writes_resumed += 1
                summary.merges_applied += len(journal.merges)
                resumed.add(job.id)
            except ConcurrentEditError as exc:
                summary.concurrent_edits.append(str(exc))
                todo.remove(job)
            except LeaseLostError as exc:
                summary.leases_lost.append(str(exc))
                todo.remove(job)
        # Our own writes moved updated_date: the pre-write check must compare with the new one.
        resumed.update(extra)
        todo = [JobInfo.from_json(api.get_job(j.id)) if j.id in resumed else j for j in todo]
    if not todo:
        return

    # 2. Read, stitch, propose merges.
    snap = read_task(api, task_id, source_fps=cfg.cvat.source_fps)
    extra_findings: list[Finding] = []
    if written is not None:
        # The read-back check of a plan a killed run wrote but could not check.
        try:
            finish_task_plan(api, store, written, snap.dense, lease=lease)
            summary.merges_applied += sum(len(j["merges"]) for j in written.doc["jobs"])
        except PlanRolledBack as exc:
            summary.planned.append(str(exc))
            snap = read_task(api, task_id, source_fps=cfg.cvat.source_fps)
    todo = _keep_leases(lease, task_id, todo, "the merge plan (after the read)", summary)
    if not todo:
        return
    # After the lease check: a job another worker took over is not ours to merge in, so a
    # merge that needs it is refused for every holder instead of written to only some.
    todo_ids = {j.id for j in todo}
    merge_cfg = MergeConfig(**dict(cfg.merge.options))
    blocked = blocked_merges(store, task_id)
    by_job: dict[int, list[dict[str, Any]]] = {}
    merge_of: dict[tuple[int, int, int], Any] = {}
    if cfg.merge.enabled and len(snap.dense):
        proposed = propose_merges(snap.dense, config=merge_cfg, info=snap.info)
        # Only unambiguous links are written (chains re-rooted over them); a link with a
        # rival explanation or a low score becomes a review item naming both pieces.
        applicable = {(m.previous, m.from_): m for m in applicable_merges(proposed, cfg.merge.min_score)}
        for m in proposed:
            reason = None
            # Every job that holds both pieces (with segment overlap a gap inside the overlap
            # frames is in two jobs, each storing its own copy of both pieces) must merge,
            # or the jobs disagree and CVAT's task-level read splits the object again.
            holders = [j for j in snap.jobs if j.holds(int(m.end_frame)) and j.holds(int(m.start_frame))]
            m = applicable.get((m.previous, m.from_), m)  # chains re-rooted over applied links
            key = (int(m.into), int(m.previous), int(m.from_))
            if (m.previous, m.from_) not in applicable:
                reason = m.reason or f"score {m.score:.2f} below sync.merge.min_score {cfg.merge.min_score}"
            elif not holders:
                reason = "the pieces lie in different jobs (CVAT stores tracks per job)"
            elif key_text(key) in blocked:
                reason = f"an earlier merge was undone: {blocked[key_text(key)]}"
            else:
                idle = [j.id for j in holders if j.id not in todo_ids]
                if idle:
                    reason = f"job(s) {idle} holding the pieces are not finished work"
            if reason is not None:
                summary.merges_refused += 1
                extra_findings.append(fragment_finding(snap, m, reason))
                continue
            for holder in holders:
                into = snap.piece_in_job(m.into, holder.id) or snap.piece_in_job(m.previous, holder.id)
                frm = snap.piece_in_job(m.from_, holder.id)
                by_job.setdefault(holder.id, []).append(
                    {"into": None if into is None else int(into),
                     "from": None if frm is None else int(frm), "gap": int(m.gap_frames),
                     "score": round(float(m.score), 4), "object": int(m.into), "_key": key}
                )
            merge_of[key] = m

    # 3. Write merges (and thinning). A merge held by several jobs (overlap) is planned in
    #    all of them first and dropped from all when any of them refuses it; then every
    #    job's writes form one task-level plan: all holders written, or none (task_write).
    wrote = False
    plans: dict[int, JobWritePlan] = {}
    raws: dict[int, Any] = {}
    for job in todo:
        if job.id not in by_job and not thin:
            continue
        raws[job.id] = api.get_job_annotations(job.id)
        resolve_job_pieces(snap, job, raws[job.id], by_job.get(job.id, []))
    refused_keys: dict[tuple[int, int, int], str] = {}
    refused_before = -1
    while len(refused_keys) != refused_before:  # a refusal in one job re-plans the others
        refused_before = len(refused_keys)
        for job in todo:
            if job.id in raws:
                plans[job.id] = plan_job(snap, cfg, task_id, job, raws[job.id], by_job.get(job.id, []),
                                          refused_keys, thin=thin)
    for key, why in refused_keys.items():
        if key in merge_of:
            summary.merges_refused += 1
            summary.planned.append(f"merge of object {key[2]} into {key[0]} refused: {why}")
            extra_findings.append(fragment_finding(snap, merge_of[key], why))
    job_plans = [plans[j.id] for j in todo if j.id in plans and not plans[j.id].empty]
    for plan in job_plans:
        describe_plan(summary, plan)
    if dry_run:
        summary.merges_applied += sum(len(p.merges) for p in job_plans)
    elif job_plans:
        keys = [k for k in merge_of if k not in refused_keys]
        tplan = task_plan(snap, task_id, job_plans, keys, cfg, thin=thin, blocked=blocked)
        dropped = write_task_plan(api, store, cfg, tplan, summary, lease)
        wrote = True
        if dropped is None:
            snap = read_task(api, task_id, source_fps=cfg.cvat.source_fps)  # findings and issues refer to the merged tracks
            try:
                rec = store.task_plan(task_id)
                assert rec is not None  # execute_task_plan recorded it before writing
                finish_task_plan(api, store, rec, snap.dense, lease=lease)
                summary.merges_applied += sum(len(p.merges) for p in job_plans)
            except PlanRolledBack as exc:
                summary.planned.append(str(exc))
                snap = read_task(api, task_id, source_fps=cfg.cvat.source_fps)
                for key in keys:
                    summary.merges_refused += 1
                    extra_findings.append(fragment_finding(snap, merge_of[key], str(exc)))
        else:
            todo = [j for j in todo if j.id not in dropped]
            snap = read_task(api, task_id, source_fps=cfg.cvat.source_fps)
    if not todo:
        return

    # 4. Checks and review items.
    from cvat_extension.core.checks import ChecksConfig, run_checks
    from cvat_extension.core.review import plan_review

    findings = list(run_checks(snap.dense, config=ChecksConfig.from_mapping(dict(cfg.checks)),
                               info=snap.info))
    if not wrote:
        findings.extend(extra_findings)
    else:
        findings.extend(f for f in extra_findings if set(f.track_ids) <= set(snap.dense.ids.tolist()))
        raws = {}  # the job reads of step 3 predate our merges
    if jobs_overlap(snap):
        # Repair check: holders whose copies of the shared frames disagree (an older
        # version's crash, a human edit after our write) become review items.
        mine = {j.id for j in todo}
        near = {n.id for a, b in zip(snap.jobs, snap.jobs[1:]) if {a.id, b.id} & mine for n in (a, b)}
        for jid in sorted(near - set(raws)):
            raws[jid] = api.get_job_annotations(jid)
        findings.extend(disagreeing_holders(snap, {j: raws[j] for j in near}))
    review_opts: dict[str, Any] = dict(cfg.review.options)
    if cfg.review.frame_budget and snap.info.num_frames:
        review_opts["budget_frames_fraction"] = min(1.0, cfg.review.frame_budget / snap.info.num_frames)
    items = plan_review(findings, num_frames=snap.info.num_frames, min_score=cfg.review.min_score,
                        **review_opts)
    if cfg.review.min_items_per_job:
        everything = plan_review(findings, num_frames=snap.info.num_frames, min_score=cfg.review.min_score,
                                 **{**review_opts, "budget_frames_fraction": 1.0})
        items = with_floor(snap, items, everything, cfg.review.min_items_per_job)
    todo = _keep_leases(lease, task_id, todo, "the review push (after the checks)", summary)
    if not todo:
        return
    todo_ids = {j.id for j in todo}
    summary.jobs_checked += len(todo)
    for f in findings:
        owner = snap.job_of_frame(f.frames[0])
        if owner is not None and owner.id in todo_ids:
            summary.findings_by_kind[f.kind] += 1

    issue_plans: dict[int, list[IssuePlan]] = {j.id: [] for j in todo}
    job_items: dict[int, list[ReviewItem]] = {}
    for item in items:
        owner = snap.job_of_frame(item.frame)
        if owner is None or owner.id not in issue_plans:
            continue  # its job is not finished work yet; pushed when it is
        job_items.setdefault(owner.id, []).append(item)
    for job in todo:
        if job.id in job_items:
            names = job_track_ids(api, snap, job, job_items[job.id], raws)
            issue_plans[job.id] = [plan_issue(snap, job, item, names) for item in job_items[job.id]]
    summary.items += sum(len(p) for p in issue_plans.values())

    reviewer_id = None
    if cfg.review.reviewer and cfg.review.on_findings is OnFindings.REVIEW and any(issue_plans.values()):
        reviewer_id = api.find_user_id(cfg.review.reviewer)

    # 5. Issues, stage changes, processed marks: each write only while the job is still ours.
    for job in todo:
        try:
            finish_job(api, store, cfg, task_id, job, snap, items, issue_plans[job.id], summary,
                        dry_run=dry_run, thin=thin, merged=job.id in by_job,
                        reviewer_id=reviewer_id, lease=lease, raw=raws.get(job.id))
        except LeaseLostError as exc:
            summary.leases_lost.append(str(exc))
            summary.jobs_checked -= 1  # the worker that owns it now checks it

    if report and not dry_run:
        summary.reports.append(str(write_report(api, cfg, snap, items)))


def _keep_leases(lease: JobLease | None, task_id: int, todo: list[JobInfo], step: str,
                 summary: SyncSummary) -> list[JobInfo]:
    """Renew the task's and each job's lease before ``step``; drop the jobs we lost.

    The task lease only keeps other workers from reading the task too (a lost one is
    harmless); a lost job lease means another worker owns that job now.
    """
    if lease is None:
        return todo
    lease.renew(task_lease_key(task_id))
    kept = []
    for job in todo:
        try:
            lease.ensure(job.id, step)
        except LeaseLostError as exc:
            summary.leases_lost.append(str(exc))
            continue
        kept.append(job)
    return kept

