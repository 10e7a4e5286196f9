"""SQLite state store: leases between workers, idempotent records, survives reopening."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cvat_extension.cvat.state_store import (
    BackupRecord,
    IssueRecord,
    JobRecord,
    JournalRecord,
    PostgresStateStore,
    SQLiteStateStore,
    open_state_store,
)
from cvat_extension.errors import ConfigError


def test_leases_exclude_other_workers_until_expiry(tmp_path: Path) -> None:
    a = SQLiteStateStore(tmp_path / "s.sqlite")
    b = SQLiteStateStore(tmp_path / "s.sqlite")  # a second worker on the same file
    assert a.claim_job(7, "worker-a", lease_s=60)
    assert not b.claim_job(7, "worker-b", lease_s=60)
    assert a.claim_job(7, "worker-a", lease_s=60)  # renewal by the holder
    a.release_job(7, "worker-a")
    assert b.claim_job(7, "worker-b", lease_s=0.01)
    time.sleep(0.02)
    assert a.claim_job(7, "worker-a", lease_s=60)  # expired lease is taken over


def test_records_round_trip_and_persist(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    s = SQLiteStateStore(path)
    assert s.get_job(1) is None and s.journal(1) is None
    s.mark_processed(JobRecord(1, 10, "2026-01-01T00:00:00Z", "abc", 1.0, [{"kind": "ghost"}], "validation", "new"))
    s.record_issue(IssueRecord(1, "fp1", 99, 12, "r1", 2.0))
    s.record_issue(IssueRecord(1, "fp1", 100, 12, "r2", 3.0))  # re-raised: replaces
    s.record_merges(1, [{"into": 3, "from": 4, "gap": 2, "score": 0.9}])
    s.record_merges(1, [{"into": 3, "from": 4, "gap": 2, "score": 0.9}])  # idempotent
    s.record_backup(BackupRecord(1, "/b/1.json", "abc", 1.0))
    s.begin_journal(JournalRecord(1, "run", "abc", [{"action": "update", "payload": {}}], 0, "planned", "/b/1.json", [], 1.0))
    s.advance_journal(1, 1)
    s.close()
    s = SQLiteStateStore(path)
    job = s.get_job(1)
    assert job is not None and job.findings == [{"kind": "ghost"}] and job.stage == "validation"
    assert s.issues(1)["fp1"].issue_id == 100
    assert s.merges(1) == [{"into": 3, "from": 4, "gap": 2, "score": 0.9}]
    assert [b.path for b in s.backups(1)] == ["/b/1.json"]
    j = s.journal(1)
    assert j is not None and j.ops_done == 1 and j.status == "planned"
    s.finish_journal(1, "done")
    assert s.journal(1).status == "done"  # type: ignore[union-attr]
    s.forget_job(1)
    assert s.get_job(1) is None


def test_postgres_placeholders_are_translated() -> None:
    sql = PostgresStateStore._sql(None, "SELECT 1 WHERE a = :job_id AND b = :now")  # type: ignore[arg-type]
    assert sql == "SELECT 1 WHERE a = %(job_id)s AND b = %(now)s"


def test_unknown_store_scheme_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unsupported store 'redis'"):
        open_state_store("redis://localhost/0")
    assert isinstance(open_state_store(str(tmp_path / "x.sqlite")), SQLiteStateStore)


def test_lease_of_a_dead_holder_can_be_stolen(tmp_path: Path) -> None:
    s = SQLiteStateStore(tmp_path / "s.sqlite")
    assert s.claim_job(3, "host:1", lease_s=600)
    assert s.lease_holder(3)[0] == "host:1"  # type: ignore[index]
    assert not s.claim_job(3, "host:2", lease_s=600)
    assert not s.claim_job(3, "host:2", lease_s=600, steal_from="host:9")  # not the holder
    assert s.claim_job(3, "host:2", lease_s=600, steal_from="host:1")
