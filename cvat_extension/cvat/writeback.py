"""Safe writes to a CVAT job: plan, back up, re-check, write, journal, resume.

The order for one job is fixed, and every step is recorded before the next starts:

1. **plan** the PATCH operations from the job's annotations as read (``update`` the tracks
   that absorb fragments, then ``delete`` the absorbed fragments);
2. **back up** the job's annotations (``backup.py``) and open a **journal** entry holding
   the operations;
3. **re-read** the job right before writing; if its ``updated_date`` or annotation content
   changed since the read, abort with :class:`ConcurrentEditError` and write nothing;
4. **write** each operation, advancing the journal after each one; with a
   :class:`~cvat_extension.cvat.leases.JobLease` the job's lease is renewed before the
   re-read and before each write, and a lost lease stops the job before that write
   (:class:`~cvat_extension.cvat.leases.LeaseLostError`; the journal stays ``planned`` for
   the worker that owns the job now).

The backup and the journal live in the state store, so the next run may be another
worker on another host: it needs nothing from this host's disk.

A run killed anywhere leaves a ``planned`` journal. The next run re-reads the job and finds
how many operations the server already holds by comparing the job's canonical content with
the backup plus the first *k* operations applied locally (``content.apply_ops``); it then
writes the rest. If the job matches no *k*, someone else edited it meanwhile: the job is
aborted and the backup stays for ``cvat-track restore``.

``update`` comes before ``delete`` so that no keyframe exists only in flight: after the
update the absorbing track already holds every keyframe of the fragment, so at no point can a
crash leave the job with fewer boxes than the annotator drew.

Merges follow CVAT's own merge rules (``cvat-interfaces.md`` §3.4, §3.10): same label and
shape type, keyframes of all pieces copied, at most one visible shape per frame, each piece's
closing ``outside`` keyframe kept so gaps are not interpolated, leading ``outside`` keyframes
dropped, track-level (immutable) attributes from the first piece. A merge joins pieces of one
job only (CVAT stores tracks per job).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cvat_extension.cvat.backup import load_job_backup, save_backup
from cvat_extension.cvat.content import apply_ops, canonical, content_hash
from cvat_extension.cvat.leases import JobLease
from cvat_extension.cvat.state_store import JournalRecord, StateStore
from cvat_extension.errors import ConcurrentEditError, CvatSyncError

__all__ = [
    "JobWritePlan",
    "MergeConflict",
    "execute_plan",
    "match_progress",
    "merge_track_dicts",
    "plan_job_writes",
    "resume_journal",
]

logger = logging.getLogger(__name__)


class MergeConflict(CvatSyncError):
    """Two pieces cannot be merged under CVAT's rules (the merge is left for review)."""


def _last_frame(track: Mapping[str, Any]) -> int:
    return max(int(s["frame"]) for s in track["shapes"])


def _is_open(track: Mapping[str, Any]) -> bool:
    """True when the track's last keyframe is visible: CVAT extends it to the job's end."""
    last = max(track["shapes"], key=lambda s: int(s["frame"]))
    return not bool(last.get("outside", False))


def merge_track_dicts(into: Mapping[str, Any], parts: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """One CVAT track holding the keyframes of ``into`` and ``parts`` (CVAT merge rules).

    Args:
        into: the track that keeps its id (the first piece in time).
        parts: later pieces to absorb, any order.

    Returns:
        A track dict for ``PATCH action=update`` of ``into["id"]`` (shape ids dropped: the
        server renumbers them).

    Raises:
        MergeConflict: labels or shape types differ, a piece has skeleton elements, two
            visible shapes fall on one frame, or a piece that is not the last is open-ended
            (CVAT shows it up to the end of the job, so it overlaps the later pieces).
    """
    pieces = sorted([into, *parts], key=lambda t: min(int(s["frame"]) for s in t["shapes"]))
    if pieces[0] is not into and pieces[0].get("id") != into.get("id"):
        raise MergeConflict(
            f"track {into.get('id')}: starts after track {pieces[0].get('id')}; "
            "the absorbing track must be the first piece"
        )
    for p in pieces:
        if p.get("label_id") != into.get("label_id"):
            raise MergeConflict(
                f"tracks {into.get('id')} and {p.get('id')}: labels differ "
                f"({into.get('label_id')} vs {p.get('label_id')})"
            )
        if p.get("elements"):
            raise MergeConflict(f"track {p.get('id')}: skeleton tracks are not merged")
        types = {s.get("type") for s in p["shapes"]}
        if types - {"rectangle"} and types != {s.get("type") for s in into["shapes"]}:
            raise MergeConflict(f"track {p.get('id')}: shape types differ from track {into.get('id')}")
        if "mask" in types:
            raise MergeConflict(f"track {p.get('id')}: masks cannot be merged in CVAT")
    for p in pieces[:-1]:
        if _is_open(p):
            raise MergeConflict(
                f"track {p.get('id')}: last keyframe at frame {_last_frame(p)} is not outside, "
                "so CVAT shows it to the end of the job; it would overlap the later piece"
            )
    by_frame: dict[int, dict[str, Any]] = {}
    for p in pieces:
        for s in p["shapes"]:
            f = int(s["frame"])
            shape = {k: v for k, v in s.items() if k != "id"}
            held = by_frame.get(f)
            if held is None:
                by_frame[f] = shape
            elif not held.get("outside") and not shape.get("outside"):
                raise MergeConflict(
                    f"tracks {into.get('id')} and {p.get('id')}: two visible shapes at frame {f} "
                    "(CVAT: expected only one visible shape per frame)"
                )
            elif held.get("outside") and not shape.get("outside"):
                # A piece's closing outside keyframe where the next piece starts: the visible
                # shape wins, as in CVAT's merge.
                by_frame[f] = shape
    frames = sorted(by_frame)
    while frames and by_frame[frames[0]].get("outside"):
        frames.pop(0)  # leading outside keyframes carry nothing
    if not frames:
        raise MergeConflict(f"track {into.get('id')}: no visible shape left after merging")
    merged = {k: v for k, v in into.items() if k not in ("shapes", "elements")}
    merged["frame"] = frames[0]
    merged["shapes"] = [by_frame[f] for f in frames]
    merged["elements"] = []
    return merged


@dataclass
class JobWritePlan:
    """The writes planned for one job.

    Attributes:
        job_id: the job.
        task_id: its task.
        base: the job's annotations as read (what the plan was made from).
        base_updated_date: the job's ``updated_date`` at that read.
        ops: PATCH operations ``{"action": "update"|"delete", "payload": {...}}`` in order.
        merges: merges in the plan, ``{"into", "from", ...}`` with CVAT piece ids.
        refused: merges that CVAT's rules forbid, with the reason (left for review).
    """

    job_id: int
    task_id: int
    base: dict[str, Any]
    base_updated_date: str
    ops: list[dict[str, Any]] = field(default_factory=list)
    merges: list[dict[str, Any]] = field(default_factory=list)
    refused: list[dict[str, Any]] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        """True when nothing would be written."""
        return not self.ops


def plan_job_writes(
    *,
    job_id: int,
    task_id: int,
    annotations: Mapping[str, Any],
    updated_date: str,
    merges: Sequence[Mapping[str, Any]],
    replaced_tracks: Sequence[Mapping[str, Any]] = (),
) -> JobWritePlan:
    """Turn merges (CVAT piece ids of this job) into PATCH operations.

    Args:
        job_id: the job.
        task_id: its task.
        annotations: the job's annotation JSON as read.
        updated_date: the job's ``updated_date`` at that read.
        merges: ``{"into", "from", ...}``; several with one ``into`` form a chain.
        replaced_tracks: other whole tracks to write back changed (keyframe thinning).

    Returns:
        The plan; merges whose pieces are not in this job or break CVAT's rules are in
        ``refused``.
    """
    tracks = {int(t["id"]): t for t in annotations.get("tracks") or []}
    plan = JobWritePlan(job_id, task_id, dict(annotations), updated_date)
    chains: dict[int, list[Mapping[str, Any]]] = {}
    for m in merges:
        chains.setdefault(int(m["into"]), []).append(m)
    updates: dict[int, dict[str, Any]] = {int(t["id"]): dict(t) for t in replaced_tracks}
    deletes: list[Mapping[str, Any]] = []
    for into_id, links in sorted(chains.items()):
        missing = [i for i in [into_id, *(int(m["from"]) for m in links)] if i not in tracks]
        if missing:
            for m in links:
                plan.refused.append({**m, "reason": f"track(s) {missing} not in job {job_id}"})
            continue
        parts = [tracks[int(m["from"])] for m in links]
        try:
            merged = merge_track_dicts(updates.get(into_id, tracks[into_id]), parts)
        except MergeConflict as exc:
            for m in links:
                plan.refused.append({**m, "reason": str(exc)})
            continue
        updates[into_id] = merged
        deletes.extend(parts)
        plan.merges.extend(dict(m) for m in links)
    for p in deletes:
        updates.pop(int(p["id"]), None)
    if updates:
        plan.ops.append({"action": "update", "payload": {"tracks": list(updates.values())}})
    if deletes:
        plan.ops.append({"action": "delete", "payload": {"tracks": [dict(p) for p in deletes]}})
    return plan


def match_progress(
    current: Mapping[str, Any], base: Mapping[str, Any], ops: Sequence[Mapping[str, Any]]
) -> int | None:
    """How many of ``ops`` the server already holds, or None if the job matches none.

    Checks the most advanced state first, so an operation whose answer was lost but which
    the server applied counts as done.
    """
    target = canonical(current)
    for k in range(len(ops), -1, -1):
        if canonical(apply_ops(base, ops[:k])) == target:
            return k
    return None


def _write(api: Any, store: StateStore, job_id: int, ops: Sequence[Mapping[str, Any]], start: int,
           lease: JobLease | None) -> None:
    for i in range(start, len(ops)):
        op = ops[i]
        if lease is not None:
            lease.ensure(job_id, f"annotation write {i + 1}/{len(ops)}")
        api.patch_job_annotations(job_id, op["action"], op["payload"])
        store.advance_journal(job_id, i + 1)
        logger.info("job %d: %s %d object(s) (%d/%d)", job_id, op["action"],
                    sum(len(v) for v in op["payload"].values()), i + 1, len(ops))


def execute_plan(
    api: Any, store: StateStore, plan: JobWritePlan, *, backup_dir: str | None, run_id: str,
    lease: JobLease | None = None,
) -> str:
    """Back up, re-check and write ``plan``; return the job's content hash afterwards.

    ``backup_dir``: folder for an extra local copy of the backup (None: store only).
    ``lease``: renewed before the re-check and before each write (None: no lease kept,
    e.g. a single-worker tool).

    Raises:
        ConcurrentEditError: the job changed since it was read; nothing was written.
        LeaseLostError: another worker took the job over; nothing more was written.
        CvatTransientError: CVAT kept failing; the journal lets the next run resume.
    """
    base_hash = content_hash(plan.base)
    if plan.empty:
        return base_hash
    backup = save_backup(
        store, backup_dir, job_id=plan.job_id, task_id=plan.task_id,
        annotations=plan.base, updated_date=plan.base_updated_date,
    )
    store.begin_journal(
        JournalRecord(
            job_id=plan.job_id, run_id=run_id, base_hash=base_hash, ops=plan.ops, ops_done=0,
            status="planned", backup_path=backup.path, merges=plan.merges, updated_at=time.time(),
        )
    )
    if lease is not None:
        lease.ensure(plan.job_id, "the pre-write check")
    job = api.get_job(plan.job_id)
    current = api.get_job_annotations(plan.job_id)
    changed = []
    if job.get("updated_date") != plan.base_updated_date:
        changed.append(f"updated_date {plan.base_updated_date} → {job.get('updated_date')}")
    if content_hash(current) != base_hash:
        changed.append("annotation content")
    if changed:
        store.finish_journal(plan.job_id, "aborted")
        raise ConcurrentEditError(
            f"job {plan.job_id}: changed since it was read ({', '.join(changed)}); "
            "nothing written, it will be checked again on the next run"
        )
    _write(api, store, plan.job_id, plan.ops, 0, lease)
    store.finish_journal(plan.job_id, "done")
    store.record_merges(plan.job_id, plan.merges)
    return content_hash(apply_ops(plan.base, plan.ops))


def resume_journal(
    api: Any, store: StateStore, journal: JournalRecord, *, lease: JobLease | None = None
) -> str:
    """Finish the writes of an interrupted run (journal ``planned``); return the content hash.

    The base the operations were planned on comes from the backup in the state store (the
    one whose content hash is the journal's ``base_hash``), so a worker on any host can
    resume; ``lease`` is renewed before each write.

    Raises:
        ConcurrentEditError: the job matches neither the backup nor any partial write: it
            was edited meanwhile; the journal is closed as ``aborted`` and the backup kept.
        LeaseLostError: another worker took the job over; nothing more was written.
        InputError: the backup is missing from the store (and from its local path).
    """
    base = load_job_backup(store, journal.job_id, journal.base_hash)["annotations"]
    current = api.get_job_annotations(journal.job_id)
    done = match_progress(current, base, journal.ops)
    if done is None:
        store.finish_journal(journal.job_id, "aborted")
        raise ConcurrentEditError(
            f"job {journal.job_id}: edited while an interrupted write was pending; nothing "
            f"more written (backup {journal.base_hash[:12]} in the state store)"
        )
    if done < len(journal.ops):
        logger.info("job %d: resuming interrupted write at operation %d/%d",
                    journal.job_id, done + 1, len(journal.ops))
    store.advance_journal(journal.job_id, done)
    _write(api, store, journal.job_id, journal.ops, done, lease)
    store.finish_journal(journal.job_id, "done")
    store.record_merges(journal.job_id, journal.merges)
    return content_hash(apply_ops(base, journal.ops))
