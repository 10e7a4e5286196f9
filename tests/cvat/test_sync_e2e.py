"""End to end through cvat-sdk against the CVAT stand-in: one run fixes and flags, a second
run changes nothing."""

from __future__ import annotations

import re
from typing import Any

from cvat.scenario import SWAP_FRAME, visible_boxes, writes

from cvat_extension.cvat.sync import run_sync


def issues_of(standin: Any, job_id: int) -> list[Any]:
    with standin.store.lock:
        return sorted((i for i in standin.store.issues.values() if i.job_id == job_id),
                      key=lambda i: i.frame)


def messages(standin: Any, issue_id: int) -> list[str]:
    with standin.store.lock:
        return [c.message for c in standin.store.comments.values() if c.issue_id == issue_id]


def job_state(standin: Any, job_id: int) -> tuple[str, str, int | None]:
    with standin.store.lock:
        j = standin.store.jobs[job_id]
        return j.stage, j.state, j.assignee_id


def test_sync_once_then_idempotent(sync_env: Any) -> None:
    standin, task_id, (job1, job2), make_cfg, make_api, store, reviewer = sync_env
    cfg = make_cfg()
    api = make_api(cfg)
    before2 = standin.job_annotations(job2)
    assert len(before2["tracks"]) == 3  # crossing piece + two fragments

    summary = run_sync(api, store, cfg, report=True)

    assert summary.ok, summary.to_json()
    assert summary.jobs_checked == 2 and summary.merges_applied == 1
    # --- fragment merged in job 2: one track holds both pieces, nothing lost
    after2 = standin.job_annotations(job2)
    assert len(after2["tracks"]) == 2
    assert visible_boxes(after2) == visible_boxes(before2)
    merged = [t for t in after2["tracks"] if len(t["shapes"]) > 10]
    assert len(merged) == 1
    frames = [(s["frame"], s["outside"]) for s in merged[0]["shapes"]]
    assert (41, True) in frames and (46, False) in frames  # gap kept as a gap
    # --- issues: job 1 gets the swap and the ghost, job 2 (crossing track, merged) none
    assert issues_of(standin, job2) == []
    iss = issues_of(standin, job1)
    texts = [" ".join(messages(standin, i.id)) for i in iss]
    swap = [i for i, t in zip(iss, texts) if t.startswith("id_switch")]
    ghost = [i for i, t in zip(iss, texts) if t.startswith("ghost")]
    assert len(swap) == 1 and len(ghost) == 1 and len(iss) == 2, texts
    assert abs(swap[0].frame - SWAP_FRAME) <= 1
    # the issue is drawn on one of the two swapped boxes at that frame
    p_x = 60 + 6 * swap[0].frame if swap[0].frame < SWAP_FRAME else 260 - 6 * swap[0].frame
    q_x = 260 - 6 * swap[0].frame if swap[0].frame < SWAP_FRAME else 60 + 6 * swap[0].frame
    assert swap[0].position[1] == 200 and swap[0].position[0] in (p_x, q_x)
    assert ghost[0].frame == 8 and list(ghost[0].position) == [528.0, 300.0, 578.0, 350.0]
    # messages name check, tracks and frame range; the crossing track (piece ids 1, 5) is absent
    assert re.search(r"id_switch: tracks \d+, \d+, frames? \d+(-\d+)? \(score", texts[iss.index(swap[0])])
    assert "[cvat-track " in texts[0]
    assert "track 1," not in " ".join(texts) and "track 1 " not in " ".join(texts)
    assert summary.findings_by_kind.get("fragment", 0) == 0
    # --- stages: job with items to validation + reviewer; clean job to acceptance
    assert job_state(standin, job1) == ("validation", "new", reviewer)
    assert job_state(standin, job2)[:2] == ("acceptance", "completed")
    assert summary.reports and summary.reports[0].endswith("index.html")

    # --- second run: nothing written, no new issues
    mark = len(standin.request_log)
    again = run_sync(make_api(cfg), store, cfg, report=True)
    assert writes(standin, mark) == []
    assert again.issues_opened == 0 and again.merges_applied == 0
    assert len(issues_of(standin, job1)) == 2
    assert again.jobs_unchanged == 1  # job 2 still completed (acceptance), unchanged; job 1 in review


def test_resolved_issue_is_respected_until_the_region_changes(sync_env: Any) -> None:
    standin, task_id, (job1, job2), make_cfg, make_api, store, reviewer = sync_env
    cfg = make_cfg(review={"on_findings": "none", "clean_to_acceptance": False})
    run_sync(make_api(cfg), store, cfg, report=False)
    first = issues_of(standin, job1)
    assert len(first) == 2
    # a reviewer resolves both issues and completes the job again (touching updated_date)
    with standin.store.lock:
        for i in first:
            standin.store.issues[i.id].resolved = True
    standin.set_job(job1, stage="annotation", state="in progress")
    standin.set_job(job1, stage="annotation", state="completed")
    again = run_sync(make_api(cfg), store, cfg, report=False)
    assert again.issues_opened == 0 and again.issues_resolved_respected == 2
    assert len(issues_of(standin, job1)) == 2
    # now the annotator moves the ghost box: that region changed, the ghost is raised again
    doc = standin.job_annotations(job1)
    ghost = next(t for t in doc["tracks"] if len(t["shapes"]) == 11)
    ghost["shapes"][-2]["points"] = [528.0, 301.0, 578.0, 351.0]  # still frozen, moved 1 px
    standin.edit_as_user(job1, {"tags": [], "shapes": [], "tracks": [ghost]}, action="update")
    standin.set_job(job1, stage="annotation", state="completed")
    third = run_sync(make_api(cfg), store, cfg, report=False)
    assert third.issues_opened >= 1
    assert len(issues_of(standin, job1)) == 2 + third.issues_opened


def test_dry_run_writes_nothing_and_lists_the_plan(sync_env: Any) -> None:
    standin, task_id, (job1, job2), make_cfg, make_api, store, reviewer = sync_env
    cfg = make_cfg()
    mark = len(standin.request_log)
    summary = run_sync(make_api(cfg), store, cfg, dry_run=True, report=False)
    assert writes(standin, mark) == []
    assert store.get_job(job1) is None and store.backups(job2) == []
    plan = "\n".join(summary.planned)
    assert f"job {job2}: merge track" in plan and f"job {job1}: issue at frame" in plan
    assert summary.issues_opened == 2 and summary.merges_applied == 1


def test_bad_check_settings_fail_before_any_call(sync_env: Any) -> None:
    import pytest

    from cvat_extension.errors import ConfigError

    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    api = make_api(make_cfg())
    mark = len(standin.request_log)
    with pytest.raises(ConfigError, match="sync.checks"):
        run_sync(api, store, make_cfg(checks={"ghosts": {}}), report=False)
    with pytest.raises(ConfigError, match="sync.merge.options"):
        run_sync(api, store, make_cfg(merge={"options": {"max_gap": 3}}), report=False)
    assert len(standin.request_log) == mark


def test_unparseable_annotations_fail_that_task_only(sync_env: Any, cvat_client: Any) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    cfg = make_cfg()
    api = make_api(cfg)
    real = api.get_task_annotations

    def broken(tid: int) -> Any:
        doc = real(tid)
        doc["tracks"][0]["shapes"][0]["points"] = [1.0, 2.0]  # not a rectangle
        return doc

    api.get_task_annotations = broken  # type: ignore[method-assign]
    summary = run_sync(api, store, cfg, report=False)
    assert summary.failures and "AnnotationFormatError" in summary.failures[0]
    assert "tracks[0] (id 1).shapes[0]" in summary.failures[0]
    assert all(store.get_job(j) is None for j in jobs)  # retried next run
