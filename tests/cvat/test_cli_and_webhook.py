"""The CLI entry points and the webhook receiver, driving a real sync against the stand-in."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from cvat.scenario import writes

from cvat_extension.adapters.cli.cmd_webhook import make_job_syncer
from cvat_extension.adapters.cli.main import main
from cvat_extension.cvat.config import load_sync_config
from cvat_extension.cvat.webhook import WebhookServer, signature_for


def write_config(standin: Any, tmp_path: Path, **review: Any) -> Path:
    raw = {"sync": {
        "cvat": {"url": standin.url, "timeout_s": 5},
        "checks": {"ghost": {"min_static_frames": 10}},
        "review": {"on_findings": "review", "frame_budget": 20, **review},
        "state": {"path": str(tmp_path / "state.sqlite"), "backup_dir": str(tmp_path / "backups"),
                  "report_dir": str(tmp_path / "reports")},
        "webhook": {"secret_env": "TEST_WEBHOOK_SECRET"},
    }}
    path = tmp_path / "serverless.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def test_cli_dry_run_then_sync_then_restore(sync_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    standin, task_id, jobs, *_ = sync_env
    cfg = write_config(standin, tmp_path)
    mark = len(standin.request_log)
    assert main(["sync", "--once", "--dry-run", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "DRY RUN" in out and f"would: job {jobs[1]}: merge track" in out
    assert writes(standin, mark) == []
    assert main(["sync", "--once", "--config", str(cfg), "--json", str(tmp_path / "s.json")]) == 0
    out = capsys.readouterr().out
    assert "merges applied: 1" in out and "issues opened: 2" in out and "report:" in out
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["findings_by_kind"]["id_switch"] >= 1 and summary["findings_by_kind"]["ghost"] == 1
    assert main(["sync", "--once", "--config", str(cfg)]) == 0
    assert "issues opened: 0" in capsys.readouterr().out
    assert main(["restore", "--job", str(jobs[1]), "--list", "--config", str(cfg)]) == 0
    assert "backups" in capsys.readouterr().out
    assert main(["restore", "--job", str(jobs[1]), "--config", str(cfg)]) == 0
    assert "restored 3 track(s)" in capsys.readouterr().out
    assert len(standin.job_annotations(jobs[1])["tracks"]) == 3


def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CVAT_ACCESS_TOKEN", raising=False)
    monkeypatch.delenv("CVAT_USER", raising=False)
    cfg = tmp_path / "s.yaml"
    cfg.write_text("sync:\n  cvat: {url: 'http://127.0.0.1:9'}\n  state: {path: " + str(tmp_path / "x.sqlite") + "}\n")
    assert main(["sync", "--once", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ConfigError:") and "$CVAT_ACCESS_TOKEN" in err
    assert main(["restore", "--job", "3", "--config", str(cfg)]) == 2
    assert "no backup recorded" in capsys.readouterr().err


def post(port: int, body: bytes, signature: str | None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    if signature:
        req.add_header("X-Signature-256", signature)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_webhook_bad_signature_rejected_good_one_syncs_the_job_once(
    sync_env: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    standin, task_id, jobs, *_ = sync_env
    monkeypatch.setenv("TEST_WEBHOOK_SECRET", "hook-secret")
    cfg = load_sync_config(write_config(standin, tmp_path))
    syncer = make_job_syncer(cfg)
    runs: list[Any] = []
    server = WebhookServer(cfg.webhook.secret(), lambda job: runs.append(syncer(job)), port=0)
    server.start()
    try:
        body = json.dumps({"event": "update:job", "job": {"id": jobs[0], "state": "completed"},
                           "before_update": {"state": "in progress"}, "webhook_id": 1}).encode()
        mark = len(standin.request_log)
        assert post(server.port, body, signature_for(b"not-the-secret", body)) == 401
        assert post(server.port, body, None) == 401
        server.drain()
        assert runs == [] and len(standin.request_log) == mark  # nothing reached CVAT
        assert post(server.port, body, signature_for(b"hook-secret", body)) == 202
        server.drain()
        assert len(runs) == 1
        assert runs[0].jobs_checked == 1 and runs[0].issues_opened == 2
        with standin.store.lock:
            assert {i.job_id for i in standin.store.issues.values()} == {jobs[0]}
            assert standin.store.jobs[jobs[0]].stage == "validation"
            assert standin.store.jobs[jobs[1]].stage == "annotation"  # not synced: not in the event
    finally:
        server.stop()


def test_login_with_password_and_bad_token(sync_env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.cvat.connection import connect
    from cvat_extension.errors import CvatSyncError

    standin, task_id, jobs, make_cfg, *_ = sync_env
    cfg = make_cfg()
    monkeypatch.delenv("CVAT_ACCESS_TOKEN")
    monkeypatch.setenv("CVAT_USER", "admin")
    monkeypatch.setenv("CVAT_PASSWORD", "admin-password")
    api = connect(cfg.cvat, cfg.retry)
    assert {j["id"] for j in api.list_jobs(task_id=task_id)} == set(jobs)
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", "not-a-token")
    with pytest.raises(CvatSyncError, match=r"login at .* failed \(check \$CVAT_ACCESS_TOKEN\)") as err:
        connect(cfg.cvat, cfg.retry)
    assert "not-a-token" not in str(err.value)
