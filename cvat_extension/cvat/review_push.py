"""Review items → CVAT issues, and the job stage/state change that hands them to people.

Each :class:`ReviewItem` becomes **one** issue on the job holding ``item.frame``, drawn at
the item's box, whose message names the check(s), the CVAT track id(s) as the reviewer sees
them in that job, and the frame range (not one issue per frame). With segment overlap the
task-level read shows an object under its earliest piece's id only; the ids a later job
stores come from that job's own read (``sync_review.job_track_ids``) and replace the task-level
ids in the whole message (:func:`rename_track_ids`).

Idempotence rests on a fingerprint of each item (kinds, objects, frame range), stored with
the issue id and a *region hash* (the boxes of the item's tracks over its range) in the
state store, and embedded in the issue's first comment as ``[cvat-track <fp>]``:

- fingerprint known, issue still open → nothing;
- issue resolved (or deleted) by a reviewer and the region unchanged → not raised again;
- region changed and the problem is still found → a new issue;
- fingerprint unknown to the store but present in a comment of the job (the store was lost,
  or the run died between the POST and the store write) → adopted, not duplicated;
- fingerprint unknown, but a known issue of the job is about the same finding: same check
  kind(s), same objects, overlapping frames (give or take :data:`FRAME_SLACK`). A finding's
  range and score shift a little between runs (a merge elsewhere changes the camera-motion
  estimate, an annotator nudges a box): the issue is kept and **updated** with a comment
  carrying the new range and tag, never duplicated; other open issues of ours about the same
  finding are **closed** with a comment naming the one kept.

Creating an issue is the only non-idempotent call of the loop, so a transient failure is
followed by a reconcile (list the job's comments) before any retry.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cvat_extension.core.findings import ReviewItem
from cvat_extension.core.tracks import Tracks
from cvat_extension.cvat.config import OnFindings
from cvat_extension.cvat.connection import CvatTransientError
from cvat_extension.cvat.state_store import IssueRecord, StateStore

if TYPE_CHECKING:
    from cvat_extension.cvat.annotations import TaskSnapshot
    from cvat_extension.cvat.config import SyncConfig
    from cvat_extension.cvat.jobs import JobInfo

__all__ = [
    "FRAME_SLACK",
    "IssuePlan",
    "fingerprint",
    "issue_message",
    "plan_issue",
    "push_issues",
    "region_hash",
    "rename_track_ids",
    "same_finding",
    "stage_change",
    "tally_push",
    "track_refs",
]

logger = logging.getLogger(__name__)

_TAG = re.compile(r"\[cvat-track ([0-9a-f]{16})\]")


def fingerprint(item: ReviewItem) -> str:
    """Stable 16-hex id of an item: its check kinds, objects and frame range."""
    key = json.dumps([sorted(item.kinds), sorted(int(t) for t in item.track_ids),
                      [int(item.frames[0]), int(item.frames[1])]])
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def region_hash(dense: Tracks, track_ids: Iterable[int], frames: tuple[int, int]) -> str:
    """Hash of the boxes of ``track_ids`` over ``frames`` (what a fix would change)."""
    ids = np.asarray(sorted(int(t) for t in track_ids), dtype=np.int64)
    mask = np.isin(dense.track_id, ids) & (dense.frame >= frames[0]) & (dense.frame <= frames[1])
    rows = dense[mask]
    h = hashlib.sha256()
    for arr in (rows.track_id, rows.frame, np.round(rows.xyxy, 3), rows.outside, rows.label):
        h.update(np.ascontiguousarray(arr).tobytes())
    return h.hexdigest()[:16]


def issue_message(item: ReviewItem, piece_ids: Sequence[int], fp: str, *,
                  renamed: Mapping[int, int] | None = None) -> str:
    """The issue's first comment: check(s), CVAT track id(s), frame range, details, tag.

    Args:
        renamed: object id → the id the issue's job stores it under. The checks' own
            messages name objects by their task-level id, which with segment overlap is
            the earliest job's piece; a reviewer in a later job cannot find that id, so
            every ``track N`` / ``tracks N and M`` / ``track N → M`` in the details is
            rewritten with it.
    """
    kinds = ", ".join(item.kinds)
    tracks = ", ".join(str(p) for p in piece_ids) or "?"
    span = (f"frame {item.frames[0]}" if item.frames[0] == item.frames[1]
            else f"frames {item.frames[0]}-{item.frames[1]}")
    # The reviewer reads the check's own words (what is wrong and by how much), strongest
    # first; the header already names checks, tracks and frames.
    top = sorted(item.findings, key=lambda f: -f.score)[:_DETAILS_PER_ISSUE]
    details = "; ".join(f.message for f in top) or item.message
    if renamed:
        details = rename_track_ids(details, renamed)
    more = len(item.findings) - len(top)
    if more > 0:
        details += f"; and {more} more finding{'s' if more > 1 else ''}"
    return (f"{kinds}: track{'s' if len(piece_ids) > 1 else ''} {tracks}, {span} "
            f"(score {item.score:.2f}). {details} [cvat-track {fp}]")


#: "track 5", "tracks 3 and 5", "track 5 → 7"; not the "[cvat-track <fingerprint>]" tag.
_TRACK_REF = re.compile(r"(?<![\w-])(tracks? )(\d+)((?:(?:,| and| →) \d+)*)")
_NUMBER = re.compile(r"\d+")


def track_refs(text: str) -> set[int]:
    """Track ids ``text`` names (after ``track``/``tracks``; frames and scores are not ids).

    >>> sorted(track_refs("id_switch: tracks 4, 12, frames 3-9 (score 0.80). track 12 → 7 [cvat-track 0123]"))
    [4, 7, 12]
    """
    return {int(n) for m in _TRACK_REF.finditer(text) for n in _NUMBER.findall(m.group(2) + m.group(3))}


def rename_track_ids(text: str, renamed: Mapping[int, int]) -> str:
    """``text`` with the ids after ``track``/``tracks`` replaced per ``renamed``.

    Only numbers in a track reference change (frames, counts and scores do not).

    >>> rename_track_ids("tracks 3 and 5 at frame 3: track 5 → 7 (gap 5)", {5: 12, 3: 4})
    'tracks 4 and 12 at frame 3: track 12 → 7 (gap 5)'
    """
    def sub(m: re.Match[str]) -> str:
        refs = m.group(2) + m.group(3)
        refs = _NUMBER.sub(lambda n: str(renamed.get(int(n.group()), n.group())), refs)
        return m.group(1) + refs

    return _TRACK_REF.sub(sub, text)


#: Finding messages quoted in one issue; the rest are counted, so issues stay readable.
_DETAILS_PER_ISSUE = 3


@dataclass
class IssuePlan:
    """One issue to open (or already open) for one item."""

    job_id: int
    frame: int
    position: list[float]
    message: str
    fingerprint: str
    region: str
    item: ReviewItem


@dataclass
class PushResult:
    """What :func:`push_issues` did for one job."""

    created: list[int] = field(default_factory=list)
    still_open: list[int] = field(default_factory=list)
    respected_resolved: list[int] = field(default_factory=list)
    adopted: list[int] = field(default_factory=list)

    @property
    def open_count(self) -> int:
        """Issues of the pushed items that are open after the push."""
        return len(self.created) + len(self.still_open) + len(self.adopted)


def plan_issue(snap: TaskSnapshot, job: JobInfo, item: ReviewItem,
                names: Mapping[int, int] | None = None) -> IssuePlan:
    """One issue for ``item`` on ``job``; ``names`` maps object ids to the job's own ids."""
    if names is None:
        names = {}
        for sid in item.track_ids:
            piece = snap.piece_in_job(int(sid), job.id)
            if piece is not None:
                names[int(sid)] = int(piece)
    pieces = [int(names.get(int(sid), int(sid))) for sid in item.track_ids]
    box = item.box
    if box is None:
        rows = snap.dense[(snap.dense.frame == item.frame) & np.isin(snap.dense.track_id, list(item.track_ids))
                          & ~snap.dense.outside]
        box = tuple(float(v) for v in rows.xyxy[0]) if len(rows) else None  # type: ignore[assignment]
    if box is None:
        box = (0.0, 0.0, float(snap.info.width or 1), float(snap.info.height or 1))
    fp = fingerprint(item)
    return IssuePlan(
        job_id=job.id, frame=int(item.frame), position=[float(v) for v in box],
        message=issue_message(item, pieces, fp, renamed=names), fingerprint=fp,
        region=region_hash(snap.dense, item.track_ids, item.frames), item=item,
    )


def stage_change(cfg: SyncConfig, job: JobInfo, open_items: int, *,
                 reviewer_id: int | None = None) -> dict[str, Any] | None:
    """The stage/state change ``sync.review`` asks for ``job`` with ``open_items`` open issues
    (``None``: leave the job as it is); a move to validation is assigned to ``reviewer_id``."""
    change = _stage_change(cfg, job, open_items)
    if change and reviewer_id is not None and change.get("stage") == "validation":
        change["assignee"] = reviewer_id
    return change


def _stage_change(cfg: SyncConfig, job: JobInfo, open_items: int) -> dict[str, Any] | None:
    if open_items:
        if cfg.review.on_findings is OnFindings.REVIEW:
            if job.stage == "validation" and job.state == "new":
                return None
            return {"stage": "validation", "state": "new"}
        if cfg.review.on_findings is OnFindings.REJECT:
            if job.stage == "annotation" and job.state == "rejected":
                return None
            return {"stage": "annotation", "state": "rejected"}
        return None
    if cfg.review.clean_to_acceptance and not (job.stage == "acceptance" and job.state == "completed"):
        return {"stage": "acceptance", "state": "completed"}
    return None


def tally_push(summary: Any, result: PushResult) -> None:
    """Add one job's push to a run summary's ``issues_*`` counters (sync and propagate)."""
    summary.issues_opened += len(result.created)
    summary.issues_still_open += len(result.still_open) + len(result.adopted)
    summary.issues_resolved_respected += len(result.respected_resolved)


def push_issues(
    api: Any,
    store: StateStore,
    job_id: int,
    plans: Sequence[IssuePlan],
    *,
    job_issue_count: int,
    dry_run: bool = False,
) -> PushResult:
    """Open the issues of ``plans`` on ``job_id`` that are not open or resolved already.

    Raises:
        CvatTransientError: CVAT kept failing; what was created is recorded, the next run
            continues without duplicates.
    """
    result = PushResult()
    if not plans:
        return result
    known = store.issues(job_id)
    server: dict[int, Mapping[str, Any]] = {}
    if job_issue_count or known:
        server = {int(i["id"]): i for i in api.list_job_issues(job_id)}
    tagged: dict[str, int] | None = None

    def tags() -> dict[str, int]:
        # Issues the store does not know: recover their fingerprints from the comments.
        nonlocal tagged
        if tagged is None:
            tagged = {}
            ours = {r.issue_id for r in known.values()}
            if set(server) - ours:
                for c in api.list_job_comments(job_id):
                    m = _TAG.search(str(c.get("message", "")))
                    if m and int(c.get("issue", 0)) not in ours:
                        tagged.setdefault(m.group(1), int(c["issue"]))
        return tagged

    claimed: set[int] = set()

    def is_open(issue_id: int) -> bool:
        issue = server.get(issue_id)
        return issue is not None and not issue.get("resolved")

    for plan in plans:
        rec = known.get(plan.fingerprint)
        if rec is None:
            rec = _same_finding(known, plan, claimed, is_open)
            if rec is not None:
                _move(api, store, job_id, rec, plan, result, is_open(rec.issue_id), dry_run)
                claimed.add(rec.issue_id)
                _close_duplicates(api, store, known, rec, plan, claimed, is_open, server, dry_run)
                continue
        if rec is not None:
            claimed.add(rec.issue_id)
            if is_open(rec.issue_id):
                result.still_open.append(rec.issue_id)
                _close_duplicates(api, store, known, rec, plan, claimed, is_open, server, dry_run)
                continue
            if rec.region_hash == plan.region:
                result.respected_resolved.append(rec.issue_id)
                continue
        elif server and plan.fingerprint in tags():
            issue_id = tags()[plan.fingerprint]
            issue = server.get(issue_id, {})
            claimed.add(issue_id)
            if not dry_run:
                store.record_issue(_record(job_id, plan, issue_id))
            if issue.get("resolved"):
                result.respected_resolved.append(issue_id)
            else:
                result.adopted.append(issue_id)
            continue
        if dry_run:
            result.created.append(-1)
            continue
        issue_id = _create(api, job_id, plan, tags)
        store.record_issue(_record(job_id, plan, issue_id))
        claimed.add(issue_id)
        result.created.append(issue_id)
    return result


#: Frames by which an item's range may move and still be the same finding.
FRAME_SLACK = 5


def _record(job_id: int, plan: IssuePlan, issue_id: int) -> IssueRecord:
    item = plan.item
    return IssueRecord(job_id, plan.fingerprint, issue_id, plan.frame, plan.region, time.time(),
                       kinds=tuple(item.kinds), track_ids=tuple(sorted(int(t) for t in item.track_ids)),
                       frames=(int(item.frames[0]), int(item.frames[1])))


def same_finding(rec: IssueRecord, item: ReviewItem, *, slack: int = FRAME_SLACK) -> bool:
    """True when ``rec`` (an issue we opened) is about the finding of ``item``: a shared
    check kind, the same objects, and frame ranges that overlap (within ``slack``)."""
    if not rec.kinds or not set(rec.kinds) & set(item.kinds):
        return False
    if tuple(sorted(rec.track_ids)) != tuple(sorted(int(t) for t in item.track_ids)):
        return False
    return rec.frames[0] <= item.frames[1] + slack and item.frames[0] <= rec.frames[1] + slack


def _same_finding(known: Mapping[str, IssueRecord], plan: IssuePlan, claimed: set[int],
                  is_open: Any) -> IssueRecord | None:
    """The known issue about ``plan``'s finding (open ones first, then the most recent)."""
    matches = [r for r in known.values() if r.issue_id not in claimed and same_finding(r, plan.item)]
    if not matches:
        return None
    return max(matches, key=lambda r: (is_open(r.issue_id), r.created_at))


def _move(api: Any, store: StateStore, job_id: int, rec: IssueRecord, plan: IssuePlan,
          result: PushResult, still_open: bool, dry_run: bool) -> None:
    """Keep ``rec``'s issue for ``plan`` (the same finding, moved a little)."""
    if still_open:
        result.still_open.append(rec.issue_id)
    else:
        result.respected_resolved.append(rec.issue_id)  # a reviewer closed this finding
    if dry_run:
        return
    if still_open:
        api.create_comment(rec.issue_id, f"Updated: {plan.message}")
    store.record_issue(_record(job_id, plan, rec.issue_id))
    store.forget_issue(job_id, rec.fingerprint)


def _close_duplicates(api: Any, store: StateStore, known: Mapping[str, IssueRecord],
                      kept: IssueRecord, plan: IssuePlan, claimed: set[int], is_open: Any,
                      server: dict[int, Mapping[str, Any]], dry_run: bool) -> None:
    """Resolve our other open issues about the same finding, each with a comment."""
    for rec in known.values():
        if rec.issue_id in claimed or not is_open(rec.issue_id) or not same_finding(rec, plan.item):
            continue
        claimed.add(rec.issue_id)
        if dry_run:
            continue
        api.create_comment(rec.issue_id, f"Superseded by issue #{kept.issue_id} (the same finding; "
                                         f"cvat-track keeps one issue per finding).")
        api.update_issue(rec.issue_id, resolved=True)
        server[rec.issue_id] = {**server.get(rec.issue_id, {}), "resolved": True}
        logger.info("job %d: issue %d superseded by issue %d", rec.job_id, rec.issue_id, kept.issue_id)


def _create(api: Any, job_id: int, plan: IssuePlan, tags: Any) -> int:
    attempts = max(1, api.retry.attempts)
    delay = api.retry.backoff_s
    for attempt in range(1, attempts + 1):
        try:
            issue = api.create_issue(job_id=job_id, frame=plan.frame, position=plan.position,
                                     message=plan.message)
            return int(issue["id"])
        except CvatTransientError:
            # The POST may have landed although its answer was lost: look before retrying.
            found = _find_created(api, job_id, plan.fingerprint)
            if found is not None:
                return found
            if attempt == attempts:
                raise
            api.sleep(delay)
            delay = min(delay * 2, api.retry.max_backoff_s)
    raise AssertionError("unreachable")  # pragma: no cover


def _find_created(api: Any, job_id: int, fp: str) -> int | None:
    for c in api.list_job_comments(job_id):
        m = _TAG.search(str(c.get("message", "")))
        if m and m.group(1) == fp:
            return int(c["issue"])
    return None
