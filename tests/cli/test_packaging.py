"""Issue 13 point 10: ``pip install`` reads pyproject.toml without a single warning.

The old ``license = { text = ... }`` table made setuptools print a deprecation box three
times per install; users read that as a broken package.
"""

from __future__ import annotations

import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_configures_without_warnings(monkeypatch):
    monkeypatch.chdir(ROOT)  # readme = "README.md" is relative to the project
    from setuptools.config.pyprojecttoml import apply_configuration
    from setuptools.dist import Distribution

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dist = apply_configuration(Distribution(), ROOT / "pyproject.toml")
    assert [str(w.message).splitlines()[0] for w in caught] == []
    assert dist.metadata.license_expression == "Apache-2.0"
