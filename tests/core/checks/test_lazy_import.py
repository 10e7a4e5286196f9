"""Importing the checks must not load numba: CLI commands that never check stay light."""

from __future__ import annotations

import subprocess
import sys


def test_checks_import_does_not_load_numba() -> None:
    code = ("import sys, cvat_extension.core.checks, cvat_extension.core.checks._common; "
            "print('numba' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "False"
