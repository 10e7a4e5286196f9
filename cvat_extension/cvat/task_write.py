"""Writes that span several jobs of one task: every holder job or none, through kills and edits.

With segment overlap (CVAT's default for video) a fragment whose gap lies in the frames two
jobs share is stored twice, once per job, and CVAT's task-level read (and its "CVAT for
video 1.1" export) re-joins the jobs' copies by matching boxes in the overlap. A merge
written to one holder but not the other makes the copies disagree, and the task-level
view then shows the object frozen on extra frames next to a separate fragment. So a write
that touches several jobs is one **task-level plan** (:class:`TaskWritePlan`):

1. back up every holder (``backup.py``), then record the plan in the state store
   (``task_plans``: every holder, its backup's hash, its operations and the content hash it
   must end with) and open each holder's journal, all **before the first CVAT write**;
2. **pre-write check of every holder** (``updated_date`` and content equal to the read)
   before writing to any: one edited holder aborts the plan with nothing written;
3. write holder after holder; before each write the holder's ``updated_date`` is checked
   again (an edit landing meanwhile, or a lost lease, or a CVAT failure that outlives the
   retries **rolls back** every holder already written from its backup, keeping track ids);
4. the caller reads the task back and checks that CVAT's task-level view shows exactly the
   intended objects (:func:`verify_task_view`); on a mismatch the whole plan is rolled back
   (:func:`roll_back_plan`) and the merge becomes a review item saying why.

A run killed anywhere leaves the plan ``planned`` (or ``written``). The next run, on any
host, resumes the **whole** plan (:func:`resume_task_plan`): when every holder still holds
its backup plus some prefix of its operations nobody else edited it, so the plan is rolled
forward; when one holder was edited meanwhile, every other holder is rolled back. Never half.

Rolling back re-writes the backup's objects with their ids (``PATCH action=update`` with ids
re-creates an object under that id, as CVAT's ``JobAnnotation.update`` does) and deletes
what the plan created, so issues naming those ids stay valid; only when CVAT does not keep
the ids does it fall back to a ``PUT`` of the backup.

CVAT has no conditional write: an edit landing between the last check and the PATCH itself
cannot be detected before it is overwritten; PATCH is partial, so only the objects the plan
names are affected, and the backup holds their state before the write.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cvat_extension.core.tracks import Tracks
from cvat_extension.cvat.backup import load_job_backup, project, put_back, save_backup
from cvat_extension.cvat.content import apply_ops, canonical, content_hash
from cvat_extension.cvat.leases import JobLease, LeaseLostError
from cvat_extension.cvat.state_store import JournalRecord, StateStore, TaskPlanRecord
from cvat_extension.cvat.task_view import verify_task_view
from cvat_extension.cvat.writeback import JobWritePlan
from cvat_extension.errors import ConcurrentEditError, CvatSyncError

__all__ = [
    "PlanRolledBack",
    "TaskWritePlan",
    "execute_task_plan",
    "finish_task_plan",
    "plan_progress",
    "resume_task_plan",
    "roll_back_plan",
]

logger = logging.getLogger(__name__)

_KINDS = ("tags", "shapes", "tracks")


class PlanRolledBack(CvatSyncError):
    """A task-level plan was undone (or refused): no holder keeps any part of it.

    ``edited`` names holders someone else edited meanwhile: they were left as they are.
    """

    def __init__(self, message: str, *, job_ids: Sequence[int], edited: Sequence[int] = ()) -> None:
        super().__init__(message)
        self.job_ids = list(job_ids)
        self.edited = list(edited)


@dataclass
class TaskWritePlan:
    """The writes of one run to one task: one :class:`JobWritePlan` per holder job.

    Attributes:
        task_id: the task.
        jobs: non-empty job plans, in job order.
        expect: what the task-level read must show afterwards (:func:`task_view_expectation`).
        merge_keys: the merges' object keys ``[into, previous, from]`` (task-level ids).
        blocked: merges (``"into,previous,from"`` → why) whose write the read-back check
            refused earlier; carried from plan to plan so they are never tried again.
        plan_id: unique id of the plan.
    """

    task_id: int
    jobs: list[JobWritePlan]
    expect: dict[str, Any] = field(default_factory=dict)
    merge_keys: list[list[int]] = field(default_factory=list)
    blocked: dict[str, str] = field(default_factory=dict)
    plan_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])

    def doc(self, backups: Mapping[int, str]) -> dict[str, Any]:
        """The plan as recorded in the state store."""
        return {
            "jobs": [{
                "job_id": p.job_id,
                "base_hash": backups[p.job_id],
                "base_updated_date": p.base_updated_date,
                "target_hash": content_hash(apply_ops(p.base, p.ops)),
                "ops": p.ops,
                "merges": p.merges,
            } for p in self.jobs],
            "expect": self.expect,
            "merge_keys": self.merge_keys,
            "blocked": self.blocked,
        }


# ---------------------------------------------------------------------------- execute
def execute_task_plan(
    api: Any, store: StateStore, plan: TaskWritePlan, *, backup_dir: str | None, run_id: str,
    lease: JobLease | None = None,
) -> TaskPlanRecord:
    """Back up and check every holder, then write them all (or roll back what was written).

    Returns:
        The plan record, status ``written``: the caller reads the task back and calls
        :func:`finish_task_plan`.

    Raises:
        ConcurrentEditError: a holder changed since it was read; nothing is left written
            (the plan is ``aborted`` or ``rolled_back``).
        LeaseLostError: another worker took a holder over; what this worker still holds is
            rolled back, else the plan stays ``planned`` for the new owner to resume.
        CvatSyncError: CVAT kept failing; the written holders are rolled back, or, when even
            that fails, the plan stays ``planned`` and the next run resumes it.
    """
    backups: dict[int, str] = {}
    for p in plan.jobs:
        rec = save_backup(store, backup_dir, job_id=p.job_id, task_id=p.task_id,
                          annotations=p.base, updated_date=p.base_updated_date)
        backups[p.job_id] = rec.content_hash
    doc = plan.doc(backups)
    now = time.time()
    record = TaskPlanRecord(plan.task_id, plan.plan_id, run_id, "planned", doc, now)
    store.begin_task_plan(record)
    for j in doc["jobs"]:
        store.begin_journal(JournalRecord(
            job_id=j["job_id"], run_id=run_id, base_hash=j["base_hash"], ops=j["ops"], ops_done=0,
            status="planned", backup_path=plan.plan_id, merges=j["merges"], updated_at=now))
    # Every holder is checked before any is written.
    dates: dict[int, str] = {}
    changed: list[str] = []
    for p in plan.jobs:
        if lease is not None:
            try:
                lease.ensure(p.job_id, "the pre-write check")
            except LeaseLostError:
                _close(store, record, "aborted", "a holder's lease was lost before writing")
                raise
        job = api.get_job(p.job_id)
        current = api.get_job_annotations(p.job_id)
        what = []
        if job.get("updated_date") != p.base_updated_date:
            what.append(f"updated_date {p.base_updated_date} → {job.get('updated_date')}")
        if content_hash(current) != backups[p.job_id]:
            what.append("annotation content")
        if what:
            changed.append(f"job {p.job_id} ({', '.join(what)})")
        dates[p.job_id] = str(job.get("updated_date"))
    if changed:
        _close(store, record, "aborted", f"changed since read: {'; '.join(changed)}")
        holders = ", ".join(str(p.job_id) for p in plan.jobs)
        raise ConcurrentEditError(
            f"{'; '.join(changed)}: changed since it was read; nothing written to "
            f"job(s) {holders}, they will be checked again on the next run"
        )
    _write_all(api, store, record, {p.job_id: 0 for p in plan.jobs}, dates, lease)
    store.update_task_plan(plan.task_id, plan.plan_id, "written")
    return TaskPlanRecord(plan.task_id, plan.plan_id, run_id, "written", doc, time.time())


def _write_all(api: Any, store: StateStore, record: TaskPlanRecord, done: Mapping[int, int],
               dates: dict[int, str], lease: JobLease | None) -> None:
    """Write every holder's remaining operations; on any failure roll the plan back.

    ``dates``: each holder's ``updated_date`` as last seen; before each write it must not
    have moved (someone saved the job meanwhile).
    """
    jobs = record.doc["jobs"]
    try:
        for j in jobs:
            jid = int(j["job_id"])
            ops = j["ops"]
            for i in range(int(done[jid]), len(ops)):
                if lease is not None:
                    lease.ensure(jid, f"annotation write {i + 1}/{len(ops)}")
                now = str(api.get_job(jid).get("updated_date"))
                if now != dates[jid]:
                    raise ConcurrentEditError(
                        f"job {jid}: saved by someone else during a write spanning jobs "
                        f"{[int(x['job_id']) for x in jobs]} (updated_date {dates[jid]} → {now})"
                    )
                api.patch_job_annotations(jid, ops[i]["action"], ops[i]["payload"])
                store.advance_journal(jid, i + 1)
                dates[jid] = str(api.get_job(jid).get("updated_date"))
                logger.info("job %d: %s (%d/%d) of plan %s", jid, ops[i]["action"], i + 1, len(ops),
                            record.plan_id)
            store.finish_journal(jid, "done")
    except (CvatSyncError, LeaseLostError) as exc:
        if len(jobs) == 1 and not isinstance(exc, ConcurrentEditError):
            raise  # one holder cannot disagree with another: the next run resumes it
        try:
            roll_back_plan(api, store, record, reason=str(exc), lease=lease)
        except PlanRolledBack:
            pass
        except (CvatSyncError, LeaseLostError) as again:
            logger.warning("plan %s: rollback failed (%s); the next run resumes it", record.plan_id, again)
            raise exc from again
        raise


def _close(store: StateStore, record: TaskPlanRecord, status: str, reason: str) -> None:
    store.update_task_plan(record.task_id, record.plan_id, status, {**record.doc, "reason": reason})
    for j in record.doc["jobs"]:
        journal = store.journal(int(j["job_id"]))
        if journal is not None and journal.status == "planned":
            store.finish_journal(int(j["job_id"]), "aborted" if status != "done" else "done")


# ---------------------------------------------------------------------------- roll back
def _touched(ops: Sequence[Mapping[str, Any]]) -> dict[str, set[Any]]:
    """Ids of the objects ``ops`` write, per kind: the only ones a rollback puts back."""
    ids: dict[str, set[Any]] = {k: set() for k in _KINDS}
    for op in ops:
        for kind in _KINDS:
            ids[kind].update(o.get("id") for o in op["payload"].get(kind) or [])
    return ids


def plan_progress(current: Mapping[str, Any], base: Mapping[str, Any],
                  ops: Sequence[Mapping[str, Any]]) -> int | None:
    """How many of ``ops`` the objects they write show in ``current`` (None: someone else
    changed those objects). Other objects of the job may have been edited meanwhile: PATCH
    is partial, so completing or undoing ``ops`` leaves such edits alone."""
    ids = _touched(ops)
    target = canonical(project(current, ids))
    for k in range(len(ops), -1, -1):
        if canonical(project(apply_ops(base, ops[:k]), ids)) == target:
            return k
    return None


def roll_back_plan(api: Any, store: StateStore, record: TaskPlanRecord, *, reason: str,
                   lease: JobLease | None = None, all_or_nothing: bool = False) -> None:
    """Put the objects the plan wrote back to their backup state in every holder.

    A holder whose written objects match neither the backup nor the backup plus a prefix of
    its operations was edited there by someone else: it is left as it is and named. With
    ``all_or_nothing`` such a holder stops the whole rollback (after the read-back check:
    rolling back only the others would make the holders disagree).

    Raises:
        PlanRolledBack: always, once done, naming why.
        CvatSyncError, LeaseLostError: the rollback itself failed; the plan stays as it was.
    """
    jobs = record.doc["jobs"]
    states: dict[int, tuple[dict[str, Any], int | None]] = {}
    for j in jobs:
        jid = int(j["job_id"])
        base = load_job_backup(store, jid, j["base_hash"])["annotations"]
        states[jid] = (base, plan_progress(api.get_job_annotations(jid), base, j["ops"]))
    edited = [jid for jid, (_, k) in states.items() if k is None]
    ids = [int(j["job_id"]) for j in jobs]
    if all_or_nothing and edited:
        _close(store, record, "done", reason)
        raise PlanRolledBack(f"{reason}; left as it is: the tracks it wrote were edited since",
                             job_ids=ids, edited=edited or ids)
    for j in jobs:
        jid = int(j["job_id"])
        base, k = states[jid]
        if k is None or k == 0:
            continue
        if lease is not None:
            lease.ensure(jid, "the rollback")
        put_back(api, jid, base, ids=_touched(j["ops"]))
        logger.warning("job %d: rolled back plan %s (%s)", jid, record.plan_id, reason)
    note = reason + (f"; job(s) {edited}, edited by someone else there, left as they are" if edited else "")
    _close(store, record, "rolled_back", note)
    raise PlanRolledBack(f"rolled back: {note}", job_ids=ids, edited=edited)


# ---------------------------------------------------------------------------- resume
def resume_task_plan(api: Any, store: StateStore, record: TaskPlanRecord, *,
                     lease: JobLease | None = None) -> TaskPlanRecord:
    """Complete (roll forward) or roll back an interrupted plan, as a whole.

    Returns:
        The record, status ``written`` (the caller does the read-back check).

    Raises:
        PlanRolledBack: a holder was edited meanwhile; every other holder was put back.
        CvatSyncError, LeaseLostError: CVAT failed or a holder's lease is gone; the plan stays
            ``planned`` for the next run.
    """
    if record.status == "written":
        return record
    jobs = record.doc["jobs"]
    done: dict[int, int] = {}
    dates: dict[int, str] = {}
    edited = []
    for j in jobs:
        jid = int(j["job_id"])
        if lease is not None:
            lease.ensure(jid, "resuming plan " + record.plan_id)
        base = load_job_backup(store, jid, j["base_hash"])["annotations"]
        dates[jid] = str(api.get_job(jid).get("updated_date"))
        k = plan_progress(api.get_job_annotations(jid), base, j["ops"])
        if k is None:
            edited.append(jid)
        else:
            done[jid] = k
            store.advance_journal(jid, k)
    if edited:
        roll_back_plan(api, store, record,
                       reason=f"job(s) {edited} were edited while the interrupted write was pending",
                       lease=lease)
    logger.info("plan %s: resuming (operations done per job: %s)", record.plan_id, done)
    _write_all(api, store, record, done, dates, lease)
    store.update_task_plan(record.task_id, record.plan_id, "written")
    return TaskPlanRecord(record.task_id, record.plan_id, record.run_id, "written", record.doc,
                          time.time())


def finish_task_plan(api: Any, store: StateStore, record: TaskPlanRecord, dense: Tracks, *,
                     lease: JobLease | None = None) -> None:
    """Read-back check of a written plan against the task as read now (``dense``).

    Raises:
        PlanRolledBack: CVAT's task-level view differs from the intended one; the plan was
            rolled back (when every holder was still exactly as written), the message says why.
    """
    expect = record.doc.get("expect") or {}
    problems = verify_task_view(dense, expect)
    if problems and verify_task_view(dense, expect, counts=False) == []:
        # Only the box counts differ: that is our doing only if every holder is exactly
        # what we wrote (someone may have drawn or deleted boxes since).
        exact = all(content_hash(api.get_job_annotations(int(j["job_id"]))) == j["target_hash"]
                    for j in record.doc["jobs"])
        if not exact:
            problems = []
    if not problems:
        _close(store, record, "done", "")
        for j in record.doc["jobs"]:
            store.record_merges(int(j["job_id"]), j["merges"])
        return
    reason = "CVAT's task-level read after the write " + "; ".join(problems[:3])
    logger.warning("plan %s: %s", record.plan_id, reason)
    blocked = dict(record.doc.get("blocked") or {})
    blocked.update({",".join(str(int(v)) for v in k): reason for k in record.doc.get("merge_keys", [])})
    record = TaskPlanRecord(record.task_id, record.plan_id, record.run_id, record.status,
                            {**record.doc, "blocked": blocked}, record.updated_at)
    roll_back_plan(api, store, record, reason=reason, lease=lease, all_or_nothing=True)
