"""Per-annotator quality over time, from review outcomes and attention checks (no I/O).

Input is one :class:`JobQuality` per finished job: who annotated it, how many frames, when
it was handed in, how many review issues our sync opened on it (and how many of those
were resolved), and its attention checks. Output is, per annotator and per period (day,
ISO week or month of hand-in), the rates a team lead compares:

- ``issues_per_100_frames``: review issues our checks raised per 100 annotated frames
  (identity switches, ghosts, fragments, gaps... that survived the annotator's pass);
- ``resolved_share``: of those issues, the share a reviewer or annotator has resolved so
  far (open issues are still work in the queue);
- ``attention_rate``: planted misses restored / planted (None when none were planted);
- ``attention_below``: whether that rate is under the bar.

Rates are computed from summed counts (never averaged per job), so a long job weighs more
than a short one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["JobQuality", "Period", "summarize_annotators"]


class Period(str, Enum):
    """Bucket size of the time series."""

    DAY = "day"
    WEEK = "week"
    MONTH = "month"


@dataclass(frozen=True, slots=True)
class JobQuality:
    """What one finished job says about its annotator.

    Attributes:
        job_id: the CVAT job.
        task_id: its task.
        assignee: annotator's CVAT user name.
        frames: frames in the job.
        finished_at: when it was handed in (epoch seconds, UTC).
        review_issues: issues our sync opened on the job.
        review_resolved: of those, resolved in CVAT.
        kinds: check kind → issues (e.g. ``{"id_switch": 2}``).
        planted: attention checks planted in the job (0: none).
        restored: attention checks restored.
    """

    job_id: int
    task_id: int
    assignee: str
    frames: int
    finished_at: float
    review_issues: int = 0
    review_resolved: int = 0
    kinds: tuple[tuple[str, int], ...] = ()
    planted: int = 0
    restored: int = 0


def period_key(t: float, period: Period) -> str:
    """The bucket of epoch time ``t``.

    >>> period_key(0.0, Period.WEEK), period_key(0.0, Period.MONTH), period_key(0.0, Period.DAY)
    ('1970-W01', '1970-01', '1970-01-01')
    """
    d = dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).date()
    if period is Period.DAY:
        return d.isoformat()
    if period is Period.MONTH:
        return f"{d.year:04d}-{d.month:02d}"
    year, week, _ = d.isocalendar()
    return f"{year:04d}-W{week:02d}"


def _rates(rows: Sequence[JobQuality], min_restored: float) -> dict[str, Any]:
    frames = sum(r.frames for r in rows)
    issues = sum(r.review_issues for r in rows)
    resolved = sum(r.review_resolved for r in rows)
    planted = sum(r.planted for r in rows)
    restored = sum(r.restored for r in rows)
    kinds: dict[str, int] = {}
    for r in rows:
        for k, n in r.kinds:
            kinds[k] = kinds.get(k, 0) + n
    rate = restored / planted if planted else None
    return {
        "jobs": len(rows), "frames": frames,
        "review_issues": issues, "review_resolved": resolved,
        "issues_per_100_frames": round(100.0 * issues / frames, 3) if frames else 0.0,
        "resolved_share": round(resolved / issues, 4) if issues else None,
        "issue_kinds": dict(sorted(kinds.items())),
        "attention_planted": planted, "attention_restored": restored,
        "attention_rate": None if rate is None else round(rate, 4),
        "attention_below": rate is not None and rate < min_restored,
    }


def summarize_annotators(jobs: Sequence[JobQuality], *, period: Period = Period.WEEK,
                         min_restored: float = 0.7) -> dict[str, Any]:
    """Per annotator: overall rates and one row per period, oldest first.

    >>> j = [JobQuality(1, 1, "ann", 50, 0.0, review_issues=2, planted=5, restored=3)]
    >>> s = summarize_annotators(j)["annotators"]["ann"]
    >>> s["attention_rate"], s["issues_per_100_frames"], s["attention_below"]
    (0.6, 4.0, True)
    """
    by_name: dict[str, list[JobQuality]] = {}
    for j in jobs:
        by_name.setdefault(j.assignee, []).append(j)
    out: dict[str, Any] = {}
    for name in sorted(by_name):
        rows = by_name[name]
        buckets: dict[str, list[JobQuality]] = {}
        for r in sorted(rows, key=lambda r: r.finished_at):
            buckets.setdefault(period_key(r.finished_at, period), []).append(r)
        out[name] = {**_rates(rows, min_restored),
                     "periods": [{"period": k, **_rates(v, min_restored)} for k, v in sorted(buckets.items())]}
    return {"period": period.value, "min_restored": min_restored, "annotators": out}
