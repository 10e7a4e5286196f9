"""Fixtures of the CVAT loop tests: a seeded scenario task and a sync config pointing at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.connection import CvatApi, connect
from cvat_extension.cvat.state_store import SQLiteStateStore

from cvat.scenario import seed


@pytest.fixture
def sync_env(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(standin, task_id, job_ids, make_cfg, make_api, store) with the scenario seeded."""
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    reviewer = cvat_standin.seed_user("reviewer", "pw")
    task_id, jobs = seed(cvat_standin, cvat_client)

    def make_cfg(**over: Any) -> SyncConfig:
        raw: dict[str, Any] = {
            "cvat": {"url": cvat_standin.url, "timeout_s": 2},
            "checks": {"ghost": {"min_static_frames": 10}},
            "review": {"on_findings": "review", "reviewer": "reviewer", "clean_to_acceptance": True,
                       "frame_budget": 20},
            "state": {"path": str(tmp_path / "state.sqlite"), "backup_dir": str(tmp_path / "backups"),
                      "report_dir": str(tmp_path / "reports")},
            "retry": {"attempts": 3, "backoff_s": 0.0},
        }
        for key, value in over.items():
            raw[key] = {**raw.get(key, {}), **value}
        return SyncConfig.from_mapping(raw)

    def make_api(cfg: SyncConfig) -> CvatApi:
        api = connect(cfg.cvat, cfg.retry)
        api.sleep = lambda s: None
        return api

    store = SQLiteStateStore(tmp_path / "state.sqlite")
    yield cvat_standin, task_id, jobs, make_cfg, make_api, store, reviewer
    store.close()
