"""Nuclio entry point of the SAM2 tracker: load once, then decode → track → encode.

All logic lives in ``cvat_extension.adapters.nuclio.sam2_tracker`` (tested there).
Configuration comes from the environment set in ``function.yaml``.
"""

from __future__ import annotations

import os
from typing import Any

from cvat_extension.adapters.nuclio.sam2_tracker import build_service_from_env, nuclio_handler


def init_context(context: Any) -> None:
    context.user_data.service = build_service_from_env(os.environ)


def handler(context: Any, event: Any) -> Any:
    return nuclio_handler(context, event, context.user_data.service)
