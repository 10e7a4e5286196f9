"""Merge planning for one sync pass: pieces per holder job, refusals, the task-level plan.

Split from ``sync.py`` (planning writes vs running the pass): which jobs hold a proposed
merge's pieces and under which ids, which merges CVAT's rules or an earlier rolled-back
attempt refuse (they become fragment review items), and the run's writes to a task as one
:class:`~cvat_extension.cvat.task_write.TaskWritePlan` with what the task-level read must show.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from cvat_extension.core.findings import Finding
from cvat_extension.core.merge import merge_findings
from cvat_extension.cvat.annotations import TaskSnapshot, job_annotations_by_id
from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.jobs import JobInfo
from cvat_extension.cvat.leases import JobLease, LeaseLostError
from cvat_extension.cvat.state_store import StateStore
from cvat_extension.cvat.task_view import task_view_expectation
from cvat_extension.cvat.task_write import TaskWritePlan, execute_task_plan
from cvat_extension.cvat.writeback import JobWritePlan, plan_job_writes
from cvat_extension.errors import ConcurrentEditError, CvatSyncError

if TYPE_CHECKING:
    from cvat_extension.cvat.sync import SyncSummary

__all__ = [
    "blocked_merges",
    "describe_plan",
    "fragment_finding",
    "key_text",
    "plan_job",
    "resolve_job_pieces",
    "task_plan",
    "write_task_plan",
]


def key_text(key: Sequence[int]) -> str:
    """A merge's object key ``(into, previous, from)`` as stored in a plan's ``blocked``."""
    return ",".join(str(int(k)) for k in key)


def blocked_merges(store: StateStore, task_id: int) -> dict[str, str]:
    """Merges (object keys) whose write CVAT's task-level read showed wrong and that were
    rolled back: proposed again on the same task, they become review items instead."""
    rec = store.task_plan(task_id)
    return dict(rec.doc.get("blocked") or {}) if rec is not None else {}


def task_plan(snap: TaskSnapshot, task_id: int, job_plans: list[JobWritePlan],
              keys: Sequence[tuple[int, int, int]], cfg: SyncConfig, *, thin: bool,
              blocked: Mapping[str, str]) -> TaskWritePlan:
    """The run's writes to one task as one plan, with what the task-level read must show."""
    objects: dict[int, list[int]] = {}
    for into, _previous, from_ in keys:
        objects.setdefault(int(into), []).append(int(from_))
    jobs = {j.id: j for j in snap.jobs}
    lo = min(jobs[p.job_id].start_frame for p in job_plans)
    hi = max(jobs[p.job_id].stop_frame for p in job_plans)
    expect = task_view_expectation(snap.dense, objects, (lo, hi),
                                   tolerance_px=cfg.merge.thin_tolerance_px if thin else 0.01)
    return TaskWritePlan(task_id, job_plans, expect=expect, merge_keys=[list(k) for k in keys],
                         blocked=dict(blocked))


def write_task_plan(api: Any, store: StateStore, cfg: SyncConfig, plan: TaskWritePlan,
                    summary: SyncSummary, lease: JobLease | None) -> set[int] | None:
    """Execute the plan; None when written, else the holders to leave for the next run.

    Raises:
        CvatSyncError: CVAT kept failing and the plan could not be rolled back either; it
            stays pending and the next run resumes it.
    """
    holders = {p.job_id for p in plan.jobs}
    try:
        execute_task_plan(api, store, plan, backup_dir=cfg.state.backup_dir, run_id=summary.run_id,
                          lease=lease)
    except ConcurrentEditError as exc:
        summary.concurrent_edits.append(str(exc))
        return holders  # every holder is checked again next run, together
    except LeaseLostError as exc:
        summary.leases_lost.append(str(exc))
        return holders
    except CvatSyncError as exc:
        rec = store.task_plan(plan.task_id)
        if rec is not None and rec.status == "rolled_back":
            summary.failures.append(f"task {plan.task_id}: {type(exc).__name__}: {exc}; rolled back")
            return holders
        raise
    return None


def fragment_finding(snap: TaskSnapshot, m: Any, reason: str) -> Finding:
    """The review item of a merge that is not applied, saying why (``reason``).

    The finding itself is the core's (``merge_findings``: a link with rivals scores 0.45 of
    its motion score and names them); sync adds why it did not write the link.
    """
    (f,) = merge_findings([m], snap.dense, frame_base=snap.info.frame_base)
    why = "" if reason == getattr(m, "reason", "") else f"; not merged automatically: {reason}"
    return replace(f, message=f.message + why, metrics={**f.metrics, "gap_frames": float(m.gap_frames)})


def resolve_job_pieces(snap: TaskSnapshot, job: JobInfo, job_raw: Any,
                       merges: list[dict[str, Any]]) -> None:
    """Fill the piece ids the task-level read does not show (later jobs' copies, overlap)."""
    from cvat_extension.cvat.annotations import match_job_pieces

    stored = set(job_annotations_by_id(job_raw))
    for mm in merges:
        # A task-level id is the earliest piece's; with overlap it may belong to another job.
        for k in ("into", "from"):
            if mm[k] is not None and int(mm[k]) not in stored:
                mm[k] = None
    todo = [mm for mm in merges if mm["into"] is None or mm["from"] is None]
    if not todo:
        return
    objects = sorted({o for mm in todo for o in mm["_key"]})
    found = match_job_pieces(snap, job, job_raw, objects)
    for mm in todo:
        into, previous, from_ = mm["_key"]
        if mm["into"] is None:
            mm["into"] = found.get(into, found.get(previous))
        if mm["from"] is None:
            mm["from"] = found.get(from_)


def plan_job(snap: TaskSnapshot, cfg: SyncConfig, task_id: int, job: JobInfo, job_raw: Any,
             merges: list[dict[str, Any]], refused: dict[tuple[int, int, int], str], *,
             thin: bool) -> JobWritePlan:
    """Plan one job's writes without the merges refused anywhere; record new refusals."""
    replaced = thinned_tracks(snap, job, job_raw, cfg) if thin else []
    wanted = []
    for mm in merges:
        if mm["_key"] in refused:
            continue
        if mm["into"] is None or mm["from"] is None:
            refused[mm["_key"]] = f"job {job.id}: piece ids not found"
            continue
        wanted.append(mm)
    plan = plan_job_writes(job_id=job.id, task_id=task_id, annotations=job_raw,
                           updated_date=job.updated_date,
                           merges=[{k: v for k, v in mm.items() if k != "_key"} for mm in wanted],
                           replaced_tracks=replaced)
    keys = {(mm["into"], mm["from"]): mm["_key"] for mm in wanted}
    for r in plan.refused:
        key = keys.get((int(r["into"]), int(r["from"])))
        if key is not None:
            refused.setdefault(key, f"job {job.id}: merge {r['from']} into {r['into']}: {r['reason']}")
    return plan


def describe_plan(summary: SyncSummary, plan: JobWritePlan) -> None:
    for m in plan.merges:
        summary.planned.append(
            f"job {plan.job_id}: merge track {m['from']} into track {m['into']} "
            f"(gap {m.get('gap')}, score {m.get('score')})"
        )
    for op in plan.ops:
        n = sum(len(v) for v in op["payload"].values())
        summary.planned.append(f"job {plan.job_id}: PATCH action={op['action']} ({n} track(s))")


def thinned_tracks(snap: TaskSnapshot, job: JobInfo, job_raw: Mapping[str, Any],
                   cfg: SyncConfig) -> list[dict[str, Any]]:
    """Tracks of the job whose keyframes thinning reduces (PATCH update payloads)."""
    from cvat_extension.core.keyframes import expand_keyframes, thin_keyframes
    from cvat_extension.io.cvat_json import parse_labeled_data

    doc = parse_labeled_data(job_raw, labels=snap.labels, path=f"job {job.id} annotations")
    if not len(doc.tracks):
        return []
    dense = expand_keyframes(doc.tracks, stop_frame=job.stop_frame, job_stops=[job.stop_frame])
    thinned = thin_keyframes(dense, tolerance_px=cfg.merge.thin_tolerance_px, stop_frame=job.stop_frame)
    out = doc.to_labeled_data(thinned, stop_frame=job.stop_frame, changed_only=True)
    before = {int(t["id"]): len(t["shapes"]) for t in job_raw.get("tracks") or [] if t.get("id")}
    return [t for t in out["tracks"] if t.get("id") is not None
            and len(t["shapes"]) < before.get(int(t["id"]), 0)]
