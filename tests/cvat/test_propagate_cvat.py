"""``propagate`` against the CVAT stand-in through cvat-sdk: write-back, issues, idempotence,
concurrent edits.

The task (2 jobs of 10 frames, PNG frames) shows one white square on black that swings right
and back (a sine), so CVAT's linear interpolation between the two human keyframes (frames 2
and 16, same box) is wrong everywhere in between. The fast tests use a propagator with the
real interface whose forward direction segments the white pixels exactly and whose backward
direction sticks to its prompt box (a drifting tracker): the two disagree where the square is
far from its keyframe box, which is where the issues must be. One slow test runs the real
SAM2 (random weights, tiny) end to end through the CLI.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from cvat.scenario import rect, track, writes

from cvat_extension.core.geometry import iou_xyxy_pairwise
from cvat_extension.core.masks import box_to_mask
from cvat_extension.cvat.config import SyncConfig
from cvat_extension.cvat.connection import connect
from cvat_extension.cvat.propagate import run_propagate
from cvat_extension.cvat.state_store import SQLiteStateStore
from cvat_extension.errors import ConcurrentEditError
from cvat_extension.models.sam2_video import PropagatedObject

N, W, H, SEG = 20, 160, 120, 10
K0, K1 = 2, 16
SIDE = 30


def truth(f: int) -> list[float]:
    x = 10 + round(24 * math.sin(math.pi * (f - K0) / (K1 - K0))) if K0 <= f <= K1 else 10
    return [float(x), 40.0, float(x + SIDE), 40.0 + SIDE]


class StickyBackward:
    """Forward: exact segmentation of the white square. Backward: the prompt box, unmoved."""

    def __init__(self, on_call: Any = None) -> None:
        self.calls = 0
        self.on_call = on_call

    def propagate(self, frames: Any, prompt_frame: int, prompts: Any, *, reverse: bool = False,
                  max_frames: int | None = None) -> dict[int, PropagatedObject]:
        self.calls += 1
        if self.on_call is not None:
            self.on_call()
        idx = list(range(prompt_frame, -1, -1) if reverse else range(prompt_frame, len(frames)))
        out = {}
        for p in prompts:
            masks = [box_to_mask(p.box_xyxy, W, H) if reverse else frames[i][..., 0] > 128 for i in idx]
            out[p.obj_id] = PropagatedObject(p.obj_id, np.asarray(idx), np.stack(masks),
                                             np.full(len(idx), 0.6 if reverse else 0.9))
        return out


@pytest.fixture
def env(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    from cvat_sdk import models
    from PIL import Image

    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    cvat_standin.seed_user("reviewer", "pw")
    paths = []
    for f in range(N):
        img = np.zeros((H, W, 3), np.uint8)
        x1, y1, x2, y2 = (int(v) for v in truth(f))
        img[y1:y2, x1:x2] = 255
        paths.append(tmp_path / f"{f:05d}.png")
        Image.fromarray(img).save(paths[-1])
    task_id = cvat_standin.seed_task("swing", [{"name": "car"}], paths, segment_size=SEG)
    car = cvat_standin.label_id(task_id, "car")
    shapes = [rect(K0, *_xywh(truth(K0))), rect(K1, *_xywh(truth(K1))),
              rect(K1 + 1, *_xywh(truth(K1)), outside=True)]
    cvat_client.tasks.retrieve(task_id).set_annotations(models.LabeledDataRequest(
        version=0, tags=[], shapes=[], tracks=[models.LabeledTrackRequest(**track(car, shapes))]))
    raw = {"cvat": {"url": cvat_standin.url, "timeout_s": 5},
           "review": {"on_findings": "review", "reviewer": "reviewer"},
           "merge": {"thin_tolerance_px": 0.5},
           "state": {"path": str(tmp_path / "state.sqlite"), "backup_dir": str(tmp_path / "backups"),
                     "report_dir": str(tmp_path / "reports")},
           "retry": {"attempts": 2, "backoff_s": 0.0}}
    cfg = SyncConfig.from_mapping(raw)
    (tmp_path / "serverless.yaml").write_text(yaml.safe_dump({"sync": raw}))
    store = SQLiteStateStore(tmp_path / "state.sqlite")
    yield cvat_standin, task_id, cvat_standin.job_ids(task_id), cfg, store
    store.close()


def _xywh(b: list[float]) -> tuple[float, float, float, float]:
    return b[0], b[1], b[2] - b[0], b[3] - b[1]


def _api(cfg: SyncConfig) -> Any:
    api = connect(cfg.cvat, cfg.retry)
    api.sleep = lambda s: None
    return api


def _boxes(standin: Any, job_ids: list[int]) -> dict[int, list[float]]:
    """Per frame, the box CVAT shows (linear interpolation between the stored keyframes)."""
    out: dict[int, list[float]] = {}
    for j in job_ids:
        for t in standin.job_annotations(j)["tracks"]:
            ks = sorted(t["shapes"], key=lambda s: s["frame"])
            for a, b in itertools.pairwise(ks):
                for f in range(a["frame"], b["frame"]):
                    if not a["outside"]:
                        w = (f - a["frame"]) / (b["frame"] - a["frame"])
                        out[f] = [p + (q - p) * w for p, q in zip(a["points"], b["points"])]
            if not ks[-1]["outside"]:
                out[ks[-1]["frame"]] = ks[-1]["points"]
    return out


def _issues(standin: Any) -> list[Any]:
    with standin.store.lock:
        return sorted(standin.store.issues.values(), key=lambda i: i.frame)


def _flag_frames() -> set[int]:
    """Inner frames where forward (truth) and backward (the K1 box) overlap less than 0.5."""
    a = np.asarray([truth(f) for f in range(K0 + 1, K1)])
    b = np.asarray([truth(K1)] * len(a))
    return {K0 + 1 + i for i in np.flatnonzero(iou_xyxy_pairwise(a, b) < 0.5)}


def test_propagate_writes_between_keyframes_and_pushes_issues(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env
    before = {j: standin.job_annotations(j) for j in jobs}
    human = {(s["frame"], tuple(s["points"])) for t in before[jobs[0]]["tracks"] for s in t["shapes"]}
    assert (K0, tuple(truth(K0))) in human
    prop = StickyBackward()

    s = run_propagate(_api(cfg), store, cfg, task_id, prop, push_review=True)

    assert s.segments == 1 and s.frames_propagated == K1 - K0 - 1
    flagged = _flag_frames()
    assert s.frames_flagged == len(flagged) and 0 < len(flagged) < s.frames_propagated
    assert {K0 + 1, K1 - 1}.isdisjoint(flagged) and flagged == set(range(min(flagged), max(flagged) + 1))
    assert sorted(s.jobs_written) == jobs and s.tracks_updated == 2  # one piece per job
    # human keyframes unchanged (frame, box, outside), still stored
    after = {j: standin.job_annotations(j) for j in jobs}
    stored = {(s_["frame"], tuple(s_["points"]), s_["outside"]) for j in jobs for t in after[j]["tracks"]
              for s_ in t["shapes"]}
    assert (K0, tuple(truth(K0)), False) in stored and (K1, tuple(truth(K1)), False) in stored
    assert (K1 + 1, tuple(truth(K1)), True) in stored
    # CVAT now shows the propagated boxes: where forward was chosen they are the truth
    shown = _boxes(standin, jobs)
    for f in range(K0 + 1, K0 + 8):
        assert np.allclose(shown[f], truth(f), atol=0.5 + 1e-6), (f, shown[f], truth(f))
    assert all(f in shown for f in range(K0, K1 + 1))
    # issues: in the job holding the flagged frames, at those frames, one per run
    iss = _issues(standin)
    assert [(i.job_id, i.frame) for i in iss] == [(jobs[0], min(flagged))]  # one run, one issue
    assert all(standin.store.jobs[i.job_id].stage == "validation" for i in iss)
    with standin.store.lock:
        msgs = [c.message for c in standin.store.comments.values()]
    assert all("propagation_disagreement" in m and "[cvat-track " in m for m in msgs)

    # second run: nothing propagated, nothing written, no new issue
    mark = len(standin.request_log)
    again = run_propagate(_api(cfg), store, cfg, task_id, prop, push_review=True)
    assert writes(standin, mark) == []
    assert prop.calls == 2 and again.gaps_skipped == 1 and again.segments == 0
    assert again.tracks_updated == 0 and again.issues_opened == 0 and len(_issues(standin)) == len(iss)


def test_moved_human_keyframe_is_filled_again(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env
    prop = StickyBackward()
    run_propagate(_api(cfg), store, cfg, task_id, prop)
    doc = standin.job_annotations(jobs[1])
    piece = doc["tracks"][0]
    for sh in piece["shapes"]:
        if sh["frame"] == K1:
            sh["points"] = [11.0, 40.0, 41.0, 70.0]  # the annotator nudges the end keyframe
    standin.edit_as_user(jobs[1], {"tags": [], "shapes": [], "tracks": [piece]}, action="update")
    again = run_propagate(_api(cfg), store, cfg, task_id, prop)
    assert again.segments == 1 and again.gaps_skipped == 0 and prop.calls == 4
    stored = {(s_["frame"], tuple(s_["points"])) for j in jobs for t in standin.job_annotations(j)["tracks"]
              for s_ in t["shapes"]}
    assert (K1, (11.0, 40.0, 41.0, 70.0)) in stored and (K0, tuple(truth(K0))) in stored


def test_dry_run_writes_nothing(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env
    mark = len(standin.request_log)
    s = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), dry_run=True, push_review=True)
    assert writes(standin, mark) == []
    assert s.tracks_updated == 2 and s.issues_opened > 0 and not s.jobs_written
    plan = "\n".join(s.planned)
    assert f"job {jobs[0]}: track" in plan and "issue at frame" in plan
    assert all(store.backups(j) == [] for j in jobs)


def test_write_none_only_pushes_review(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env
    before = {j: standin.job_annotations(j) for j in jobs}
    s = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="none", push_review=True)
    assert {j: standin.job_annotations(j) for j in jobs} == before
    assert s.tracks_updated == 0 and s.issues_opened == 1 and len(_issues(standin)) == 1


def test_interrupted_write_is_resumed_then_nothing_more(env: Any) -> None:
    from cvat_extension.cvat.connection import CvatTransientError

    standin, task_id, jobs, cfg, store = env
    # job 2's PATCH lands but every answer is lost: the run dies with the journal "planned"
    standin.inject_fault("PATCH", rf"/api/jobs/{jobs[1]}/annotations", status=500, when="after", times=10)
    with pytest.raises(CvatTransientError):
        run_propagate(_api(cfg), store, cfg, task_id, StickyBackward())
    assert store.journal(jobs[1]).status == "planned"
    written = {j: standin.job_annotations(j) for j in jobs}
    standin.clear_faults()
    prop = StickyBackward()
    mark = len(standin.request_log)
    again = run_propagate(_api(cfg), store, cfg, task_id, prop)
    assert again.writes_resumed == 1 and store.journal(jobs[1]).status == "done"
    assert again.gaps_skipped == 1 and prop.calls == 0 and again.tracks_updated == 0
    assert writes(standin, mark) == [] and {j: standin.job_annotations(j) for j in jobs} == written


def test_concurrent_edit_aborts_with_nothing_written(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env

    def user_edits() -> None:  # an annotator saves job 2 while SAM2 runs
        if prop.calls == 1:
            doc = standin.job_annotations(jobs[1])
            standin.edit_as_user(jobs[1], {"tags": [], "shapes": [], "tracks": doc["tracks"]}, action="update")

    prop = StickyBackward(on_call=user_edits)
    before = {j: standin.job_annotations(j) for j in jobs}
    mark = len(standin.request_log)
    with pytest.raises(ConcurrentEditError, match="nothing written"):
        run_propagate(_api(cfg), store, cfg, task_id, prop, push_review=True)
    assert [r for r in writes(standin, mark) if "/annotations" in r.path or "/issues" in r.path] == []
    assert {j: standin.job_annotations(j) for j in jobs} == before
    assert _issues(standin) == []


def test_cli_cvat_mode(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.adapters.cli import cmd_propagate
    from cvat_extension.adapters.cli.main import main

    standin, task_id, jobs, _cfg, _store = env
    monkeypatch.setattr(cmd_propagate, "make_propagator", lambda args: StickyBackward())
    conf = str(tmp_path / "serverless.yaml")
    mark = len(standin.request_log)
    assert main(["propagate", str(task_id), "--config", conf, "--dry-run", "--push-review"]) == 0
    out = capsys.readouterr().out
    assert "would write" in out and f"job {jobs[0]}: track" in out and writes(standin, mark) == []
    second_piece = standin.job_annotations(jobs[1])["tracks"][0]["id"]  # what a reviewer of job 2 sees
    assert main(["propagate", str(task_id), "--config", conf, "--dry-run", "--track", str(second_piece),
                 "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["segments"] == 1
    assert main(["propagate", str(task_id), "--config", conf, "--format", "json", "--push-review"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["tracks_updated"] == 2 and summary["issues_opened"] >= 1
    assert main(["propagate", str(task_id), "--config", conf, "--track", "99"]) == 2
    assert "no track with id 99" in capsys.readouterr().err


@pytest.mark.slow
def test_real_sam2_random_weights_through_cli(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sam2")
    from cvat_extension.adapters.cli.main import main

    standin, task_id, jobs, _cfg, _store = env
    # keyframes 2 and 5 only: 2 inner frames, across no boundary; keeps SAM2 to 4 frames
    doc = standin.job_annotations(jobs[0])
    piece = doc["tracks"][0]
    piece["shapes"] = [sh for sh in piece["shapes"] if sh["frame"] == K0] + [
        dict(rect(5, *_xywh(truth(5)))), dict(rect(6, *_xywh(truth(5)), outside=True))]
    standin.edit_as_user(jobs[0], {"tags": [], "shapes": [], "tracks": [piece]}, action="update")
    standin.edit_as_user(jobs[1], {"tags": [], "shapes": [], "tracks": standin.job_annotations(jobs[1])["tracks"]},
                         action="delete")
    conf = str(tmp_path / "serverless.yaml")
    code = main(["propagate", str(task_id), "--config", conf, "--format", "json", "--push-review",
                 "--image-size", "128", "--device", "cpu", "--random-weights"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["segments"] >= 1 and summary["frames_propagated"] >= 2
    stored = {(s_["frame"], tuple(s_["points"])) for t in standin.job_annotations(jobs[0])["tracks"]
              for s_ in t["shapes"]}
    assert (K0, tuple(truth(K0))) in stored and (5, tuple(truth(5))) in stored
    mark = len(standin.request_log)
    assert main(["propagate", str(task_id), "--config", conf, "--format", "json", "--push-review",
                 "--image-size", "128", "--device", "cpu", "--random-weights"]) == 0
    assert writes(standin, mark) == []


def test_only_boundary_keyframes_on_the_interpolation_count_as_cvat_cuts() -> None:
    from cvat_extension.core.tracks import Tracks
    from cvat_extension.cvat.propagate import _cut_keyframes

    # object 1: keyframes 3, 9 (job end, on the line 3 -> 15), 10 (job start, on it), 15
    # object 2: keyframe 9 on a job end but off the line: a person drew it
    line = [[10 + 5 * (f - 3), 10, 50 + 5 * (f - 3), 50] for f in (3, 9, 10, 15)]
    keys = Tracks.from_columns(
        frame=[3, 9, 10, 15, 3, 9, 15], track_id=[1, 1, 1, 1, 2, 2, 2],
        xyxy=[*line, [0, 0, 10, 10], [40, 0, 50, 10], [12, 0, 22, 10]], labels=("car",),
        label=[0] * 7)
    cut = _cut_keyframes(keys, {9, 10})
    assert cut.tolist() == [False, True, True, False, False, False, False]
    assert not _cut_keyframes(keys, set()).any()
