"""SAM2 core on in-memory frames (random weights, 128 px): plumbing, not mask quality."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sam2")

from cvat_extension.errors import ConfigError, InputError  # noqa: E402
from cvat_extension.models.sam2_video import (  # noqa: E402
    ObjectMemory,
    ObjectPrompt,
    Sam2Settings,
    Sam2StreamTracker,
    Sam2VideoPropagator,
)

SETTINGS = Sam2Settings(image_size=128, device="cpu", allow_random_weights=True)


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    from PIL import Image

    return [np.asarray(Image.open(shared_data / "bedroom" / f"{i:05d}.jpg").resize((160, 90))) for i in range(4)]


def test_settings_need_checkpoint_or_explicit_random() -> None:
    with pytest.raises(ConfigError, match="checkpoint path is required"):
        Sam2Settings()
    with pytest.raises(ConfigError, match="multiple of 16"):
        Sam2Settings(image_size=100, allow_random_weights=True)
    s = Sam2Settings.from_env({"SAM2_IMAGE_SIZE": "512", "SAM2_ALLOW_RANDOM_WEIGHTS": "1"})
    assert s.image_size == 512 and s.checkpoint is None
    with pytest.raises(ConfigError, match="SAM2_IMAGE_SIZE"):
        Sam2Settings.from_env({"SAM2_IMAGE_SIZE": "big"})


@pytest.mark.slow
def test_propagate_forward_and_backward_from_box_polygon_mask(frames: list[np.ndarray]) -> None:
    prop = Sam2VideoPropagator(SETTINGS)
    mask = np.zeros((90, 160), bool)
    mask[20:50, 100:150] = True
    prompts = [
        ObjectPrompt(1, box_xyxy=(20, 10, 70, 80)),
        ObjectPrompt(2, polygon=(80.0, 10.0, 120.0, 15.0, 110.0, 60.0)),
        ObjectPrompt(3, mask=mask),
    ]
    fwd = prop.propagate(frames, 0, prompts)
    assert sorted(fwd) == [1, 2, 3]
    for obj in fwd.values():
        assert obj.frames.tolist() == [0, 1, 2, 3]
        assert obj.masks.shape == (4, 90, 160) and obj.masks.dtype == bool
        assert ((obj.confidence >= 0) & (obj.confidence <= 1)).all()
        assert obj.xyxy.shape == (4, 4) and len(obj.polygons()) == 4
    # a mask prompt is returned as-is on its own frame (SAM2 uses mask inputs as output)
    assert (fwd[3].masks[0] == mask).mean() > 0.97
    bwd = prop.propagate(frames, 3, prompts[:1], reverse=True, max_frames=2)
    assert bwd[1].frames.tolist() == [3, 2, 1]
    assert bwd[1].sorted().frames.tolist() == [1, 2, 3]


def test_propagate_rejects_bad_input(frames: list[np.ndarray]) -> None:
    prop = Sam2VideoPropagator(SETTINGS, predictor=object())  # never reached
    with pytest.raises(InputError, match="exactly one"):
        ObjectPrompt(1)
    with pytest.raises(InputError, match="outside the 4 frames"):
        prop.propagate(frames, 7, [ObjectPrompt(1, box_xyxy=(0, 0, 5, 5))])
    with pytest.raises(InputError, match="unique"):
        prop.propagate(frames, 0, [ObjectPrompt(1, box_xyxy=(0, 0, 5, 5))] * 2)


@pytest.mark.slow
def test_stream_tracker_memory_is_bounded_and_serialisable(frames: list[np.ndarray]) -> None:
    tr = Sam2StreamTracker(SETTINGS)
    mem = tr.init_from_shape(tr.preprocess(frames[0]), "rectangle", [20, 10, 70, 80])
    n = tr.predictor.num_maskmem
    for i in range(n + 2):
        mask, conf = tr.track(tr.preprocess(frames[1 + i % 3]), mem)
        assert mask.shape == (90, 160) and 0 <= conf <= 1
    assert mem.frame_idx == n + 2 and len(mem.outputs["non_cond_frame_outputs"]) == n
    back = ObjectMemory.from_bytes(mem.to_bytes())
    assert (back.frame_idx, back.shape_type, back.width, back.height) == (n + 2, "rectangle", 160, 90)
    with pytest.raises(InputError, match="started on 160x90"):
        tr.track(tr.preprocess(frames[0][:40]), back)
    with pytest.raises(InputError, match="unreadable"):
        ObjectMemory.from_bytes(b"not a memory")
    with pytest.raises(InputError, match="cannot be tracked"):
        tr.init_from_shape(tr.preprocess(frames[0]), "ellipse", [1, 2, 3, 4])
