"""pytest fixtures: a started CVAT stand-in with an admin and a logged-in ``cvat_sdk.Client``.

Enabled for the whole suite by ``pytest_plugins = ["cvat_standin.plugin"]`` in
``tests/conftest.py``. Each test gets a fresh server (starting one takes milliseconds), so
tests never see each other's tasks, faults or request logs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from .server import CvatStandin

if TYPE_CHECKING:
    from cvat_sdk import Client

#: Credentials of the admin every ``cvat_standin`` server is seeded with.
ADMIN_USERNAME = "admin"
ADMIN_PASSWORD = "admin-password"


@pytest.fixture
def cvat_standin() -> Iterator[CvatStandin]:
    """A started stand-in with an admin; ``.admin_id`` and ``.admin_token`` (a personal
    access token for ``AccessTokenCredentials``) are set on it."""
    server = CvatStandin()
    server.admin_id = server.seed_user(ADMIN_USERNAME, ADMIN_PASSWORD,  # type: ignore[attr-defined]
                                       is_superuser=True)
    server.admin_token = server.create_access_token(server.admin_id)  # type: ignore[attr-defined]
    server.admin_credentials = (ADMIN_USERNAME, ADMIN_PASSWORD)  # type: ignore[attr-defined]
    with server:
        yield server


@pytest.fixture
def cvat_client(cvat_standin: CvatStandin) -> Iterator[Client]:
    """A ``cvat_sdk.Client`` logged in to ``cvat_standin`` with the admin's access token."""
    from cvat_sdk import make_client
    from cvat_sdk.core.client import AccessTokenCredentials

    client = make_client("http://127.0.0.1", port=cvat_standin.port,
                         credentials=AccessTokenCredentials(cvat_standin.admin_token))  # type: ignore[attr-defined]
    try:
        yield client
    finally:
        client.close()
