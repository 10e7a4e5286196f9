"""Readers and writers of MOT CSV, CVAT for video XML and CVAT JSON, and bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io.cvat_json import parse_labeled_data, read_cvat_json
from cvat_extension.io.formats import Format, detect_format, read_tracks, write_tracks


@pytest.fixture
def task_json(fixtures_dir):
    return fixtures_dir / "io" / "task_annotations.json"


def test_cvat_json_round_trip_is_lossless(task_json, tmp_path):
    original = json.loads(task_json.read_text())
    doc = read_cvat_json(task_json)
    out = doc.to_labeled_data()
    api_keys = {k: v for k, v in original.items() if k not in ("labels", "meta")}
    assert out == api_keys  # tags, polygon shape, points track, attributes, ids, group kept


def test_cvat_json_stitches_job_pieces_on_read(task_json):
    loaded = read_tracks(task_json)
    assert loaded.format is Format.CVAT_JSON
    assert loaded.piece_map == {11: 11, 12: 11}
    vis = loaded.tracks.visible()
    assert vis.frame.tolist() == list(range(0, 14))
    assert loaded.info.num_frames == 20 and loaded.info.job_starts == (0, 10)


def test_cvat_json_modified_track_keeps_ids_and_attributes(task_json):
    doc = read_cvat_json(task_json)
    t = doc.tracks
    moved = t.with_columns(xyxy=np.where((t.track_id == 12)[:, None], t.xyxy + 1, t.xyxy))
    out = doc.to_labeled_data(moved, changed_only=True)
    assert [tr["id"] for tr in out["tracks"]] == [12]
    assert [s["id"] for s in out["tracks"][0]["shapes"]] == [103, 104]
    full = doc.to_labeled_data(moved)
    assert full["tracks"][0] == json.loads(task_json.read_text())["tracks"][0]


def test_cvat_json_dense_write_thins_and_closes_gaps(task_json):
    doc = read_cvat_json(task_json)
    frames = np.r_[0:5, 8:12]
    dense = Tracks.from_columns(
        frame=frames, track_id=np.full(len(frames), 99), xyxy=np.c_[frames, frames, frames + 5, frames + 5],
        labels=("car",),
    )
    out = doc.to_labeled_data(dense, dense=True, changed_only=True)
    (track,) = out["tracks"]
    assert "id" not in track and track["label_id"] == 7
    assert [(s["frame"], s["outside"]) for s in track["shapes"]] == [(0, False), (5, True), (8, False), (12, True)]


def test_mot_round_trip_exact(tmp_path):
    src = tmp_path / "gt.txt"
    src.write_text("1,1,10,20,30,40,1,1,0.5\n2,1,11.5,20,30,40,1,1,0.25\n1,2,0,0,5,5,0,7,1\n")
    loaded = read_tracks(src)
    assert loaded.info.frame_base == 1 and loaded.tracks.frame.min() == 0
    write_tracks(tmp_path / "out.txt", loaded, fmt="mot")
    assert sorted((tmp_path / "out.txt").read_text().splitlines()) == sorted(src.read_text().splitlines())


def test_xml_keyframes_only_is_expanded(fixtures_dir, tmp_path):
    loaded = read_tracks(fixtures_dir / "io" / "keyframes_only.xml")
    assert loaded.tracks.frame.tolist() == list(range(1, 8))
    assert loaded.tracks.xyxy[2, 0] == 12.0 and loaded.tracks.occluded.tolist() == [0, 0, 0, 0, 1, 1, 1]
    write_tracks(tmp_path / "dense.xml", loaded, fmt="cvat_xml")
    again = read_tracks(tmp_path / "dense.xml")
    assert again.document.dense and np.allclose(again.tracks.xyxy, loaded.tracks.xyxy, atol=0.005)
    assert again.keyframes.frame.tolist() == [1, 5]


def test_detect_format_by_content_and_extension(tmp_path, task_json):
    assert detect_format(task_json) is Format.CVAT_JSON
    bad = tmp_path / "x.json"
    bad.write_text("1,1,0,0,1,1,1,1,1\n")
    with pytest.raises(AnnotationFormatError, match="extension"):
        detect_format(bad)


BAD_MOT = [
    ("1,1,0,0,1\n", "line 1|:1:.*6 to 10"),
    ("1,1,0,0,1,1,1,1,1\n2,1,0,abc,1,1,1,1,1\n", ":2:.*not a number"),
    ("1,1,0,0,nan,1,1,1,1\n", ":1:.*NaN"),
    ("1,1,0,0,-4,1,1,1,1\n", ":1:.*negative"),
    ("1,1,0,0,4,1,1,1,1\n1,1,3,0,4,1,1,1,1\n", ":2:.*duplicate box for id 1 on frame 1"),
    ("0,1,0,0,4,1,1,1,1\n", ":1:.*frame must be >= 1"),
]


@pytest.mark.parametrize(("text", "match"), BAD_MOT)
def test_bad_mot(tmp_path, text, match):
    p = tmp_path / "gt.txt"
    p.write_text(text)
    with pytest.raises(AnnotationFormatError, match=match):
        read_tracks(p)


def _doc(shape=None, track=None, labels=({"id": 7, "name": "car"},)):
    s = {"type": "rectangle", "frame": 0, "points": [0, 0, 1, 1], "outside": False, "occluded": False}
    s.update(shape or {})
    t = {"id": 1, "label_id": 7, "frame": 0, "shapes": [s]}
    t.update(track or {})
    return {"version": 0, "tags": [], "shapes": [], "tracks": [t], "labels": list(labels)}


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (_doc({"points": [0, 0, float("nan"), 1]}), r"tracks\[0\] \(id 1\)\.shapes\[0\].*finite"),
        (_doc({"points": [5, 0, 1, 1]}), "negative box size"),
        (_doc({"points": [0, 0, 1]}), "4 points"),
        (_doc(track={"label_id": 99}), "unknown label_id 99"),
        (_doc(track={"shapes": [
            {"type": "rectangle", "frame": 3, "points": [0, 0, 1, 1]},
            {"type": "rectangle", "frame": 3, "points": [0, 0, 1, 1]}]}), "same frame"),
        ([1, 2], "expected a JSON object"),
    ],
)
def test_bad_cvat_json(data, match):
    with pytest.raises(AnnotationFormatError, match=match):
        parse_labeled_data(data, path="x.json")


def test_malformed_json_names_line(tmp_path):
    p = tmp_path / "a.json"
    p.write_text('{"tracks": [\n  {"id": 1,\n  oops}\n]}')
    with pytest.raises(AnnotationFormatError, match=r"a\.json:3: invalid JSON"):
        read_tracks(p)


@pytest.mark.parametrize(
    ("xml", "match"),
    [
        ("<annotations><track id='1' label='x'><box frame='0'", "malformed XML"),
        ("<annotations><meta><task><labels><label><name>a</name></label></labels></task></meta>"
         "<track id='1' label='zz'><box frame='0' xtl='0' ytl='0' xbr='1' ybr='1'/></track></annotations>", "unknown label 'zz'"),
        ("<annotations><track id='1' label='x'><box frame='0' xtl='5' ytl='0' xbr='1' ybr='1'/></track></annotations>",
         "track\\[0\\] id=1 box frame=0: negative box size"),
        ("<annotations><track id='1' label='x'><box frame='0' xtl='nan' ytl='0' xbr='1' ybr='1'/></track></annotations>", "not finite"),
        ("<annotations><track id='1' label='x'><box frame='0' xtl='0' ytl='0' xbr='1' ybr='1'/>"
         "<box frame='0' xtl='0' ytl='0' xbr='1' ybr='1'/></track></annotations>", "same frame"),
        ("<annotations><track id='1' label='x'><polygon frame='0' points='0,0;1,1'/></track></annotations>", "only <box>"),
    ],
)
def test_bad_xml(tmp_path, xml, match):
    p = tmp_path / "a.xml"
    p.write_text(xml)
    with pytest.raises(AnnotationFormatError, match=match):
        read_tracks(p)
