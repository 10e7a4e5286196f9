"""CVAT API calls and seconds of ``cvat-track sync`` per task, 1k-frame vs 10k-frame task.

Why: a sync that downloads frames, or reads annotations frame by frame or job page by page in
proportion to the video, would not scale to real tasks. The loop reads a task with a fixed
number of calls (task, jobs, labels, data meta, one task-level annotation read: CVAT sends
keyframes, not frames) and writes per job and per review item. So with the same jobs, the
same objects and the same injected problems, the call count must be the same for a 1k-frame
and a 10k-frame task; only the payload (keyframes) and the check time grow.

What runs, in one process, against the CVAT stand-in (``tests/cvat_standin``, a real HTTP
server on loopback driven through cvat-sdk 2.80):

- for N in (1000, 10000): a task of N frames in 2 jobs (segment size N/2), ``--objects``
  objects moving across the whole task with a keyframe every 10 frames (tracker-like output),
  one fragment (an object lost for 5 frames) in job 2 and one frozen ghost tail in job 1;
- ``sync --once`` (merges, issues, stage changes), then a second run (must make no writes);
- printed: calls per run (server-side request log, login excluded) and per endpoint, seconds,
  and the 10k/1k ratios (target: calls ratio 1.00).

Run: ``OMP_NUM_THREADS=1 python bench/bench_sync_calls.py [--objects 10] [--sizes 1000 10000]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def _rect(frame: int, x: float, y: float, w: float, h: float, outside: bool = False) -> dict[str, Any]:
    return {"type": "rectangle", "frame": frame, "points": [x, y, x + w, y + h], "outside": outside,
            "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": []}


def _track(label: int, shapes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"frame": shapes[0]["frame"], "label_id": label, "group": 0, "source": "auto",
            "attributes": [], "shapes": shapes, "elements": []}


def build_tracks(n: int, objects: int, label: int) -> list[dict[str, Any]]:
    """Tracker-like tracks over the whole task, plus one fragment and one ghost tail."""
    import math

    out = []
    for k in range(objects):
        y = 20 + k * (400 / max(objects, 1))
        shapes = []
        for f in range(0, n, 10):
            x = 300 + 250 * math.sin(2 * math.pi * (f / 400.0) + k)
            shapes.append(_rect(f, x, y, 30, 30))
        out.append(_track(label, shapes))
    # fragment in job 2: one object lost for frames [a+10, a+14]
    a = n // 2 + n // 10
    out.append(_track(label, [_rect(f, 10 + 2 * (f - a), 440, 30, 30) for f in range(a, a + 10)]
                      + [_rect(a + 10, 10 + 2 * 9, 440, 30, 30, outside=True)]))
    out.append(_track(label, [_rect(f, 10 + 2 * (f - a), 440, 30, 30) for f in range(a + 15, a + 40)]
                      + [_rect(a + 40, 10 + 2 * 39, 440, 30, 30, outside=True)]))
    # ghost in job 1: moves for 9 frames, then frozen for 60
    g = n // 10
    ghost = [_rect(f, 600 - 3 * (f - g), 400, 30, 30) for f in range(g, g + 9)]
    ghost += [_rect(g + 68, 600 - 24, 400, 30, 30), _rect(g + 69, 576, 400, 30, 30, outside=True)]
    out.append(_track(label, ghost))
    return out


def run_size(n: int, objects: int, workdir: Path) -> dict[str, Any]:
    from cvat_sdk import make_client, models
    from cvat_sdk.core.client import AccessTokenCredentials
    from cvat_standin.server import CvatStandin

    from cvat_extension.cvat.config import SyncConfig
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.state_store import SQLiteStateStore
    from cvat_extension.cvat.sync import run_sync

    server = CvatStandin(page_size=10)
    uid = server.seed_user("admin", "pw", is_superuser=True)
    token = server.create_access_token(uid)
    server.start()
    try:
        task = server.seed_task(f"bench-{n}", [{"name": "car"}], (n, 640, 480), segment_size=n // 2)
        label = server.label_id(task, "car")
        with make_client("http://127.0.0.1", port=server.port,
                         credentials=AccessTokenCredentials(token)) as client:
            client.tasks.retrieve(task).set_annotations(models.LabeledDataRequest(
                version=0, tags=[], shapes=[],
                tracks=[models.LabeledTrackRequest(**t) for t in build_tracks(n, objects, label)]))
        for j in server.job_ids(task):
            server.set_job(j, stage="annotation", state="completed")
        os.environ["CVAT_ACCESS_TOKEN"] = token
        cfg = SyncConfig.from_mapping({
            "cvat": {"url": server.url, "timeout_s": 120},
            "checks": {"ghost": {"min_static_frames": 30}},
            "review": {"on_findings": "review", "frame_budget": 50},
            "state": {"path": str(workdir / f"state-{n}.sqlite"),
                      "backup_dir": str(workdir / "backups"), "report_dir": str(workdir / "reports")},
        })
        store = SQLiteStateStore(workdir / f"state-{n}.sqlite")
        result: dict[str, Any] = {"frames": n, "jobs": len(server.job_ids(task))}
        for name in ("first", "second"):
            mark = len(server.request_log)
            api = connect(cfg.cvat, cfg.retry)
            t0 = time.perf_counter()
            summary = run_sync(api, store, cfg, report=False)
            seconds = time.perf_counter() - t0
            log = [r for r in server.request_log[mark:] if "/auth/" not in r.path]
            endpoints = Counter(f"{r.method} {_route(r.path)}" for r in log)
            result[name] = {
                "calls": len(log),
                "writes": sum(r.method in ("POST", "PATCH", "PUT", "DELETE") for r in log),
                "seconds": round(seconds, 3),
                "merges": summary.merges_applied,
                "issues": summary.issues_opened,
                "findings": dict(summary.findings_by_kind),
                "endpoints": dict(sorted(endpoints.items())),
            }
            api.client.close()
        store.close()
        return result
    finally:
        server.stop()


def _route(path: str) -> str:
    import re

    return re.sub(r"/\d+", "/{id}", path.split("?")[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--objects", type=int, default=10)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = [run_size(n, args.objects, Path(tmp)) for n in args.sizes]
    for r in results:
        for name in ("first", "second"):
            x = r[name]
            print(f"{r['frames']:>6} frames, {r['jobs']} jobs, {name:>6} run: {x['calls']:>3} calls "
                  f"({x['writes']} writes), {x['seconds']:7.2f} s, merges {x['merges']}, "
                  f"issues {x['issues']}, findings {x['findings']}")
    ref, big = results[0], results[-1]
    for name in ("first", "second"):
        print(f"{name} run, {big['frames']} vs {ref['frames']} frames: calls ratio "
              f"{big[name]['calls'] / max(ref[name]['calls'], 1):.2f}, seconds ratio "
              f"{big[name]['seconds'] / max(ref[name]['seconds'], 1e-9):.2f}")
    print("endpoints (first run, largest task):")
    for k, v in big["first"]["endpoints"].items():
        print(f"  {v:>3}  {k}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
