"""A faithful CVAT stand-in HTTP server for tests, driven through the real ``cvat-sdk``.

``CvatStandin`` (``server.py``) serves CVAT's REST API subset on 127.0.0.1 with a random
port; ``store.py`` keeps the state; ``annotations.py`` reproduces CVAT's per-job
annotation storage and job-boundary behaviour; ``plugin.py`` provides the pytest
fixtures ``cvat_standin`` and ``cvat_client``.
"""

from __future__ import annotations

from .server import CvatStandin, Fault, LoggedRequest

__all__ = ["CvatStandin", "Fault", "LoggedRequest"]
