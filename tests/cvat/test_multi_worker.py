"""Several sync workers sharing one job queue through the state store.

Three workers (threads, each with its own CVAT session and its own store connection, as
separate processes would have) run ``run_sync`` at the same moment over three scenario
tasks (six finished jobs) in one CVAT stand-in: every job is processed exactly once — one
stage change per job, the fragment merge written once, each review issue created once —
whether the store is a shared SQLite file (one host) or a PostgreSQL server (many hosts).
A worker that dies in the middle of a job's writes leaves its journal; once its lease
expires another worker resumes the writes and nothing is lost.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cvat.scenario import seed, visible_boxes, writes
from cvat.test_faults import DyingApi, Killed

# run_sync imports these lazily; importing them here, in the main thread, keeps the worker
# threads from compiling modules at the same moment (CPython 3.11 can then fail later with
# "SystemError: AST constructor recursion depth mismatch").
import cvat_extension.core.checks
import cvat_extension.core.keyframes
import cvat_extension.core.merge
import cvat_extension.core.review
import cvat_extension.core.stitch
import cvat_extension.io.cvat_json  # noqa: F401
from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.connection import CvatApi, connect
from cvat_extension.cvat.state_store import PostgresStateStore, SQLiteStateStore, StateStore
from cvat_extension.cvat.sync import SyncSummary, run_sync

N_TASKS = 3
JOB_PATCH = re.compile(r"^/api/jobs/(\d+)/?$")
ANN_WRITE = re.compile(r"^/api/jobs/(\d+)/annotations/?$")


@pytest.fixture(params=["sqlite", "postgres"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Callable[[], StateStore]:
    """A function opening a new connection to one shared store (a worker's own)."""
    if request.param == "sqlite":
        return lambda: SQLiteStateStore(tmp_path / "shared.sqlite")
    url = request.getfixturevalue("pg_database")
    return lambda: PostgresStateStore(url)


@pytest.fixture
def farm(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(standin, {task: [job1, job2]}, make_cfg, make_api) with N_TASKS scenario tasks."""
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    cvat_standin.seed_user("reviewer", "pw")
    tasks = dict(seed(cvat_standin, cvat_client, name=f"scenario-{i}") for i in range(N_TASKS))

    def make_cfg(lease_s: float = 600.0, **state: Any) -> SyncConfig:
        return SyncConfig.from_mapping({
            "cvat": {"url": cvat_standin.url, "timeout_s": 10},
            "checks": {"ghost": {"min_static_frames": 10}},
            "review": {"on_findings": "review", "reviewer": "reviewer", "clean_to_acceptance": True,
                       "frame_budget": 20},
            "state": {"path": str(tmp_path / "unused.sqlite"), "backup_dir": str(tmp_path / "backups"),
                      "report_dir": str(tmp_path / "reports"), "lease_s": lease_s, **state},
            "retry": {"attempts": 3, "backoff_s": 0.0},
        })

    def make_api(cfg: SyncConfig) -> CvatApi:
        api = connect(cfg.cvat, cfg.retry)
        api.sleep = lambda s: None
        return api

    return cvat_standin, tasks, make_cfg, make_api


class DeadStore:
    """The dying worker's store: once its process is dead (``dying.count`` reached its
    ``die_at``), nothing more reaches the database, not even the ``finally`` that would give
    its leases back, as after a SIGKILL or a power cut."""

    def __init__(self, inner: StateStore, dying: DyingApi, die_at: int) -> None:
        self._inner, self._dying, self._die_at = inner, dying, die_at

    def __getattr__(self, name: str) -> Any:
        if self._dying.count >= self._die_at:
            raise Killed(f"store.{name} after death")
        return getattr(self._inner, name)


def run_workers(n: int, cfg: SyncConfig, make_api: Callable[[SyncConfig], Any],
                store_factory: Callable[[], StateStore]) -> list[SyncSummary]:
    """``n`` workers released together by a barrier; each with its own session and store."""
    apis = [make_api(cfg) for _ in range(n)]
    stores = [store_factory() for _ in range(n)]
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def work(i: int) -> None:
        try:
            barrier.wait()
            results[i] = run_sync(apis[i], stores[i], cfg, report=False, worker=f"host-{i}:1")
        except Exception as exc:  # noqa: BLE001 - a thread hands any error to the caller
            results[i] = exc

    threads = [threading.Thread(target=work, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    for s in stores:
        s.close()
    for api in apis:
        api.client.close()
    errors = [r for r in results if not isinstance(r, SyncSummary)]
    assert not errors, errors
    return results


def writes_per_job(standin: Any, since: int = 0) -> tuple[Counter[int], Counter[int]]:
    """(job PATCHes, annotation writes) per job id in the request log after ``since``."""
    stage, ann = Counter[int](), Counter[int]()
    for r in standin.request_log[since:]:
        if r.method == "PATCH" and (m := JOB_PATCH.match(r.path)):
            stage[int(m.group(1))] += 1
        elif r.method in ("PATCH", "PUT") and (m := ANN_WRITE.match(r.path)):
            ann[int(m.group(1))] += 1
    return stage, ann


def assert_each_job_done_once(standin: Any, tasks: dict[int, list[int]], stage: Counter[int],
                              ann: Counter[int]) -> None:
    all_jobs = [j for jobs in tasks.values() for j in jobs]
    assert {j: stage[j] for j in all_jobs} == dict.fromkeys(all_jobs, 1), stage  # one stage change each
    for first, second in tasks.values():
        # the fragment in the second job: one PATCH update + one delete, nothing in the first
        assert (ann[first], ann[second]) == (0, 2), (first, second, ann)
    with standin.store.lock:
        issues = list(standin.store.issues.values())
    assert standin.calls("POST", r"^/api/issues/?$") == len(issues)  # no retried or lost POST
    per_job = Counter(i.job_id for i in issues)
    keys = [(i.job_id, i.frame, tuple(i.position)) for i in issues]
    assert len(keys) == len(set(keys)), "duplicate issue"
    # every task is the same scenario: the same issues on the same job of each
    assert len({(per_job[a], per_job[b]) for a, b in tasks.values()}) == 1, per_job
    assert sum(per_job.values()) == 2 * N_TASKS


def test_three_workers_process_each_job_exactly_once(farm: Any, store_factory: Any) -> None:
    standin, tasks, make_cfg, make_api = farm
    cfg = make_cfg()
    since = len(standin.request_log)
    summaries = run_workers(3, cfg, make_api, store_factory)
    assert all(s.ok for s in summaries), [s.to_json() for s in summaries]
    assert sum(s.jobs_checked for s in summaries) == 2 * N_TASKS
    assert sum(s.merges_applied for s in summaries) == N_TASKS
    assert sum(s.issues_opened for s in summaries) == 2 * N_TASKS
    stage, ann = writes_per_job(standin, since)
    assert_each_job_done_once(standin, tasks, stage, ann)
    store = store_factory()
    assert all(store.get_job(j) is not None for jobs in tasks.values() for j in jobs)
    assert not any(store.lease_holder(j) for jobs in tasks.values() for j in jobs)  # all released
    store.close()
    # a second round of three workers: nothing changed, so nothing is written or read again
    since = len(standin.request_log)
    again = run_workers(3, cfg, make_api, store_factory)
    assert all(s.jobs_checked == 0 and s.jobs_busy == 0 and s.jobs_unchanged == s.jobs_listed > 0
               for s in again), [s.to_json() for s in again]
    assert not [r for r in standin.request_log[since:] if r.method != "GET" and "/auth/" not in r.path]


def test_worker_dying_mid_write_is_resumed_by_another(farm: Any, store_factory: Any) -> None:
    standin, tasks, make_cfg, make_api = farm
    first_task = min(tasks)
    before = {j: visible_boxes(standin.job_annotations(j)) for j in tasks[first_task]}
    # a worker on another host (its process cannot be checked) with 1-second leases dies
    # between the merge's PATCH update and its delete on the first task's second job
    dying = DyingApi(make_api(make_cfg(lease_s=1)), die_at=2, after=False)
    store = store_factory()
    with pytest.raises(Killed):
        run_sync(dying, DeadStore(store, dying, 2), make_cfg(lease_s=1), report=False,
                 worker="far-away-host:4242")
    journal = store.journal(tasks[first_task][1])
    assert journal is not None and journal.status == "planned"  # its journal is left behind
    assert store.lease_holder(tasks[first_task][1])[0] == "far-away-host:4242"  # type: ignore[index]
    assert visible_boxes(standin.job_annotations(tasks[first_task][1])) >= before[tasks[first_task][1]]
    store.close()
    time.sleep(1.05)  # its lease expires
    cfg = make_cfg()
    summaries = run_workers(3, cfg, make_api, store_factory)
    assert all(s.ok for s in summaries), [s.to_json() for s in summaries]
    assert sum(s.writes_resumed for s in summaries) == 1
    stage, ann = writes_per_job(standin)
    assert_each_job_done_once(standin, tasks, stage, ann)  # the dead worker's update counts once
    for j in tasks[first_task]:
        assert visible_boxes(standin.job_annotations(j)) == before[j]  # no box lost
    assert len(standin.job_annotations(tasks[first_task][1])["tracks"]) == 2  # fragment merged
    store = store_factory()
    assert store.journal(tasks[first_task][1]).status == "done"  # type: ignore[union-attr]
    store.close()


TASK_ANN_GET = re.compile(r"^/api/tasks/(\d+)/annotations/?$")


def test_one_worker_reads_each_task(farm: Any, store_factory: Any) -> None:
    """The task lease: three workers never read one task at the same time, so each task is
    read exactly as a lone worker reads it (once, and once more after its merge)."""
    standin, tasks, make_cfg, make_api = farm
    since = len(standin.request_log)
    summaries = run_workers(3, make_cfg(), make_api, store_factory)
    assert all(s.ok for s in summaries), [s.to_json() for s in summaries]
    reads = Counter(int(m.group(1)) for r in standin.request_log[since:]
                    if r.method == "GET" and (m := TASK_ANN_GET.match(r.path)))
    assert reads == dict.fromkeys(tasks, 2), reads
    stage, ann = writes_per_job(standin, since)
    assert_each_job_done_once(standin, tasks, stage, ann)


def store_location(store: StateStore) -> str:
    """``sync.state.path`` of an open store (SQLite file or Postgres URL)."""
    return str(getattr(store, "url", None) or store.path)  # type: ignore[attr-defined]


def test_worker_on_another_host_resumes_and_restores_from_the_store(
    farm: Any, store_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Host a backs up job 2 and dies between the merge's update and delete; host a's disk
    is gone. Host b (no backup folder at all) resumes from the journal and the backup in
    the shared store, and ``cvat-track restore`` on b puts back the exact pre-write job."""
    import json
    import shutil

    import yaml

    from cvat_extension.adapters.cli.main import main
    from cvat_extension.cvat.backup import load_job_backup, restore_job
    from cvat_extension.cvat.content import loose_hash

    standin, tasks, make_cfg, make_api = farm
    task = min(tasks)
    job = tasks[task][1]
    cfg_a = make_cfg(lease_s=1, backup_dir=str(tmp_path / "host-a"))
    api_b = make_api(make_cfg())
    before = api_b.get_job_annotations(job)
    dying = DyingApi(make_api(cfg_a), die_at=2, after=False)
    store_a = store_factory()
    with pytest.raises(Killed):
        run_sync(dying, DeadStore(store_a, dying, 2), cfg_a, task_id=task, report=False, worker="a:1")
    store_a.close()
    assert any((tmp_path / "host-a").rglob("*.json"))  # a kept a local copy too...
    shutil.rmtree(tmp_path / "host-a")  # ...which host b cannot see
    time.sleep(1.05)  # a's lease expires

    store_b = store_factory()
    cfg_b = make_cfg(backup_dir=None)
    assert cfg_b.state.backup_dir is None
    summary = run_sync(make_api(cfg_b), store_b, cfg_b, task_id=task, report=False, worker="b:1")
    assert summary.ok and summary.writes_resumed == 1, summary.to_json()
    assert visible_boxes(standin.job_annotations(job)) == visible_boxes(before)  # no box lost
    assert len(standin.job_annotations(job)["tracks"]) == 2  # fragment merged
    assert store_b.journal(job).status == "done"  # type: ignore[union-attr]
    # the oldest backup is the state before the merge (a newer one precedes the stage change)
    rec = store_b.backups(job)[0]
    raw = len(json.dumps(before).encode())
    assert 0 < rec.size < raw / 2, (rec.size, raw)  # compressed in the store

    # restore from b's side: the store's copy is the exact pre-write annotations
    doc = load_job_backup(store_b, job)
    assert doc["annotations"] == before
    cfg_path = tmp_path / "host-b.yaml"
    cfg_path.write_text(yaml.safe_dump({"sync": {
        "cvat": {"url": standin.url},
        "state": {"path": store_location(store_b), "backup_dir": None},
    }}))
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", standin.admin_token)
    assert main(["restore", "--job", str(job), "--list", "--config", str(cfg_path)]) == 0
    listed = capsys.readouterr().out
    assert "in store" in listed and "host-a" in listed  # a's path is shown, but not needed
    assert main(["restore", "--job", str(job), "--config", str(cfg_path)]) == 0
    assert "restored 3 track(s)" in capsys.readouterr().out
    assert loose_hash(api_b.get_job_annotations(job)) == loose_hash(before)
    assert restore_job(api_b, store_b, job)["annotations"] == before  # again, from the API
    store_b.close()
    api_b.client.close()


class StallingApi:
    """Proxy of a CvatApi whose ``nth`` call of ``method`` stalls ``stall_s`` and then runs
    ``hook`` (before the call, or after it with ``after=True``): a slow step."""

    def __init__(self, api: CvatApi, method: str, nth: int, stall_s: float,
                 hook: Callable[[], None], *, after: bool = False) -> None:
        self._api, self._method, self._nth, self._stall_s = api, method, nth, stall_s
        self._hook, self._after = hook, after
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._api, name)
        if name != self._method:
            return attr

        def wrapped(*a: Any, **kw: Any) -> Any:
            self.count += 1
            stall = self.count == self._nth
            if stall and not self._after:
                time.sleep(self._stall_s)
                self._hook()
            result = attr(*a, **kw)
            if stall and self._after:
                time.sleep(self._stall_s)
                self._hook()
            return result

        return wrapped


def test_leases_are_renewed_through_a_job_longer_than_the_lease(farm: Any, store_factory: Any) -> None:
    """Three slow steps of 0.9 s with a 1.5 s lease: the run takes longer than the lease, yet
    another worker can take neither the task nor any of its jobs at any step."""
    from cvat_extension.cvat.state_store import task_lease_key

    standin, tasks, make_cfg, make_api = farm
    task = min(tasks)
    other = store_factory()
    stolen: list[int] = []

    def try_to_take() -> None:
        for key in [task_lease_key(task), *tasks[task]]:
            if other.claim_job(key, "b:1", 60):
                stolen.append(key)

    cfg = make_cfg(lease_s=1.5)
    api: Any = make_api(cfg)
    for method, nth in (("get_task_annotations", 1), ("get_job_annotations", 1), ("get_job_annotations", 2)):
        api = StallingApi(api, method, nth, 0.9, try_to_take)
    since = len(standin.request_log)
    t0 = time.monotonic()
    summary = run_sync(api, store_factory(), cfg, task_id=task, report=False, worker="a:1")
    assert time.monotonic() - t0 > 2.7 > cfg.state.lease_s
    assert summary.ok and not summary.leases_lost and summary.merges_applied == 1, summary.to_json()
    assert stolen == []
    stage, ann = writes_per_job(standin, since)
    assert [stage[j] for j in tasks[task]] == [1, 1] and [ann[j] for j in tasks[task]] == [0, 2]
    other.close()


@pytest.mark.parametrize("stall_at", ["read", "write"])
def test_job_taken_over_during_a_slow_step_is_stopped_without_writing(
    farm: Any, store_factory: Any, stall_at: str,
) -> None:
    """Worker a stalls past its 1 s lease (reading the task, or between the merge's update
    and delete); worker b takes the task over and finishes it (resuming a's journal in the
    second case). When a wakes up its renewal fails: it writes nothing more."""
    standin, tasks, make_cfg, make_api = farm
    task = min(tasks)
    before = {j: visible_boxes(standin.job_annotations(j)) for j in tasks[task]}
    marks: dict[str, Any] = {}

    def other_worker_takes_over() -> None:
        cfg_b = make_cfg()
        marks["b"] = run_sync(make_api(cfg_b), store_factory(), cfg_b, task_id=task, report=False,
                              worker="b:1")
        marks["after_b"] = len(standin.request_log)

    cfg_a = make_cfg(lease_s=1)
    method = "get_task_annotations" if stall_at == "read" else "patch_job_annotations"
    api_a = StallingApi(make_api(cfg_a), method, 1, 1.1, other_worker_takes_over, after=stall_at == "write")
    since = len(standin.request_log)
    summary_a = run_sync(api_a, store_factory(), cfg_a, task_id=task, report=False, worker="a:1")
    b = marks["b"]
    assert b.ok and b.jobs_checked == 2, b.to_json()
    assert b.writes_resumed == (1 if stall_at == "write" else 0)
    assert summary_a.ok and summary_a.jobs_checked == 0, summary_a.to_json()
    assert len(summary_a.leases_lost) == 2 and all("lease lost" in m for m in summary_a.leases_lost)
    assert writes(standin, marks["after_b"]) == []  # a wrote nothing once b owned the task
    stage, ann = writes_per_job(standin, since)
    first, second = tasks[task]
    assert (stage[first], stage[second]) == (1, 1)  # one stage change each, by b
    assert (ann[first], ann[second]) == (0, 2)  # update (a or b) + delete (b): the merge once
    for j in tasks[task]:
        assert visible_boxes(standin.job_annotations(j)) == before[j]
    assert len(standin.job_annotations(second)["tracks"]) == 2
