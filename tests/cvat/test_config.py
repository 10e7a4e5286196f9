"""The ``sync:`` section parser: defaults, every error names its key, secrets stay hidden."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest

from cvat_extension.cvat.config import OnFindings, SyncConfig, load_sync_config
from cvat_extension.errors import ConfigError


def test_defaults_select_completed_annotation_jobs() -> None:
    cfg = SyncConfig.from_mapping({})
    assert cfg.jobs.query == {"state": "completed", "type": "annotation"}
    assert cfg.review.on_findings is OnFindings.REVIEW
    assert cfg.merge.enabled and not cfg.merge.thin_keyframes


@pytest.mark.parametrize(
    ("raw", "expectation"),
    [
        ({}, contextlib.nullcontext()),
        ({"jobs": {"query": {"stage": "acceptance"}}}, contextlib.nullcontext()),
        ({"jobs": {"filter": {"==": [{"var": "stage"}, "acceptance"]}}}, contextlib.nullcontext()),
        ({"reveiw": {}}, pytest.raises(ConfigError, match=r"sync: unknown key\(s\) 'reveiw'")),
        ({"jobs": {"query": {"state": "done"}}}, pytest.raises(ConfigError, match="sync.jobs.query.state")),
        ({"jobs": {"filter": "{not json"}}, pytest.raises(ConfigError, match="sync.jobs.filter")),
        ({"review": {"on_findings": "later"}}, pytest.raises(ConfigError, match="sync.review.on_findings")),
        ({"review": {"frame_budget": 0}}, pytest.raises(ConfigError, match="sync.review.frame_budget")),
        ({"cvat": {"timeout_s": "fast"}}, pytest.raises(ConfigError, match="sync.cvat.timeout_s")),
        ({"merge": {"enabled": "yes"}}, pytest.raises(ConfigError, match="sync.merge.enabled")),
        ({"retry": {"attempts": 0}}, pytest.raises(ConfigError, match="sync.retry.attempts")),
    ],
)
def test_parse_errors_name_the_key(raw: dict, expectation: contextlib.AbstractContextManager) -> None:
    with expectation:
        SyncConfig.from_mapping(raw)


def test_filter_mapping_becomes_json_logic_string() -> None:
    cfg = SyncConfig.from_mapping({"jobs": {"filter": {"==": [{"var": "stage"}, "acceptance"]}}})
    assert json.loads(cfg.jobs.filter or "") == {"==": [{"var": "stage"}, "acceptance"]}


def test_credentials_come_from_named_env_vars_and_errors_never_show_values(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cfg = SyncConfig.from_mapping({"cvat": {"token_env": "MY_TOKEN", "user_env": "U", "password_env": "P"}})
    monkeypatch.delenv("MY_TOKEN", raising=False)
    monkeypatch.setenv("U", "alice")
    monkeypatch.delenv("P", raising=False)
    with pytest.raises(ConfigError, match=r"\$MY_TOKEN") as err:
        cfg.cvat.credentials()
    assert "alice" not in str(err.value)
    monkeypatch.setenv("P", "s3cret")
    assert cfg.cvat.credentials() == ("alice", "s3cret")
    monkeypatch.setenv("MY_TOKEN", "pat-XYZ123")
    assert cfg.cvat.credentials() == "pat-XYZ123"
    assert "pat-XYZ123" not in repr(cfg) and "s3cret" not in repr(cfg)


def test_repo_serverless_yaml_sync_section_parses() -> None:
    cfg = load_sync_config(Path(__file__).resolve().parents[2] / "serverless.yaml")
    assert cfg.cvat.url.startswith("http")
    assert Path(cfg.state.path).is_absolute()


def test_load_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "s.yaml"
    bad.write_text("sync:\n  cvat: [1, 2]\n")
    with pytest.raises(ConfigError, match=r"s.yaml: sync.cvat: expected a mapping"):
        load_sync_config(bad)
    with pytest.raises(ConfigError, match="cannot read config"):
        load_sync_config(tmp_path / "missing.yaml")


def test_video_rate_and_frame_step_give_the_rate_the_checks_scale_by() -> None:
    """sync.cvat.source_fps over a task's frame step becomes SequenceInfo.fps of the read."""
    from types import SimpleNamespace

    from cvat_extension.cvat.annotations import read_task

    cfg = SyncConfig.from_mapping({"cvat": {"source_fps": 25}})
    assert cfg.cvat.source_fps == 25.0
    with pytest.raises(ConfigError, match="sync.cvat.source_fps"):
        SyncConfig.from_mapping({"cvat": {"source_fps": -1}})
    api = SimpleNamespace(
        get_task=lambda task_id: {"size": 10, "name": "street"},
        list_jobs=lambda **query: [],
        list_labels=lambda task_id: [{"id": 1, "name": "person"}],
        get_task_meta=lambda task_id: {"frame_filter": "step=5", "frames": [{"width": 640, "height": 360}]},
        get_task_annotations=lambda task_id: {"version": 0, "tags": [], "shapes": [], "tracks": []},
    )
    assert read_task(api, 7, source_fps=cfg.cvat.source_fps).info.fps == 5.0
    assert read_task(api, 7).info.fps == 6.0  # 30 fps assumed for the video
