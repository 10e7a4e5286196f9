"""Which CVAT jobs are finished work, as lightweight records.

Default: annotation jobs with ``state=completed`` (``sync.jobs.query``); any other query
parameter of ``GET /api/jobs`` (``stage=acceptance``, ``project_id``...) or a JSON-logic
``filter`` can select instead. Listing is paginated with a large page size, so a run over
many jobs costs a handful of calls.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cvat_extension.cvat.config import JobsConfig

__all__ = ["JobInfo", "job_matches", "list_finished_jobs"]


@dataclass(frozen=True, slots=True)
class JobInfo:
    """What the loop needs to know about a job (from ``JobRead``)."""

    id: int
    task_id: int
    start_frame: int
    stop_frame: int
    stage: str
    state: str
    type: str
    updated_date: str
    assignee_id: int | None
    issue_count: int

    @classmethod
    def from_json(cls, j: Mapping[str, Any]) -> JobInfo:
        """From a ``JobRead`` JSON dict."""
        assignee = j.get("assignee")
        issues = j.get("issues")
        return cls(
            id=int(j["id"]),
            task_id=int(j["task_id"]),
            start_frame=int(j["start_frame"]),
            stop_frame=int(j["stop_frame"]),
            stage=str(j.get("stage", "")),
            state=str(j.get("state", "")),
            type=str(j.get("type", "annotation")),
            updated_date=str(j.get("updated_date", "")),
            assignee_id=int(assignee["id"]) if isinstance(assignee, Mapping) else None,
            issue_count=int(issues.get("count", 0)) if isinstance(issues, Mapping) else 0,
        )

    def holds(self, frame: int) -> bool:
        """True when ``frame`` (task frame number) is inside this job."""
        return self.start_frame <= frame <= self.stop_frame


def _query(cfg: JobsConfig, **extra: Any) -> dict[str, Any]:
    query = {k: v for k, v in cfg.query.items()}
    query.update({k: v for k, v in extra.items() if v is not None})
    query["page_size"] = cfg.page_size
    if cfg.filter:
        query["filter"] = cfg.filter
    return query


def list_finished_jobs(
    api: Any, cfg: JobsConfig, *, task_id: int | None = None, job_id: int | None = None
) -> list[JobInfo]:
    """Finished jobs, sorted by (task, start frame); optionally of one task or one job.

    With ``job_id`` the job is fetched directly (one call) and returned only if it matches
    the configured query, so a webhook for a job that is not finished does nothing.
    """
    if job_id is not None:
        job = api.get_job(job_id)
        return [JobInfo.from_json(job)] if job_matches(job, cfg) else []
    rows = api.list_jobs(**_query(cfg, task_id=task_id))
    jobs = [JobInfo.from_json(j) for j in rows]
    return sorted(jobs, key=lambda j: (j.task_id, j.start_frame, j.id))


def _var(job: Mapping[str, Any], name: str) -> Any:
    if name == "assignee":
        a = job.get("assignee")
        return a.get("username") if isinstance(a, Mapping) else None
    return job.get(name)


def _logic(rule: Any, job: Mapping[str, Any]) -> Any:
    """A small JSON-logic evaluator for the job filter (the operators CVAT's filter takes)."""
    if not isinstance(rule, Mapping):
        return rule
    ((op, args),) = rule.items()
    if op == "var":
        return _var(job, args if isinstance(args, str) else args[0])
    args = args if isinstance(args, list) else [args]
    vals = [_logic(a, job) for a in args]
    if op == "and":
        return all(vals)
    if op == "or":
        return any(vals)
    if op == "!":
        return not vals[0]
    if op == "!!":
        return bool(vals[0])
    if op == "==":
        return vals[0] == vals[1]
    if op == "in":
        return vals[0] in vals[1] if vals[1] is not None else False
    ops = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b,
           ">=": lambda a, b: a >= b}
    if op in ops:
        try:
            if op == "<=" and len(vals) == 3:
                return vals[0] <= vals[1] <= vals[2]
            return ops[op](vals[0], vals[1])
        except TypeError:
            return False
    return False


def job_matches(job: Mapping[str, Any], cfg: JobsConfig) -> bool:
    """True when a ``JobRead`` dict satisfies the configured query and filter."""
    for key, value in cfg.query.items():
        actual = _var(job, key)
        if str(actual) != str(value):
            return False
    if cfg.filter:
        return bool(_logic(json.loads(cfg.filter), job))
    return True
