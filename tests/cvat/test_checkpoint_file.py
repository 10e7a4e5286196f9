"""The annotate resume file holds plain arrays: it round-trips, and a hostile file runs nothing."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from cvat_extension.cvat.annotate import Checkpoint
from cvat_extension.errors import InputError


class _Marker:
    """Unpickling this creates a file: what a hostile 'resume file' could do."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (Path(self.path),))


def test_progress_round_trips(tmp_path: Path) -> None:
    ck = Checkpoint(tmp_path / "run.resume", "k")
    ck.progress.next_frame = 42
    ck.progress.tracker_state = b"\x00state\xff"
    ck.progress.rows = [np.arange(16.0).reshape(2, 8), np.zeros((0, 8)), np.ones((1, 8))]
    ck.progress.uploaded_jobs = [3, 7]
    ck.save()
    back = Checkpoint(tmp_path / "run.resume", "k").progress
    assert (back.next_frame, back.tracker_state, back.uploaded_jobs) == (42, b"\x00state\xff", [3, 7])
    assert [r.tolist() for r in back.rows] == [r.tolist() for r in ck.progress.rows]
    assert Checkpoint(tmp_path / "run.resume", "other run").progress.next_frame == 0


@pytest.mark.parametrize("content", ["pickle", "garbage", "empty"])
def test_a_file_that_is_not_ours_is_refused_and_runs_nothing(tmp_path: Path, content: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "run.resume"
    path.write_bytes({"pickle": pickle.dumps(_Marker(str(marker))), "garbage": b"PK\x03\x04 not a zip",
                      "empty": b""}[content])
    with pytest.raises(InputError, match="not a resume file"):
        Checkpoint(path, "k")
    assert not marker.exists()
