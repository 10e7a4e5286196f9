"""The cvat-sdk SAM2 tracking function driven by cvat-cli's own agent worker jobs."""

from __future__ import annotations

import importlib
import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sam2")
cvataa = pytest.importorskip("cvat_sdk.auto_annotation")
tracking = pytest.importorskip("cvat_cli._internal.agent_driver_tracking")
agent_driver = pytest.importorskip("cvat_cli._internal.agent_driver")

from cvat_extension.core.masks import mask_to_rle, rle_to_mask  # noqa: E402
from cvat_extension.errors import ConfigError  # noqa: E402

MODULE = "cvat_extension.adapters.cvat_functions.sam2_tracker"


def test_import_loads_no_weights_and_needs_a_checkpoint() -> None:
    code = f"import sys, {MODULE} as m; print('torch' in sys.modules, 'sam2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
    mod = importlib.import_module(MODULE)
    with pytest.raises(ConfigError, match="checkpoint"):
        mod.create()
    with pytest.raises(ConfigError, match="no such file"):
        mod.create(checkpoint="/nonexistent/sam2.pt")


@pytest.mark.slow
def test_agent_worker_init_and_track_all_shape_types(shared_data: Path) -> None:
    from PIL import Image

    mod = importlib.import_module(MODULE)
    fn = mod.create(image_size=128, device="cpu", allow_random_weights=True, min_confidence=0.0)
    assert fn.spec.supported_shape_types == {"rectangle", "polygon", "mask"}
    frames = [
        Image.open(shared_data / "bedroom" / f"{i:05d}.jpg").convert("RGB").resize((160, 90)) for i in range(3)
    ]
    mask = np.zeros((90, 160), bool)
    mask[30:60, 100:140] = True
    shapes = [
        cvataa.TrackableShape(type="rectangle", points=[20, 10, 70, 80]),
        cvataa.TrackableShape(type="polygon", points=[80, 10, 120, 15, 110, 60, 85, 50]),
        cvataa.TrackableShape(type="mask", points=mask_to_rle(mask)),
    ]
    counter = itertools.count()
    tracking.AgentTrackingFunctionDriver.init_worker(lambda: f"state-{next(counter)}")
    agent_driver.set_worker_current_function(fn)
    ids = tracking._worker_job_init_tracking(7, frames[0], shapes)
    assert ids == ["state-0", "state-1", "state-2"]
    for frame in frames[1:]:
        out = tracking._worker_job_track(7, frame, ids)
        for shape, start in zip(out, shapes):
            if shape is None:
                continue
            assert shape.type == start.type
            if shape.type == "rectangle":
                x1, y1, x2, y2 = shape.points
                assert 0 <= x1 < x2 <= 160 and 0 <= y1 < y2 <= 90
            elif shape.type == "mask":
                assert rle_to_mask(shape.points, 160, 90).any()
            else:
                assert len(shape.points) >= 6
    # another task cannot use these states (enforced by the agent's container)
    with pytest.raises(agent_driver.BadArError, match="not for task"):
        tracking._worker_job_track(8, frames[2], ids[:1])
