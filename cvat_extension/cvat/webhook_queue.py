"""The webhook receiver's durable queue and delivery memory (one small SQLite file).

Why a file and not a ``queue.Queue``: the receiver answers CVAT 202 only once the job to sync
is *on disk*; a receiver killed between answering and syncing resumes the queued jobs when it
starts again instead of losing them (CVAT does not re-deliver a delivery it saw accepted).

Deduplication: CVAT re-delivers a webhook (its "redeliver" button, retries after a timeout)
with the very same body, and sends no delivery id header. A delivery is therefore known by
the SHA-256 of its body (plus its signature); one seen within ``dedupe_ttl_s`` is answered
200 "duplicate" and not queued again.

Bounded: at most ``max_pending`` jobs wait; beyond, :meth:`WebhookQueue.offer` answers
``"full"`` and the receiver replies 503 with ``Retry-After`` (CVAT records the failed
delivery; it can be re-delivered later).

Kept apart from :mod:`~cvat_extension.cvat.state_store` on purpose: the receiver is one
process on one host, while the state store may be a PostgreSQL shared by sync workers.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

__all__ = ["WebhookQueue"]

Offer = Literal["queued", "duplicate", "full"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS webhook_deliveries (digest TEXT PRIMARY KEY, seen REAL NOT NULL);
CREATE TABLE IF NOT EXISTS webhook_queue (
    seq INTEGER PRIMARY KEY, job_id INTEGER NOT NULL, digest TEXT NOT NULL, queued REAL NOT NULL
);
"""


class WebhookQueue:
    """Jobs to sync, durably queued, with the deliveries already seen.

    Args:
        path: SQLite file (created); ``":memory:"`` keeps nothing across restarts (tests).
        max_pending: jobs allowed to wait. Raise it if bursts of job completions get 503.
        dedupe_ttl_s: how long a delivery is remembered (CVAT retries within minutes).
        clock: wall-clock seconds (injectable for tests).
    """

    def __init__(
        self,
        path: str | Path = ":memory:",
        *,
        max_pending: int = 1000,
        dedupe_ttl_s: float = 24 * 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL" if str(path) != ":memory:" else "PRAGMA journal_mode=MEMORY")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self.max_pending = max_pending
        self.dedupe_ttl_s = dedupe_ttl_s
        self._clock = clock

    def offer(self, digest: str, job_id: int) -> Offer:
        """Queue ``job_id`` for delivery ``digest``, in one transaction."""
        now = self._clock()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute("DELETE FROM webhook_deliveries WHERE seen < ?", (now - self.dedupe_ttl_s,))
                if self._db.execute("SELECT 1 FROM webhook_deliveries WHERE digest = ?", (digest,)).fetchone():
                    self._db.execute("COMMIT")
                    return "duplicate"
                (pending,) = self._db.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()
                if pending >= self.max_pending:
                    self._db.execute("COMMIT")
                    return "full"
                self._db.execute("INSERT INTO webhook_deliveries (digest, seen) VALUES (?, ?)", (digest, now))
                self._db.execute(
                    "INSERT INTO webhook_queue (job_id, digest, queued) VALUES (?, ?, ?)", (job_id, digest, now)
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._ready.notify()
            return "queued"

    def remember(self, digest: str) -> bool:
        """Record a delivery that queues nothing (an ignored event); False if seen before."""
        now = self._clock()
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO webhook_deliveries (digest, seen) VALUES (?, ?) ON CONFLICT (digest) DO NOTHING",
                (digest, now),
            )
            return cur.rowcount == 1

    def next(self, timeout_s: float | None = None) -> tuple[int, int] | None:
        """The oldest queued ``(seq, job_id)``, waiting up to ``timeout_s``; it stays queued
        until :meth:`done`, so a crash mid-sync leaves it for the next start."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        with self._lock:
            while True:
                row = self._db.execute("SELECT seq, job_id FROM webhook_queue ORDER BY seq LIMIT 1").fetchone()
                if row is not None:
                    return int(row[0]), int(row[1])
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._ready.wait(remaining)

    def done(self, seq: int) -> None:
        """Remove a processed job from the queue."""
        with self._lock:
            self._db.execute("DELETE FROM webhook_queue WHERE seq = ?", (seq,))

    def wake(self) -> None:
        """Wake a waiting :meth:`next` (shutdown)."""
        with self._lock:
            self._ready.notify_all()

    def pending(self) -> int:
        """Jobs waiting."""
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM webhook_queue").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()
