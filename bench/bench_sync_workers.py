"""Jobs per second of ``run_sync`` with 1 vs 3 worker processes sharing one state store.

Why: the brief's scaling rule is that the sync runs per job, so several workers share the
queue of finished jobs through the store (SQLite on one host, PostgreSQL across hosts). This
measures what sharing buys and what it costs, and checks on the way that every job was
processed exactly once (one stage change per job).

What runs, in one parent process: the CVAT stand-in (``tests/cvat_standin``, a real HTTP
server on loopback) seeded with ``--tasks`` copies of the two-job test scenario (a fragment
to merge, an ID swap and a ghost to report); for each store (a SQLite file; a throwaway
PostgreSQL cluster from ``tests/pg_server.py`` when PostgreSQL is installed) and each worker
count, a fresh stand-in and store, then N forked worker processes released together, each
with its own CVAT session and store connection. Printed: seconds, jobs/s, and the ratio to
1 worker on the same store measured in the same run.

Caveat: the stand-in serves every worker from the parent process (one GIL), and this
machine may have few cores, so the ratio is a lower bound of what separate hosts get.

Run: ``OMP_NUM_THREADS=1 python bench/bench_sync_workers.py [--tasks 8] [--workers 1 3]``
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _cfg(url: str, state: str, tmp: Path) -> Any:
    from cvat_extension.cvat.config import SyncConfig

    return SyncConfig.from_mapping({
        "cvat": {"url": url, "timeout_s": 30},
        "checks": {"ghost": {"min_static_frames": 10}},
        "review": {"on_findings": "review", "reviewer": "reviewer", "clean_to_acceptance": True,
                   "frame_budget": 20},
        "state": {"path": state, "backup_dir": str(tmp / "backups"), "report_dir": str(tmp / "reports")},
        "retry": {"attempts": 3, "backoff_s": 0.0},
    })


def _worker(cfg: Any, barrier: Any, out: Any) -> None:
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.state_store import open_state_store
    from cvat_extension.cvat.sync import run_sync

    api = connect(cfg.cvat, cfg.retry)
    store = open_state_store(cfg.state.path)
    barrier.wait()
    s = run_sync(api, store, cfg, report=False)
    out.put((s.jobs_checked, s.jobs_busy, len(s.failures)))
    store.close()


def one_round(n_workers: int, n_tasks: int, backend: str, pg: Any) -> dict[str, float]:
    from cvat.scenario import seed
    from cvat_sdk import make_client
    from cvat_sdk.core.client import AccessTokenCredentials
    from cvat_standin import CvatStandin

    tmp = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    server = CvatStandin()
    admin = server.seed_user("admin", "pw", is_superuser=True)
    token = server.create_access_token(admin)
    server.seed_user("reviewer", "pw")
    os.environ["CVAT_ACCESS_TOKEN"] = token
    with server:
        client = make_client("http://127.0.0.1", port=server.port, credentials=AccessTokenCredentials(token))
        for i in range(n_tasks):
            seed(server, client, name=f"scenario-{i}")
        client.close()
        if backend == "postgres":
            os.environ["PGPASSWORD"] = pg.password
            state = pg.create_database()
        else:
            state = str(tmp / "state.sqlite")
        cfg = _cfg(server.url, state, tmp)
        from cvat_extension.cvat.state_store import open_state_store

        open_state_store(state).close()  # schema created before the clock starts
        ctx = mp.get_context("fork")
        barrier, out = ctx.Barrier(n_workers + 1), ctx.Queue()
        procs = [ctx.Process(target=_worker, args=(cfg, barrier, out)) for _ in range(n_workers)]
        for p in procs:
            p.start()
        barrier.wait()
        t0 = time.perf_counter()
        results = [out.get(timeout=300) for _ in procs]
        seconds = time.perf_counter() - t0
        for p in procs:
            p.join(30)
        stage_changes = server.calls("PATCH", r"^/api/jobs/\d+/?$")
        task_reads = server.calls("GET", r"^/api/tasks/\d+/annotations")
        calls = sum(1 for r in server.request_log if "/auth/" not in r.path)
    checked = sum(r[0] for r in results)
    failures = sum(r[2] for r in results)
    jobs = 2 * n_tasks
    if checked != jobs or stage_changes != jobs or failures:
        raise SystemExit(f"{backend} x{n_workers}: checked {checked}, stage changes {stage_changes}, "
                         f"failures {failures}; expected {jobs} jobs each processed once")
    return {"seconds": seconds, "jobs_per_s": jobs / seconds, "task_reads": task_reads, "calls": calls}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--tasks", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 3])
    args = ap.parse_args()
    from pg_server import PgServer, find_pg_bin

    pg = None
    bin_dir = find_pg_bin()
    backends = ["sqlite"]
    if bin_dir is not None:
        pg = PgServer.start(bin_dir)
        backends.append("postgres")
    try:
        print(f"{args.tasks} tasks x 2 jobs, cores: {os.cpu_count()}")
        for backend in backends:
            base = None
            for n in args.workers:
                r = one_round(n, args.tasks, backend, pg)
                base = base or r["jobs_per_s"]
                print(f"{backend:8s} workers={n}: {r['seconds']:.2f} s, {r['jobs_per_s']:.2f} jobs/s, "
                      f"x{r['jobs_per_s'] / base:.2f} vs {args.workers[0]} worker(s); "
                      f"API calls {r['calls']}, task annotation reads {r['task_reads']}")
    finally:
        if pg is not None:
            pg.stop()


if __name__ == "__main__":
    main()
