"""The state-store tables of attention checks and annotator quality.

Kept apart from ``state_store.py`` (the loop's own memory) but in the same database and
through the same connection, transactions and reconnects (:class:`SqlStateStore`), so the
record of what was planted lives wherever ``sync.state.path`` points: a SQLite file or a
PostgreSQL server that every worker shares. The tables are created with the others
(``state_store`` appends :data:`ATTENTION_SCHEMA` to its schema).

- ``attention_plans``: one row per task once misses were chosen (seed, settings); it is
  written together with the misses, in one transaction, *before* anything is uploaded, so
  a run that dies later never loses the record and a resumed run plants the same boxes;
- ``attention_misses``: the withheld boxes (job, frame, pre-annotation track, label, box);
- ``attention_results``: per job, who annotated it, how many misses were planted and
  restored, when it was measured and the CVAT issue that flagged it (if any);
- ``job_annotators``: who a finished job belonged to when we first saw it finished
  (``sync`` may reassign the job to a reviewer afterwards, so CVAT forgets the annotator).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from cvat_extension.core.attention import PlantedMisses
from cvat_extension.errors import ConfigError

if TYPE_CHECKING:
    from cvat_extension.cvat.state_store import SqlStateStore

__all__ = ["ATTENTION_SCHEMA", "AttentionResult", "AttentionStore", "JobAnnotator"]

ATTENTION_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE IF NOT EXISTS attention_plans (
        task_id BIGINT PRIMARY KEY, seed BIGINT NOT NULL, settings TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS attention_misses (
        task_id BIGINT NOT NULL, job_id BIGINT NOT NULL, frame BIGINT NOT NULL,
        track_id BIGINT NOT NULL, label TEXT NOT NULL, x1 DOUBLE PRECISION NOT NULL,
        y1 DOUBLE PRECISION NOT NULL, x2 DOUBLE PRECISION NOT NULL, y2 DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (task_id, job_id, frame, track_id))""",
    """CREATE TABLE IF NOT EXISTS attention_results (
        job_id BIGINT PRIMARY KEY, task_id BIGINT NOT NULL, assignee_id BIGINT,
        assignee TEXT NOT NULL, planted INTEGER NOT NULL, restored INTEGER NOT NULL,
        frames TEXT NOT NULL, measured_at DOUBLE PRECISION NOT NULL,
        flag_issue_id BIGINT)""",
    """CREATE TABLE IF NOT EXISTS job_annotators (
        job_id BIGINT PRIMARY KEY, task_id BIGINT NOT NULL, assignee_id BIGINT,
        assignee TEXT NOT NULL, frames BIGINT NOT NULL, seen_at DOUBLE PRECISION NOT NULL)""",
)


@dataclass(frozen=True, slots=True)
class AttentionResult:
    """The attention measurement of one finished job.

    ``frames`` maps each planted frame to whether it was restored (for the admins' JSON,
    never written to CVAT).
    """

    job_id: int
    task_id: int
    assignee_id: int | None
    assignee: str
    planted: int
    restored: int
    frames: dict[int, bool]
    measured_at: float
    flag_issue_id: int | None = None

    @property
    def rate(self) -> float:
        """Fraction of planted misses restored (1.0 when none were planted)."""
        return self.restored / self.planted if self.planted else 1.0


@dataclass(frozen=True, slots=True)
class JobAnnotator:
    """Who annotated a job (as CVAT said when the job was first seen finished)."""

    job_id: int
    task_id: int
    assignee_id: int | None
    assignee: str
    frames: int
    seen_at: float


class AttentionStore:
    """Attention tables on an open :class:`SqlStateStore` (same connection and transactions).

    Raises:
        ConfigError: ``store`` is not a SQL state store.
    """

    def __init__(self, store: Any) -> None:
        from cvat_extension.cvat.state_store import SqlStateStore

        if not isinstance(store, SqlStateStore):
            raise ConfigError(f"attention checks need a SQL state store, got {type(store).__name__}")
        self._store: SqlStateStore = store

    # ------------------------------------------------------------------ plans
    def record_plan(self, task_id: int, planted: PlantedMisses, *, seed: int,
                    settings: dict[str, Any]) -> None:
        """Record the plan and every miss of a task in one transaction (before any upload).

        A task that already has a plan keeps it (the first record wins), so a resumed run
        never replaces what an earlier run may have uploaded.
        """
        store = self._store
        now = time.time()

        def work(cur: Any) -> None:
            # One statement decides who records the plan, also between two workers at once.
            cur.execute(store._sql(
                "INSERT INTO attention_plans (task_id, seed, settings, created_at) "
                "VALUES (:task_id, :seed, :settings, :now) ON CONFLICT (task_id) DO NOTHING RETURNING task_id"),
                {"task_id": task_id, "seed": int(seed), "settings": json.dumps(settings), "now": now})
            if cur.fetchone() is None:
                return
            for i in range(len(planted)):
                x1, y1, x2, y2 = (float(v) for v in planted.xyxy[i])
                cur.execute(store._sql(
                    "INSERT INTO attention_misses (task_id, job_id, frame, track_id, label, x1, y1, x2, y2) "
                    "VALUES (:task_id, :job_id, :frame, :track_id, :label, :left, :top, :right, :bottom)"),
                    {"task_id": task_id, "job_id": int(planted.job_id[i]), "frame": int(planted.frame[i]),
                     "track_id": int(planted.track_id[i]), "label": planted.label[i],
                     "left": x1, "top": y1, "right": x2, "bottom": y2})  # letters only: Postgres placeholders

        store._transact(work)

    def has_plan(self, task_id: int) -> bool:
        return bool(self._store._fetch("SELECT 1 FROM attention_plans WHERE task_id = :t", {"t": task_id}))

    def planned_tasks(self) -> list[int]:
        return [int(r[0]) for r in self._store._fetch("SELECT task_id FROM attention_plans ORDER BY task_id")]

    def misses(self, task_id: int, job_id: int | None = None) -> PlantedMisses:
        """The recorded misses of a task (or of one of its jobs), sorted by (job, frame)."""
        sql = ("SELECT job_id, frame, track_id, label, x1, y1, x2, y2 FROM attention_misses "
               "WHERE task_id = :t")
        params: dict[str, Any] = {"t": task_id}
        if job_id is not None:
            sql += " AND job_id = :j"
            params["j"] = job_id
        rows = self._store._fetch(sql + " ORDER BY job_id, frame, track_id", params)
        if not rows:
            return PlantedMisses.empty()
        return PlantedMisses(
            job_id=np.array([int(r[0]) for r in rows], np.int64),
            frame=np.array([int(r[1]) for r in rows], np.int64),
            track_id=np.array([int(r[2]) for r in rows], np.int64),
            label=tuple(str(r[3]) for r in rows),
            xyxy=np.array([[float(v) for v in r[4:8]] for r in rows], np.float64).reshape(-1, 4),
        )

    def planned_jobs(self) -> dict[int, int]:
        """``{job_id: task_id}`` of every job holding at least one planted miss."""
        rows = self._store._fetch("SELECT DISTINCT job_id, task_id FROM attention_misses")
        return {int(r[0]): int(r[1]) for r in rows}

    # ------------------------------------------------------------------ results
    def record_result(self, result: AttentionResult) -> None:
        """Store a job's measurement (replacing an earlier one of the same job)."""
        self._store._exec(
            "INSERT INTO attention_results (job_id, task_id, assignee_id, assignee, planted, restored, "
            "frames, measured_at, flag_issue_id) VALUES (:job_id, :task_id, :assignee_id, :assignee, "
            ":planted, :restored, :frames, :measured_at, :flag) ON CONFLICT (job_id) DO UPDATE SET "
            "task_id = excluded.task_id, assignee_id = excluded.assignee_id, assignee = excluded.assignee, "
            "planted = excluded.planted, restored = excluded.restored, frames = excluded.frames, "
            "measured_at = excluded.measured_at, flag_issue_id = excluded.flag_issue_id",
            {"job_id": result.job_id, "task_id": result.task_id, "assignee_id": result.assignee_id,
             "assignee": result.assignee, "planted": result.planted, "restored": result.restored,
             "frames": json.dumps({str(k): v for k, v in sorted(result.frames.items())}),
             "measured_at": result.measured_at, "flag": result.flag_issue_id},
        )

    def set_flag_issue(self, job_id: int, issue_id: int) -> None:
        self._store._exec("UPDATE attention_results SET flag_issue_id = :i WHERE job_id = :j",
                          {"i": issue_id, "j": job_id})

    def result(self, job_id: int) -> AttentionResult | None:
        found = self.results([job_id])
        return found[0] if found else None

    def results(self, job_ids: Sequence[int] | None = None) -> list[AttentionResult]:
        """Measurements (all, or of ``job_ids``), oldest first."""
        rows = self._store._fetch(
            "SELECT job_id, task_id, assignee_id, assignee, planted, restored, frames, measured_at, "
            "flag_issue_id FROM attention_results ORDER BY measured_at, job_id")
        wanted = None if job_ids is None else {int(j) for j in job_ids}
        return [
            AttentionResult(int(r[0]), int(r[1]), None if r[2] is None else int(r[2]), str(r[3]),
                            int(r[4]), int(r[5]), {int(k): bool(v) for k, v in json.loads(r[6]).items()},
                            float(r[7]), None if r[8] is None else int(r[8]))
            for r in rows if wanted is None or int(r[0]) in wanted
        ]

    # ------------------------------------------------------------------ annotators
    def remember_annotator(self, record: JobAnnotator) -> None:
        """Keep the first annotator seen for a job (later reassignments do not replace it)."""
        self._store._exec(
            "INSERT INTO job_annotators (job_id, task_id, assignee_id, assignee, frames, seen_at) "
            "VALUES (:job_id, :task_id, :assignee_id, :assignee, :frames, :seen_at) "
            "ON CONFLICT (job_id) DO NOTHING",
            {"job_id": record.job_id, "task_id": record.task_id, "assignee_id": record.assignee_id,
             "assignee": record.assignee, "frames": record.frames, "seen_at": record.seen_at},
        )

    def annotators(self) -> dict[int, JobAnnotator]:
        rows = self._store._fetch(
            "SELECT job_id, task_id, assignee_id, assignee, frames, seen_at FROM job_annotators")
        return {int(r[0]): JobAnnotator(int(r[0]), int(r[1]), None if r[2] is None else int(r[2]), str(r[3]),
                                        int(r[4]), float(r[5])) for r in rows}
