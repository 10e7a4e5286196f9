"""Issue 13 points 1 and 10: inputs that are not what they claim are refused with the reason.

Each case used to be accepted (a COCO file read as "0 tracks", an empty file as a clean
sequence) or refused for the wrong reason (an Excel CSV's byte-order mark as "not a number").
"""

from __future__ import annotations

import contextlib
import json

import pytest

from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io.formats import read_tracks
from cvat_extension.io.mot import read_mot_detections

_MOT = "1,1,10,20,30,40,1,1,1\n2,1,11,20,30,40,1,1,1\n"


@pytest.mark.parametrize(
    ("name", "content", "expectation"),
    [
        ("empty.txt", "", pytest.raises(AnnotationFormatError, match=r"empty\.txt: empty file.*--allow-empty")),
        ("blank.json", "\n  \n", pytest.raises(AnnotationFormatError, match="empty file")),
        ("coco.json", json.dumps({"images": [], "annotations": [], "categories": []}),
         pytest.raises(AnnotationFormatError, match=r"coco\.json: a COCO file .*, not CVAT annotations")),
        ("foo.json", json.dumps({"foo": [1, 2, 3]}),
         pytest.raises(AnnotationFormatError, match="keys 'foo'.*not CVAT annotations")),
        ("labels.json", json.dumps([{"id": 1, "name": "person"}]),
         pytest.raises(AnnotationFormatError, match="a list of labels, not CVAT annotations")),
        ("none.json", json.dumps({"version": 0, "tags": [], "shapes": [], "tracks": []}),
         pytest.raises(AnnotationFormatError, match="no box tracks in this file.*--allow-empty")),
        ("voc.xml", "<annotation><object/></annotation>",
         pytest.raises(AnnotationFormatError, match="a Pascal VOC file")),
        ("header.csv", "frame,id,x,y,w,h\n" + _MOT,
         pytest.raises(AnnotationFormatError, match=r"header\.csv:1: a header line")),
        ("yolo.txt", "1 0.5 0.5 0.1 0.2\n",
         pytest.raises(AnnotationFormatError, match=r"yolo\.txt:1: values separated by spaces")),
        ("bom.csv", "\ufeff" + _MOT, contextlib.nullcontext()),
        ("crlf.txt", _MOT.replace("\n", "\r\n"), contextlib.nullcontext()),
        ("comment.txt", "# exported\n\n" + _MOT, contextlib.nullcontext()),
    ],
)
def test_inputs_refused_with_reason_or_read(tmp_path, name, content, expectation):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with expectation:
        loaded = read_tracks(path)
        assert len(loaded.tracks) == 2 and loaded.tracks.frame.tolist() == [0, 1]


def test_bom_cvat_json_is_read(fixtures_dir, tmp_path):
    src = (fixtures_dir / "io" / "task_annotations.json").read_text(encoding="utf-8")
    path = tmp_path / "excel.json"
    path.write_text("\ufeff" + src, encoding="utf-8")
    assert len(read_tracks(path).tracks) > 0


def test_allow_empty_reads_an_empty_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("")
    assert len(read_tracks(path, allow_empty=True).tracks) == 0


@pytest.mark.parametrize(
    ("content", "line", "match"),
    [
        ("1,1,0,0,3,4\n\n# note\n0,1,0,0,3,4\n", 4, "frame must be >= 1"),
        ("1,1,0,0,3,4\n2,1,0,0,3,4\n2,1,0,0,3,4\n", 3, "duplicate box for id 1 on frame 2 \\(also on line 2\\)"),
        ("1,1,0,0,3,4\n2,1,0,0,3\n", 2, "expected 6 like the lines above|expected 6 to 10"),
        ("1,1,0,0,3,4\n2,1,0,x,3,4\n", 2, "not a number: 'x'"),
    ],
)
def test_errors_name_file_and_line(tmp_path, content, line, match):
    path = tmp_path / "gt.txt"
    path.write_text(content)
    with pytest.raises(AnnotationFormatError, match=match) as info:
        read_tracks(path)
    assert str(info.value).startswith(f"{path}:{line}: ")


def test_detections_with_bom(tmp_path):
    path = tmp_path / "det.txt"
    path.write_text("\ufeff1,-1,10,20,30,40,0.9\n", encoding="utf-8")
    assert read_mot_detections(path).score.tolist() == pytest.approx([0.9])
