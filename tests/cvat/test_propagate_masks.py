"""``propagate --write masks`` and the propagated-keyframes table, against the CVAT stand-in.

Same task as ``test_propagate_cvat`` (2 jobs of 10 frames, a white square swinging right and
back, human keyframes at 2 and 16): the fake propagator's forward direction segments the
white pixels exactly, its backward direction keeps the prompt box. The mask tracks CVAT
stores must decode (with cvat-sdk's own decoder) to exactly the masks that were chosen.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from cvat.scenario import rect, writes
from cvat.test_propagate_cvat import K0, K1, SEG, H, StickyBackward, W, _api, env, truth

from cvat_extension.core.masks import box_to_mask, rle_to_mask
from cvat_extension.cvat.propagate import human_keyframes, propagate_task, run_propagate

__all__ = ["env"]  # the fixture, imported for pytest


def _frame_mask(f: int) -> np.ndarray:
    """The white pixels of frame ``f`` (what the forward direction segments)."""
    return box_to_mask(truth(f), W, H)


def _mask_tracks(standin: Any, job: int) -> list[dict[str, Any]]:
    return [t for t in standin.job_annotations(job)["tracks"]
            if t["shapes"] and all(s["type"] == "mask" for s in t["shapes"])]


def _box_tracks(standin: Any, job: int) -> list[dict[str, Any]]:
    return [t for t in standin.job_annotations(job)["tracks"]
            if t["shapes"] and all(s["type"] == "rectangle" for s in t["shapes"])]


def test_write_masks_creates_one_grouped_mask_track_per_job(env: Any) -> None:
    from cvat_sdk.masks import decode_mask

    standin, task_id, jobs, cfg, store = env
    s = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")

    assert s.mask_tracks_created == 2 and s.mask_tracks_updated == 0  # one piece per job
    assert s.mask_keyframes == K1 - K0 + 1 and sorted(s.jobs_written) == jobs
    chosen = s.propagation.result.masks
    assert chosen.frames(1) == list(range(K0, K1 + 1))
    for job in jobs:
        (box,) = _box_tracks(standin, job)
        (mask,) = _mask_tracks(standin, job)
        assert mask["label_id"] == box["label_id"] and mask["group"] == box["group"] != 0
        lo, hi = (0, SEG - 1) if job == jobs[0] else (SEG, 2 * SEG - 1)
        visible = [sh for sh in mask["shapes"] if not sh["outside"]]
        assert [sh["frame"] for sh in visible] == list(range(max(K0, lo), min(K1, hi) + 1))
        outside = [sh["frame"] for sh in mask["shapes"] if sh["outside"]]
        assert outside == ([] if job == jobs[0] else [K1 + 1])  # job 1's piece runs to its end
        for sh in visible:
            f = sh["frame"]
            got = decode_mask(sh["points"], image_width=W, image_height=H)
            assert np.array_equal(got, chosen.decode(1, f)), f
            assert np.array_equal(got, rle_to_mask(sh["points"], W, H))
            # forward (exact) wins near K0, backward (the K1 box) near K1
            expect = _frame_mask(f) if f <= K0 + 11 else box_to_mask(truth(K1), W, H)
            assert np.array_equal(got, expect), f
            assert sh["points"][-4:] == [int(v) for v in (expect.nonzero()[1].min(), expect.nonzero()[0].min(),
                                                          expect.nonzero()[1].max(), expect.nonzero()[0].max())]

    # a second run over the unchanged task writes nothing (no second mask track)
    mark = len(standin.request_log)
    again = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")
    assert writes(standin, mark) == [] and again.mask_tracks_created == 0
    assert [len(_mask_tracks(standin, j)) for j in jobs] == [1, 1]


def test_moved_keyframe_updates_the_mask_track_instead_of_creating_one(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env
    run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")
    ids = {j: _mask_tracks(standin, j)[0]["id"] for j in jobs}
    piece = _box_tracks(standin, jobs[1])[0]
    for sh in piece["shapes"]:
        if sh["frame"] == K1:
            sh["points"] = [12.0, 40.0, 42.0, 70.0]  # the annotator nudges the end keyframe
    standin.edit_as_user(jobs[1], {"tags": [], "shapes": [], "tracks": [piece]}, action="update")

    again = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")

    assert again.segments == 1 and again.mask_tracks_created == 0 and again.mask_tracks_updated >= 1
    assert {j: [t["id"] for t in _mask_tracks(standin, j)] for j in jobs} == {j: [ids[j]] for j in jobs}
    (mask,) = _mask_tracks(standin, jobs[1])
    last = max(sh["frame"] for sh in mask["shapes"] if not sh["outside"])
    # the backward direction now starts from the nudged box: its mask is on frame K1
    end = next(sh for sh in mask["shapes"] if sh["frame"] == last)
    assert last == K1 and np.array_equal(rle_to_mask(end["points"], W, H), box_to_mask([12, 40, 42, 70], W, H))


def test_lost_create_answer_is_not_sent_twice(env: Any) -> None:
    standin, task_id, jobs, cfg, store = env
    # job 2: PATCH 1 is the box update, PATCH 2 the mask create; its answer is lost
    standin.inject_fault("PATCH", rf"/api/jobs/{jobs[1]}/annotations", status=500, when="after", on_call=2)
    s = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")
    assert s.mask_tracks_created == 2 and [len(_mask_tracks(standin, j)) for j in jobs] == [1, 1]
    assert store.journal(jobs[1]).status == "done"


def test_create_killed_midway_is_resumed_once(env: Any) -> None:
    from cvat_extension.cvat.connection import CvatTransientError

    standin, task_id, jobs, cfg, store = env
    # every try of job 2's create lands but its answer is lost, and so is every re-read:
    # the run dies with the create journaled "planned"
    standin.inject_fault("PATCH", rf"/api/jobs/{jobs[1]}/annotations", status=500, when="after", on_call=2)
    standin.inject_fault("GET", rf"/api/jobs/{jobs[1]}/annotations", status=500, on_call=4, times=50)
    with pytest.raises(CvatTransientError):
        run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")
    assert store.journal(jobs[1]).status == "planned" and len(_mask_tracks(standin, jobs[1])) == 1
    standin.clear_faults()
    mark = len(standin.request_log)
    again = run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")
    assert again.writes_resumed == 1 and store.journal(jobs[1]).status == "done"
    assert writes(standin, mark) == [] and [len(_mask_tracks(standin, j)) for j in jobs] == [1, 1]


def test_our_keyframes_stay_ours_after_sync_writes_the_job(env: Any) -> None:
    """propagate → sync merges two fragments in job 1 (its journal replaces ours) → propagate."""
    from cvat_extension.cvat.annotations import read_task
    from cvat_extension.cvat.writeback import execute_plan, plan_job_writes

    standin, task_id, jobs, cfg, store = env
    prop = StickyBackward()
    first = run_propagate(_api(cfg), store, cfg, task_id, prop)
    assert first.keyframes_added > 0 and store.journal(jobs[0]).run_id.startswith("propagate-")
    car = standin.job_annotations(jobs[0])["tracks"][0]["label_id"]
    frag = [{"label_id": car, "frame": f0, "group": 0, "source": "manual", "attributes": [], "elements": [],
             "shapes": [dict(rect(f0, 100, 5, 20, 20)), dict(rect(f0 + 1, 101, 5, 20, 20)),
                        dict(rect(f0 + 2, 101, 5, 20, 20, outside=True))]} for f0 in (0, 5)]
    standin.edit_as_user(jobs[0], {"tags": [], "shapes": [], "tracks": frag}, action="create")
    api = _api(cfg)
    raw = api.get_job_annotations(jobs[0])
    a, b = sorted(int(t["id"]) for t in raw["tracks"] if t["shapes"][0]["points"][0] >= 100)
    plan = plan_job_writes(job_id=jobs[0], task_id=task_id, annotations=raw,
                           updated_date=str(api.get_job(jobs[0])["updated_date"]), merges=[{"into": a, "from": b}])
    execute_plan(api, store, plan, backup_dir=None, run_id="sync-test")  # what sync's merge does
    assert store.journal(jobs[0]).run_id == "sync-test" and len(_box_tracks(standin, jobs[0])) == 2

    class JournalOnly:  # the store as it was before the table: only journals tell
        def __getattr__(self, name: str) -> Any:
            return getattr(store, name)

        def propagated(self, job_id: int) -> list[Any]:
            return []

    old = propagate_task(_api(cfg), task_id, StickyBackward(), store=JournalOnly())
    # the bug: our keyframes counted as human, splitting the filled gap into new ones
    assert old.skipped == [] and len(old.filled) > 1 and old.filled[0][:2] == (1, K0)

    snap = read_task(_api(cfg), task_id)
    from cvat_extension.cvat.propagate import _written

    human, ours = human_keyframes(snap, _written(store, jobs))
    assert ours.sum() >= first.keyframes_added - 2  # job-boundary cuts may coincide
    obj = human.track(snap.piece_to_stitched[standin.job_annotations(jobs[0])["tracks"][0]["id"]])
    assert K0 in obj.frame.tolist() and not (set(obj.frame.tolist()) & set(range(K0 + 1, K1)))
    mark = len(standin.request_log)
    again = run_propagate(_api(cfg), store, cfg, task_id, prop)
    assert again.gaps_skipped == 1 and again.segments == 0 and prop.calls == 2
    assert writes(standin, mark) == []


def test_refused_write_forgets_its_rows(env: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.errors import ConcurrentEditError

    standin, task_id, jobs, cfg, store = env
    record = store.record_propagated

    def record_then_user_edits(job_id: int, run_id: str, rows: Any) -> None:
        record(job_id, run_id, rows)
        assert store.propagated(job_id)  # recorded before the write...
        doc = standin.job_annotations(job_id)  # ...then the annotator saves the job
        standin.edit_as_user(job_id, {"tags": [], "shapes": [], "tracks": doc["tracks"]}, action="update")

    monkeypatch.setattr(store, "record_propagated", record_then_user_edits)
    with pytest.raises(ConcurrentEditError):
        run_propagate(_api(cfg), store, cfg, task_id, StickyBackward(), write="masks")
    assert all(store.propagated(j) == [] for j in jobs)  # nothing written, nothing remembered


def test_offline_write_masks_adds_mask_tracks_to_cvat_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from cvat_extension.adapters.cli import cmd_propagate
    from cvat_extension.adapters.cli.main import main

    frames = tmp_path / "frames"
    frames.mkdir()
    for f in range(K1 + 2):
        img = np.zeros((H, W, 3), np.uint8)
        img[_frame_mask(f)] = 255
        Image.fromarray(img).save(frames / f"{f:05d}.png")
    ann = tmp_path / "gt.txt"  # MOT, 1-based: keyframes at K0 and K1
    ann.write_text("".join(f"{f + 1},7,{b[0]},{b[1]},{b[2] - b[0]},{b[3] - b[1]},1,1,1\n"
                           for f, b in ((K0, truth(K0)), (K1, truth(K1)))))
    monkeypatch.setattr(cmd_propagate, "make_propagator", lambda args: StickyBackward())
    for out in (tmp_path / "out.json", tmp_path / "out.xml"):
        assert main(["propagate", "--frames", str(frames), "--annotations", str(ann), "--out", str(out),
                     "--write", "masks", "--format", "json"]) == 0
        summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        masks_file = out if out.suffix == ".json" else out.with_suffix(".masks.json")
        assert summary["mask_keyframes"] == K1 - K0 + 1 and summary["masks_out"] == str(masks_file)
        doc = json.loads(masks_file.read_text())
        masks = [t for t in doc["tracks"] if t["shapes"][0]["type"] == "mask"]
        assert len(masks) == 1 and masks[0]["group"] != 0
        if out.suffix == ".json":  # the box track is in the same document, same group
            boxes = [t for t in doc["tracks"] if t["shapes"][0]["type"] == "rectangle"]
            assert [b["group"] for b in boxes] == [masks[0]["group"]]
            assert boxes[0]["label_id"] == masks[0]["label_id"]
        vis = [s for s in masks[0]["shapes"] if not s["outside"]]
        assert [s["frame"] for s in vis] == list(range(K0, K1 + 1))
        assert [s["frame"] for s in masks[0]["shapes"] if s["outside"]] == [K1 + 1]
        assert np.array_equal(rle_to_mask(vis[3]["points"], W, H), _frame_mask(K0 + 3))


def test_propagate_keyframes_keeps_cropped_rle_masks_and_runs_become_mask_keyframes() -> None:
    """Two visible runs (2..8, 12..16): masks on every visible frame, cropped RLE in memory,
    and the mask track gets ``outside`` after each run, none inside."""
    from cvat_extension.core.tracks import Tracks
    from cvat_extension.cvat.propagate import mask_track_shapes
    from cvat_extension.models.keyframe_propagation import propagate_keyframes

    frames = {f: np.repeat(_frame_mask(f)[..., None], 3, axis=2).astype(np.uint8) * 255 for f in range(20)}
    keys = Tracks.from_columns(frame=[2, 8, 9, 12, 16], track_id=[3] * 5, label=[0] * 5, labels=("car",),
                               xyxy=[truth(f) for f in (2, 8, 8, 12, 16)],
                               outside=[False, False, True, False, False])
    res = propagate_keyframes(keys, frames.__getitem__, StickyBackward(), stop_frame=19)
    m = res.masks
    assert (m.width, m.height) == (W, H) and m.frames(3) == [*range(2, 9), *range(12, 17)]
    assert all(np.array_equal(m.decode(3, f), _frame_mask(f)) for f in (2, 5, 12, 13))
    assert m.nbytes < 40 * m.count  # a square is ~6 ints, never a full frame (19200 B)
    shapes = mask_track_shapes([], {f: m.points(3, f) for f in m.frames(3)}, [], {}, 19)
    assert [(s["frame"], s["outside"]) for s in shapes if s["outside"]] == [(9, True), (17, True)]
    assert len(shapes) == len(m.frames(3)) + 2 and all(s["type"] == "mask" for s in shapes)


def test_propagated_keyframes_table(tmp_path: Path) -> None:
    from cvat_extension.cvat.state_store import PropagatedKeyframe, SQLiteStateStore

    store = SQLiteStateStore(tmp_path / "s.sqlite")
    a = PropagatedKeyframe(5, 3, "h1")
    store.record_propagated(1, "propagate-a", [a, PropagatedKeyframe(5, 2, "h0", "anchor")])
    store.record_propagated(1, "propagate-b", [a, PropagatedKeyframe(5, 4, "h2")])  # a already known
    store.record_propagated(2, "propagate-b", [PropagatedKeyframe(9, 4, "h2")])
    assert [(r.frame, r.kind, r.run_id) for r in store.propagated(1)] == [
        (2, "anchor", "propagate-a"), (3, "written", "propagate-a"), (4, "written", "propagate-b")]
    store.forget_propagated(1, "propagate-b")  # b's write was refused: a's row stays
    assert [(r.frame, r.run_id) for r in store.propagated(1)] == [(2, "propagate-a"), (3, "propagate-a")]
    assert len(store.propagated(2)) == 1
    store.close()
    again = SQLiteStateStore(tmp_path / "s.sqlite")
    assert len(again.propagated(1)) == 2  # persisted
    again.close()


def test_cli_cvat_mode_write_masks(env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.adapters.cli import cmd_propagate
    from cvat_extension.adapters.cli.main import main

    standin, task_id, jobs, _cfg, _store = env
    monkeypatch.setattr(cmd_propagate, "make_propagator", lambda args: StickyBackward())
    conf = str(tmp_path / "serverless.yaml")
    assert main(["propagate", str(task_id), "--config", conf, "--write", "masks", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "would write mask tracks: 2 created" in out and f"job {jobs[1]}: create mask track" in out
    assert [len(_mask_tracks(standin, j)) for j in jobs] == [0, 0]
    assert main(["propagate", str(task_id), "--config", conf, "--write", "masks", "--format", "json"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["mask_tracks_created"] == 2 and summary["mask_keyframes"] == K1 - K0 + 1
    assert [len(_mask_tracks(standin, j)) for j in jobs] == [1, 1]
