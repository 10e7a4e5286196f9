"""Per-annotator quality from CVAT: our review issues and how they ended, plus attention checks.

An issue counts when its first comment carries our review tag ``[cvat-track <fingerprint>]``
(``review_push.py``): those are the problems our checks found in the job after the
annotator handed it in. Attention flags (``[cvat-track attention]``) and issues people
opened themselves are not counted. The annotator of a job is the assignee remembered when
the job was first seen finished (``job_annotators``: ``sync`` may hand the job to a
reviewer afterwards), else its current assignee.

Costs two list calls per job (issues, comments), paginated.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from cvat_extension.core.annotator_quality import JobQuality
from cvat_extension.cvat.attention import is_finished
from cvat_extension.cvat.attention_store import AttentionStore

__all__ = ["collect_job_quality"]

_REVIEW_TAG = re.compile(r"\[cvat-track ([0-9a-f]{16})\]")


def _epoch(text: Any) -> float:
    try:
        return dt.datetime.fromisoformat(str(text).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def collect_job_quality(api: Any, attention: AttentionStore, jobs: Sequence[Mapping[str, Any]]) -> list[JobQuality]:
    """One :class:`JobQuality` per finished job of ``jobs``."""
    annotators = attention.annotators()
    results = {r.job_id: r for r in attention.results()}
    out: list[JobQuality] = []
    for job in jobs:
        if not is_finished(job):
            continue
        job_id = int(job["id"])
        known = annotators.get(job_id)
        if known is not None:
            name, finished = known.assignee, known.seen_at
        else:
            a = job.get("assignee")
            name = str(a.get("username")) if isinstance(a, Mapping) and a.get("username") else "(unassigned)"
            finished = _epoch(job.get("updated_date"))
        comments = api.list_job_comments(job_id)
        first: dict[int, str] = {}
        for c in sorted(comments, key=lambda c: int(c["id"])):
            first.setdefault(int(c["issue"]), str(c.get("message", "")))
        ours = {iid: msg for iid, msg in first.items() if _REVIEW_TAG.search(msg)}
        kinds: Counter[str] = Counter()
        resolved = 0
        if ours:
            for issue in api.list_job_issues(job_id):
                iid = int(issue["id"])
                if iid not in ours:
                    continue
                resolved += bool(issue.get("resolved"))
                for kind in ours[iid].split(":", 1)[0].split(","):
                    if kind.strip():
                        kinds[kind.strip()] += 1
        att = results.get(job_id)
        out.append(JobQuality(
            job_id=job_id, task_id=int(job["task_id"]), assignee=att.assignee if att else name,
            frames=int(job["stop_frame"]) - int(job["start_frame"]) + 1, finished_at=finished,
            review_issues=len(ours), review_resolved=resolved, kinds=tuple(sorted(kinds.items())),
            planted=att.planted if att else 0, restored=att.restored if att else 0,
        ))
    return out
