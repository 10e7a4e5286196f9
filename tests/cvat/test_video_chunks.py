"""Video tasks are read by mp4 chunk (API calls scale with chunks), decoded faithfully, and a
bad chunk falls back to per-frame requests without shifting frame numbers.

The stand-in encodes real frames (windows of the bundled bedroom fixture frames, odd-sized so
CVAT's even-size padding must be cropped) into mp4 chunks with OpenCV, like CVAT's
``Mpeg4ChunkWriter`` shapes them; decoding is lossy, so frames are compared by mean absolute
difference and each decoded frame must be closest to its own original (order preserved).
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("cvat_sdk")

from cvat_extension.cvat.annotate import iter_task_frames
from cvat_extension.cvat.config import CvatConfig
from cvat_extension.cvat.connection import connect
from cvat_extension.cvat.video_chunks import chunk_kind, decode_video_chunk

N_FRAMES, CHUNK, W, H = 40, 10, 321, 181
TOLERANCE = 6.0  # mean |decoded - original| in 0..255; mp4v at OpenCV's default quality gives ~2-3


@pytest.fixture(scope="module")
def originals(fixtures_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """40 real, distinct frames: a window sliding over the fixture photos, saved as PNG."""
    from PIL import Image

    sources = [np.asarray(Image.open(p).convert("RGB")) for p in sorted((fixtures_dir / "bedroom").glob("*.jpg"))]
    out = tmp_path_factory.mktemp("video_frames")
    paths = []
    for i in range(N_FRAMES):
        src = sources[i % len(sources)]
        x, y = 11 * i, 5 * (i % 7)
        path = out / f"{i:05d}.png"
        Image.fromarray(src[y:y + H, x:x + W]).save(path)
        paths.append(path)
    return paths


@pytest.fixture()
def api(cvat_standin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    return connect(CvatConfig(url=f"http://127.0.0.1:{cvat_standin.port}"))


def _video_task(cvat_standin: Any, originals: list[Path]) -> int:
    return int(cvat_standin.seed_task("walk", [{"name": "person"}], originals, segment_size=15,
                                      chunk_size=CHUNK, chunk_type="video"))


def _load(paths: list[Path]) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]).astype(np.int16)


def test_video_task_is_read_in_mp4_chunks_and_decodes_faithfully(cvat_standin: Any, api: Any,
                                                                   originals: list[Path]) -> None:
    task_id = _video_task(cvat_standin, originals)
    task = api.get_task(task_id)
    assert task["data_original_chunk_type"] == "video" and task["data_chunk_size"] == CHUNK
    got = list(iter_task_frames(api, task_id, N_FRAMES, chunk_size=CHUNK, frame_size=(W, H)))
    assert [f for f, _ in got] == list(range(N_FRAMES))
    assert api.calls["tasks.chunk"] == 4 and api.calls["tasks.frame"] == 0
    decoded = np.stack([im for _, im in got]).astype(np.int16)
    assert decoded.shape == (N_FRAMES, H, W, 3)  # the even-size padding (322x182) is cropped
    ref = _load(originals)
    err = np.abs(decoded - ref).mean(axis=(1, 2, 3))
    assert err.max() < TOLERANCE, err
    # each decoded frame is nearest to its own original: no shift or reorder inside chunks
    small_dec, small_ref = decoded[:, ::4, ::4].astype(np.float32), ref[:, ::4, ::4].astype(np.float32)
    cross = np.abs(small_dec[:, None] - small_ref[None]).mean(axis=(2, 3, 4))
    assert (cross.argmin(axis=1) == np.arange(N_FRAMES)).all()


def test_annotate_task_on_a_video_task_uses_chunks_only(cvat_standin: Any, api: Any,
                                                         originals: list[Path]) -> None:
    pytest.importorskip("boxmot")
    from cvat_extension.cvat.annotate import annotate_task
    from cvat_extension.models.mot_tracker import MotTracker
    from cvat_extension.models.tracker_config import TrackerConfig

    class Walker:
        labels = ("person",)

        def __init__(self) -> None:
            self.shapes: list[tuple[int, ...]] = []

        def detect(self, image: np.ndarray) -> SimpleNamespace:
            self.shapes.append(image.shape)
            x = 5 + 3 * len(self.shapes)
            return SimpleNamespace(xyxy=np.array([[x, 10, x + 30, 70]], np.float32),
                                   score=np.array([0.9], np.float32), class_id=np.array([0]))

    task_id = _video_task(cvat_standin, originals)
    detector = Walker()
    result = annotate_task(api, task_id, detector, MotTracker(TrackerConfig()))
    assert detector.shapes == [(H, W, 3)] * N_FRAMES
    assert api.calls["tasks.chunk"] == 4 and api.calls["tasks.frame"] == 0
    assert cvat_standin.calls("GET", rf"/api/tasks/{task_id}/data/?$") == 4
    assert result["frames"] == N_FRAMES and result["tracks"] >= 1


class _Tamper:
    """The real API, with chunk ``number`` replaced by ``replace(data)``."""

    def __init__(self, api: Any, number: int, replace: Any) -> None:
        self.api, self.number, self.replace = api, number, replace

    def get_chunk(self, task_id: int, number: int, *, quality: str) -> bytes:
        data = self.api.get_chunk(task_id, number, quality=quality)
        return self.replace(data) if number == self.number else data

    def get_frame(self, task_id: int, frame: int, *, quality: str) -> bytes:
        return self.api.get_frame(task_id, frame, quality=quality)


def _nine_frame_mp4(tmp_path: Path) -> bytes:
    path = str(tmp_path / "short.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (W + 1, H + 1))
    for i in range(9):
        writer.write(np.full((H + 1, W + 1, 3), i * 20, np.uint8))
    writer.release()
    return Path(path).read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "short"])
def test_a_bad_video_chunk_falls_back_to_its_frames(cvat_standin: Any, api: Any, originals: list[Path],
                                                     tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                     damage: str) -> None:
    task_id = _video_task(cvat_standin, originals)
    if damage == "truncated":
        replace = lambda data: data[: len(data) // 2]  # mp4v's moov index sits at the end
    else:
        short = _nine_frame_mp4(tmp_path)
        replace = lambda data: short  # a well-formed mp4, one frame short
    tampered = _Tamper(api, 2, replace)
    got = list(iter_task_frames(tampered, task_id, N_FRAMES, start=15, chunk_size=CHUNK, frame_size=(W, H)))
    assert [f for f, _ in got] == list(range(15, N_FRAMES))
    assert api.calls["tasks.chunk"] == 3  # chunks 1, 2 (bad), 3
    assert api.calls["tasks.frame"] == CHUNK  # frames 20-29, one by one
    assert f"task {task_id} chunk 2: expected 10 frames" in caplog.text
    assert ("decodes to 0 frames" if damage == "truncated" else "decodes to 9 frames") in caplog.text
    ref = _load(originals[15:])
    fetched = np.stack([im for _, im in got]).astype(np.int16)
    assert np.abs(fetched - ref).mean(axis=(1, 2, 3)).max() < TOLERANCE
    # the per-frame PNGs are the same decoded frames (CVAT decodes the chunk to serve a frame)
    direct = dict(iter_task_frames(api, task_id, N_FRAMES, start=20, chunk_size=CHUNK, frame_size=(W, H)))
    assert all(np.array_equal(direct[f], im) for f, im in got[5:15])


def test_standin_video_chunks_are_mp4_with_cvat_numbering(cvat_standin: Any, api: Any,
                                                            originals: list[Path]) -> None:
    task_id = _video_task(cvat_standin, originals)
    data = api.get_chunk(task_id, 3, quality="compressed")
    assert chunk_kind(data) == "video"
    frames = decode_video_chunk(data)
    assert len(frames) == CHUNK and frames[0].shape == (H + 1, W + 1, 3)  # padded to even, like CVAT
    # job 2 holds frames 15-29: its ``index`` 1 is frames 25-29
    job2 = sorted(cvat_standin.job_ids(task_id))[1]
    resp = api.api.jobs_api.retrieve_data(job2, type="chunk", index=1, quality="original", _parse_response=False)
    resp = resp[1] if isinstance(resp, tuple) else resp
    assert resp.headers["Content-Type"] == "video/mp4"
    assert len(decode_video_chunk(bytes(resp.data))) == 5


def test_decode_undoes_a_downscale_and_rejects_garbage(tmp_path: Path) -> None:
    path = str(tmp_path / "small.mp4")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (80, 46))
    for i in range(3):
        writer.write(np.full((46, 80, 3), (40 * i, 100, 200), np.uint8))
    writer.release()
    frames = decode_video_chunk(Path(path).read_bytes(), frame_size=(160, 91))
    assert [f.shape for f in frames] == [(91, 160, 3)] * 3
    assert abs(int(frames[2][45, 80, 0]) - 200) < 8  # RGB order: the BGR red channel was 200
    assert decode_video_chunk(Path(path).read_bytes(), limit=1).__len__() == 2  # stops at limit + 1
    assert decode_video_chunk(b"\x00\x00\x00\x18ftypisom" + b"\x00" * 64) == []
    assert chunk_kind(b"<html>") == "unknown"
