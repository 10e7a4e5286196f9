"""Task-level write plans and issue identities in the state store (SQLite and PostgreSQL).

A plan is replaced per task, moved through its states only under its own id (a slow worker
cannot overwrite a newer plan), and survives reopening; an issue row keeps the finding's
identity; stores made before identities existed gain the column and keep their rows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from cvat_extension.cvat.state_store import IssueRecord, TaskPlanRecord, open_state_store


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_database"))
    return str(tmp_path / "s.sqlite")


def test_task_plans_round_trip_and_only_their_own_id_moves_them(location: str) -> None:
    s = open_state_store(location)
    assert s.task_plan(5) is None
    doc: dict[str, Any] = {"jobs": [{"job_id": 2, "ops": []}, {"job_id": 3, "ops": []}], "blocked": {}}
    s.begin_task_plan(TaskPlanRecord(5, "p1", "run", "planned", doc, 1.0))
    s.update_task_plan(5, "p1", "written")
    s.update_task_plan(5, "old", "rolled_back", {"reason": "stale"})  # not this plan: ignored
    s.close()
    s = open_state_store(location)
    rec = s.task_plan(5)
    assert rec is not None and rec.status == "written" and rec.doc == doc and rec.plan_id == "p1"
    s.update_task_plan(5, "p1", "done", {**doc, "reason": ""})
    s.begin_task_plan(TaskPlanRecord(5, "p2", "run2", "planned", {"jobs": []}, 2.0))  # the next plan
    rec = s.task_plan(5)
    assert rec is not None and (rec.plan_id, rec.status) == ("p2", "planned")
    s.close()


def test_issue_identity_round_trips(location: str) -> None:
    s = open_state_store(location)
    s.record_issue(IssueRecord(1, "fp", 9, 42, "r", 1.0, kinds=("ghost",), track_ids=(3, 7), frames=(42, 48)))
    s.record_issue(IssueRecord(1, "legacy", 8, 40, "r", 1.0))
    rows = s.issues(1)
    assert rows["fp"].kinds == ("ghost",) and rows["fp"].track_ids == (3, 7) and rows["fp"].frames == (42, 48)
    assert rows["legacy"].kinds == () and rows["legacy"].frames == (-1, -1)
    s.forget_issue(1, "legacy")
    assert set(s.issues(1)) == {"fp"}
    s.close()


def test_a_store_from_before_issue_identities_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE issues (job_id BIGINT NOT NULL, fingerprint TEXT NOT NULL, "
                 "issue_id BIGINT NOT NULL, frame BIGINT NOT NULL, region_hash TEXT NOT NULL, "
                 "created_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (job_id, fingerprint))")
    conn.execute("INSERT INTO issues VALUES (1, 'fp', 9, 42, 'r', 1.0)")
    conn.commit()
    conn.close()
    s = open_state_store(str(path))
    assert s.issues(1)["fp"].issue_id == 9 and s.issues(1)["fp"].kinds == ()
    s.record_issue(IssueRecord(1, "fp2", 10, 42, "r", 2.0, kinds=("ghost",), track_ids=(3,), frames=(1, 2)))
    assert s.issues(1)["fp2"].kinds == ("ghost",)
    s.close()
