"""The Postgres state store against a real PostgreSQL server (``pg_server`` fixture).

Same contract as the SQLite store (records round-trip, leases exclude other workers until
they expire), plus what only a server shows: claims from many connections at once have one
winner, the password comes from the environment and never appears in errors, and a
connection the server drops is replaced.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from cvat_extension.cvat.state_store import (
    BackupRecord,
    IssueRecord,
    JobRecord,
    JournalRecord,
    PostgresStateStore,
    open_state_store,
    redact_url,
)
from cvat_extension.errors import ConfigError


def test_records_round_trip_and_persist(pg_database: str) -> None:
    s = open_state_store(pg_database)
    assert isinstance(s, PostgresStateStore)
    assert s.get_job(1) is None and s.journal(1) is None and s.processed_marks() == {}
    s.mark_processed(JobRecord(1, 10, "2026-01-01T00:00:00Z", "abc", 1.5, [{"kind": "ghost"}],
                               "validation", "new"))
    s.record_issue(IssueRecord(1, "fp1", 99, 12, "r1", 2.0))
    s.record_issue(IssueRecord(1, "fp1", 100, 12, "r2", 3.0))  # re-raised: replaces
    s.record_merges(1, [{"into": 3, "from": 4, "gap": 2, "score": 0.9}])
    s.record_merges(1, [{"into": 3, "from": 4, "gap": 2, "score": 0.9}])  # idempotent
    s.record_backup(BackupRecord(1, "/b/1.json", "abc", 1.0))
    s.begin_journal(JournalRecord(1, "run", "abc", [{"action": "update", "payload": {}}], 0,
                                  "planned", "/b/1.json", [{"into": 3, "from": 4}], 1.0))
    s.advance_journal(1, 1)
    s.record_run("run", 0.5, {"jobs_checked": 1})
    s.close()

    s = open_state_store(pg_database)  # a new connection (another worker) sees it all
    job = s.get_job(1)
    assert job is not None and job.findings == [{"kind": "ghost"}] and job.stage == "validation"
    assert s.processed_marks() == {1: 1.5}
    assert s.issues(1)["fp1"].issue_id == 100
    assert s.merges(1) == [{"into": 3, "from": 4, "gap": 2, "score": 0.9}]
    assert [b.path for b in s.backups(1)] == ["/b/1.json"]
    j = s.journal(1)
    assert j is not None and j.ops_done == 1 and j.status == "planned" and j.merges == [{"into": 3, "from": 4}]
    s.finish_journal(1, "done")
    assert s.journal(1).status == "done"  # type: ignore[union-attr]
    s.forget_job(1)
    assert s.get_job(1) is None
    s.close()


def test_leases_exclude_other_workers_until_expiry(pg_database: str) -> None:
    a, b = PostgresStateStore(pg_database), PostgresStateStore(pg_database)
    assert a.claim_job(7, "worker-a", lease_s=60)
    assert not b.claim_job(7, "worker-b", lease_s=60)
    assert a.claim_job(7, "worker-a", lease_s=60)  # renewal by the holder
    assert not b.claim_job(7, "worker-b", lease_s=60, steal_from="host:9")  # not the holder
    a.release_job(7, "worker-a")
    assert b.claim_job(7, "worker-b", lease_s=0.01)
    time.sleep(0.02)
    assert a.claim_job(7, "worker-a", lease_s=60)  # expired lease is taken over
    assert a.lease_holder(7)[0] == "worker-a"  # type: ignore[index]
    assert b.claim_job(7, "worker-b", lease_s=60, steal_from="worker-a")  # its holder died
    a.close()
    b.close()


def test_claim_refused_when_processed_since_the_snapshot(pg_database: str) -> None:
    a, b = PostgresStateStore(pg_database), PostgresStateStore(pg_database)
    seen_by_b = b.processed_marks()  # b reads the store, then lists its jobs from CVAT...
    assert a.claim_job(5, "a", lease_s=60, seen=a.processed_marks())
    a.mark_processed(JobRecord(5, 1, "d2", "h", time.time(), []))
    a.release_job(5, "a")
    # ...its list is stale: job 5 was finished by a meanwhile, so b must not take it
    assert not b.claim_job(5, "b", lease_s=60, seen=seen_by_b)
    assert b.lease_holder(5) is None  # the refused claim left no lease behind
    assert b.claim_job(5, "b", lease_s=60, seen=b.processed_marks())  # a fresh snapshot may
    a.close()
    b.close()


def test_concurrent_claims_have_exactly_one_winner(pg_database: str) -> None:
    """16 connections race for each of 20 jobs through a barrier: one winner per job."""
    n_workers, jobs = 16, list(range(100, 120))
    stores = [PostgresStateStore(pg_database) for _ in range(n_workers)]
    barrier = threading.Barrier(n_workers)
    won: dict[int, list[str]] = {j: [] for j in jobs}
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            for j in jobs:
                barrier.wait()
                if stores[i].claim_job(j, f"w{i}", lease_s=60, seen={}):
                    with lock:
                        won[j].append(f"w{i}")
        except Exception as exc:  # noqa: BLE001 - a thread hands any error to the test
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n_workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert all(len(w) == 1 for w in won.values()), won
    assert {j: stores[0].lease_holder(j)[0] for j in jobs} == {j: w[0] for j, w in won.items()}  # type: ignore[index]
    for s in stores:
        s.close()


def test_schema_created_by_many_workers_at_once(pg_database: str) -> None:
    """Workers starting together on an empty database: the advisory lock keeps CREATE TABLE safe."""
    stores: list[Any] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            stores.append(PostgresStateStore(pg_database))
        except Exception as exc:  # noqa: BLE001 - a thread hands any error to the test
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors
    assert len(stores) == 8
    for s in stores:
        s.close()


def test_password_comes_from_the_environment_and_is_never_shown(
    pg_database: str, pg_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = pg_server.password
    with_password = pg_database.replace("cvat_track@", f"cvat_track:{secret}@")
    with pytest.raises(ConfigError, match=r"holds a password.*PGPASSWORD") as info:
        open_state_store(with_password)
    assert secret not in str(info.value) and "***" in str(info.value)
    monkeypatch.setenv("PGPASSWORD", "wrong")
    with pytest.raises(ConfigError, match="cannot connect to postgresql://cvat_track@127.0.0.1") as info:
        PostgresStateStore(pg_database, connect_timeout_s=5)
    assert "password authentication failed" in str(info.value)
    assert secret not in str(info.value) and "wrong" not in str(info.value)
    monkeypatch.setenv("PGPASSWORD", secret)
    PostgresStateStore(pg_database).close()
    assert redact_url(with_password).count("***") == 1 and secret not in redact_url(with_password)


def test_unreachable_server_is_a_config_error() -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(ConfigError, match=r"cannot connect to postgresql://u@127.0.0.1:1/db"):
        open_state_store("postgresql://u@127.0.0.1:1/db")


def test_dropped_connection_is_replaced(pg_database: str, pg_server: Any,
                                        caplog: pytest.LogCaptureFixture) -> None:
    import psycopg

    s = PostgresStateStore(pg_database)
    s.mark_processed(JobRecord(3, 1, "d", "h", 1.0, []))
    with psycopg.connect(pg_server.url(), password=pg_server.password, autocommit=True) as admin:
        killed = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'cvat-track-sync' AND datname = %s",
            (pg_database.rsplit("/", 1)[1],)).fetchall()
    assert killed == [(True,)]
    # the next call fails on the dead connection, reconnects and runs its transaction again
    with caplog.at_level("WARNING", logger="cvat_extension.cvat.state_store"):
        assert s.get_job(3) is not None
    assert "reconnecting" in caplog.text and pg_server.password not in caplog.text
    assert s.claim_job(3, "w", lease_s=60)
    s.close()
