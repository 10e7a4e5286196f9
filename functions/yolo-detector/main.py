"""Nuclio entry point of the yolo-detector function (CVAT detector protocol).

All logic lives in :mod:`cvat_extension.adapters.nuclio.detector_function`; settings come
from the ``YOLO_*`` environment set in function.yaml.
"""

from cvat_extension.adapters.nuclio.detector_function import DetectorFunction
from cvat_extension.adapters.nuclio.io import handle


def init_context(context):
    """Load the model once per worker."""
    context.user_data.function = DetectorFunction.from_env()


def handler(context, event):
    """``{image, threshold?}`` → list of CVAT shapes; bad requests → 400 JSON."""
    return handle(context, event, context.user_data.function)
