"""Backups kept in the state store and lease renewal, on SQLite and on a PostgreSQL server.

Backups must be readable by any worker sharing the store (another host has no access to
the first host's disk), survive as exact bytes, and old stores whose ``backups`` table only
held file paths are migrated without losing a row. Lease renewal is a heartbeat over every
lease a worker holds that fails for a job another worker has taken (or taken and released).
"""

from __future__ import annotations

import sqlite3
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cvat_extension.cvat.backup import decode_backup, encode_backup, load_job_backup, save_backup
from cvat_extension.cvat.content import content_hash
from cvat_extension.cvat.state_store import (
    BackupRecord,
    PostgresStateStore,
    SQLiteStateStore,
    StateStore,
)
from cvat_extension.errors import InputError


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Callable[[], StateStore], Callable[[str], None]]:
    """(open a store connection, run raw SQL on the same database)."""
    if request.param == "sqlite":
        path = tmp_path / "s.sqlite"

        def raw_sqlite(sql: str) -> None:
            with sqlite3.connect(path) as conn:
                conn.executescript(sql)

        return (lambda: SQLiteStateStore(path)), raw_sqlite
    url = request.getfixturevalue("pg_database")
    import psycopg

    def raw_pg(sql: str) -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(sql)

    return (lambda: PostgresStateStore(url)), raw_pg


ANN = {"version": 3, "tags": [], "shapes": [],
       "tracks": [{"id": 5, "frame": 0, "label_id": 1, "group": 0, "source": "manual", "attributes": [],
                   "elements": [], "shapes": [{"frame": f, "type": "rectangle", "points": [f, 2.5, 30, 40],
                                               "outside": False, "occluded": False, "z_order": 0,
                                               "rotation": 0.0, "attributes": []} for f in range(50)]}]}


def test_backup_lives_in_the_store_and_is_read_by_another_connection(backend: Any, tmp_path: Path) -> None:
    open_store, _ = backend
    a = open_store()
    rec = save_backup(a, None, job_id=4, task_id=2, annotations=ANN, updated_date="d1")
    assert rec.path == "" and rec.size > 0 and rec.content_hash == content_hash(ANN)
    again = save_backup(a, tmp_path / "copies", job_id=4, task_id=2, annotations=ANN, updated_date="d2")
    assert again.created_at == rec.created_at  # the first backup of this content is kept...
    assert Path(again.path).is_file()  # ...and gains the local copy asked for now
    a.close()
    b = open_store()  # another worker, another host: nothing but the store
    doc = load_job_backup(b, 4)
    assert doc["annotations"] == ANN and doc["updated_date"] == "d1" and doc["task_id"] == 2
    assert zlib.decompress(b.backup_data(4, rec.content_hash) or b"")  # zlib JSON bytes
    assert b.backup_data(4, "nope") is None and b.backup_data(5, rec.content_hash) is None
    with pytest.raises(InputError, match="job 9: no backup"):
        load_job_backup(b, 9)
    b.close()


def test_blob_bytes_round_trip_exactly(backend: Any) -> None:
    open_store, _ = backend
    s = open_store()
    blob = bytes(range(256)) * 40  # every byte value, NULs included
    s.record_backup(BackupRecord(1, "", "h1", 1.0, len(blob)), blob)
    assert s.backup_data(1, "h1") == blob
    s.record_backup(BackupRecord(1, "/x", "h1", 2.0), b"other")  # same content: first kept
    assert s.backup_data(1, "h1") == blob and [b.path for b in s.backups(1)] == ["/x"]
    s.record_backup(BackupRecord(1, "/old.json", "h0", 0.5))  # a row without data sorts first
    assert [(b.content_hash, b.size) for b in s.backups(1)] == [("h0", 0), ("h1", len(blob))]
    s.close()


def test_corrupt_backup_is_refused() -> None:
    doc = {"format": "cvat-track-backup/1", "job_id": 1, "task_id": 1, "taken_at": 0.0,
           "updated_date": "", "content_hash": content_hash(ANN), "annotations": ANN}
    assert decode_backup(encode_backup(doc))["annotations"] == ANN
    bad = dict(doc, annotations={**ANN, "tracks": []})
    with pytest.raises(InputError, match="corrupt"):
        decode_backup(encode_backup(bad), "job 1")
    with pytest.raises(InputError, match="cannot decode"):
        decode_backup(b"not zlib", "job 1")


def test_old_backups_table_is_migrated(backend: Any, tmp_path: Path) -> None:
    open_store, raw = backend
    old = tmp_path / "old.json"
    old.write_text('{"format": "cvat-track-backup/1", "job_id": 3, "task_id": 1, "taken_at": 1.0, '
                   '"updated_date": "d", "annotations": {"tags": [], "shapes": [], "tracks": []}}')
    raw("CREATE TABLE backups (job_id BIGINT NOT NULL, path TEXT NOT NULL, content_hash TEXT NOT NULL, "
        "created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (job_id, path)); "
        f"INSERT INTO backups VALUES (3, '{old}', 'h', 1.0)")
    s = open_store()
    assert [(b.path, b.size) for b in s.backups(3)] == [(str(old), 0)]
    assert load_job_backup(s, 3)["annotations"]["tracks"] == []  # read from its file
    s.close()
    s = open_store()  # reopening does not migrate again
    assert len(s.backups(3)) == 1
    s.close()


def test_renewal_is_a_heartbeat_that_fails_once_the_job_is_taken(backend: Any) -> None:
    open_store, _ = backend
    a, b = open_store(), open_store()
    assert a.claim_job(1, "a", lease_s=0.05) and a.claim_job(2, "a", lease_s=0.05)
    time.sleep(0.1)  # both expired, nobody took them: still a's
    assert a.renew_lease(1, "a", lease_s=60)
    assert not b.claim_job(2, "b", lease_s=60)  # job 2 was renewed by the same heartbeat
    assert a.lease_holder(2)[1] > time.time() + 50  # type: ignore[index]
    assert a.claim_job(3, "a", lease_s=0.01)
    time.sleep(0.02)
    assert b.claim_job(3, "b", lease_s=60)  # taken over after expiry
    assert not a.renew_lease(3, "a", lease_s=60)
    assert b.lease_holder(3)[0] == "b"  # type: ignore[index]  # a's renewal did not touch it
    b.release_job(3, "b")
    assert not a.renew_lease(3, "a", lease_s=60)  # taken, finished and released: still lost
    assert not b.renew_lease(1, "b", lease_s=60)
    a.close()
    b.close()
