"""Keyframe thinning on write-back, job selection filters, and the scheduled-run wrapper."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from cvat_extension.core.keyframes import expand_keyframes
from cvat_extension.cvat.jobs import list_finished_jobs
from cvat_extension.cvat.sync import run_sync
from cvat_extension.io.cvat_json import parse_labeled_data

REPO = Path(__file__).resolve().parents[2]


def dense(doc: dict[str, Any], stop: int) -> Any:
    t = parse_labeled_data(doc).tracks
    d = expand_keyframes(t, stop_frame=stop, job_stops=[stop])
    return d[~d.outside]


def test_thin_keyframes_keeps_every_box_within_tolerance(sync_env: Any) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    cfg = make_cfg(merge={"thin_tolerance_px": 0.5})
    before = standin.job_annotations(jobs[0])
    summary = run_sync(make_api(cfg), store, cfg, thin_keyframes=True, report=False)
    assert summary.ok, summary.to_json()
    after = standin.job_annotations(jobs[0])
    n_before = sum(len(t["shapes"]) for t in before["tracks"])
    n_after = sum(len(t["shapes"]) for t in after["tracks"])
    assert n_after < n_before / 2  # the per-frame swap tracks collapse to a few keyframes
    a, b = dense(before, 29), dense(after, 29)
    assert np.array_equal(a.frame, b.frame) and np.array_equal(a.track_id, b.track_id)
    assert np.abs(a.xyxy - b.xyxy).max() <= 0.5 + 1e-9
    assert store.backups(jobs[0])  # thinning is a write: backed up first


def test_job_filters_query_and_json_logic(sync_env: Any) -> None:
    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    standin.set_job(jobs[1], stage="acceptance", state="completed")
    api = make_api(make_cfg())
    by_query = make_cfg(jobs={"query": {"stage": "acceptance"}}).jobs
    assert [j.id for j in list_finished_jobs(api, by_query)] == [jobs[1]]
    by_logic = make_cfg(jobs={"query": {}, "filter": {"and": [
        {"==": [{"var": "state"}, "completed"]}, {"==": [{"var": "stage"}, "annotation"]}]}}).jobs
    assert [j.id for j in list_finished_jobs(api, by_logic)] == [jobs[0]]
    # one job by id: returned only when it matches the filter (webhooks for unfinished jobs)
    assert [j.id for j in list_finished_jobs(api, by_logic, job_id=jobs[0])] == [jobs[0]]
    assert list_finished_jobs(api, by_logic, job_id=jobs[1]) == []


def test_sync_sh_runs_one_locked_pass(sync_env: Any, tmp_path: Path) -> None:
    standin, task_id, jobs, *_ = sync_env
    home = tmp_path / "home"
    (home / ".cvat-track").mkdir(parents=True)
    (home / "serverless.yaml").write_text(yaml.safe_dump({"sync": {
        "cvat": {"url": standin.url},
        "review": {"on_findings": "none"},
        "state": {"path": ".cvat-track/state.sqlite"},
    }}))
    (home / ".cvat-track" / "env").write_text(f"CVAT_ACCESS_TOKEN={standin.admin_token}\n")
    env = {k: v for k, v in os.environ.items() if k != "CVAT_ACCESS_TOKEN"}
    env.update(CVAT_TRACK_HOME=str(home), CVAT_TRACK_VENV=str(REPO / ".venv"))
    out = subprocess.run([str(REPO / "scripts" / "sync.sh"), "--no-report"], env=env,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "2 finished job(s): 2 checked" in out.stdout
    assert (home / ".cvat-track" / "last-run.json").is_file()
    assert (home / ".cvat-track" / "state.sqlite").is_file()  # relative path resolved in home
