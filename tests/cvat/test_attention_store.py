"""The attention tables: one plan per task (first record wins), results, annotators; SQLite and
PostgreSQL alike; the ``sync.attention`` section's errors name the key."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat_extension.core.attention import PlantedMisses
from cvat_extension.cvat.attention_config import AttentionSettings, FlagMode
from cvat_extension.cvat.attention_store import AttentionResult, AttentionStore, JobAnnotator
from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.state_store import open_state_store
from cvat_extension.errors import ConfigError


def _planted(job: int, frames: list[int]) -> PlantedMisses:
    n = len(frames)
    return PlantedMisses(np.full(n, job), np.array(frames), np.arange(n), ("person",) * n,
                         np.tile([10.0, 20.0, 50.0, 90.0], (n, 1)))


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return str(tmp_path / "state.sqlite")
    return str(request.getfixturevalue("pg_database"))


def test_plan_results_and_annotators_round_trip(store_url: str) -> None:
    store = open_state_store(store_url)
    a = AttentionStore(store)
    assert not a.has_plan(7) and len(a.misses(7)) == 0
    a.record_plan(7, _planted(70, [3, 9]), seed=7, settings={"per_job": 2})
    a.record_plan(7, _planted(70, [4, 5, 6]), seed=1, settings={})  # a resumed run: the first plan stays
    store.close()

    store = open_state_store(store_url)  # another process (a resumed run) sees the record
    a = AttentionStore(store)
    got = a.misses(7)
    assert got.frame.tolist() == [3, 9] and got.label == ("person", "person") and a.planned_jobs() == {70: 7}
    np.testing.assert_allclose(got.xyxy, [[10, 20, 50, 90]] * 2)
    a.record_result(AttentionResult(70, 7, 5, "alice", 2, 1, {3: True, 9: False}, 1.0))
    a.set_flag_issue(70, 123)
    r = a.result(70)
    assert r is not None and (r.rate, r.frames, r.flag_issue_id) == (0.5, {3: True, 9: False}, 123)
    a.remember_annotator(JobAnnotator(70, 7, 5, "alice", 20, 1.0))
    a.remember_annotator(JobAnnotator(70, 7, 9, "reviewer", 20, 2.0))  # reassigned later: first wins
    assert a.annotators()[70].assignee == "alice"
    store.close()


@pytest.mark.parametrize(("raw", "expect"), [
    (None, contextlib.nullcontext(AttentionSettings())),
    ({"enabled": True, "flag": "COMMENT", "per_job": 3},
     contextlib.nullcontext(None)),
    ({"flag": "mail"}, pytest.raises(ConfigError, match=r"sync.attention.flag: .*'issue'")),
    ({"min_restored": 1.5}, pytest.raises(ConfigError, match="sync.attention.min_restored")),
    ({"per_jb": 3}, pytest.raises(ConfigError, match="unknown key.*'per_jb'")),
    ({"per_job": 0}, pytest.raises(ConfigError, match="per_job")),
    ({"seed": -1}, pytest.raises(ConfigError, match="sync.attention.seed")),
])
def test_attention_section(raw: Any, expect: Any) -> None:
    with expect as wanted:
        got = SyncConfig.from_mapping({"attention": raw} if raw is not None else {}).attention
        if wanted is not None:
            assert got == wanted
        else:
            assert got.enabled and got.flag is FlagMode.COMMENT and got.plant.per_job == 3
