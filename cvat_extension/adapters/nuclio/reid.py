"""CVAT ``reid`` functions backed by a real multi-object tracker (ByteTrack / BoT-SORT).

CVAT builds tracks in batch mode only through ``reid`` functions: for each pair of
consecutive frames that both hold rectangles it sends ``{image0, image1, boxes0, boxes1,
threshold?, max_distance?}`` and links ``boxes0[i]`` to ``boxes1[answer[i]]`` (``-1``: no
link). A stateless matcher sees only two frames, so it can link by overlap alone and swaps
objects that cross. This module keeps the tracker alive *across* calls:

- after answering a pair it stores the tracker state under a fingerprint of ``image1``
  (a hash of the base64 text CVAT sent) — the next pair of the same task sends that very
  frame as ``image0``, so it finds the tracker with its Kalman velocities (and, for BoT-SORT,
  its camera-motion and appearance memory) and associates ``boxes1`` against predictions;
- it also checks that ``boxes0`` are exactly the boxes the state was left with; anything else
  (first pair of a task, a frame without boxes that CVAT skipped, a user edit between runs, a
  second run) is a discontinuity: a fresh tracker starts on ``boxes0``;
- states live in a :mod:`~cvat_extension.adapters.nuclio.tracker_state` store (LRU in
  memory, or Redis shared by replicas when ``REDIS_URL`` is set), so several tasks can run at
  once, each along its own chain of keys. A store failure (Redis down) never fails a request:
  that pair starts a fresh tracker and the error is logged.

``max_distance`` (pixels, CVAT's setting) drops links whose box centres moved further than
that between the two frames. ``threshold`` is validated but not used: CVAT's meaning
(appearance-distance cut-off of its OpenVINO person ReID) has no counterpart in motion
association; tune ``match_thresh`` in the tracker YAML instead.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
import os
import pickle
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.adapters.nuclio.io import (
    decode_image,
    optional_float,
    points_of,
    require_field,
    require_list,
)
from cvat_extension.adapters.nuclio.tracker_state import StateStore, store_from_env
from cvat_extension.core.geometry import center_xyxy
from cvat_extension.errors import InputError
from cvat_extension.models.mot_tracker import MotTracker
from cvat_extension.models.tracker_config import load_tracker_config

__all__ = ["ReidMatcher", "image_fingerprint", "matcher_from_env"]

logger = logging.getLogger(__name__)

#: First bytes of the image formats CVAT serves (JPEG, PNG, BMP, GIF, WebP/RIFF, TIFF).
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG", b"BM", b"GIF8", b"RIFF", b"II*\x00", b"MM\x00*")


def image_fingerprint(data: str, *, namespace: str = "") -> str:
    """A short key for an image as CVAT sent it (hash of the base64 text)."""
    digest = hashlib.blake2b(data.encode("ascii", "replace"), digest_size=16)
    digest.update(namespace.encode())
    return digest.hexdigest()


def _check_image_text(body: dict[str, Any], field: str) -> str:
    """The base64 image text of ``field``, checked cheaply (no full decode)."""
    data = require_field(body, field)
    if not isinstance(data, str) or not data:
        raise InputError(f"{field}: expected a base64-encoded image string, got {type(data).__name__}")
    head = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        magic = base64.b64decode(head[:64], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{field}: not valid base64 ({exc})") from exc
    if not magic.startswith(_MAGIC):
        raise InputError(f"{field}: not an image (unknown format)")
    return data


def _boxes(body: dict[str, Any], field: str) -> npt.NDArray[np.float64]:
    """(n, 6) ``x1, y1, x2, y2, score, label_id`` from CVAT rectangle shape dicts."""
    shapes = require_list(body, field)
    rows = []
    for i, shape in enumerate(shapes):
        where = f"{field}[{i}]"
        x1, y1, x2, y2 = points_of(shape, field=where, count=4)
        score = shape.get("score", 1.0) if isinstance(shape, dict) else 1.0
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            score = 1.0
        label = shape.get("label_id", 0) if isinstance(shape, dict) else 0
        label = label if isinstance(label, int) and not isinstance(label, bool) else 0
        rows.append((min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2), float(score), float(label)))
    return np.array(rows, dtype=np.float64).reshape(-1, 6)


@dataclass
class _Saved:
    tracker: bytes
    boxes: npt.NDArray[np.float64]
    ids: list[int]


class ReidMatcher:
    """Answers CVAT ``reid`` requests with a tracker whose state survives between calls.

    Args:
        template: a tracker with the wanted settings (and ReID network, if any); it is never
            updated itself, each chain of calls gets :meth:`MotTracker.fresh`.
        store: where states live between calls.
        namespace: separates the keys of different functions sharing one Redis.
    """

    def __init__(self, template: MotTracker, store: StateStore, *, namespace: str) -> None:
        self.template = template
        self.store = store
        self.namespace = namespace

    def __call__(self, body: dict[str, Any]) -> list[int]:
        """The matching for one request body (CVAT's format); see the module docstring.

        Raises:
            InputError: a missing or malformed field (named in the message).
        """
        text0 = _check_image_text(body, "image0")
        text1 = _check_image_text(body, "image1")
        boxes0 = _boxes(body, "boxes0")
        boxes1 = _boxes(body, "boxes1")
        optional_float(body, "threshold", default=None, low=0.0, high=1.0)
        max_distance = optional_float(body, "max_distance", default=None, low=0.0)
        if not len(boxes0):
            return []

        tracker, ids0 = self._resume(image_fingerprint(text0, namespace=self.namespace), boxes0)
        if tracker is None:
            tracker = self.template.fresh()
            tracker.update(boxes0, self._pixels(text0, "image0"), 0)
            assigned = tracker.assignments()
            ids0 = [assigned.get(i, -1) for i in range(len(boxes0))]
        assert tracker.last_frame is not None  # set by _resume or the update above
        tracker.update(boxes1, self._pixels(text1, "image1"), tracker.last_frame + 1)
        assigned = tracker.assignments()
        ids1 = [assigned.get(j, -1) for j in range(len(boxes1))]
        self._save(image_fingerprint(text1, namespace=self.namespace), tracker, boxes1, ids1)

        where = {tid: j for j, tid in enumerate(ids1) if tid >= 0}
        matches = [where.get(tid, -1) if tid >= 0 else -1 for tid in ids0]
        if max_distance is not None:
            matches = self._gate(matches, boxes0, boxes1, max_distance)
        return matches

    # ------------------------------------------------------------------ helpers
    def _pixels(self, text: str, field: str) -> npt.NDArray[np.uint8] | None:
        return decode_image(text, field=field) if self.template.config.needs_image else None

    def _resume(self, key: str, boxes0: npt.NDArray[np.float64]) -> tuple[MotTracker | None, list[int]]:
        try:
            raw = self.store.get(key)
        except Exception as exc:  # noqa: BLE001 - a store outage must not fail the request
            logger.warning("reid: state store read failed (%s); starting a fresh tracker", exc)
            return None, []
        if raw is None:
            return None, []
        try:
            saved: _Saved = pickle.loads(raw)  # noqa: S301 - our own state, private store
            if saved.boxes.shape != boxes0.shape or not np.allclose(saved.boxes[:, :4], boxes0[:, :4], atol=1e-3):
                logger.info("reid: boxes0 differ from the stored state; starting a fresh tracker")
                return None, []
            tracker = self.template.fresh()
            tracker.load_state(saved.tracker)
        except (pickle.UnpicklingError, AttributeError, EOFError, TypeError, ValueError, InputError) as exc:
            logger.warning("reid: unusable stored state (%s); starting a fresh tracker", exc)
            return None, []
        return tracker, list(saved.ids)

    def _save(self, key: str, tracker: MotTracker, boxes1: npt.NDArray[np.float64], ids1: list[int]) -> None:
        saved = _Saved(tracker=tracker.state_bytes(), boxes=boxes1, ids=ids1)
        try:
            self.store.put(key, pickle.dumps(saved, protocol=pickle.HIGHEST_PROTOCOL))
        except Exception as exc:  # noqa: BLE001 - a store outage must not fail the request
            logger.warning("reid: state store write failed (%s); the next pair starts afresh", exc)

    @staticmethod
    def _gate(matches: list[int], boxes0: npt.NDArray[np.float64], boxes1: npt.NDArray[np.float64],
              max_distance: float) -> list[int]:
        c0 = center_xyxy(boxes0[:, :4])
        c1 = center_xyxy(boxes1[:, :4])
        return [j if j < 0 or float(np.hypot(*(c1[j] - c0[i]))) <= max_distance else -1
                for i, j in enumerate(matches)]


def matcher_from_env(default_config: str, *, namespace: str, env: Mapping[str, str] | None = None) -> ReidMatcher:
    """The matcher a Nuclio ``init_context`` builds, configured from the environment.

    - ``TRACKER_CONFIG``: a shipped name (``bytetrack``/``botsort``) or a YAML path
      (default ``default_config``);
    - ``TRACKER_GMC_METHOD``: override camera-motion compensation (BoT-SORT);
    - ``REID_WEIGHTS``: a local ReID weights file; setting it turns appearance on (BoT-SORT);
    - ``REDIS_URL`` / ``CVAT_FUNCTIONS_REDIS_*``, ``TRACKER_STATE_TTL_S``: the state store.

    Raises:
        ConfigError: bad settings or a missing weights file (named in the message).
    """
    env = os.environ if env is None else env
    overrides: dict[str, Any] = {}
    if env.get("TRACKER_GMC_METHOD"):
        overrides["gmc_method"] = env["TRACKER_GMC_METHOD"]
    if env.get("REID_WEIGHTS"):
        overrides.update(with_reid=True, model=env["REID_WEIGHTS"])
    config = load_tracker_config(env.get("TRACKER_CONFIG") or default_config, **overrides)
    return ReidMatcher(MotTracker(config), store_from_env(env), namespace=namespace)
