"""Fixtures of the CVAT loop tests: a seeded scenario task and a sync config pointing at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from cvat.harness import sync_harness
from cvat.scenario import seed


@pytest.fixture
def sync_env(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(standin, task_id, job_ids, make_cfg, make_api, store) with the scenario seeded."""
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    reviewer = cvat_standin.seed_user("reviewer", "pw")
    task_id, jobs = seed(cvat_standin, cvat_client)
    make_cfg, make_api, store = sync_harness(cvat_standin, tmp_path)
    yield cvat_standin, task_id, jobs, make_cfg, make_api, store, reviewer
    store.close()
