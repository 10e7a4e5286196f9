"""Dataset commands on CVAT tasks and jobs, through the CVAT stand-in and cvat-sdk.

The scenario task (``tests/cvat/scenario.py``) has two jobs and a track CVAT cuts at the
job boundary: six objects, seven CVAT track pieces. Every command must see six tracks.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import yaml
from cvat.scenario import NUM_FRAMES, SIZE, rect, seed, track, tracks

from cvat_extension.adapters.cli.main import main
from cvat_extension.dataset.cvat_source import replica_job_ids
from cvat_extension.errors import InputError


@pytest.fixture
def cvat_env(cvat_standin: Any, cvat_client: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """(standin, client, config path, reference task id)."""
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    task_id, _jobs = seed(cvat_standin, cvat_client)
    cfg = tmp_path / "serverless.yaml"
    cfg.write_text(yaml.safe_dump({"sync": {
        "cvat": {"url": cvat_standin.url, "timeout_s": 5},
        "state": {"path": str(tmp_path / "state.sqlite"), "backup_dir": str(tmp_path / "backups"),
                  "report_dir": str(tmp_path / "reports")},
        "retry": {"attempts": 2, "backoff_s": 0.0},
    }}))
    return cvat_standin, cvat_client, cfg, task_id


def _second_annotator(standin: Any, client: Any) -> int:
    """The scenario as a second person annotated it: same objects plus one extra box track."""
    from cvat_sdk import models

    task_id = standin.seed_task("second", [{"name": "car"}, {"name": "person"}], (NUM_FRAMES, *SIZE),
                                segment_size=30)
    car, person = standin.label_id(task_id, "car"), standin.label_id(task_id, "person")
    named = tracks(car, person)
    named["extra"] = track(car, [rect(f, 400, 100, 40, 40) for f in range(5, 13)]
                           + [rect(13, 400, 100, 40, 40, outside=True)])
    client.tasks.retrieve(task_id).set_annotations(models.LabeledDataRequest(
        version=0, tags=[], shapes=[], tracks=[models.LabeledTrackRequest(**t) for t in named.values()]))
    return task_id


def test_card_and_export_of_a_task_see_stitched_tracks(cvat_env, tmp_path):
    _standin, _client, cfg, task_id = cvat_env
    assert main(["card", "--task", str(task_id), "--config", str(cfg), "--out", str(tmp_path / "card"),
                 "--no-plots"]) == 0
    card = json.loads((tmp_path / "card" / "card.json").read_text())
    assert card["total"]["tracks"] == 6 and card["total"]["frames"] == NUM_FRAMES  # 7 pieces, 6 objects
    assert card["sequences"][0]["source"] == f"cvat task {task_id}"
    out = tmp_path / "export"
    assert main(["export", "--task", str(task_id), "--config", str(cfg), "--out", str(out), "--to", "both"]) == 0
    gt = np.loadtxt(out / "dataset-all" / "scenario" / "gt" / "gt.txt", delimiter=",")
    assert len(np.unique(gt[:, 1])) == 6 and gt[:, 0].min() == 1
    ini = (out / "dataset-all" / "scenario" / "seqinfo.ini").read_text()
    assert f"seqLength={NUM_FRAMES}" in ini and f"imWidth={SIZE[0]}" in ini
    coco = json.loads((out / "annotations.json").read_text())
    assert len(coco["tracks"]) == 6 and len(coco["images"]) == NUM_FRAMES


def test_agreement_of_two_tasks_pushes_issues_once(cvat_env, tmp_path, capsys):
    standin, client, cfg, task_a = cvat_env
    task_b = _second_annotator(standin, client)
    args = ["agreement", "--tasks", str(task_a), str(task_b), "--config", str(cfg), "--push",
            "--json", str(tmp_path / "g.json")]
    assert main(args) == 0  # one short extra track: agreement still passes
    doc = json.loads((tmp_path / "g.json").read_text())
    assert doc["metrics"]["a_as_reference"]["fp"] == 8 and doc["disagreements_by_kind"] == {"agreement_extra": 1}
    assert doc["pushed"] == [f"job {standin.job_ids(task_b)[0]}: 1 issue(s) opened, 0 still open, "
                             "0 resolved and respected"]
    issues = client.api_client.issues_api.list(job_id=standin.job_ids(task_b)[0])[0].results
    assert len(issues) == 1 and issues[0].frame == 5
    assert main(args) == 0
    assert "0 issue(s) opened, 1 still open" in capsys.readouterr().out
    assert len(client.api_client.issues_api.list(job_id=standin.job_ids(task_b)[0])[0].results) == 1


def test_agreement_of_two_jobs_and_render_from_chunks(cvat_env, tmp_path, capsys):
    pytest.importorskip("av", reason="the dataset extra (PyAV) is not installed")
    standin, client, cfg, task_a = cvat_env
    task_b = _second_annotator(standin, client)
    job_a, job_b = standin.job_ids(task_a)[1], standin.job_ids(task_b)[1]
    assert main(["agreement", "--jobs", str(job_a), str(job_b), "--config", str(cfg)]) == 0
    assert "MOTA 100.00" in capsys.readouterr().out  # the extra track is in the first job only
    out = tmp_path / "v.mp4"
    assert main(["render", "--task", str(task_a), "--config", str(cfg), "--out", str(out), "--stop", "9"]) == 0
    assert "rendered 10 frames (0..9)" in capsys.readouterr().out and out.stat().st_size > 0


def test_replica_jobs_are_found_by_parent():
    jobs = [{"id": 7, "type": "replica", "parent_job_id": 3}, {"id": 5, "type": "replica", "parent_job_id": 3},
            {"id": 3, "type": "annotation", "parent_job_id": None}]
    api = SimpleNamespace(list_jobs=lambda **q: [j for j in jobs if j["parent_job_id"] == q["parent_job_id"]])
    assert replica_job_ids(api, 3) == [5, 7]
    with pytest.raises(InputError, match="0 consensus replica"):
        replica_job_ids(api, 9)


def test_export_task_masks_as_coco_rle(cvat_env, tmp_path):
    from cvat_sdk import models

    from cvat_extension.core.masks import mask_to_rle

    standin, client, cfg, _task = cvat_env
    task_id = standin.seed_task("masks", [{"name": "person"}], (10, 64, 48))
    person = standin.label_id(task_id, "person")
    mask = np.zeros((48, 64), bool)
    mask[10:20, 5:15] = True
    box = track(person, [rect(f, 5, 10, 10, 10) for f in range(5)] + [rect(5, 5, 10, 10, 10, outside=True)])
    box["group"] = 4
    shapes = [{"type": "mask", "frame": f, "points": mask_to_rle(mask), "outside": f == 3, "occluded": False,
               "z_order": 0, "rotation": 0.0, "attributes": []} for f in range(4)]
    masks = {"frame": 0, "label_id": person, "group": 4, "source": "semi-auto", "attributes": [],
             "shapes": shapes, "elements": []}
    client.tasks.retrieve(task_id).set_annotations(models.LabeledDataRequest(
        version=0, tags=[], shapes=[], tracks=[models.LabeledTrackRequest(**t) for t in (box, masks)]))
    out = tmp_path / "coco"
    assert main(["export", "--task", str(task_id), "--config", str(cfg), "--out", str(out),
                 "--to", "coco", "--masks"]) == 0
    anns = json.loads((out / "annotations.json").read_text())["annotations"]
    assert [a["image_id"] for a in anns] == [1, 2, 3, 4, 5] and len({a["track_id"] for a in anns}) == 1
    seg = [a.get("segmentation") for a in anns]
    assert seg[3:] == [None, None] and all(s is not None for s in seg[:3])
    counts = np.repeat(np.arange(len(seg[0]["counts"])) % 2, seg[0]["counts"]).astype(bool)
    assert seg[0]["size"] == [48, 64] and np.array_equal(counts.reshape(64, 48).T, mask)
