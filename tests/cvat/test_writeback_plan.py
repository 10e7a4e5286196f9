"""Merge planning under CVAT's rules, and finding how far an interrupted write got."""

from __future__ import annotations

import pytest

from cvat_extension.cvat.content import apply_ops, canonical, content_hash, loose_hash, strip_ids
from cvat_extension.cvat.writeback import MergeConflict, match_progress, merge_track_dicts, plan_job_writes


def box(frame: int, x: float, *, outside: bool = False, sid: int | None = None) -> dict:
    s = {"type": "rectangle", "frame": frame, "points": [x, 10.0, x + 20, 40.0], "outside": outside,
         "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": []}
    if sid is not None:
        s["id"] = sid
    return s


def track(tid: int, shapes: list[dict], label: int = 1) -> dict:
    return {"id": tid, "label_id": label, "frame": shapes[0]["frame"], "group": 0, "source": "manual",
            "attributes": [{"spec_id": 5, "value": "car"}], "shapes": shapes, "elements": []}


A = track(1, [box(0, 0, sid=11), box(10, 10, sid=12), box(11, 10, outside=True, sid=13)])
B = track(2, [box(15, 15, sid=21), box(20, 20, sid=22), box(21, 20, outside=True, sid=23)])


def test_merge_keeps_every_keyframe_and_the_gap_outside() -> None:
    m = merge_track_dicts(A, [B])
    assert m["id"] == 1 and m["frame"] == 0
    assert [(s["frame"], s["outside"]) for s in m["shapes"]] == [
        (0, False), (10, False), (11, True), (15, False), (20, False), (21, True)]
    assert all("id" not in s for s in m["shapes"])
    assert m["attributes"] == A["attributes"]


def test_adjacent_pieces_drop_the_closing_outside_where_the_next_starts() -> None:
    b = track(2, [box(11, 11), box(12, 12, outside=True)])
    m = merge_track_dicts(A, [b])
    assert [(s["frame"], s["outside"]) for s in m["shapes"]] == [(0, False), (10, False), (11, False), (12, True)]


@pytest.mark.parametrize(
    ("into", "part", "match"),
    [
        (A, track(2, [box(15, 1), box(16, 1, outside=True)], label=2), "labels differ"),
        (A, track(2, [box(10, 3), box(12, 3, outside=True)]), "two visible shapes at frame 10"),
        (track(1, [box(0, 0), box(5, 5)]), B, "not outside"),
    ],
)
def test_merge_conflicts(into: dict, part: dict, match: str) -> None:
    with pytest.raises(MergeConflict, match=match):
        merge_track_dicts(into, [part])


def test_plan_update_then_delete_and_refusals() -> None:
    ann = {"version": 3, "tags": [], "shapes": [], "tracks": [A, B]}
    plan = plan_job_writes(job_id=5, task_id=1, annotations=ann, updated_date="u0",
                           merges=[{"into": 1, "from": 2, "gap": 3, "score": 0.9},
                                   {"into": 1, "from": 99, "gap": 1, "score": 0.5}])
    assert plan.refused and "not in job 5" in plan.refused[0]["reason"]
    assert not plan.merges and plan.empty  # the chain is refused as a whole
    plan = plan_job_writes(job_id=5, task_id=1, annotations=ann, updated_date="u0",
                           merges=[{"into": 1, "from": 2, "gap": 3, "score": 0.9}])
    assert [op["action"] for op in plan.ops] == ["update", "delete"]
    after = apply_ops(ann, plan.ops)
    assert [t["id"] for t in after["tracks"]] == [1]
    # every visible keyframe of the job is still there
    before_boxes = {(s["frame"], tuple(s["points"])) for t in ann["tracks"] for s in t["shapes"] if not s["outside"]}
    after_boxes = {(s["frame"], tuple(s["points"])) for t in after["tracks"] for s in t["shapes"] if not s["outside"]}
    assert before_boxes == after_boxes


def test_match_progress_finds_partial_writes_and_foreign_edits() -> None:
    ann = {"version": 1, "tags": [], "shapes": [], "tracks": [A, B]}
    plan = plan_job_writes(job_id=5, task_id=1, annotations=ann, updated_date="u0",
                           merges=[{"into": 1, "from": 2, "gap": 3, "score": 0.9}])
    server_after_update = apply_ops(ann, plan.ops[:1])
    # the server renumbers shape ids and bumps the version: still recognised
    for t in server_after_update["tracks"]:
        t["shapes"] = [dict(s, id=1000 + i) for i, s in enumerate(t["shapes"])]
    server_after_update["version"] = 2
    assert match_progress(ann, ann, plan.ops) == 0
    assert match_progress(server_after_update, ann, plan.ops) == 1
    assert match_progress(apply_ops(ann, plan.ops), ann, plan.ops) == 2
    edited = apply_ops(ann, plan.ops[:1])
    edited["tracks"][0]["shapes"][0]["points"] = [1.0, 1.0, 2.0, 2.0]
    assert match_progress(edited, ann, plan.ops) is None


def test_hashes_ignore_server_noise_but_not_edits() -> None:
    ann = {"version": 1, "tags": [], "shapes": [], "tracks": [A]}
    noisy = {"version": 9, "tags": [], "shapes": [], "tracks": [dict(A, shapes=[dict(s, id=None) for s in A["shapes"]])]}
    assert content_hash(ann) == content_hash(noisy)
    moved = {"tracks": [dict(A, shapes=[box(0, 1), *A["shapes"][1:]])]}
    assert content_hash(ann) != content_hash(moved)
    assert loose_hash(strip_ids(ann)) == loose_hash(ann)
    assert canonical(strip_ids(ann))["tracks"][0]["id"] is None
