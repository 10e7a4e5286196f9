"""``restore`` puts a job back from its backup and leaves no issue naming a missing track.

The job of the late-ghost overlap scenario gets both a merge and an issue naming its own
track id. Restoring it re-creates the merged-away track under its old id (PATCH with ids),
so the issue stays valid; where CVAT does not keep ids (simulated: PATCH ignored, so the
fallback PUT re-numbers everything) our open issues are re-opened under the new ids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cvat.harness import sync_harness
from cvat.scenario import seed_overlap, visible_boxes

from cvat_extension.cvat.backup import load_job_backup, restore_job
from cvat_extension.cvat.content import content_hash, loose_hash
from cvat_extension.cvat.review_push import track_refs
from cvat_extension.cvat.sync import run_sync


def open_issue_refs(standin: Any) -> list[tuple[int, int, set[int]]]:
    """(job, issue, track ids named in its first comment) of every open issue."""
    out = []
    with standin.store.lock:
        for i in standin.store.issues.values():
            if i.resolved:
                continue
            first = min((c for c in standin.store.comments.values() if c.issue_id == i.id), key=lambda c: c.id)
            out.append((i.job_id, i.id, track_refs(first.message)))
    return out


def missing_tracks(standin: Any) -> list[tuple[int, int, set[int]]]:
    bad = []
    for job, issue, refs in open_issue_refs(standin):
        have = {int(t["id"]) for t in standin.job_annotations(job)["tracks"]}
        if refs - have:
            bad.append((job, issue, refs - have))
    return bad


@pytest.fixture
def synced(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    cvat_standin.seed_user("reviewer", "pw")
    task_id, jobs = seed_overlap(cvat_standin, cvat_client, "late_ghost")
    make_cfg, make_api, store = sync_harness(cvat_standin, tmp_path)
    cfg = make_cfg()
    before = cvat_standin.job_annotations(jobs[1])
    summary = run_sync(make_api(cfg), store, cfg, report=False)
    assert summary.ok and summary.merges_applied == 1, summary.to_json()
    assert any(job == jobs[1] and refs for job, _, refs in open_issue_refs(cvat_standin))
    assert missing_tracks(cvat_standin) == []
    yield cvat_standin, jobs, make_api(cfg), store, before
    store.close()


def test_restore_keeps_track_ids(synced: Any) -> None:
    standin, jobs, api, store, before = synced
    doc = restore_job(api, store, jobs[1])
    assert doc["ids_kept"] and doc["issues_rewritten"] == {}
    assert content_hash(standin.job_annotations(jobs[1])) == content_hash(before)  # ids included
    assert missing_tracks(standin) == []
    # the restore itself was backed up first: the merged state can be put back too
    assert len(store.backups(jobs[1])) >= 2


def test_restore_where_cvat_renumbers_rewrites_our_open_issues(synced: Any) -> None:
    standin, jobs, api, store, before = synced

    class NoPatch:
        """CVAT that ignores ids on the way back: only a PUT restores (new ids)."""

        def __init__(self, inner: Any) -> None:
            self._inner = inner

        def __getattr__(self, name: str) -> Any:
            if name == "patch_job_annotations":
                return lambda *a, **kw: None
            return getattr(self._inner, name)

    doc = restore_job(NoPatch(api), store, jobs[1])
    assert not doc["ids_kept"] and doc["issues_rewritten"]
    after = standin.job_annotations(jobs[1])
    assert loose_hash(after) == loose_hash(before) and visible_boxes(after) == visible_boxes(before)
    assert missing_tracks(standin) == []
    # the old issue is resolved and points to its successor; the store follows it
    old, new = next(iter(doc["issues_rewritten"].items()))
    with standin.store.lock:
        assert standin.store.issues[old].resolved
        said = [c.message for c in standin.store.comments.values() if c.issue_id == old]
    assert any(f"#{new}" in m for m in said)
    assert new in {r.issue_id for r in store.issues(jobs[1]).values()}
    assert load_job_backup(store, jobs[1])["content_hash"] == content_hash(before)
