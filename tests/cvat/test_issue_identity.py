"""One issue per finding: an item whose frame range or score moved a little keeps its issue.

Between runs a finding's range can shift (a merge elsewhere changes the camera-motion
estimate; 42 became 42-48 on a real CVAT), which changes the item's fingerprint. The issue
is matched by check kind, objects and overlapping frames instead, updated with a comment,
and our other open issues about the same finding are closed, never duplicated.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cvat.harness import sync_harness

from cvat_extension.core.findings import Finding, ReviewItem
from cvat_extension.cvat.review_push import IssuePlan, fingerprint, push_issues, same_finding
from cvat_extension.cvat.state_store import IssueRecord


def item(kind: str, tracks: tuple[int, ...], frames: tuple[int, int], score: float = 0.8) -> ReviewItem:
    f = Finding(kind, tracks, frames, (10.0, 10.0, 50.0, 50.0), score, f"track {tracks[0]}: {kind}")
    return ReviewItem(track_ids=tracks, frames=frames, frame=frames[0], box=f.box, score=score,
                      kinds=(kind,), findings=(f,), message=f.message)


def plan(job_id: int, it: ReviewItem, region: str = "r") -> IssuePlan:
    fp = fingerprint(it)
    return IssuePlan(job_id=job_id, frame=it.frame, position=[10.0, 10.0, 50.0, 50.0],
                     message=f"{it.kinds[0]}: track {it.track_ids[0]}, frames {it.frames} [cvat-track {fp}]",
                     fingerprint=fp, region=region, item=it)


@pytest.fixture
def job_env(cvat_standin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    task_id = cvat_standin.seed_task("t", [{"name": "car"}], (60, 64, 48), segment_size=60)
    job = cvat_standin.job_ids(task_id)[0]
    make_cfg, make_api, store = sync_harness(cvat_standin, tmp_path)
    yield cvat_standin, job, make_api(make_cfg()), store
    store.close()


def open_issues(standin: Any) -> list[Any]:
    with standin.store.lock:
        return [i for i in standin.store.issues.values() if not i.resolved]


def comments(standin: Any, issue_id: int) -> list[str]:
    with standin.store.lock:
        return [c.message for c in sorted(standin.store.comments.values(), key=lambda c: c.id)
                if c.issue_id == issue_id]


@pytest.mark.parametrize(
    ("moved", "same"),
    [
        (item("ghost", (3,), (42, 48)), True),        # the range grew (the real case)
        (item("ghost", (3,), (45, 45), 0.6), True),   # moved within the slack, other score
        (item("ghost", (3, 9), (42, 42)), False),     # other objects
        (item("box_jump", (3,), (42, 42)), False),    # another check
        (item("ghost", (3,), (50, 58)), False),       # another place of the same track
    ],
)
def test_a_moved_finding_keeps_its_issue(job_env: Any, moved: ReviewItem, same: bool) -> None:
    standin, job, api, store = job_env
    first = push_issues(api, store, job, [plan(job, item("ghost", (3,), (42, 42)))], job_issue_count=0)
    assert len(first.created) == 1
    (issue_id,) = first.created
    again = push_issues(api, store, job, [plan(job, moved, region="r2")], job_issue_count=1)
    if same:
        assert again.created == [] and again.still_open == [issue_id]
        assert len(open_issues(standin)) == 1
        assert comments(standin, issue_id)[-1].startswith("Updated: ")
        assert fingerprint(moved) in comments(standin, issue_id)[-1]
        assert {r.fingerprint: r.issue_id for r in store.issues(job).values()} == {fingerprint(moved): issue_id}
    else:
        assert len(again.created) == 1 and len(open_issues(standin)) == 2
    # and a third run changes nothing
    third = push_issues(api, store, job, [plan(job, moved, region="r2")], job_issue_count=2)
    assert third.created == [] and len(open_issues(standin)) == (1 if same else 2)


def test_duplicate_open_issues_of_one_finding_are_closed_with_a_comment(job_env: Any) -> None:
    """Two open issues for one swap (left by an older version): the next push keeps the most
    recent, resolves the other and says which one replaces it."""
    standin, job, api, store = job_env
    ids = []
    for n, frames in enumerate([(42, 42), (42, 48)]):
        it = item("id_switch", (4, 7), frames)
        issue = api.create_issue(job_id=job, frame=42, position=[1.0, 1.0, 5.0, 5.0], message="swap")
        ids.append(int(issue["id"]))
        store.record_issue(IssueRecord(job, fingerprint(it), ids[-1], 42, "r", float(n),
                                       kinds=it.kinds, track_ids=it.track_ids, frames=it.frames))
    result = push_issues(api, store, job, [plan(job, item("id_switch", (4, 7), (42, 47)))], job_issue_count=2)
    assert result.created == [] and result.still_open == [ids[1]]
    assert [i.id for i in open_issues(standin)] == [ids[1]]
    assert comments(standin, ids[0])[-1].startswith(f"Superseded by issue #{ids[1]}")


def test_rows_without_identity_match_by_fingerprint_only() -> None:
    legacy = IssueRecord(1, "f" * 16, 5, 42, "r", 0.0)
    assert not same_finding(legacy, item("ghost", (3,), (42, 42)))
