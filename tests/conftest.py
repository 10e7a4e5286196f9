"""Shared test setup: offline model libraries, paths to the real data beside the repo."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["cvat_standin.plugin", "pg_server"]

# Model libraries must never reach the network from tests.
os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(__file__).resolve().parent / ".." / ".pytest_cache" / "yolo"))

REPO_ROOT = Path(__file__).resolve().parent.parent
#: Real data shared beside the repository (non-commercial parts are read, never copied).
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data``; tests that need it skip when the checkout has no shared folder."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is not present")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """``tests/fixtures``: small licensed data copied into the repo."""
    return FIXTURES
