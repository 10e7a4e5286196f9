"""All holders or none: a merge in the frames two jobs share, through kills and concurrent edits.

The task has CVAT's default video layout (segment 30, overlap 5: jobs 0-29, 25-54, 50-59) and
a fragment whose gap (frames 51-53) lies in the overlap of jobs 2 and 3, so both jobs hold
both pieces and the merge must be written to both or to neither. The stand-in joins the
jobs' copies as CVAT's task-level read does, so a half-written merge shows here exactly as on
a real server: the object frozen on extra frames next to a separate fragment.

Every case ends with CVAT's task-level read and its "CVAT for video 1.1" export equal to
either the untouched task or the fully merged one (0 extra, 0 lost boxes), no duplicate
issue on re-runs, and a backup of every job the run wrote anything to. Kills are injected
in-process after each single CVAT write of the run (every position); one case kills a real
``cvat-track sync`` process with SIGKILL.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from cvat.harness import sync_harness
from cvat.scenario import rect, seed_overlap, task_views, track, writes

from cvat_extension.cvat.connection import CvatApi
from cvat_extension.cvat.state_store import SQLiteStateStore
from cvat_extension.cvat.sync import run_sync


class Killed(BaseException):
    """Stands for the process dying: nothing catches it."""


class FaultyApi:
    """A CvatApi proxy that dies right after its n-th write, or runs ``hook`` right before
    the n-th ``get_job`` of one job (an annotator saving that job at that moment)."""

    WRITES = ("patch_job_annotations", "put_job_annotations", "create_issue", "update_job",
              "update_issue", "create_comment")

    def __init__(self, api: CvatApi, *, die_after: int | None = None,
                 hook: tuple[int, int, Callable[[], None]] | None = None) -> None:
        self._api = api
        self._die_after = die_after
        self._hook = hook
        self.writes = 0
        self.written_jobs: set[int] = set()
        self.get_job_calls: Counter[int] = Counter()
        self.hooked = False

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if name == "get_job":
            def get_job(job_id: int) -> Any:
                self.get_job_calls[job_id] += 1
                if self._hook is not None:
                    jid, n, fn = self._hook
                    if job_id == jid and self.get_job_calls[job_id] == n:
                        fn()
                        self.hooked = True
                return attr(job_id)

            return get_job
        if name not in self.WRITES:
            return attr

        def wrapped(*a: Any, **kw: Any) -> Any:
            result = attr(*a, **kw)
            self.writes += 1
            job = kw.get("job_id", a[0] if a and name != "update_issue" and name != "create_comment" else None)
            if job is not None:
                self.written_jobs.add(int(job))
            if self.writes == self._die_after:
                raise Killed(name)
            return result

        return wrapped


def issue_headers(standin: Any) -> dict[int, list[str]]:
    """Per job, the header ("kinds: tracks N, frames a-b") of each open issue, sorted."""
    out: dict[int, list[str]] = {}
    with standin.store.lock:
        for i in standin.store.issues.values():
            if i.resolved:
                continue
            first = min((c for c in standin.store.comments.values() if c.issue_id == i.id),
                        key=lambda c: c.id)
            head = re.sub(r" \(score [0-9.]+\)\..*", "", first.message)
            out.setdefault(i.job_id, []).append(head)
    return {j: sorted(v) for j, v in out.items()}


def no_duplicates(headers: dict[int, list[str]]) -> bool:
    """No two open issues of a job about the same checks and tracks."""
    for heads in headers.values():
        keys = [h.split(", frame")[0] for h in heads]
        if len(keys) != len(set(keys)):
            return False
    return True


@pytest.fixture
def env(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The overlap task, its untouched and merged views, and a reset to the untouched task."""
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    cvat_standin.seed_user("reviewer", "pw")
    task_id, jobs = seed_overlap(cvat_standin, cvat_client, "merge_in_overlap")
    make_cfg, make_api, store = sync_harness(cvat_standin, tmp_path)
    store.close()
    snapshot = {j: cvat_standin.job_annotations(j) for j in jobs}
    untouched = task_views(cvat_standin, task_id)
    stores: list[SQLiteStateStore] = []

    def reset() -> SQLiteStateStore:
        for j in jobs:
            cvat_standin.edit_as_user(j, {k: snapshot[j][k] for k in ("tags", "shapes", "tracks")},
                                      action=None)
            cvat_standin.set_job(j, stage="annotation", state="completed")
        with cvat_standin.store.lock:
            cvat_standin.store.issues.clear()
            cvat_standin.store.comments.clear()
        assert task_views(cvat_standin, task_id) == untouched
        st = SQLiteStateStore(tmp_path / f"state-{len(stores)}.sqlite")
        stores.append(st)
        return st

    cfg = make_cfg()
    # the reference: one uninterrupted run
    store = reset()
    probe = FaultyApi(make_api(cfg))
    summary = run_sync(probe, store, cfg, report=False)
    assert summary.ok and summary.merges_applied == 2, summary.to_json()
    merged = task_views(cvat_standin, task_id)
    assert merged != untouched
    ref = {"views": merged, "issues": issue_headers(cvat_standin), "writes": probe.writes,
           "get_job_calls": dict(probe.get_job_calls)}
    yield cvat_standin, task_id, jobs, cfg, make_api, reset, untouched, ref
    for st in stores:
        st.close()


def _assert_backups(store: SQLiteStateStore, jobs: set[int]) -> None:
    missing = [j for j in sorted(jobs) if not store.backups(j)]
    assert not missing, f"no backup of job(s) {missing}, written by the run"


def test_reference_run_writes_both_holders_and_backs_up_every_job(env: Any) -> None:
    standin, task_id, jobs, cfg, make_api, reset, untouched, ref = env
    # 4 annotation writes (update + delete in jobs 2 and 3), issues and stage changes
    assert ref["writes"] >= 6
    store = reset()
    probe = FaultyApi(make_api(cfg))
    run_sync(probe, store, cfg, report=False)
    _assert_backups(store, probe.written_jobs)
    assert probe.written_jobs == set(jobs)  # stage changes too
    plan = store.task_plan(task_id)
    assert plan is not None and plan.status == "done"
    assert [j["job_id"] for j in plan.doc["jobs"]] == jobs[1:]
    assert no_duplicates(ref["issues"])


def test_kill_after_every_write_then_next_run_is_fully_merged(env: Any) -> None:
    """SIGKILL (in-process) after each single CVAT write of the run, and once more during
    the resume: the next run always ends exactly as the uninterrupted one."""
    standin, task_id, jobs, cfg, make_api, reset, untouched, ref = env
    cases = [(k, None) for k in range(1, ref["writes"] + 1)] + [(2, 1)]
    for die_at, resume_dies_at in cases:
        store = reset()
        api = FaultyApi(make_api(cfg), die_after=die_at)
        with pytest.raises(Killed):
            run_sync(api, store, cfg, report=False)
        written = set(api.written_jobs)
        if resume_dies_at is not None:
            again = FaultyApi(make_api(cfg), die_after=resume_dies_at)
            with pytest.raises(Killed):
                run_sync(again, store, cfg, report=False)
            written |= again.written_jobs
        nxt = FaultyApi(make_api(cfg))
        done = run_sync(nxt, store, cfg, report=False)
        written |= nxt.written_jobs
        where = f"killed after write {die_at}" + (f", resume killed after {resume_dies_at}"
                                                  if resume_dies_at else "")
        assert done.ok, (where, done.to_json())
        assert task_views(standin, task_id) == ref["views"], where
        assert issue_headers(standin) == ref["issues"], where
        _assert_backups(store, written)
        mark = len(standin.request_log)
        assert run_sync(make_api(cfg), store, cfg, report=False).issues_opened == 0, where
        assert writes(standin, mark) == [], where


def _human_track(standin: Any, task_id: int, job_id: int, frames: range) -> tuple[dict[str, Any], Any]:
    person = standin.label_id(task_id, "person")
    shapes = [rect(f, 560, 20, 40, 40) for f in frames] + [rect(frames[-1] + 1, 560, 20, 40, 40, outside=True)]
    read = tuple(sorted((s["frame"], (560.0, 20.0, 600.0, 60.0), s["outside"]) for s in shapes))
    export = tuple((f, (560.0, 20.0, 600.0, 60.0)) for f in frames)
    return track(person, shapes), (read, export)


@pytest.mark.parametrize("holder", [1, 2])
def test_concurrent_edit_on_a_holder_at_every_step_leaves_untouched_or_merged(env: Any, holder: int) -> None:
    """An annotator saves one holder right before each of our reads of that job between the
    read and the last write (the pre-write check, each write's guard): the next run ends
    untouched or fully merged, with the annotator's edit kept, never half merged."""
    standin, task_id, jobs, cfg, make_api, reset, untouched, ref = env
    job = jobs[holder]
    frames = range(32, 36) if holder == 1 else range(56, 59)
    human, (h_read, h_export) = _human_track(standin, task_id, job, frames)
    # every get_job of this job in a clean run: the pre-write check, then a guard before
    # and a date read after each of its 2 writes
    calls = ref["get_job_calls"][job]
    assert calls >= 5
    outcomes = []
    for n in range(1, calls + 1):
        store = reset()
        api = FaultyApi(make_api(cfg), hook=(job, n, lambda: standin.edit_as_user(
            job, {"tags": [], "shapes": [], "tracks": [human]}, action="create")))
        run_sync(api, store, cfg, report=False)
        assert api.hooked, n
        written = set(api.written_jobs)
        nxt = FaultyApi(make_api(cfg))
        run_sync(nxt, store, cfg, report=False)
        written |= nxt.written_jobs
        read, export = task_views(standin, task_id)
        assert read.count(h_read) == 1 and export.count(h_export) == 1, n  # the edit stands
        read.remove(h_read)
        export.remove(h_export)
        state = "merged" if (read, export) == ref["views"] else "untouched" if (read, export) == untouched else None
        assert state is not None, f"edit before get_job #{n} of job {job}: neither untouched nor merged"
        outcomes.append(state)
        _assert_backups(store, written)
        assert no_duplicates(issue_headers(standin)), n
        mark = len(standin.request_log)
        assert run_sync(make_api(cfg), store, cfg, report=False).issues_opened == 0, n
        assert writes(standin, mark) == [], n
    assert "merged" in outcomes


def test_a_holder_that_cvat_did_not_merge_is_caught_by_the_read_back_and_rolled_back(env: Any) -> None:
    """CVAT answers the writes to job 3 but keeps the old copy (as if another process put it
    back): the task-level read shows the frozen extra boxes; the run rolls job 2 back, the
    fragment becomes a review item saying why, and re-runs neither retry nor duplicate it."""
    standin, task_id, jobs, cfg, make_api, reset, untouched, ref = env
    store = reset()

    class SwallowJob3(FaultyApi):
        def __getattr__(self, name: str) -> Any:
            if name == "patch_job_annotations":
                inner = super().__getattr__(name)

                def patch(job_id: int, action: str, payload: Any) -> None:
                    if job_id != jobs[2]:
                        inner(job_id, action, payload)

                return patch
            return super().__getattr__(name)

    summary = run_sync(SwallowJob3(make_api(cfg)), store, cfg, report=False)
    assert summary.merges_applied == 0 and summary.merges_refused == 1, summary.to_json()
    assert task_views(standin, task_id) == untouched
    heads = issue_headers(standin)
    frag = [h for h in heads.get(jobs[1], []) if h.startswith("fragment")]
    assert len(frag) == 1, heads
    with standin.store.lock:
        text = " ".join(c.message for c in standin.store.comments.values())
    assert "rolled back" in text and "task-level read" in text and "extra" in text
    plan = store.task_plan(task_id)
    assert plan is not None and plan.status == "rolled_back" and plan.doc["blocked"]
    for _ in range(2):
        mark = len(standin.request_log)
        again = run_sync(make_api(cfg), store, cfg, report=False)
        assert again.issues_opened == 0 and writes(standin, mark) == []
    # the jobs were edited by us (write + rollback): the next run re-checks them, refuses
    # the blocked merge and keeps the one issue
    for j in jobs:
        store.forget_job(j)
    mark = len(standin.request_log)
    again = run_sync(make_api(cfg), store, cfg, report=False)
    assert again.merges_applied == 0 and again.issues_opened == 0
    assert [w.method for w in writes(standin, mark) if "annotations" in w.path] == []
    assert task_views(standin, task_id) == untouched


def test_sigkill_between_the_holders_then_resume(env: Any, tmp_path: Path) -> None:
    """A real ``cvat-track sync`` process killed while job 3's write hangs (job 2 already
    merged): the task is half merged until the next run, which completes it."""
    standin, task_id, jobs, cfg, make_api, reset, untouched, ref = env
    store = reset()
    store.close()
    cfg_path = tmp_path / "serverless.yaml"
    cfg_path.write_text(yaml.safe_dump({"sync": {
        "cvat": {"url": standin.url, "timeout_s": 30},
        "checks": {"ghost": {"min_static_frames": 10}},
        "review": {"on_findings": "review", "reviewer": "reviewer", "clean_to_acceptance": True,
                   "frame_budget": 20},
        "state": {"path": str(store.path), "backup_dir": None, "report_dir": str(tmp_path / "r")},
    }}))
    fault = standin.inject_fault("PATCH", rf"^/api/jobs/{jobs[2]}/annotations", status="timeout",
                                 on_call=1, delay_s=20)
    env_vars = dict(os.environ, CVAT_ACCESS_TOKEN=standin.admin_token)
    proc = subprocess.Popen([sys.executable, "-m", "cvat_extension.adapters.cli.main", "sync", "--once",
                             "--no-report", "--config", str(cfg_path)], env=env_vars,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 60
    while fault.seen < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert fault.seen >= 1, proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    standin.clear_faults()
    half = task_views(standin, task_id)
    assert half not in (untouched, ref["views"])  # what CVAT shows until the next run
    from cvat_extension.cvat.config import load_sync_config

    cfg2 = load_sync_config(cfg_path)
    store = SQLiteStateStore(store.path)
    try:
        summary = run_sync(make_api(cfg2), store, cfg2, report=False)
        assert summary.ok and summary.writes_resumed == 2, summary.to_json()
        assert task_views(standin, task_id) == ref["views"]
        assert issue_headers(standin) == ref["issues"]
    finally:
        store.close()


def test_holders_left_disagreeing_by_an_older_version_become_one_review_item(env: Any, tmp_path: Path) -> None:
    """Repair: an older version died between the holders (job 2 merged, job 3 not) and kept
    no task-level plan. The next run finds the jobs' copies cut differently and reports it
    as a review item naming both versions, once."""
    standin, task_id, jobs, cfg, make_api, reset, untouched, ref = env
    store = reset()
    with pytest.raises(Killed):
        run_sync(FaultyApi(make_api(cfg), die_after=2), store, cfg, report=False)
    assert task_views(standin, task_id) not in (untouched, ref["views"])
    older = SQLiteStateStore(tmp_path / "older-version.sqlite")  # no plan to resume
    try:
        summary = run_sync(make_api(cfg), older, cfg, report=False)
        assert summary.findings_by_kind["holders_disagree"] == 1, summary.to_json()
        with standin.store.lock:
            texts = [c.message for c in standin.store.comments.values() if "holders_disagree" in c.message]
        assert len(texts) == 1
        assert f"jobs {jobs[1]} and {jobs[2]} disagree" in texts[0] and "2 tracks" in texts[0], texts[0]
        mark = len(standin.request_log)
        again = run_sync(make_api(cfg), older, cfg, report=False)
        assert again.issues_opened == 0 and writes(standin, mark) == []
    finally:
        older.close()
