"""cvat-sdk tracking function on SAM2 for ``cvat-cli function run-agent`` (CVAT Online/Enterprise).

Unlike CVAT's own SAM2 agent this one also tracks rectangles (answered as the box of the
tracked mask). Usage::

    cvat-cli function create-native "SAM2 (ours)" \\
        --function-module cvat_extension.adapters.cvat_functions.sam2_tracker \\
        -p checkpoint=str:/models/sam2.1_hiera_tiny.pt
    cvat-cli function run-agent <id> --function-module ... -p checkpoint=str:...

Parameters (``create(**params)``): ``checkpoint``, ``model_config``, ``image_size``,
``device``, ``min_confidence``, ``allow_random_weights``. Weights load on first use,
never at import. The agent keeps each returned state object in memory and binds it to
its task and image size; the state is the SAM2 memory itself (conditioning frame plus
the last ``num_maskmem`` frames).
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from cvat_extension.adapters.nuclio.sam2_tracker import SUPPORTED_SHAPE_TYPES, mask_to_shape_points
from cvat_extension.models.sam2_video import ObjectMemory, PreprocessedFrame, Sam2Settings, Sam2StreamTracker


class Sam2TrackingFunction:
    """The ``TrackingFunction`` protocol over :class:`Sam2StreamTracker`."""

    def __init__(self, settings: Sam2Settings, *, min_confidence: float = 0.5) -> None:
        self.tracker = Sam2StreamTracker(settings)
        self.min_confidence = min_confidence

    @cached_property
    def spec(self) -> Any:
        import cvat_sdk.auto_annotation as cvataa

        return cvataa.TrackingFunctionSpec(supported_shape_types=SUPPORTED_SHAPE_TYPES)

    def preprocess_image(self, context: Any, image: Any) -> PreprocessedFrame:
        """Run the image encoder once per frame (the agent caches the result per frame)."""
        return self.tracker.preprocess(np.asarray(image.convert("RGB")))

    def init_tracking_state(self, context: Any, pp_image: PreprocessedFrame, shape: Any) -> ObjectMemory:
        return self.tracker.init_from_shape(pp_image, shape.type, shape.points)

    def track(self, context: Any, pp_image: PreprocessedFrame, state: ObjectMemory) -> Any:
        """The shape on this frame in the type it started as, or None when SAM2 lost it."""
        import cvat_sdk.auto_annotation as cvataa

        mask, conf = self.tracker.track(pp_image, state)
        if conf < self.min_confidence:
            return None
        points = mask_to_shape_points(mask, state.shape_type)
        return None if points is None else cvataa.TrackableShape(type=state.shape_type, points=points)


def create(
    checkpoint: str | None = None,
    model_config: str | None = None,
    image_size: int | None = None,
    device: str | None = None,
    min_confidence: float = 0.5,
    allow_random_weights: bool = False,
) -> Sam2TrackingFunction:
    """Factory called by cvat-cli with the ``-p name=type:value`` parameters.

    Raises:
        ConfigError: no checkpoint (unless ``allow_random_weights``) or a bad image size.
    """
    kw: dict[str, Any] = {
        "checkpoint": checkpoint,
        "image_size": image_size,
        "device": device,
        "allow_random_weights": allow_random_weights,
    }
    if model_config:
        kw["model_config"] = model_config
    return Sam2TrackingFunction(Sam2Settings(**kw), min_confidence=min_confidence)
