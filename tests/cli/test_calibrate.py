"""``cvat-track calibrate``: sweep, choice in the band, manifest written; bad input writes nothing."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from cvat_extension.adapters.cli.main import main
from cvat_extension.calibration.ground_truth import LabelMap, frame_ranges
from cvat_extension.calibration.manifest_edit import set_function_env
from cvat_extension.calibration.sweep import SettingResult, SweepSetting, choose_setting
from cvat_extension.errors import ConfigError, InputError

pytest.importorskip("boxmot")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture()
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the manifest and function folders (what calibrate writes into)."""
    shutil.copy(REPO / "serverless.yaml", tmp_path / "serverless.yaml")
    shutil.copytree(REPO / "functions", tmp_path / "functions")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _scene(tmp_path: Path, n: int = 60, *, gt_frames: int | None = None) -> tuple[Path, Path]:
    """Two walkers (GT) and detections: true boxes at high confidence with 1 px jitter, a
    false box at confidence ~0.4 on the first half of the frames and one at ~0.2 on all."""
    rng = np.random.default_rng(3)
    gt_rows, det_rows = [], []
    for f in range(n):
        for tid, (x, y) in enumerate([(100 + 3 * f, 200), (600 - 2 * f, 220)], start=1):
            if f < (gt_frames if gt_frames is not None else n):
                gt_rows.append(f"{f + 1},{tid},{x},{y},40,100,1,1,1")
            j = rng.normal(0, 1, 2)
            det_rows.append(f"{f + 1},-1,{x + j[0]:.2f},{y + j[1]:.2f},40,100,{rng.uniform(0.75, 1.0):.3f}")
        if f < n // 2:
            det_rows.append(f"{f + 1},-1,300,600,40,100,{0.4 + rng.uniform(0, 0.05):.3f}")
        det_rows.append(f"{f + 1},-1,500,600,40,100,{0.2 + rng.uniform(0, 0.05):.3f}")
    gt = tmp_path / "gt.txt"
    det = tmp_path / "det.txt"
    gt.write_text("\n".join(gt_rows) + "\n")
    det.write_text("\n".join(det_rows) + "\n")
    return gt, det


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_synthetic_scene_lands_in_the_band_and_is_written(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, det = _scene(workdir)
    code = main(["calibrate", "--gt", str(gt), "--detections", str(det), "--map", "person=pedestrian",
                 "--det-conf", "0.01,0.3,0.7", "--track-thresh", "0.1,0.5", "--band", "0.7:0.85",
                 "--json", "cal.json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "<- chosen" in out and (workdir / "calibration.png").stat().st_size > 10_000
    manifest = yaml.safe_load((workdir / "serverless.yaml").read_text())
    conf = float(manifest["functions"]["yolo-detector"]["env"]["YOLO_CONF"])
    tracker_file = manifest["functions"]["bytetrack"]["env"]["TRACKER_CONFIG"]
    assert tracker_file == "functions/bytetrack/calibrated.yaml"
    settings = yaml.safe_load((workdir / tracker_file).read_text())
    import json

    chosen = json.loads((workdir / "cal.json").read_text())["chosen"]
    assert 0.7 <= chosen["precision"] <= 0.85 and chosen["det_conf"] == conf
    assert settings["track_high_thresh"] == chosen["track_thresh"] and settings["tracker_type"] == "bytetrack"
    # the shipped comments survive the edit
    assert "# auto | rectangle (boxes for the reid trackers) | polygon" in (workdir / "serverless.yaml").read_text()
    from cvat_extension.models.tracker_config import load_tracker_config

    assert load_tracker_config(workdir / tracker_file).track_high_thresh == chosen["track_thresh"]
    # What `nuctl deploy` builds gets the same values (Nuclio copies the folder to /opt/nuclio).
    for name in ("function.yaml", "function-gpu.yaml"):
        det_env = _nuclio_env(workdir / "functions" / "yolo-detector" / name)
        trk_env = _nuclio_env(workdir / "functions" / "bytetrack" / name)
        assert float(det_env["YOLO_CONF"]) == conf
        assert trk_env["TRACKER_CONFIG"] == "/opt/nuclio/calibrated.yaml"
        assert (REPO / "functions" / "bytetrack" / name).read_text().count("#") == \
            (workdir / "functions" / "bytetrack" / name).read_text().count("#")
    assert "redeploy the functions" in out


def _nuclio_env(path: Path) -> dict[str, str]:
    return {e["name"]: e["value"] for e in yaml.safe_load(path.read_text())["spec"]["env"]}


def test_no_setting_in_the_band_exits_1_and_writes_nothing(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, det = _scene(workdir)
    before = _snapshot(workdir / "functions"), (workdir / "serverless.yaml").read_bytes()
    code = main(["calibrate", "--gt", str(gt), "--detections", str(det), "--map", "person=pedestrian",
                 "--det-conf", "0.7", "--track-thresh", "0.5", "--band", "0.2:0.3"])
    assert code == 1
    assert "no setting lands in the 20%–30% precision band; nothing written" in capsys.readouterr().err
    assert (_snapshot(workdir / "functions"), (workdir / "serverless.yaml").read_bytes()) == before


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ([], "share no name; map them with --map MODEL=GT, e.g. --map person=pedestrian"),
        (["--map", "car=pedestrian"], "--map car=pedestrian: the model has no label 'car' (its labels: person)"),
        (["--map", "person=cyclist"], "the ground truth has no label 'cyclist' (its labels: pedestrian)"),
        (["--map", "person"], "--map 'person': expected MODEL_LABEL=GT_LABEL"),
        (["--map", "person=pedestrian", "--frames-range", "0:80"], "the source has 60 frames"),
        (["--map", "person=pedestrian", "--tracker-function", "nope"], "no enabled function named 'nope'"),
    ],
)
def test_bad_input_is_one_error_exit_2_nothing_written(workdir: Path, capsys: pytest.CaptureFixture[str],
                                                        extra: list[str], message: str) -> None:
    gt, det = _scene(workdir)
    before = _snapshot(workdir)
    code = main(["calibrate", "--gt", str(gt), "--detections", str(det), *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert _snapshot(workdir) == before


def test_ground_truth_missing_for_some_frames_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    gt, det = _scene(workdir, gt_frames=40)
    before = _snapshot(workdir)
    code = main(["calibrate", "--gt", str(gt), "--detections", str(det), "--map", "person=pedestrian"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "ground truth: 20 of the 60 frames to calibrate on have no ground truth (frames 40–59" in err
    assert "restrict with --frames-range" in err and _snapshot(workdir) == before
    # restricted to the annotated frames it runs
    assert main(["calibrate", "--gt", str(gt), "--detections", str(det), "--map", "person=pedestrian",
                 "--frames-range", "0:39", "--det-conf", "0.3", "--track-thresh", "0.5", "--dry-run",
                 "--band", "0:1"]) == 0


def test_task_without_accepted_jobs_is_refused(cvat_standin, workdir: Path,  # noqa: ANN001
                                                        capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, det = _scene(workdir)
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    url = f"http://127.0.0.1:{cvat_standin.port}"
    task = cvat_standin.seed_task("walkers", [{"name": "person"}], (60, 960, 540), segment_size=30)
    before = _snapshot(workdir)
    assert main(["calibrate", "--task", str(task), "--detections", str(det), "--url", url]) == 2
    assert "no job is in the acceptance stage" in capsys.readouterr().err
    assert _snapshot(workdir) == before


def test_task_without_frames_is_refused(workdir: Path, capsys: pytest.CaptureFixture[str],
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A task created without data (CVAT allows it; the stand-in cannot seed one): size 0."""
    from types import SimpleNamespace

    import cvat_extension.adapters.cli.cmd_calibrate as cmd

    _, det = _scene(workdir)
    empty = SimpleNamespace(get_task=lambda t: {"id": t, "name": "empty", "size": 0}, list_jobs=lambda **q: [],
                            list_labels=lambda t: [{"id": 1, "name": "person"}], get_task_meta=lambda t: {"size": 0},
                            get_task_annotations=lambda t: {"version": 0, "tags": [], "shapes": [], "tracks": []})
    monkeypatch.setattr(cmd, "_connect", lambda args: empty)
    before = _snapshot(workdir)
    assert main(["calibrate", "--task", "7", "--detections", str(det)]) == 2
    assert "task 7: the task has no frames" in capsys.readouterr().err
    assert _snapshot(workdir) == before


def test_manifest_edit_keeps_comments_and_refuses_unknown_functions(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text("# top\nfunctions:\n  det:\n    path: x  # where\n    env:\n      A: \"1\"   # keep me\n"
                    "  trk:\n    path: y\nsync: {}\n")
    new = set_function_env(path, {"det": {"A": "2", "B": "x"}, "trk": {"C": "3"}})
    assert '      A: "2"' in new and "# keep me" in new and "# where" in new and "# top" in new
    assert yaml.safe_load(new)["functions"] == {"det": {"path": "x", "env": {"A": "2", "B": "x"}},
                                                "trk": {"path": "y", "env": {"C": "3"}}}
    with pytest.raises(ConfigError, match="functions.nope: no such function"):
        set_function_env(path, {"nope": {"A": "1"}})
    assert path.read_text() == new


def test_choice_prefers_idf1_inside_the_band() -> None:
    def r(conf: float, precision: float, idf1: float) -> SettingResult:
        return SettingResult(SweepSetting(conf, 0.5), precision, precision, 0.5, 0.5, idf1, 0.5, 10, 10, 1)

    results = [r(0.1, 0.65, 0.9), r(0.3, 0.72, 0.6), r(0.5, 0.84, 0.7), r(0.7, 0.95, 0.8)]
    assert choose_setting(results).setting.det_conf == 0.5
    assert choose_setting(results, (0.2, 0.3)) is None
    assert choose_setting([]) is None


def test_helpers() -> None:
    assert frame_ranges(np.array([0, 1, 2, 5, 7, 8])) == "0–2, 5, 7–8"
    assert frame_ranges(np.array([], dtype=np.int64)) == "none"
    with pytest.raises(InputError, match="the model has no label 'dog'"):
        LabelMap((("dog", "a"),)).resolve(["cat"], ["a"])


@pytest.mark.slow
def test_mot17_public_detections_are_above_the_band(shared_data: Path, workdir: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """MOT17-02 (first 150 frames) with the public FRCNN detections, swept over det.txt's
    confidences: these published detections are pre-filtered and 94–100 % box-precise at every
    confidence, so no setting reaches the 70–85 % band; calibrate says so and writes nothing."""
    gt = shared_data / "motgt" / "MOT17-02" / "gt.txt"
    det = shared_data / "MOT17-mini" / "train" / "MOT17-02-FRCNN" / "det" / "det.txt"
    if not gt.is_file() or not det.is_file():
        pytest.skip("MOT17-02 data not present")
    before = _snapshot(workdir)
    code = main(["calibrate", "--gt", str(gt), "--detections", str(det), "--map", "person=pedestrian",
                 "--frames-range", "0:149", "--det-conf", "0.0,0.5", "--track-thresh", "0.1"])
    captured = capsys.readouterr()
    assert code == 1 and "every setting is above it" in captured.err, captured
    assert _snapshot(workdir) == {**before, "calibration.png": (workdir / "calibration.png").read_bytes()}


def test_accepted_cvat_jobs_are_the_ground_truth(cvat_standin, workdir: Path,  # noqa: ANN001
                                                capsys: pytest.CaptureFixture[str],
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """GT read through cvat-sdk from the job in stage acceptance; frames of the other job are
    refused until restricted; restricted to the accepted job, the setting is chosen."""
    from cvat_extension.cvat.config import CvatConfig
    from cvat_extension.cvat.connection import connect

    _, det = _scene(workdir)
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    url = f"http://127.0.0.1:{cvat_standin.port}"
    task = cvat_standin.seed_task("walkers", [{"name": "person"}], (60, 960, 540), segment_size=30)
    api = connect(CvatConfig(url=url))
    jobs = sorted(api.list_jobs(task_id=task), key=lambda j: int(j["start_frame"]))
    label = cvat_standin.label_id(task, "person")

    def rect(f: int, x: float, y: float) -> dict:
        return {"type": "rectangle", "frame": f, "points": [x, y, x + 40, y + 100], "outside": False,
                "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": []}

    tracks = [{"frame": 0, "label_id": label, "group": 0, "source": "manual", "attributes": [],
               "shapes": [rect(0, x0, y), rect(29, x0 + 29 * v, y)]}
              for x0, v, y in [(100, 3, 200), (600, -2, 220)]]
    api.patch_job_annotations(int(jobs[0]["id"]), "create", {"version": 0, "tags": [], "shapes": [], "tracks": tracks})
    cvat_standin.set_job(int(jobs[0]["id"]), stage="acceptance")
    args = ["calibrate", "--task", str(task), "--detections", str(det), "--url", url,
            "--det-conf", "0.01,0.3,0.7", "--track-thresh", "0.1,0.5", "--json", "cal.json", "--band", "0.6:0.7"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "30 of the 60 frames to calibrate on have no ground truth (frames 30–59" in err and "accept their jobs" in err
    assert main([*args, "--frames-range", "0:29"]) == 0, capsys.readouterr()
    import json

    chosen = json.loads((workdir / "cal.json").read_text())["chosen"]
    assert 0.6 <= chosen["precision"] <= 0.7 and chosen["gt_boxes"] == 60  # 60 true of 90 boxes


def test_frames_are_read_in_one_stream(tmp_path: Path) -> None:
    from PIL import Image

    from cvat_extension.adapters.cli.cmd_calibrate import _LazyFrames

    for i in range(5):
        Image.fromarray(np.full((8, 8, 3), 10 * i, np.uint8)).save(tmp_path / f"{i:03d}.png")
    frames = _LazyFrames(tmp_path, is_video=False)
    assert [int(frames(f)[0, 0, 0]) for f in (0, 1, 1, 3, 2, 4)] == [0, 10, 10, 30, 20, 40]
    with pytest.raises(InputError, match="frame 9 could not be read"):
        frames(9)
