"""Attention checks end to end through the CVAT stand-in: plant at annotate, measure, flag, report.

The annotate path is the real one (``annotate_task`` over frames served by the stand-in, with
ByteTrack in the 3-of-5 scenario); the detector is a fake that reads the frame number from the
stand-in's generated frames, so the boxes are known exactly. The killed-run test uses a light
tracker so that its child process starts fast (``attention_helpers.py``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from cvat.attention_helpers import annotate_url
from cvat_extension.adapters.cli.main import main
from cvat_extension.core.attention import restored_mask
from cvat_extension.core.geometry import iou_xyxy_batch
from cvat_extension.cvat.attention import ATTENTION_TAG, annotated_boxes
from cvat_extension.cvat.attention_config import AttentionSettings
from cvat_extension.cvat.attention_store import AttentionStore
from cvat_extension.cvat.config import CvatConfig, RetryConfig
from cvat_extension.cvat.connection import connect
from cvat_extension.cvat.state_store import SQLiteStateStore

N_FRAMES, SEGMENT, SIZE = 40, 20, (640, 480)


def _api(standin: Any) -> Any:
    api = connect(CvatConfig(url=standin.url, timeout_s=5), RetryConfig(attempts=2, backoff_s=0.0))
    api.sleep = lambda s: None
    return api


def _annotate(standin: Any, task_id: int, store: Any, ckpt: Path) -> dict[str, int]:
    """The real tracker (ByteTrack through boxmot) behind the planting hook."""
    pytest.importorskip("boxmot")
    from cvat_extension.models.mot_tracker import MotTracker
    from cvat_extension.models.tracker_config import TrackerConfig

    return annotate_url(standin.url, task_id, store, ckpt, MotTracker(TrackerConfig()))


@pytest.fixture
def task(cvat_standin: Any, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    return cvat_standin.seed_task("walkers", [{"name": "person"}], (N_FRAMES, *SIZE), segment_size=SEGMENT)


def _job(standin: Any, job_id: int) -> dict[str, Any]:
    return _api(standin).get_job(job_id)


def _restore(standin: Any, task_id: int, job_id: int, frames: dict[int, list[float]]) -> None:
    """The annotator draws a box (plain rectangle shape) on each given frame."""
    label = standin.label_id(task_id, "person")
    shapes = [{"type": "rectangle", "frame": f, "label_id": label, "points": [float(v) for v in box],
               "occluded": False, "outside": False, "z_order": 0, "rotation": 0.0, "attributes": [],
               "group": 0, "source": "manual", "elements": []} for f, box in frames.items()]
    standin.edit_as_user(job_id, {"version": 0, "tags": [], "shapes": shapes, "tracks": []}, action="create")


def _write_config(tmp_path: Path, standin: Any, **attention: Any) -> Path:
    cfg = tmp_path / "serverless.yaml"
    cfg.write_text(json.dumps({"sync": {
        "cvat": {"url": standin.url, "timeout_s": 5}, "retry": {"attempts": 2, "backoff_s": 0},
        "state": {"path": str(tmp_path / "state.sqlite")}, "attention": attention}}), encoding="utf-8")
    return cfg


def test_three_of_five_restored_shows_60_percent_in_report_and_cvat(
        cvat_standin: Any, cvat_client: Any, task: int, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = SQLiteStateStore(tmp_path / "state.sqlite")
    summary = _annotate(cvat_standin, task, store, tmp_path / "a.ckpt")
    attention = AttentionStore(store)
    job1, job2 = cvat_standin.job_ids(task)
    planted1, planted2 = attention.misses(task, job1), attention.misses(task, job2)
    assert len(planted1) == 5 and len(planted2) == 5, summary
    # Nothing planted is visible in CVAT: each withheld box is really missing there...
    api = _api(cvat_standin)
    labels = api.list_labels(task)
    for job_id, planted in ((job1, planted1), (job2, planted2)):
        boxes = annotated_boxes(api, _job(cvat_standin, job_id), labels)
        assert not restored_mask(planted, boxes).any()
        # ...while the same objects are there on the frames around it (one track, one gap).
        for f, box in zip(planted.frame, planted.xyxy, strict=True):
            near = boxes[np.isin(boxes.frame, [f - 1, f + 1])]
            assert (iou_xyxy_batch(box[None], near.xyxy)[0] > 0.9).sum() == 2
    # and no issue, comment or attribute names them.
    assert not cvat_client.issues.list()

    alice = cvat_standin.seed_user("alice")
    bob = cvat_standin.seed_user("bob")
    _restore(cvat_standin, task, job1, {int(f): list(b) for f, b in list(zip(planted1.frame, planted1.xyxy))[:3]})
    _restore(cvat_standin, task, job2, {int(f): list(b) for f, b in zip(planted2.frame, planted2.xyxy)})
    # Two review issues our sync opened on alice's job (one resolved since), one a person opened.
    from cvat_sdk import models

    for message, resolved in (("id_switch: track 3, frame 5 (score 0.90). x [cvat-track 0123456789abcdef]", True),
                              ("ghost, gap: track 2, frames 8-9 (score 0.50). y [cvat-track fedcba9876543210]", False),
                              ("please check the label here", False)):
        issue = cvat_client.issues.create(models.IssueWriteRequest(frame=5, position=[0, 0, 9, 9], job=job1,
                                                                   message=message))
        if resolved:
            issue.update(models.PatchedIssueWriteRequest(resolved=True))
    cvat_standin.set_job(job1, state="completed", assignee=alice)
    cvat_standin.set_job(job2, state="completed", assignee=bob)
    store.close()

    cfg = _write_config(tmp_path, cvat_standin, flag="issue")
    out = tmp_path / "quality.json"
    assert main(["attention", "--config", str(cfg), "--json", str(out), "--report", str(tmp_path / "rep")]) == 0
    printed = capsys.readouterr().out
    doc = json.loads(out.read_text())
    a, b = doc["annotators"]["alice"], doc["annotators"]["bob"]
    assert (a["attention_restored"], a["attention_planted"], a["attention_rate"], a["attention_below"]) == (3, 5, 0.6, True)
    assert (b["attention_rate"], b["attention_below"]) == (1.0, False)
    assert (a["review_issues"], a["review_resolved"], a["issues_per_100_frames"]) == (2, 1, 10.0)
    assert a["issue_kinds"] == {"gap": 1, "ghost": 1, "id_switch": 1}
    assert "alice: 1 job(s), 3/5 checks restored (60%)" in printed and "BELOW BAR" in printed
    html = (tmp_path / "rep" / "annotators.html").read_text()
    assert "60% (3/5) below bar" in html and "100% (5/5)" in html
    # CVAT: one flag on alice's job saying 60 %, none on bob's; no frame of a check named.
    flags = [i for i in cvat_client.issues.list() if i.job == job1 and i.frame == 0]
    assert len(flags) == 1
    text = cvat_client.comments.list(issue_id=flags[0].id)[0].message
    assert "alice restored 3 of 5" in text and "(60%)" in text and ATTENTION_TAG in text
    assert not [f for f in planted1.frame if f"frame {f}" in text]
    assert not [i for i in cvat_client.issues.list() if i.job == job2]
    # A second run measures nothing again and raises no second flag.
    n_issues = len(cvat_client.issues.list())
    assert main(["attention", "--config", str(cfg), "--json", str(out)]) == 0
    assert json.loads(out.read_text())["measured_now"] == []
    assert len(cvat_client.issues.list()) == n_issues


def test_planted_misses_survive_a_run_killed_mid_upload(cvat_standin: Any, task: int, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    job1, job2 = cvat_standin.job_ids(task)
    # The upload of job 2 hangs on the server; the annotating process is SIGKILLed meanwhile.
    fault = cvat_standin.inject_fault("PATCH", rf"/api/jobs/{job2}/annotations", status="timeout", delay_s=30)
    repo = Path(__file__).resolve().parents[2]
    code = ("import sys; from pathlib import Path; from cvat.attention_helpers import annotate_url; "
            "from cvat_extension.cvat.state_store import SQLiteStateStore; "
            f"annotate_url({cvat_standin.url!r}, {task}, SQLiteStateStore(Path(sys.argv[1])), Path(sys.argv[2]))")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(repo), str(repo / "tests")]))
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "state.sqlite"), str(tmp_path / "a.ckpt")],
                            env=env, cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 60
    while fault.seen < 1 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert fault.seen == 1, proc.communicate(timeout=5)[0].decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    cvat_standin.clear_faults()
    # The run died after job 1 was uploaded: the record is in the store, job 2 has nothing.
    reopened = SQLiteStateStore(tmp_path / "state.sqlite")
    first = AttentionStore(reopened).misses(task)
    assert len(first) == 10
    assert cvat_standin.job_annotations(job1)["tracks"] and not cvat_standin.job_annotations(job2)["tracks"]
    patches_before = cvat_standin.calls("PATCH", rf"/api/jobs/{job1}/annotations")
    annotate_url(cvat_standin.url, task, reopened, tmp_path / "a.ckpt")  # same (light) tracker as the child
    assert cvat_standin.calls("PATCH", rf"/api/jobs/{job1}/annotations") == patches_before  # not uploaded twice
    again = AttentionStore(reopened).misses(task)
    np.testing.assert_array_equal(again.frame, first.frame)
    np.testing.assert_allclose(again.xyxy, first.xyxy)
    api = _api(cvat_standin)
    labels = api.list_labels(task)
    for job_id in (job1, job2):
        boxes = annotated_boxes(api, _job(cvat_standin, job_id), labels)
        planted = AttentionStore(reopened).misses(task, job_id)
        assert len(boxes) and not restored_mask(planted, boxes).any()
    reopened.close()


def test_sync_measures_and_flags_when_enabled(sync_env: Any, cvat_client: Any) -> None:
    from cvat_extension.core.attention import PlantedMisses
    from cvat_extension.cvat.sync import run_sync

    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    job1 = jobs[0]
    annotator = standin.seed_user("carol")
    standin.set_job(job1, stage="annotation", state="completed", assignee=annotator)
    # Two checks the annotator restored (the boxes of track "p" are there), two they did not.
    planted = PlantedMisses(job_id=np.full(4, job1), frame=np.array([3, 5, 22, 24]), track_id=np.arange(4),
                            label=("person",) * 4,
                            xyxy=np.array([[78, 200, 118, 280], [90, 200, 130, 280], [500, 20, 560, 90],
                                           [500, 20, 560, 90]], float))
    AttentionStore(store).record_plan(task_id, planted, seed=0, settings={})
    cfg = make_cfg(attention={"enabled": True, "flag": "issue"})
    summary = run_sync(make_api(cfg), store, cfg)
    assert summary.ok, summary.failures
    result = AttentionStore(store).result(job1)
    assert result is not None and (result.assignee, result.restored, result.planted) == ("carol", 2, 4)
    assert result.flag_issue_id is not None
    flag = cvat_client.issues.retrieve(result.flag_issue_id)
    assert flag.job == job1
    assert "(50%)" in cvat_client.comments.list(issue_id=flag.id)[0].message
    # The annotator is remembered although sync handed the job to the reviewer.
    assert AttentionStore(store).annotators()[job1].assignee == "carol"


def test_flag_as_comment_on_the_jobs_open_review_issue(sync_env: Any, cvat_client: Any) -> None:
    from dataclasses import replace

    from cvat_extension.core.attention import PlantedMisses
    from cvat_extension.cvat.attention import measure_jobs
    from cvat_extension.cvat.attention_config import FlagMode
    from cvat_extension.cvat.sync import run_sync

    standin, task_id, jobs, make_cfg, make_api, store, _ = sync_env
    job1 = jobs[0]
    cfg = make_cfg(review={"on_findings": "none"})
    api = make_api(cfg)
    assert run_sync(api, store, cfg).ok  # opens review issues on job 1 (swap, ghost)
    review = [i for i in cvat_client.issues.list() if i.job == job1]
    assert review
    planted = PlantedMisses(job_id=np.full(2, job1), frame=np.array([2, 4]), track_id=np.arange(2),
                            label=("car",) * 2, xyxy=np.array([[500, 20, 560, 90]] * 2, float))
    attention = AttentionStore(store)
    attention.record_plan(task_id, planted, seed=0, settings={})
    settings = replace(AttentionSettings(), flag=FlagMode.COMMENT)
    (result,) = measure_jobs(api, attention, settings, [api.get_job(job1)])
    assert result.restored == 0 and attention.result(job1).flag_issue_id == min(i.id for i in review)
    assert len([i for i in cvat_client.issues.list() if i.job == job1]) == len(review)  # no new issue
    texts = [c.message for c in cvat_client.comments.list(issue_id=min(i.id for i in review))]
    assert any("restored 0 of 2" in t and "(0%)" in t for t in texts)


def test_attention_checks_need_a_cvat_task(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["annotate", "--frames", ".", "--out", "a.txt", "--weights", "x.pt", "--attention-checks", "2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--attention-checks needs a CVAT task" in err[0]
    assert not (tmp_path / ".cvat-track").exists()  # nothing written
