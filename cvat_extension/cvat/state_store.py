"""What the CVAT loop has done, per job: the memory that makes runs idempotent and resumable.

Per job the store keeps:

- the annotation state last processed (job ``updated_date`` and our content hash), so an
  unchanged job is skipped without reading its annotations;
- the findings of the last check;
- one row per pushed review item (fingerprint → CVAT issue id, frame, region hash), so no
  issue is created twice and a resolved one is not raised again unless the region changed;
- applied merges and backups (the files ``cvat-track restore`` puts back);
- a write journal: the planned write operations of a job and how many are done, so that a
  run killed between two writes can be resumed (or refused) by the next one;
- a lease, so several workers can share one job queue through the same database.

:class:`StateStore` is the interface. :class:`SqlStateStore` implements it with portable SQL
(named ``:param`` placeholders, ``INSERT ... ON CONFLICT``, no autoincrement, timestamps as
epoch floats); :class:`SQLiteStateStore` is the default and :class:`PostgresStateStore` only
swaps the connection and placeholder style.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cvat_extension.errors import ConfigError

__all__ = [
    "BackupRecord",
    "IssueRecord",
    "JobRecord",
    "JournalRecord",
    "PostgresStateStore",
    "SQLiteStateStore",
    "SqlStateStore",
    "StateStore",
    "open_state_store",
]


@dataclass(frozen=True, slots=True)
class JobRecord:
    """The annotation state of a job that was fully processed."""

    job_id: int
    task_id: int
    updated_date: str
    content_hash: str
    processed_at: float
    findings: list[dict[str, Any]]
    stage: str = ""
    state: str = ""


@dataclass(frozen=True, slots=True)
class IssueRecord:
    """A review item pushed as a CVAT issue."""

    job_id: int
    fingerprint: str
    issue_id: int
    frame: int
    region_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class BackupRecord:
    """A backup file of a job's annotations taken before a write."""

    job_id: int
    path: str
    content_hash: str
    created_at: float


@dataclass(frozen=True, slots=True)
class JournalRecord:
    """The writes planned for a job and how many are done.

    ``status`` is ``planned`` (writes may be in flight), ``done`` or ``aborted``.
    """

    job_id: int
    run_id: str
    base_hash: str
    ops: list[dict[str, Any]]
    ops_done: int
    status: str
    backup_path: str
    merges: list[dict[str, Any]]
    updated_at: float


class StateStore(Protocol):
    """Interface of the loop's memory; see the module docstring for what each part is for."""

    def claim_job(
        self, job_id: int, worker: str, lease_s: float, *, steal_from: str | None = None
    ) -> bool: ...
    def lease_holder(self, job_id: int) -> tuple[str, float] | None: ...
    def lease_holder(self, job_id: int) -> tuple[str, float] | None:
        """(worker, expires_at) of the job's lease, or None."""
        rows = self._fetch(
            "SELECT worker, expires_at FROM leases WHERE job_id = :job_id", {"job_id": job_id}
        )
        return (rows[0][0], float(rows[0][1])) if rows else None

    def release_job(self, job_id: int, worker: str) -> None: ...
    def get_job(self, job_id: int) -> JobRecord | None: ...
    def mark_processed(self, record: JobRecord) -> None: ...
    def forget_job(self, job_id: int) -> None: ...
    def issues(self, job_id: int) -> dict[str, IssueRecord]: ...
    def record_issue(self, record: IssueRecord) -> None: ...
    def record_merges(self, job_id: int, merges: Sequence[Mapping[str, Any]]) -> None: ...
    def merges(self, job_id: int) -> list[dict[str, Any]]: ...
    def record_backup(self, record: BackupRecord) -> None: ...
    def backups(self, job_id: int) -> list[BackupRecord]: ...
    def begin_journal(self, record: JournalRecord) -> None: ...
    def advance_journal(self, job_id: int, ops_done: int) -> None: ...
    def finish_journal(self, job_id: int, status: str) -> None: ...
    def journal(self, job_id: int) -> JournalRecord | None: ...
    def record_run(self, run_id: str, started_at: float, summary: Mapping[str, Any]) -> None: ...
    def close(self) -> None: ...


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        job_id BIGINT PRIMARY KEY, task_id BIGINT NOT NULL, updated_date TEXT NOT NULL,
        content_hash TEXT NOT NULL, processed_at DOUBLE PRECISION NOT NULL,
        findings TEXT NOT NULL, stage TEXT NOT NULL, state TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS leases (
        job_id BIGINT PRIMARY KEY, worker TEXT NOT NULL, expires_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS issues (
        job_id BIGINT NOT NULL, fingerprint TEXT NOT NULL, issue_id BIGINT NOT NULL,
        frame BIGINT NOT NULL, region_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, fingerprint))""",
    """CREATE TABLE IF NOT EXISTS merges (
        job_id BIGINT NOT NULL, into_id BIGINT NOT NULL, from_id BIGINT NOT NULL,
        detail TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, into_id, from_id))""",
    """CREATE TABLE IF NOT EXISTS backups (
        job_id BIGINT NOT NULL, path TEXT NOT NULL, content_hash TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (job_id, path))""",
    """CREATE TABLE IF NOT EXISTS journal (
        job_id BIGINT PRIMARY KEY, run_id TEXT NOT NULL, base_hash TEXT NOT NULL,
        ops TEXT NOT NULL, ops_done INTEGER NOT NULL, status TEXT NOT NULL,
        backup_path TEXT NOT NULL, merges TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL)""",
)


class SqlStateStore:
    """:class:`StateStore` over a DB-API connection; SQL is written once, portably.

    Subclasses provide the connection and :meth:`_sql` (placeholder translation). Every
    public method is one transaction, so a process killed at any point leaves the store
    consistent.
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._tx() as cur:
            for stmt in _SCHEMA:
                cur.execute(self._sql(stmt))

    # ------------------------------------------------------------------ plumbing
    def _sql(self, sql: str) -> str:
        return sql

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            cur = self._conn.cursor()
            try:
                yield cur
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
            finally:
                cur.close()

    def _exec(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        with self._tx() as cur:
            cur.execute(self._sql(sql), dict(params or {}))

    def _fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        with self._tx() as cur:
            cur.execute(self._sql(sql), dict(params or {}))
            return list(cur.fetchall())

    # ------------------------------------------------------------------ leases
    def claim_job(
        self, job_id: int, worker: str, lease_s: float, *, steal_from: str | None = None
    ) -> bool:
        """Take (or renew) the lease on a job; False if another worker holds a live one.

        ``steal_from`` names a holder known to be dead (its process is gone), whose lease is
        taken over before it expires.
        """
        now = time.time()
        with self._tx() as cur:
            cur.execute(
                self._sql(
                    "INSERT INTO leases (job_id, worker, expires_at) VALUES (:job_id, :worker, :exp) "
                    "ON CONFLICT (job_id) DO UPDATE SET worker = excluded.worker, "
                    "expires_at = excluded.expires_at "
                    "WHERE leases.expires_at < :now OR leases.worker = :worker "
                    "OR leases.worker = :steal"
                ),
                {"job_id": job_id, "worker": worker, "exp": now + lease_s, "now": now,
                 "steal": steal_from or ""},
            )
            cur.execute(self._sql("SELECT worker FROM leases WHERE job_id = :job_id"), {"job_id": job_id})
            row = cur.fetchone()
        return row is not None and row[0] == worker

    def lease_holder(self, job_id: int) -> tuple[str, float] | None:
        """(worker, expires_at) of the job's lease, or None."""
        rows = self._fetch(
            "SELECT worker, expires_at FROM leases WHERE job_id = :job_id", {"job_id": job_id}
        )
        return (rows[0][0], float(rows[0][1])) if rows else None

    def release_job(self, job_id: int, worker: str) -> None:
        """Give a lease back early (only the holder can)."""
        self._exec(
            "DELETE FROM leases WHERE job_id = :job_id AND worker = :worker",
            {"job_id": job_id, "worker": worker},
        )

    # ------------------------------------------------------------------ processed state
    def get_job(self, job_id: int) -> JobRecord | None:
        rows = self._fetch(
            "SELECT job_id, task_id, updated_date, content_hash, processed_at, findings, stage, "
            "state FROM jobs WHERE job_id = :job_id",
            {"job_id": job_id},
        )
        if not rows:
            return None
        r = rows[0]
        return JobRecord(int(r[0]), int(r[1]), r[2], r[3], float(r[4]), json.loads(r[5]), r[6], r[7])

    def mark_processed(self, record: JobRecord) -> None:
        self._exec(
            "INSERT INTO jobs (job_id, task_id, updated_date, content_hash, processed_at, findings, "
            "stage, state) VALUES (:job_id, :task_id, :updated_date, :content_hash, :processed_at, "
            ":findings, :stage, :state) ON CONFLICT (job_id) DO UPDATE SET "
            "task_id = excluded.task_id, updated_date = excluded.updated_date, "
            "content_hash = excluded.content_hash, processed_at = excluded.processed_at, "
            "findings = excluded.findings, stage = excluded.stage, state = excluded.state",
            {
                "job_id": record.job_id,
                "task_id": record.task_id,
                "updated_date": record.updated_date,
                "content_hash": record.content_hash,
                "processed_at": record.processed_at,
                "findings": json.dumps(record.findings),
                "stage": record.stage,
                "state": record.state,
            },
        )

    def forget_job(self, job_id: int) -> None:
        """Drop the processed mark so the next run checks the job again."""
        self._exec("DELETE FROM jobs WHERE job_id = :job_id", {"job_id": job_id})

    # ------------------------------------------------------------------ issues
    def issues(self, job_id: int) -> dict[str, IssueRecord]:
        rows = self._fetch(
            "SELECT job_id, fingerprint, issue_id, frame, region_hash, created_at FROM issues "
            "WHERE job_id = :job_id",
            {"job_id": job_id},
        )
        return {
            r[1]: IssueRecord(int(r[0]), r[1], int(r[2]), int(r[3]), r[4], float(r[5])) for r in rows
        }

    def record_issue(self, record: IssueRecord) -> None:
        self._exec(
            "INSERT INTO issues (job_id, fingerprint, issue_id, frame, region_hash, created_at) "
            "VALUES (:job_id, :fingerprint, :issue_id, :frame, :region_hash, :created_at) "
            "ON CONFLICT (job_id, fingerprint) DO UPDATE SET issue_id = excluded.issue_id, "
            "frame = excluded.frame, region_hash = excluded.region_hash, "
            "created_at = excluded.created_at",
            {
                "job_id": record.job_id,
                "fingerprint": record.fingerprint,
                "issue_id": record.issue_id,
                "frame": record.frame,
                "region_hash": record.region_hash,
                "created_at": record.created_at,
            },
        )

    # ------------------------------------------------------------------ merges and backups
    def record_merges(self, job_id: int, merges: Sequence[Mapping[str, Any]]) -> None:
        now = time.time()
        with self._tx() as cur:
            for m in merges:
                cur.execute(
                    self._sql(
                        "INSERT INTO merges (job_id, into_id, from_id, detail, applied_at) VALUES "
                        "(:job_id, :into_id, :from_id, :detail, :applied_at) "
                        "ON CONFLICT (job_id, into_id, from_id) DO NOTHING"
                    ),
                    {
                        "job_id": job_id,
                        "into_id": int(m["into"]),
                        "from_id": int(m["from"]),
                        "detail": json.dumps(dict(m)),
                        "applied_at": now,
                    },
                )

    def merges(self, job_id: int) -> list[dict[str, Any]]:
        rows = self._fetch(
            "SELECT detail FROM merges WHERE job_id = :job_id ORDER BY applied_at, into_id, from_id",
            {"job_id": job_id},
        )
        return [json.loads(r[0]) for r in rows]

    def record_backup(self, record: BackupRecord) -> None:
        self._exec(
            "INSERT INTO backups (job_id, path, content_hash, created_at) VALUES "
            "(:job_id, :path, :content_hash, :created_at) ON CONFLICT (job_id, path) DO NOTHING",
            {
                "job_id": record.job_id,
                "path": record.path,
                "content_hash": record.content_hash,
                "created_at": record.created_at,
            },
        )

    def backups(self, job_id: int) -> list[BackupRecord]:
        """Backups of a job, oldest first."""
        rows = self._fetch(
            "SELECT job_id, path, content_hash, created_at FROM backups WHERE job_id = :job_id "
            "ORDER BY created_at, path",
            {"job_id": job_id},
        )
        return [BackupRecord(int(r[0]), r[1], r[2], float(r[3])) for r in rows]

    # ------------------------------------------------------------------ journal
    def begin_journal(self, record: JournalRecord) -> None:
        self._exec(
            "INSERT INTO journal (job_id, run_id, base_hash, ops, ops_done, status, backup_path, "
            "merges, updated_at) VALUES (:job_id, :run_id, :base_hash, :ops, :ops_done, :status, "
            ":backup_path, :merges, :updated_at) ON CONFLICT (job_id) DO UPDATE SET "
            "run_id = excluded.run_id, base_hash = excluded.base_hash, ops = excluded.ops, "
            "ops_done = excluded.ops_done, status = excluded.status, "
            "backup_path = excluded.backup_path, merges = excluded.merges, "
            "updated_at = excluded.updated_at",
            {
                "job_id": record.job_id,
                "run_id": record.run_id,
                "base_hash": record.base_hash,
                "ops": json.dumps(record.ops),
                "ops_done": record.ops_done,
                "status": record.status,
                "backup_path": record.backup_path,
                "merges": json.dumps(record.merges),
                "updated_at": record.updated_at,
            },
        )

    def advance_journal(self, job_id: int, ops_done: int) -> None:
        self._exec(
            "UPDATE journal SET ops_done = :ops_done, updated_at = :now WHERE job_id = :job_id",
            {"job_id": job_id, "ops_done": ops_done, "now": time.time()},
        )

    def finish_journal(self, job_id: int, status: str) -> None:
        self._exec(
            "UPDATE journal SET status = :status, updated_at = :now WHERE job_id = :job_id",
            {"job_id": job_id, "status": status, "now": time.time()},
        )

    def journal(self, job_id: int) -> JournalRecord | None:
        rows = self._fetch(
            "SELECT job_id, run_id, base_hash, ops, ops_done, status, backup_path, merges, "
            "updated_at FROM journal WHERE job_id = :job_id",
            {"job_id": job_id},
        )
        if not rows:
            return None
        r = rows[0]
        return JournalRecord(
            int(r[0]), r[1], r[2], json.loads(r[3]), int(r[4]), r[5], r[6], json.loads(r[7]), float(r[8])
        )

    def record_run(self, run_id: str, started_at: float, summary: Mapping[str, Any]) -> None:
        self._exec(
            "INSERT INTO runs (run_id, started_at, finished_at, summary) VALUES "
            "(:run_id, :started_at, :finished_at, :summary) ON CONFLICT (run_id) DO UPDATE SET "
            "finished_at = excluded.finished_at, summary = excluded.summary",
            {
                "run_id": run_id,
                "started_at": started_at,
                "finished_at": time.time(),
                "summary": json.dumps(dict(summary)),
            },
        )

    def close(self) -> None:
        self._conn.close()


class SQLiteStateStore(SqlStateStore):
    """The default store: one SQLite file (WAL mode, so several workers can share it)."""

    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        if str(p) != ":memory:":
            p.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(p), timeout=30.0, check_same_thread=False)
        if str(p) != ":memory:":
            conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA busy_timeout=30000")
        self.path = p
        super().__init__(conn)


_NAMED = re.compile(r"(?<!:):([a-z_]+)")


class PostgresStateStore(SqlStateStore):
    """The same store on PostgreSQL (``server`` extra: psycopg 3); a drop-in for servers.

    Only the placeholder style differs (``:name`` → ``%(name)s``); the SQL is shared.
    """

    def __init__(self, url: str) -> None:
        from cvat_extension._deps import require

        psycopg = require("psycopg", extra="server")
        super().__init__(psycopg.connect(url))

    def _sql(self, sql: str) -> str:
        return _NAMED.sub(r"%(\1)s", sql)


def open_state_store(path_or_url: str) -> StateStore:
    """Open the store named in ``sync.state.path``: a file path or ``postgresql://`` URL.

    Raises:
        ConfigError: an unsupported URL scheme.
    """
    if path_or_url.startswith(("postgresql://", "postgres://")):
        return PostgresStateStore(path_or_url)
    if "://" in path_or_url:
        raise ConfigError(
            f"sync.state.path: unsupported store {path_or_url.split('://')[0]!r}; "
            "use a file path (SQLite) or a postgresql:// URL"
        )
    return SQLiteStateStore(path_or_url)
