"""The CVAT loop on a task whose segments overlap (video tasks usually do).

Same scenario as ``test_sync_e2e.py`` but with ``segment_size=30, overlap=5``: CVAT lays
the jobs out at ``range(0, size - overlap, segment_size - overlap)``
(``cvat/apps/engine/task.py`` ``_generate_segment_params``), so 60 frames give jobs 0-29,
25-54 and 50-59, and every track crossing a boundary is stored twice in the overlap frames
(one copy per job, each with its own id); the task-level read re-joins them.

Decisions these tests pin down:

- a finding is pushed once, to the earliest job holding its first frame (the ghost, frames
  8-28, goes to job 1 although job 2 also shows frames 25-28);
- a fragment merge is written to every job that holds both pieces (both sides of the gap);
  when the gap lies in an overlap that is two jobs, each merges its own copies, so the
  jobs stay consistent and the task-level read shows one object; when one of them is not
  finished work, the merge is refused in all of them and becomes a review item.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cvat.harness import sync_harness
from cvat.scenario import NUM_FRAMES, SIZE, rect, seed_overlap, track, visible_boxes, writes

from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.connection import connect
from cvat_extension.cvat.sync import run_sync

SEGMENT = 30
OVERLAP = 5


@pytest.fixture(params=["scenario"])
def overlap_env(request: pytest.FixtureRequest, cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    reviewer = cvat_standin.seed_user("reviewer", "pw")
    task_id, jobs = seed_overlap(cvat_standin, cvat_client, request.param)
    make_cfg, make_api, store = sync_harness(cvat_standin, tmp_path)
    yield cvat_standin, task_id, jobs, make_cfg, make_api, store, reviewer
    store.close()


def job_doc_by_id(standin: Any, job_id: int) -> dict[int, Any]:
    return {int(t["id"]): t for t in standin.job_annotations(job_id)["tracks"]}


def issues_by_job(standin: Any) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    with standin.store.lock:
        for i in standin.store.issues.values():
            out.setdefault(i.job_id, []).append(i)
    return out


def comment_text(standin: Any, issue_id: int) -> str:
    with standin.store.lock:
        return " ".join(c.message for c in standin.store.comments.values() if c.issue_id == issue_id)


def visible_frames_of_task_tracks(standin: Any, task_id: int) -> list[set[int]]:
    with standin.store.lock:
        doc = standin.store.read_task(task_id)
    return [{int(s["frame"]) for s in t["shapes"] if not s["outside"]} for t in doc["tracks"]]


def test_jobs_are_laid_out_like_cvat(overlap_env: Any) -> None:
    standin, _task_id, jobs, *_ = overlap_env
    with standin.store.lock:
        ranges = [(standin.store.jobs[j].start_frame, standin.store.jobs[j].stop_frame) for j in jobs]
    cvat = [(s, min(s + SEGMENT - 1, NUM_FRAMES - 1)) for s in range(0, NUM_FRAMES - OVERLAP, SEGMENT - OVERLAP)]
    assert ranges == cvat == [(0, 29), (25, 54), (50, 59)]


def test_sync_on_overlapping_jobs(overlap_env: Any) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _reviewer = overlap_env
    job1, job2, job3 = jobs
    cfg = make_cfg()
    before = {j: job_doc_by_id(standin, j) for j in jobs}
    assert len(before[job2]) == 6  # crossing copy, p/q/ghost copies of 25-28, both fragments

    summary = run_sync(make_api(cfg), store, cfg, report=False)

    assert summary.ok, summary.to_json()
    assert summary.jobs_checked == 3 and summary.merges_applied == 1 and summary.merges_refused == 0
    # the crossing track is neither a fragment nor a switch; nothing is counted twice
    assert dict(summary.findings_by_kind) == {"id_switch": 1, "ghost": 1}
    # one issue per finding, on the earliest job holding its first frame (job 1), none on
    # job 2 although its overlap frames 25-28 show the ghost and the swapped pair too
    iss = issues_by_job(standin)
    assert set(iss) == {job1}, {j: [comment_text(standin, i.id) for i in v] for j, v in iss.items()}
    texts = sorted(comment_text(standin, i.id).split(":")[0] for i in iss[job1])
    assert texts == ["ghost", "id_switch"]
    # the merge went to job 2 only (job 3 holds frag_b alone): one track fewer there, every
    # visible keyframe kept; jobs 1 and 3 untouched
    after = {j: job_doc_by_id(standin, j) for j in jobs}
    assert after[job1] == before[job1] and after[job3] == before[job3]
    assert len(after[job2]) == 5
    gone = set(before[job2]) - set(after[job2])
    assert len(gone) == 1
    for tid, t in after[job2].items():
        if tid in before[job2] and any(not s["outside"] and s["frame"] in range(32, 41) for s in t["shapes"]):
            merged = tid
    assert visible_boxes({"tracks": list(after[job2].values())}) == \
        visible_boxes({"tracks": list(before[job2].values())})
    for tid in set(after[job2]) - {merged}:
        assert after[job2][tid] == before[job2][tid]
    # the task-level read re-joins the merged job-2 track with job 3's copy: one object 32-56
    spans = visible_frames_of_task_tracks(standin, task_id)
    frag = [f for f in spans if 35 in f or 50 in f and min(f) >= 30]
    assert len(frag) == 1 and {32, 40, 46, 56} <= frag[0] and not frag[0] & {41, 42, 43, 44, 45}

    # second run: nothing written, nothing new
    mark = len(standin.request_log)
    again = run_sync(make_api(cfg), store, cfg, report=False)
    assert writes(standin, mark) == []
    assert again.issues_opened == 0 and again.merges_applied == 0
    assert {j: job_doc_by_id(standin, j) for j in jobs} == after


@pytest.mark.parametrize("overlap_env", ["merge_in_overlap"], indirect=True)
def test_merge_inside_the_overlap_is_written_to_both_jobs(overlap_env: Any) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _reviewer = overlap_env
    job1, job2, job3 = jobs
    cfg = make_cfg()
    before = {j: job_doc_by_id(standin, j) for j in jobs}

    summary = run_sync(make_api(cfg), store, cfg, report=False)

    assert summary.ok, summary.to_json()
    assert summary.merges_applied == 2 and summary.merges_refused == 0  # one per job
    after = {j: job_doc_by_id(standin, j) for j in jobs}
    assert after[job1] == before[job1]
    for j in (job2, job3):
        assert len(after[j]) == len(before[j]) - 1
        assert visible_boxes({"tracks": list(after[j].values())}) == \
            visible_boxes({"tracks": list(before[j].values())})
        merged = [t for t in after[j].values()
                  if {51, 54} <= {s["frame"] for s in t["shapes"]}]
        assert len(merged) == 1
        shapes = {s["frame"]: s["outside"] for s in merged[0]["shapes"]}
        assert shapes[51] is True and shapes[54] is False  # the gap stays a gap
    # both jobs agree, so the task-level read shows one object and no duplicate in 50-54
    spans = [f for f in visible_frames_of_task_tracks(standin, task_id) if f & set(range(40, 59))
             and min(f) >= 30]
    assert len(spans) == 1 and {40, 50, 54, 58} <= spans[0] and not spans[0] & {51, 52, 53}
    assert summary.findings_by_kind.get("fragment", 0) == 0

    mark = len(standin.request_log)
    again = run_sync(make_api(cfg), store, cfg, report=False)
    assert writes(standin, mark) == [] and again.merges_applied == 0


@pytest.mark.parametrize("overlap_env", ["merge_in_overlap"], indirect=True)
def test_merge_in_overlap_with_an_unfinished_job_becomes_a_review_item(overlap_env: Any) -> None:
    standin, _task_id, jobs, make_cfg, make_api, store, _reviewer = overlap_env
    _job1, job2, job3 = jobs
    standin.set_job(job3, stage="annotation", state="in progress")
    cfg = make_cfg()
    before = {j: job_doc_by_id(standin, j) for j in jobs}

    summary = run_sync(make_api(cfg), store, cfg, report=False)

    assert summary.ok, summary.to_json()
    assert summary.merges_applied == 0 and summary.merges_refused == 1
    assert {j: job_doc_by_id(standin, j) for j in jobs} == before  # neither job half-merged
    iss = issues_by_job(standin)
    frag = [i for i in iss.get(job2, []) if comment_text(standin, i.id).startswith("fragment")]
    assert len(frag) == 1 and "not finished work" in comment_text(standin, frag[0].id)
    assert job3 not in iss


def _standin_boxes(track_json: dict[str, Any], size: int) -> dict[int, tuple[float, ...]]:
    """Visible boxes of one task-level track as the stand-in (CVAT's interpolation) draws them."""
    from cvat_standin.annotations import interpolated_shapes

    return {int(s["frame"]): tuple(float(v) for v in s["points"])
            for s in interpolated_shapes(track_json, 0, size) if not s.get("outside")}


def test_open_tracks_in_overlap_frames_expand_like_cvat(cvat_standin: Any, cvat_client: Any,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A track left open in an overlap frame runs to the end of the job that holds it.

    Written job by job (as annotators do): job 3 (50-59) holds a track whose last box is
    in frame 53, inside the overlap 50-54 it shares with job 2; CVAT's task-level read
    leaves it open (no later job closes it), so it runs to the task's end, 59, not to job
    2's end, 54. Job 2's track open at frame 28 (overlap of jobs 1 and 2) and job 1's open
    at 27 are closed by CVAT's merge at the end of their own jobs (55 and 30).
    """
    from cvat_extension.cvat.annotations import read_task

    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    task_id = cvat_standin.seed_task("open", [{"name": "car"}], (NUM_FRAMES, *SIZE),
                                     segment_size=SEGMENT, overlap=OVERLAP)
    car = cvat_standin.label_id(task_id, "car")
    job1, job2, job3 = cvat_standin.job_ids(task_id)
    # far apart, so CVAT's overlap merge joins none of them
    cvat_standin.edit_as_user(job1, {"tracks": [track(car, [rect(20, 10, 10, 40, 40), rect(27, 30, 10, 40, 40)])]},
                              action="create")
    cvat_standin.edit_as_user(job2, {"tracks": [track(car, [rect(27, 200, 200, 40, 40), rect(28, 204, 200, 40, 40)])]},
                              action="create")
    cvat_standin.edit_as_user(job3, {"tracks": [track(car, [rect(52, 500, 400, 40, 40), rect(53, 505, 400, 40, 40)])]},
                              action="create")
    with cvat_standin.store.lock:
        task_doc = cvat_standin.store.read_task(task_id)
    want = {int(t["id"]): _standin_boxes(t, NUM_FRAMES) for t in task_doc["tracks"]}
    assert sorted((min(b), max(b)) for b in want.values()) == [(20, 29), (27, 54), (52, 59)]

    api = connect(SyncConfig.from_mapping({"cvat": {"url": cvat_standin.url, "timeout_s": 2}}).cvat)
    snap = read_task(api, task_id)
    got: dict[int, dict[int, tuple[float, ...]]] = {}
    vis = snap.dense[~snap.dense.outside]
    for piece, sid in snap.piece_to_stitched.items():
        rows = vis[vis.track_id == sid]
        got[piece] = {int(f): tuple(float(v) for v in b) for f, b in zip(rows.frame, rows.xyxy)}
    assert got == want


@pytest.mark.parametrize("overlap_env", ["late_ghost"], indirect=True)
def test_issue_on_a_later_job_names_that_jobs_track_ids(overlap_env: Any) -> None:
    """An issue names the track as the job it is opened on stores it.

    The ghost's object starts in job 1, so the task-level read shows it under job 1's
    piece id; its issue goes to job 2 (its frames 32-50), whose reviewer only sees job 2's
    own copy, with another id. The id comes from job 2's read, matched by boxes.
    """
    standin, task_id, jobs, make_cfg, make_api, store, _reviewer = overlap_env
    job1, job2, _job3 = jobs
    cfg = make_cfg()
    with standin.store.lock:
        task_doc = standin.store.read_task(task_id)
    frozen = [400.0 + 4 * 21, 130.0, 400.0 + 4 * 21 + 40, 180.0]

    def holder(doc: dict[str, Any]) -> int:
        ids = [int(t["id"]) for t in doc["tracks"] if any(s["frame"] == 50 and s["points"] == frozen
                                                          and not s["outside"] for s in t["shapes"])]
        assert len(ids) == 1, ids
        return ids[0]

    task_level_id = holder(task_doc)
    job2_id = holder(standin.job_annotations(job2))
    assert task_level_id in job_doc_by_id(standin, job1) and job2_id != task_level_id

    api = make_api(cfg)
    summary = run_sync(api, store, cfg, report=False)

    assert summary.ok, summary.to_json()
    ghost_issues = [i for i in issues_by_job(standin).get(job2, [])
                    if comment_text(standin, i.id).startswith("ghost")]
    assert len(ghost_issues) == 1, {j: [comment_text(standin, i.id) for i in v]
                                    for j, v in issues_by_job(standin).items()}
    text = comment_text(standin, ghost_issues[0].id)
    assert f"track {job2_id}," in text and str(task_level_id) not in text.split(",")[0], text
    # the ids, the holders' agreement check and the backups before the issue and stage
    # writes cost one read of each job after the merge written to job 2 (whose earlier
    # read is stale), whatever the task's length
    log = standin.request_log
    last_write = max(i for i, r in enumerate(log) if r.method == "PATCH" and r.path.endswith("/annotations/"))
    after = [r.path for r in log[last_write + 1:] if r.method == "GET" and r.path.startswith("/api/jobs/")
             and r.path.endswith("/annotations/")]
    assert sorted(after) == sorted(f"/api/jobs/{j}/annotations/" for j in jobs)

    mark = len(standin.request_log)
    again = run_sync(make_api(cfg), store, cfg, report=False)
    assert writes(standin, mark) == [] and again.issues_opened == 0
