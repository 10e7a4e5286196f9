"""Configuration and connection helpers shared by every sync scenario fixture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.connection import CvatApi, connect
from cvat_extension.cvat.state_store import SQLiteStateStore


def sync_harness(cvat_standin: Any, tmp_path: Path) -> tuple[Any, Any, SQLiteStateStore]:
    """``(make_cfg, make_api, store)`` for a sync against ``cvat_standin``.

    ``make_cfg(**sections)`` overrides sections of the default test config; ``make_api``
    connects without retry sleeps. Shared by every scenario fixture so that all sync tests
    run under the same configuration.
    """

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

    return make_cfg, make_api, SQLiteStateStore(tmp_path / "state.sqlite")
