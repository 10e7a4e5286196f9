"""What the CVAT loop has done, per job: the memory that makes runs idempotent and resumable.

Per job the store keeps:

- the annotation state last processed (job ``updated_date`` and our content hash), so an
  unchanged job is skipped without reading its annotations;
- the findings of the last check;
- one row per pushed review item (fingerprint → CVAT issue id, frame, region hash), so no
  issue is created twice and a resolved one is not raised again unless the region changed;
- applied merges;
- backups: the job's annotations as read before our first write, as a zlib-compressed JSON
  document *in the store itself* (any worker on any host sharing the store can resume a
  dead worker's journal or ``cvat-track restore`` the job; a local file is only an optional
  extra copy);
- a write journal: the planned write operations of a job and how many are done, so that a
  run killed between two writes can be resumed (or refused) by the next one;
- a lease, so several workers can share one job queue through the same database;
- the keyframes ``cvat-track propagate`` wrote (and the human keyframes at the ends of the
  gaps it filled), by job, track, frame and box hash: the write journal holds only a job's
  *latest* write, so once ``sync`` writes to the job this table is what still tells
  propagated keyframes from human ones.

:class:`StateStore` is the interface. :class:`SqlStateStore` implements it with portable SQL
(named ``:param`` placeholders, ``INSERT ... ON CONFLICT ... RETURNING``, no autoincrement,
timestamps as epoch floats); :class:`SQLiteStateStore` is the default (one host: several
worker processes share the file) and :class:`PostgresStateStore` (several hosts share a
server) swaps the connection and placeholder style, serialises schema creation and
reconnects after a dropped connection.

Sharing the job queue between workers: each worker lists the finished jobs itself and claims
them one at a time with :meth:`SqlStateStore.claim_job`, a single upsert that takes a free or
expired lease and returns nothing when another worker holds a live one, so two workers never
both win (Postgres: the conflicting row is locked and the ``WHERE`` re-evaluated on the
committed lease; SQLite: one writer at a time). A worker's job list can be stale by the time
it claims a job that another worker has just finished and released; passing the
:meth:`processed_marks` snapshot taken *before* listing as ``seen`` makes the claim fail in
that case, so every job is processed once. A worker that dies keeps its lease until it
expires (or, on the same host, until the next worker sees its process is gone); its write
journal and backup stay in the store and the next claimant resumes it.

A job can run longer than ``lease_s``: the worker calls :meth:`SqlStateStore.renew_lease`
before every step and every write, which extends its leases only while their rows still name
that worker. Once another worker has taken the job over (or taken it, finished it and
released it), the renewal fails and the first worker stops the job without writing.
Leases of whole tasks use the same table under negative keys (``-task_id``, see
:func:`task_lease_key`), so one worker reads a task at a time.
"""

from __future__ import annotations

import json
import logging
import re
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

from cvat_extension.cvat.attention_store import ATTENTION_SCHEMA
from cvat_extension.errors import ConfigError, CvatSyncError

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

__all__ = [
    "BackupRecord",
    "IssueRecord",
    "JobRecord",
    "JournalRecord",
    "PostgresStateStore",
    "PropagatedKeyframe",
    "SQLiteStateStore",
    "SqlStateStore",
    "StateStore",
    "open_state_store",
    "redact_url",
    "task_lease_key",
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
    """A backup of a job's annotations taken before a write.

    ``path`` is the local extra copy (``""`` when ``sync.state.backup_dir`` is null); the
    document itself is in the store (:meth:`SqlStateStore.backup_data`), keyed by job and
    ``content_hash``. ``size`` is the compressed size in bytes (0: no copy in the store, as
    for backups recorded before the store kept them).
    """

    job_id: int
    path: str
    content_hash: str
    created_at: float
    size: int = 0


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


@dataclass(frozen=True, slots=True)
class PropagatedKeyframe:
    """One keyframe ``propagate`` wrote (``kind="written"``) or relied on (``kind="anchor"``:
    a human keyframe at the end of a gap it filled, as it was then).

    ``box_hash`` is :func:`cvat_extension.cvat.propagate.box_hash` of the shape's points.
    """

    track_id: int
    frame: int
    box_hash: str
    kind: str = "written"
    run_id: str = ""


class StateStore(Protocol):
    """Interface of the loop's memory; see the module docstring for what each part is for."""

    def claim_job(
        self, job_id: int, worker: str, lease_s: float, *, steal_from: str | None = None,
        seen: Mapping[int, float] | None = None,
    ) -> bool: ...
    def renew_lease(self, job_id: int, worker: str, lease_s: float) -> bool: ...
    def lease_holder(self, job_id: int) -> tuple[str, float] | None: ...
    def processed_marks(self) -> dict[int, float]: ...
    def release_job(self, job_id: int, worker: str) -> None: ...
    def get_job(self, job_id: int) -> JobRecord | None: ...
    def mark_processed(self, record: JobRecord) -> None: ...
    def forget_job(self, job_id: int) -> None: ...
    def issues(self, job_id: int) -> dict[str, IssueRecord]: ...
    def record_issue(self, record: IssueRecord) -> None: ...
    def record_merges(self, job_id: int, merges: Sequence[Mapping[str, Any]]) -> None: ...
    def merges(self, job_id: int) -> list[dict[str, Any]]: ...
    def record_backup(self, record: BackupRecord, data: bytes | None = None) -> None: ...
    def backups(self, job_id: int) -> list[BackupRecord]: ...
    def backup_data(self, job_id: int, content_hash: str) -> bytes | None: ...
    def begin_journal(self, record: JournalRecord) -> None: ...
    def advance_journal(self, job_id: int, ops_done: int) -> None: ...
    def finish_journal(self, job_id: int, status: str) -> None: ...
    def journal(self, job_id: int) -> JournalRecord | None: ...
    def record_run(self, run_id: str, started_at: float, summary: Mapping[str, Any]) -> None: ...
    def record_propagated(self, job_id: int, run_id: str, rows: Sequence[PropagatedKeyframe]) -> None: ...
    def propagated(self, job_id: int) -> list[PropagatedKeyframe]: ...
    def forget_propagated(self, job_id: int, run_id: str) -> None: ...
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
        job_id BIGINT NOT NULL, content_hash TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL,
        path TEXT NOT NULL, size BIGINT NOT NULL, data BLOB,
        PRIMARY KEY (job_id, content_hash))""",
    """CREATE TABLE IF NOT EXISTS journal (
        job_id BIGINT PRIMARY KEY, run_id TEXT NOT NULL, base_hash TEXT NOT NULL,
        ops TEXT NOT NULL, ops_done INTEGER NOT NULL, status TEXT NOT NULL,
        backup_path TEXT NOT NULL, merges TEXT NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, started_at DOUBLE PRECISION NOT NULL,
        finished_at DOUBLE PRECISION NOT NULL, summary TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS propagated_keyframes (
        job_id BIGINT NOT NULL, track_id BIGINT NOT NULL, frame BIGINT NOT NULL,
        box_hash TEXT NOT NULL, kind TEXT NOT NULL, run_id TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (job_id, track_id, frame, box_hash, kind))""",
) + ATTENTION_SCHEMA  # attention checks and annotator quality: cvat/attention_store.py


def task_lease_key(task_id: int) -> int:
    """The lease key of a whole task: job ids are positive, so tasks take negative keys.

    >>> task_lease_key(7)
    -7
    """
    return -int(task_id)


class _ProcessedMeanwhile(Exception):
    """Internal: roll a claim back (the job was processed since the caller's snapshot)."""


class SqlStateStore(ABC):
    """:class:`StateStore` over a DB-API connection; SQL is written once, portably.

    Subclasses provide the connection and :meth:`_sql` (placeholder translation). Every
    public method is one transaction, so a process killed at any point leaves the store
    consistent.
    """

    def __init__(self, conn: Any) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        with self._tx() as cur:
            self._create_schema(cur)

    # ------------------------------------------------------------------ plumbing
    def _sql(self, sql: str) -> str:
        return sql

    def _create_schema(self, cur: Any) -> None:
        self._migrate_backups(cur)
        for stmt in _SCHEMA:
            cur.execute(self._sql(stmt))

    @abstractmethod
    def _table_columns(self, cur: Any, table: str) -> set[str] | None:
        """Column names of ``table``, or None when it does not exist."""

    def _migrate_backups(self, cur: Any) -> None:
        """Stores made before backups lived in the store had ``backups(job_id, path, ...)``
        with only a file path: keep those rows (their files still restore) under the new
        layout."""
        cols = self._table_columns(cur, "backups")
        if cols is None or "data" in cols:
            return
        cur.execute(self._sql("ALTER TABLE backups RENAME TO backups_v1"))
        cur.execute(self._sql(_SCHEMA[4]))
        cur.execute(self._sql(
            "INSERT INTO backups (job_id, content_hash, created_at, path, size, data) "
            "SELECT job_id, content_hash, MIN(created_at), MIN(path), 0, NULL FROM backups_v1 "
            "GROUP BY job_id, content_hash"
        ))
        cur.execute(self._sql("DROP TABLE backups_v1"))
        logger.info("state store: backups table migrated (files kept as the only copy of old rows)")

    def _broken(self) -> bool:
        """True when the connection is gone (the transaction can be retried on a new one)."""
        return False

    def _reconnect(self) -> None:
        """Replace a connection the server dropped (the caller retries its transaction).

        Only called after :meth:`_broken` said the connection is gone, which a file
        database (SQLite) never does; server stores override both.
        """
        raise CvatSyncError(f"{type(self).__name__}: the database connection was lost")

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self._lock:
            if self._broken():
                self._reconnect()
            cur = self._conn.cursor()
            try:
                yield cur
                self._conn.commit()
            except BaseException:
                if not self._broken():
                    self._conn.rollback()
                raise
            finally:
                cur.close()

    def _transact(self, work: Callable[[Any], _T]) -> _T:
        """Run ``work(cursor)`` as one transaction; once more on a fresh connection if the
        server dropped the first (every public method is idempotent, so a transaction whose
        commit was lost in flight can run again)."""
        try:
            with self._tx() as cur:
                return work(cur)
        except Exception:
            if not self._broken():
                raise
        with self._tx() as cur:
            return work(cur)

    def _exec(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        def work(cur: Any) -> None:
            cur.execute(self._sql(sql), dict(params or {}))

        self._transact(work)

    def _fetch(self, sql: str, params: Mapping[str, Any] | None = None) -> list[tuple[Any, ...]]:
        def work(cur: Any) -> list[tuple[Any, ...]]:
            cur.execute(self._sql(sql), dict(params or {}))
            return list(cur.fetchall())

        return self._transact(work)

    # ------------------------------------------------------------------ leases
    def claim_job(
        self, job_id: int, worker: str, lease_s: float, *, steal_from: str | None = None,
        seen: Mapping[int, float] | None = None,
    ) -> bool:
        """Take (or renew) the lease on a job; False if another worker holds a live one.

        One atomic statement: the lease row is inserted, or updated only when it has expired,
        is already ours, or belongs to ``steal_from`` (a holder known to be dead: its process
        is gone), and ``RETURNING`` says whether we won.

        ``seen``: the :meth:`processed_marks` taken before the caller listed its jobs. When
        given, the claim also fails (and takes no lease) if the job was marked processed since
        then, by a worker that finished it while our job list was being read or worked
        through; without this a stale list would make a second worker process it again.
        """
        now = time.time()

        def work(cur: Any) -> bool:
            cur.execute(
                self._sql(
                    "INSERT INTO leases (job_id, worker, expires_at) "
                    "VALUES (:job_id, :worker, :exp) "
                    "ON CONFLICT (job_id) DO UPDATE SET worker = excluded.worker, "
                    "expires_at = excluded.expires_at "
                    "WHERE leases.expires_at < :now OR leases.worker = :worker "
                    "OR leases.worker = :steal RETURNING worker"
                ),
                {"job_id": job_id, "worker": worker, "exp": now + lease_s, "now": now,
                 "steal": steal_from or ""},
            )
            if cur.fetchone() is None:
                return False
            if seen is not None:
                # Holding the lease, nobody else can be marking the job now: the row is stable.
                cur.execute(self._sql("SELECT processed_at FROM jobs WHERE job_id = :job_id"),
                            {"job_id": job_id})
                row = cur.fetchone()
                current = None if row is None else float(row[0])
                if current != seen.get(job_id):
                    raise _ProcessedMeanwhile
            return True

        try:
            return self._transact(work)
        except _ProcessedMeanwhile:
            return False  # rolled back: the lease we had just taken is not kept

    def renew_lease(self, job_id: int, worker: str, lease_s: float) -> bool:
        """Extend every lease ``worker`` holds to ``lease_s`` from now; True if ``job_id`` is
        still one of them.

        A heartbeat rather than one row: while a worker writes one job of a task, the other
        jobs (and the task key) it holds must not expire either, and one statement renews
        them all whatever their number (a worker holds only the jobs of its current task).
        Only rows that still name ``worker`` are renewed: an expired lease nobody took is
        still ours (a claim by another worker rewrites the row), while a lease another
        worker took over, or took, finished and released (row gone), is lost and the caller
        stops that job without writing.
        """
        def work(cur: Any) -> bool:
            cur.execute(
                self._sql("UPDATE leases SET expires_at = :exp WHERE worker = :worker"),
                {"worker": worker, "exp": time.time() + lease_s},
            )
            cur.execute(
                self._sql("SELECT 1 FROM leases WHERE job_id = :job_id AND worker = :worker"),
                {"job_id": job_id, "worker": worker},
            )
            return cur.fetchone() is not None

        return self._transact(work)

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
    def processed_marks(self) -> dict[int, float]:
        """``{job_id: processed_at}`` of every processed job: the snapshot for ``claim_job(seen=)``."""
        return {int(r[0]): float(r[1]) for r in self._fetch("SELECT job_id, processed_at FROM jobs")}

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

        def work(cur: Any) -> None:
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

        self._transact(work)

    def merges(self, job_id: int) -> list[dict[str, Any]]:
        rows = self._fetch(
            "SELECT detail FROM merges WHERE job_id = :job_id ORDER BY applied_at, into_id, from_id",
            {"job_id": job_id},
        )
        return [json.loads(r[0]) for r in rows]

    def record_backup(self, record: BackupRecord, data: bytes | None = None) -> None:
        """Keep a backup: ``data`` is the compressed document (``backup.py`` makes it).

        One row per (job, content hash): backing up unchanged annotations again keeps the
        first row, except that a row without data (or without a file path) gains them.
        """
        self._exec(
            "INSERT INTO backups (job_id, content_hash, created_at, path, size, data) VALUES "
            "(:job_id, :content_hash, :created_at, :path, :size, :data) "
            "ON CONFLICT (job_id, content_hash) DO UPDATE SET "
            "data = COALESCE(backups.data, excluded.data), "
            "size = CASE WHEN backups.data IS NULL THEN excluded.size ELSE backups.size END, "
            "path = CASE WHEN backups.path = '' THEN excluded.path ELSE backups.path END",
            {
                "job_id": record.job_id,
                "content_hash": record.content_hash,
                "created_at": record.created_at,
                "path": record.path,
                "size": len(data) if data is not None else 0,
                "data": data,
            },
        )

    def backups(self, job_id: int) -> list[BackupRecord]:
        """Backups of a job, oldest first (without their data: see :meth:`backup_data`)."""
        rows = self._fetch(
            "SELECT job_id, path, content_hash, created_at, size FROM backups "
            "WHERE job_id = :job_id ORDER BY created_at, content_hash",
            {"job_id": job_id},
        )
        return [BackupRecord(int(r[0]), r[1], r[2], float(r[3]), int(r[4])) for r in rows]

    def backup_data(self, job_id: int, content_hash: str) -> bytes | None:
        """The compressed backup document of a job's annotations with that hash, or None."""
        rows = self._fetch(
            "SELECT data FROM backups WHERE job_id = :job_id AND content_hash = :content_hash",
            {"job_id": job_id, "content_hash": content_hash},
        )
        if not rows or rows[0][0] is None:
            return None
        return bytes(rows[0][0])

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

    # ------------------------------------------------------------------ propagate's keyframes
    def record_propagated(self, job_id: int, run_id: str, rows: Sequence[PropagatedKeyframe]) -> None:
        """Remember keyframes ``propagate`` is about to write to ``job_id`` (one transaction).

        A row already known keeps its first run id, so :meth:`forget_propagated` of a refused
        run never forgets what an earlier run wrote.
        """
        now = time.time()

        def work(cur: Any) -> None:
            for r in rows:
                cur.execute(
                    self._sql(
                        "INSERT INTO propagated_keyframes (job_id, track_id, frame, box_hash, kind, "
                        "run_id, created_at) VALUES (:job_id, :track_id, :frame, :box_hash, :kind, "
                        ":run_id, :created_at) ON CONFLICT (job_id, track_id, frame, box_hash, kind) "
                        "DO NOTHING"
                    ),
                    {"job_id": job_id, "track_id": int(r.track_id), "frame": int(r.frame),
                     "box_hash": r.box_hash, "kind": r.kind, "run_id": run_id, "created_at": now},
                )

        self._transact(work)

    def propagated(self, job_id: int) -> list[PropagatedKeyframe]:
        """Every keyframe recorded by :meth:`record_propagated` for ``job_id``."""
        rows = self._fetch(
            "SELECT track_id, frame, box_hash, kind, run_id FROM propagated_keyframes "
            "WHERE job_id = :job_id ORDER BY track_id, frame, kind, box_hash",
            {"job_id": job_id},
        )
        return [PropagatedKeyframe(int(r[0]), int(r[1]), r[2], r[3], r[4]) for r in rows]

    def forget_propagated(self, job_id: int, run_id: str) -> None:
        """Drop the rows of a run whose write to ``job_id`` was refused (nothing written)."""
        self._exec(
            "DELETE FROM propagated_keyframes WHERE job_id = :job_id AND run_id = :run_id",
            {"job_id": job_id, "run_id": run_id},
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

    def _table_columns(self, cur: Any, table: str) -> set[str] | None:
        cur.execute(f"PRAGMA table_info({table})")
        cols = {str(r[1]) for r in cur.fetchall()}
        return cols or None


_NAMED = re.compile(r"(?<!:):([a-z_]+)")

#: Key of the advisory lock that serialises schema creation (concurrent ``CREATE TABLE IF NOT
#: EXISTS`` on Postgres can fail with a unique violation in its catalog).
_SCHEMA_LOCK = 0x63767472  # "cvtr"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ``***``: the form that may be logged or shown.

    >>> redact_url("postgresql://bob:s3cret@db:5432/cvat")
    'postgresql://bob:***@db:5432/cvat'
    >>> redact_url("postgresql://bob@db/cvat?password=s3cret&sslmode=require")
    'postgresql://bob@db/cvat?password=***&sslmode=require'
    """
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        auth, _, host = netloc.rpartition("@")
        if ":" in auth:
            netloc = f"{auth.split(':', 1)[0]}:***@{host}"
    query = parts.query
    if query:
        pairs = [(k, "***" if k == "password" else v) for k, v in parse_qsl(query, keep_blank_values=True)]
        query = urlencode(pairs, safe="*")
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


class PostgresStateStore(SqlStateStore):
    """The same store on PostgreSQL (``server`` extra: psycopg 3), for workers on several hosts.

    ``url`` is a libpq URL without a password (``postgresql://user@host:5432/db``): the
    password comes from the environment (``PGPASSWORD``) or a ``~/.pgpass`` file, as libpq
    reads them, because ``sync.state.path`` sits in a config file where secrets must not.
    Errors show the URL without secrets.

    Differences from SQLite, all in this class: placeholders (``:name`` → ``%(name)s``), an
    advisory lock around schema creation (several workers start at once), and a reconnect
    before the next transaction when the server dropped the connection (each public method
    is one transaction, safe to run again).

    Raises:
        ConfigError: the URL holds a password, is malformed, or the server cannot be reached
            or refuses the login.
    """

    def __init__(self, url: str, *, connect_timeout_s: float = 10.0) -> None:
        from cvat_extension._deps import require

        self._psycopg = require("psycopg", extra="server")
        try:
            params = self._psycopg.conninfo.conninfo_to_dict(url)
        except self._psycopg.ProgrammingError as exc:
            raise ConfigError(f"sync.state.path: malformed PostgreSQL URL {redact_url(url)!r}") from exc
        if params.get("password"):
            raise ConfigError(
                f"sync.state.path: {redact_url(url)!r} holds a password; remove it and set "
                "$PGPASSWORD (or use ~/.pgpass): secrets never live in the config file"
            )
        self.url = url
        self._timeout = max(1, round(connect_timeout_s))
        super().__init__(self._connect())

    def _connect(self) -> Any:
        pg = self._psycopg
        try:
            return pg.connect(self.url, connect_timeout=self._timeout,
                              application_name="cvat-track-sync")
        except pg.OperationalError as exc:
            reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
            raise ConfigError(
                f"sync.state.path: cannot connect to {redact_url(self.url)}: {reason}"
            ) from None

    def _sql(self, sql: str) -> str:
        return _NAMED.sub(r"%(\1)s", sql).replace(" BLOB", " BYTEA")

    def _table_columns(self, cur: Any, table: str) -> set[str] | None:
        cur.execute(
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = %(t)s", {"t": table},
        )
        cols = {str(r[0]) for r in cur.fetchall()}
        return cols or None

    def _create_schema(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%(key)s)", {"key": _SCHEMA_LOCK})
        super()._create_schema(cur)

    def _broken(self) -> bool:
        return bool(self._conn.closed or self._conn.broken)

    def _reconnect(self) -> None:
        logger.warning("state store: connection to %s lost; reconnecting", redact_url(self.url))
        self._conn = self._connect()


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
