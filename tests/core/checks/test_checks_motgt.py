"""Checks on real human ground truth (MOT17, read in place from ../shared/data/motgt).

Bounds from ``scripts/eval_checks_motgt.py``: few confident findings on the clean files,
including the moving-camera MOT17-13 where a naive IoU < 0.5 rule flags half the frames,
and high recall on errors injected into them.
"""

from __future__ import annotations

import importlib.util

import pytest
from conftest import REPO_ROOT


def _eval_module():
    spec = importlib.util.spec_from_file_location("eval_checks_motgt", REPO_ROOT / "scripts" / "eval_checks_motgt.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("seq", ["MOT17-02", "MOT17-13"])
def test_clean_and_injected_bounds(shared_data, seq):
    seq_dir = shared_data / "motgt" / seq
    if not seq_dir.is_dir():
        pytest.skip(f"{seq_dir} not present")
    r = _eval_module().evaluate(seq_dir, count=5, seed=0)
    assert r["clean_conf_pct"] <= 3.0, r
    assert r["clean_confident"] <= 12, r
    if seq == "MOT17-13":
        assert r["naive_pct"] >= 30.0  # the moving camera defeats a naive IoU rule...
    for kind in ("id_switch", "ghost", "box_jump", "size_jump", "label_change"):
        hit, n = r["recall"][kind]
        assert n >= 3 and hit / n >= 0.8, (kind, r["recall"])
