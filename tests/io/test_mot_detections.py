"""MOT detection files: repeated ids are fine, the MOT row rules still apply."""

from __future__ import annotations

import numpy as np
import pytest

from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io.mot import read_mot_detections


def test_repeated_ids_are_detections_with_scores(tmp_path) -> None:
    path = tmp_path / "det.txt"
    path.write_text("1,-1,10,20,30,40,0.9\n1,-1,50,60,10,10,1.7\n3,-1,0,0,5,5,0.2\n")
    det = read_mot_detections(path)
    assert det.frame.tolist() == [0, 0, 2] and (det.track_id == -1).all()
    np.testing.assert_allclose(det.xyxy[0], [10, 20, 40, 60])
    assert det.score.tolist() == pytest.approx([0.9, 1.0, 0.2])  # clipped to 0..1


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0,-1,0,0,5,5,0.9\n", r"det\.txt:1: frame must be >= 1"),
        ("1,-1,0,0,5,5,0.9\n2,-1,0,0,-5,5,0.9\n", r"det\.txt:2: negative box"),
        ("1,-1,0,0,5,nan,0.9\n", r"det\.txt:1: NaN"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path, text, match) -> None:
    path = tmp_path / "det.txt"
    path.write_text(text)
    with pytest.raises(AnnotationFormatError, match=match):
        read_mot_detections(path)
