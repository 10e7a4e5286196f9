"""Light helpers of the attention tests that a child process can import (no boxmot, no torch)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from cvat_extension.core.attention import AttentionConfig
from cvat_extension.cvat.attention import MissPlanter
from cvat_extension.cvat.attention_config import AttentionSettings
from cvat_extension.cvat.config import CvatConfig, RetryConfig
from cvat_extension.cvat.connection import connect

_INV37 = pow(37, -1, 256)  # the stand-in paints frame f with red = 37 f mod 256


class FrameDetector:
    """Three people walking, well apart, detected with confidence 0.9 on every frame."""

    labels = ("person",)

    def detect(self, image: np.ndarray) -> Any:
        f = (int(image[0, 0, 0]) * _INV37) % 256
        xyxy = np.array([[20 + 2 * f, 40, 100 + 2 * f, 200], [250 + 2 * f, 60, 330 + 2 * f, 220],
                         [400 - 2 * f, 280, 480 - 2 * f, 440]], np.float32)
        return SimpleNamespace(xyxy=xyxy, score=np.full(3, 0.9, np.float32), class_id=np.zeros(3, int))


class IndexTracker:
    """A stand-in for MotTracker whose ids are the detection order (the walkers never swap)."""

    def update(self, dets: np.ndarray, image: np.ndarray, frame: int) -> np.ndarray:
        ids = np.arange(len(dets), dtype=np.float64)
        return np.column_stack([dets[:, :4], ids, dets[:, 4], dets[:, 5]])

    def state_bytes(self) -> bytes:
        return b""

    def load_state(self, data: bytes) -> None:
        return None


def annotate_url(url: str, task_id: int, store: Any, ckpt: Path, tracker: Any = None) -> dict[str, int]:
    """``annotate_task`` with 5 attention checks per job (default tracker: :class:`IndexTracker`)."""
    from cvat_extension.cvat.annotate import Checkpoint, annotate_task

    api = connect(CvatConfig(url=url, timeout_s=60), RetryConfig(attempts=2, backoff_s=0.0))
    planter = MissPlanter(store, AttentionSettings(plant=AttentionConfig(per_job=5)))
    return annotate_task(api, task_id, FrameDetector(), tracker or IndexTracker(),
                         checkpoint=Checkpoint(ckpt, "attention-test"), plant=planter)
