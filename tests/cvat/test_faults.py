"""Faults: CVAT 5xx/timeouts on writes, a sync dying at every write, a killed process, a
concurrent edit. In every case no annotation is lost and the next run completes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from cvat.scenario import visible_boxes

from cvat_extension.cvat.backup import load_backup, restore_job
from cvat_extension.cvat.connection import CvatApi
from cvat_extension.cvat.content import loose_hash
from cvat_extension.cvat.sync import run_sync

ANN = r"^/api/jobs/\d+/annotations"


def final_state(standin: Any, jobs: list[int]) -> dict[str, Any]:
    """What reviewers would see: boxes per job, issues per job (frame, position), stages."""
    out: dict[str, Any] = {}
    with standin.store.lock:
        issues = list(standin.store.issues.values())
        stages = {j: (standin.store.jobs[j].stage, standin.store.jobs[j].state) for j in jobs}
    for j in jobs:
        doc = standin.job_annotations(j)
        out[f"boxes{j}"] = visible_boxes(doc)
        out[f"tracks{j}"] = len(doc["tracks"])
        out[f"issues{j}"] = sorted((i.frame, tuple(i.position)) for i in issues if i.job_id == j)
    out["stages"] = stages
    return out


@pytest.mark.parametrize(
    ("status", "when"),
    [(500, "before"), (503, "after"), ("timeout", "before"), ("timeout", "after")],
)
def test_fault_on_nth_write_loses_nothing_and_next_run_completes(sync_env: Any, status: Any, when: str) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    cfg = make_cfg(cvat={"timeout_s": 0.5})
    boxes_before = set().union(*(visible_boxes(standin.job_annotations(j)) for j in jobs))
    # the 2nd annotation write (the delete after the update) fails on every retry
    standin.inject_fault("PATCH", ANN, status=status, on_call=2, times=10, when=when, delay_s=0.8)
    first = run_sync(make_api(cfg), store, cfg, report=False)
    assert first.failures and not first.ok
    standin.clear_faults()
    # nothing lost: every box of the backup is still on the server
    backups = store.backups(jobs[1])
    assert len(backups) == 1
    saved = visible_boxes(load_backup(backups[0].path)["annotations"])
    assert saved <= visible_boxes(standin.job_annotations(jobs[1]))
    second = run_sync(make_api(cfg), store, cfg, report=False)
    assert second.ok, second.to_json()
    assert second.writes_resumed == 1
    after = set().union(*(visible_boxes(standin.job_annotations(j)) for j in jobs))
    assert after == boxes_before
    assert len(standin.job_annotations(jobs[1])["tracks"]) == 2  # fragment merged
    with standin.store.lock:
        assert len(standin.store.issues) == 2


@pytest.mark.parametrize("when", ["before", "after"])
def test_lost_issue_answer_creates_no_duplicate(sync_env: Any, when: str) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    cfg = make_cfg(cvat={"timeout_s": 0.5})
    standin.inject_fault("POST", r"^/api/issues", status="timeout", on_call=1, times=1, when=when,
                         delay_s=0.8)
    summary = run_sync(make_api(cfg), store, cfg, report=False)
    assert summary.ok, summary.to_json()
    with standin.store.lock:
        assert len(standin.store.issues) == 2
    assert run_sync(make_api(cfg), store, cfg, report=False).issues_opened == 0


class Killed(BaseException):
    """Stands for the process dying: nothing catches it."""


class DyingApi:
    """Proxy of a CvatApi that dies before (or after) its n-th write call."""

    WRITES = ("patch_job_annotations", "create_issue", "update_job", "put_job_annotations")

    def __init__(self, api: CvatApi, die_at: int, after: bool) -> None:
        self._api = api
        self._die_at = die_at
        self._after = after
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if name not in self.WRITES:
            return attr

        def wrapped(*a: Any, **kw: Any) -> Any:
            self.count += 1
            if self.count == self._die_at and not self._after:
                raise Killed(name)
            result = attr(*a, **kw)
            if self.count == self._die_at:
                raise Killed(name)
            return result

        return wrapped


def test_dying_at_every_write_loses_nothing(sync_env: Any, tmp_path: Path) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    # reference: an uninterrupted run on a fresh copy of the scenario
    cfg = make_cfg()
    snapshot = {j: standin.job_annotations(j) for j in jobs}
    stages = {j: ("annotation", "completed") for j in jobs}
    probe = DyingApi(make_api(cfg), die_at=10**9, after=False)
    run_sync(probe, store, cfg, report=False)
    total_writes = probe.count
    expected = final_state(standin, jobs)
    assert total_writes >= 5  # update, delete, 2 issues, 2 stage changes

    def reset(idx: int) -> Any:
        for j in jobs:
            standin.edit_as_user(j, {k: snapshot[j][k] for k in ("tags", "shapes", "tracks")}, action=None)
            standin.set_job(j, stage=stages[j][0], state=stages[j][1])
        with standin.store.lock:
            standin.store.issues.clear()
            standin.store.comments.clear()
        from cvat_extension.cvat.state_store import SQLiteStateStore

        return SQLiteStateStore(tmp_path / f"state-{idx}.sqlite")

    for die_at in range(1, total_writes + 1):
        for after in (False, True):
            st = reset(die_at * 2 + after)
            boxes_before = set().union(*(visible_boxes(standin.job_annotations(j)) for j in jobs))
            with pytest.raises(Killed):
                run_sync(DyingApi(make_api(cfg), die_at, after), st, cfg, report=False)
            now = set().union(*(visible_boxes(standin.job_annotations(j)) for j in jobs))
            assert boxes_before <= now, f"boxes lost when dying at write {die_at} ({after=})"
            done = run_sync(make_api(cfg), st, cfg, report=False)
            assert done.ok, (die_at, after, done.to_json())
            got = final_state(standin, jobs)
            # the same end state as without the crash (ids of re-created objects may differ)
            assert got == expected, f"dying at write {die_at} ({after=}) changed the outcome"
            st.close()


def test_killed_process_mid_write_is_resumed(sync_env: Any, tmp_path: Path) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    cfg_path = tmp_path / "serverless.yaml"
    raw = {"sync": {
        "cvat": {"url": standin.url, "timeout_s": 30},
        "checks": {"ghost": {"min_static_frames": 10}},
        "review": {"on_findings": "review", "frame_budget": 20},
        "state": {"path": str(tmp_path / "state.sqlite"), "backup_dir": str(tmp_path / "backups"),
                  "report_dir": str(tmp_path / "reports")},
    }}
    cfg_path.write_text(yaml.safe_dump(raw))
    before = standin.job_annotations(jobs[1])
    # the delete hangs on the server: the process is killed while it waits
    fault = standin.inject_fault("PATCH", ANN, status="timeout", on_call=2, delay_s=20)
    env = dict(os.environ, CVAT_ACCESS_TOKEN=standin.admin_token)
    proc = subprocess.Popen([sys.executable, "-m", "cvat_extension.adapters.cli.main", "sync", "--once",
                             "--no-report", "--config", str(cfg_path)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=Path(__file__).resolve().parents[2])
    deadline = time.time() + 60
    while fault.seen < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert fault.seen >= 2, proc.communicate(timeout=5)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    standin.clear_faults()
    # the dead process still holds its 10-minute leases: the next run sees it is gone
    from cvat_extension.cvat.config import load_sync_config

    cfg = load_sync_config(cfg_path)
    assert visible_boxes(before) <= visible_boxes(standin.job_annotations(jobs[1]))
    summary = run_sync(make_api(cfg), store, cfg, report=False)
    assert summary.ok and summary.writes_resumed == 1, summary.to_json()
    assert visible_boxes(standin.job_annotations(jobs[1])) == visible_boxes(before)
    assert len(standin.job_annotations(jobs[1])["tracks"]) == 2


def test_concurrent_edit_aborts_the_job_and_restore_puts_the_backup_back(sync_env: Any) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    cfg = make_cfg()
    api = make_api(cfg)
    original = standin.job_annotations(jobs[1])

    class EditBeforeWrite:
        """An annotator saves job 2 right between our read and our pre-write check."""

        def __init__(self, inner: CvatApi) -> None:
            self._inner = inner
            self.edited = False

        def __getattr__(self, name: str) -> Any:
            attr = getattr(self._inner, name)
            if name != "get_job" or self.edited:
                return attr

            def wrapped(job_id: int) -> Any:
                if job_id == jobs[1] and store.journal(jobs[1]) is not None:
                    doc = standin.job_annotations(jobs[1])
                    t = doc["tracks"][0]
                    t["shapes"][0]["points"] = [1.0, 2.0, 30.0, 40.0]
                    standin.edit_as_user(jobs[1], {"tags": [], "shapes": [], "tracks": [t]})
                    self.edited = True
                return attr(job_id)

            return wrapped

    proxy = EditBeforeWrite(api)
    summary = run_sync(proxy, store, cfg, report=False)
    assert proxy.edited and summary.concurrent_edits and "changed since it was read" in summary.concurrent_edits[0]
    edited = standin.job_annotations(jobs[1])
    assert len(edited["tracks"]) == 3  # nothing written to job 2: the annotator's edit stands
    assert store.journal(jobs[1]).status == "aborted"  # type: ignore[union-attr]
    # restore puts the pre-sync annotations back and verifies them
    doc = restore_job(api, store, jobs[1])
    assert loose_hash(standin.job_annotations(jobs[1])) == loose_hash(original)
    assert json.dumps(doc["annotations"]["tracks"][0]["shapes"][0]["points"]) != "[1.0, 2.0, 30.0, 40.0]"
