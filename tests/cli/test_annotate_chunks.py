"""``annotate_task`` reads frames by chunk (API calls scale with chunks), resumes, and falls back.

Driven against the CVAT stand-in's chunk endpoint with a fast fake detector that reads the
frame number back from the pixels the stand-in generated, so every frame is checked to arrive
in order and intact through the zip chunks.
"""

from __future__ import annotations

import zipfile
from io import BytesIO
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("boxmot")
pytest.importorskip("cvat_sdk")

from cvat_extension.cvat.annotate import Checkpoint, annotate_task, iter_task_frames
from cvat_extension.cvat.config import CvatConfig
from cvat_extension.cvat.connection import connect
from cvat_extension.errors import InputError
from cvat_extension.models.mot_tracker import MotTracker
from cvat_extension.models.tracker_config import TrackerConfig

N_FRAMES, CHUNK = 40, 10


def frame_of(image: np.ndarray) -> int:
    """The stand-in paints generated frame ``n`` with red ``(n * 37) % 256``; 173 = 37^-1 mod 256."""
    return int(image[0, 0, 0]) * 173 % 256


class ShadeDetector:
    """One person walking right; checks frame order; ``fail_at`` simulates Ctrl-C."""

    labels = ("person",)

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.seen: list[int] = []

    def detect(self, image: np.ndarray) -> SimpleNamespace:
        f = frame_of(image)
        if f == self.fail_at:
            raise KeyboardInterrupt
        self.seen.append(f)
        x = 5 + 3 * f
        return SimpleNamespace(xyxy=np.array([[x, 10, x + 30, 70]], np.float32),
                               score=np.array([0.9], np.float32), class_id=np.array([0]))


@pytest.fixture()
def api(cvat_standin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    return connect(CvatConfig(url=f"http://127.0.0.1:{cvat_standin.port}"))


def _task(cvat_standin: Any, chunk_type: str = "imageset") -> int:
    return int(cvat_standin.seed_task("walk", [{"name": "person"}], (N_FRAMES, 320, 120), segment_size=15,
                                      chunk_size=CHUNK, chunk_type=chunk_type))


def test_image_task_is_read_in_chunks_not_frames(cvat_standin: Any, api: Any) -> None:
    task_id = _task(cvat_standin)
    detector = ShadeDetector()
    result = annotate_task(api, task_id, detector, MotTracker(TrackerConfig()))
    assert detector.seen == list(range(N_FRAMES))  # every frame, in order, decoded intact
    assert api.calls["tasks.chunk"] == N_FRAMES // CHUNK == 4
    assert api.calls["tasks.frame"] == 0
    assert cvat_standin.calls("GET", rf"/api/tasks/{task_id}/data/?$") == 4
    assert result["frames"] == N_FRAMES and result["tracks"] >= 1
    assert result["jobs"] == 3  # segment 15: one track piece per job


def test_video_task_is_read_in_mp4_chunks(cvat_standin: Any, api: Any) -> None:
    # mp4 is lossy, so the shade-coded frame numbers are not exact: count frames only here;
    # tests/cvat/test_video_chunks.py checks the decoded pixels and the per-frame fallback
    task_id = _task(cvat_standin, chunk_type="video")
    detector = ShadeDetector()
    annotate_task(api, task_id, detector, MotTracker(TrackerConfig()))
    assert len(detector.seen) == N_FRAMES
    assert api.calls["tasks.chunk"] == N_FRAMES // CHUNK and api.calls["tasks.frame"] == 0


def test_interrupted_task_run_resumes_from_the_chunk_holding_the_next_frame(cvat_standin: Any, api: Any,
                                                                            tmp_path: Any) -> None:
    task_id = _task(cvat_standin)
    reference = annotate_task(api, _task(cvat_standin), ShadeDetector(), MotTracker(TrackerConfig()))
    uploads_to = rf"/api/jobs/({'|'.join(map(str, cvat_standin.job_ids(task_id)))})/annotations"
    path = tmp_path / "task.ckpt"
    with pytest.raises(KeyboardInterrupt):
        annotate_task(api, task_id, ShadeDetector(fail_at=27), MotTracker(TrackerConfig()),
                      checkpoint=Checkpoint(path, "k"))
    resumed = Checkpoint(path, "k")
    assert resumed.progress.next_frame == 25  # saved every 25 frames
    assert cvat_standin.calls("PATCH", uploads_to) == 0  # nothing uploaded yet
    calls_before = api.calls["tasks.chunk"]
    detector = ShadeDetector()
    result = annotate_task(api, task_id, detector, MotTracker(TrackerConfig()), checkpoint=resumed)
    assert detector.seen == list(range(25, N_FRAMES))  # only the remaining frames
    assert api.calls["tasks.chunk"] - calls_before == 2  # chunks 2 (frames 20-29) and 3
    assert result == reference
    assert cvat_standin.calls("PATCH", uploads_to) == 3  # once per job
    # a second resume from the final checkpoint uploads nothing again
    uploads = cvat_standin.calls("PATCH", uploads_to)
    annotate_task(api, task_id, ShadeDetector(), MotTracker(TrackerConfig()), checkpoint=Checkpoint(path, "k"))
    assert cvat_standin.calls("PATCH", uploads_to) == uploads


class _NotZipApi:
    """An API whose chunk endpoint answers something that is not a zip (e.g. a proxy page)."""

    def __init__(self) -> None:
        self.frames: list[int] = []

    def get_chunk(self, task_id: int, number: int, *, quality: str) -> bytes:
        return b"<html>not a zip</html>"

    def get_frame(self, task_id: int, frame: int, *, quality: str) -> bytes:
        from PIL import Image

        self.frames.append(frame)
        buf = BytesIO()
        Image.new("RGB", (8, 8), (frame * 37 % 256, 0, 0)).save(buf, format="PNG")
        return buf.getvalue()


def test_a_chunk_that_is_not_a_zip_is_fetched_frame_by_frame(caplog: pytest.LogCaptureFixture) -> None:
    api = _NotZipApi()
    got = [f for f, image in iter_task_frames(api, 1, 12, start=3, chunk_size=5) if frame_of(image) == f]
    assert got == list(range(3, 12)) and api.frames == got
    assert "fetching its frames one by one" in caplog.text


def test_standin_chunks_follow_cvat_numbering(cvat_standin: Any, api: Any) -> None:
    from cvat_sdk.api_client.exceptions import ApiException

    task_id = _task(cvat_standin)
    last = zipfile.ZipFile(BytesIO(api.get_chunk(task_id, 3)))
    assert last.namelist() == [f"{i:06d}.png" for i in range(CHUNK)]
    with pytest.raises(Exception, match=r"chunk number should be in the \[0, 3\] range") as info:
        api.api.tasks_api.retrieve_data(task_id, type="chunk", number=4, quality="original")
    assert isinstance(info.value, ApiException)
    # job 2 holds frames 15-29: task chunks 1 and 2 limited to the job (``number``) ...
    job2 = sorted(cvat_standin.job_ids(task_id))[1]
    resp = api.api.jobs_api.retrieve_data(job2, type="chunk", number=1, quality="compressed",
                                          _parse_response=False)
    resp = resp[1] if isinstance(resp, tuple) else resp
    members = zipfile.ZipFile(BytesIO(resp.data)).namelist()
    assert members == [f"{i:06d}.jpeg" for i in range(5)]  # frames 15-19, re-encoded JPEG
    # ... or the job's own chunks from 0 (``index``)
    resp = api.api.jobs_api.retrieve_data(job2, type="chunk", index=1, quality="original", _parse_response=False)
    resp = resp[1] if isinstance(resp, tuple) else resp
    assert len(zipfile.ZipFile(BytesIO(resp.data)).namelist()) == 5  # frames 25-29


def test_second_run_on_an_annotated_task_is_refused_before_reading_frames(cvat_standin: Any, api: Any) -> None:
    """Seen on a real CVAT 2.73: a second annotate of the same task put a duplicate of every
    track into its jobs. Without --append it is refused before any frame is read."""
    task_id = _task(cvat_standin)
    annotate_task(api, task_id, ShadeDetector(), MotTracker(TrackerConfig()))
    uploads_to = rf"/api/jobs/({'|'.join(map(str, cvat_standin.job_ids(task_id)))})/annotations"
    uploads = cvat_standin.calls("PATCH", uploads_to)
    detector = ShadeDetector()
    with pytest.raises(InputError, match=r"already holds \d+ track\(s\)/shape\(s\).*--append"):
        annotate_task(api, task_id, detector, MotTracker(TrackerConfig()))
    assert detector.seen == [] and cvat_standin.calls("PATCH", uploads_to) == uploads
    annotate_task(api, task_id, ShadeDetector(), MotTracker(TrackerConfig()), append=True)
    assert cvat_standin.calls("PATCH", uploads_to) == 2 * uploads
