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
  once, each along its own chain of keys. A state is taken (deleted) when its chain resumes,
  so a task holds one entry however long it runs. A store failure (Redis down), or a stored
  value that fails authentication or decoding, never fails a request: that pair starts a
  fresh tracker (the answer is still a valid matching) and the event is logged. A *full*
  store is different: the pair gets 503 with ``Retry-After`` rather than a silent restart.
- states are the typed format of :mod:`~cvat_extension.models.state_codec`, signed
  (:mod:`~cvat_extension.adapters.nuclio.signed_store`); nothing is unpickled.

Work limits (:class:`~cvat_extension.adapters.nuclio.limits.WorkLimits`, ``LIMIT_*``
environment): at most ``max_boxes`` per list, coordinates finite and near the frame, image
formats JPEG/PNG/WebP/BMP within the pixel limit, ``label_id`` a non-negative 32-bit integer.
Boxes with zero area or wholly outside the frame are dropped from tracking (their answer is
``-1``), see the limits module.

``max_distance`` (pixels, CVAT's setting) drops links whose box centres moved further than
that between the two frames. ``threshold`` is validated but not used: CVAT's meaning
(appearance-distance cut-off of its OpenVINO person ReID) has no counterpart in motion
association; tune ``match_thresh`` in the tracker YAML instead.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.adapters.nuclio.io import (
    decode_image,
    image_size,
    optional_float,
    points_of,
    require_field,
    require_list,
)
from cvat_extension.adapters.nuclio.limits import WorkLimits
from cvat_extension.adapters.nuclio.tracker_state import StateStore, StoreFullError, store_from_env
from cvat_extension.core.geometry import center_xyxy
from cvat_extension.errors import InputError
from cvat_extension.models import state_codec
from cvat_extension.models.mot_tracker import MotTracker
from cvat_extension.models.tracker_config import load_tracker_config

__all__ = ["ReidMatcher", "image_fingerprint", "matcher_from_env"]

logger = logging.getLogger(__name__)

_MAX_LABEL_ID = 2**31 - 1
#: OpenCV's camera-motion estimators (BoT-SORT's CMC, ReID crops) fail below this frame side.
_MIN_SIDE_WITH_PIXELS = 32


def image_fingerprint(data: str, *, namespace: str = "") -> str:
    """A short key for an image as CVAT sent it (hash of the base64 text)."""
    digest = hashlib.blake2b(data.encode("ascii", "replace"), digest_size=16)
    digest.update(namespace.encode())
    return digest.hexdigest()


def _image_text(body: dict[str, Any], field: str) -> str:
    data = require_field(body, field)
    if not isinstance(data, str) or not data:
        raise InputError(f"{field}: expected a base64-encoded image string, got {type(data).__name__}")
    return data


def _boxes(body: dict[str, Any], field: str, limits: WorkLimits, width: int, height: int) -> npt.NDArray[np.float64]:
    """(n, 7) ``x1, y1, x2, y2, score, label_id, usable`` from CVAT rectangle shape dicts.

    ``usable`` is 0 for boxes dropped from tracking (zero area, or wholly outside the frame).
    """
    shapes = require_list(body, field)
    limits.check_count(len(shapes), limits.max_boxes, field=field, what="boxes")
    rows = []
    for i, shape in enumerate(shapes):
        where = f"{field}[{i}]"
        pts = points_of(shape, field=where, count=4)
        limits.check_coordinates(pts, width, height, field=where)
        x1, y1, x2, y2 = pts
        score = shape.get("score", 1.0) if isinstance(shape, dict) else 1.0
        if isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0:
            score = 1.0
        label = shape.get("label_id", 0) if isinstance(shape, dict) else 0
        if label is None:
            label = 0
        if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label <= _MAX_LABEL_ID:
            raise InputError(f"{where}.label_id: expected an integer in 0..{_MAX_LABEL_ID}")
        lo_x, hi_x, lo_y, hi_y = min(x1, x2), max(x1, x2), min(y1, y2), max(y1, y2)
        usable = hi_x > lo_x and hi_y > lo_y and hi_x > 0 and hi_y > 0 and lo_x < width and lo_y < height
        rows.append((lo_x, lo_y, hi_x, hi_y, float(score), float(label), float(usable)))
    return np.array(rows, dtype=np.float64).reshape(-1, 7)


def _encode_saved(tracker: bytes, boxes: npt.NDArray[np.float64], ids: list[int]) -> bytes:
    payload = {"tracker": np.frombuffer(tracker, dtype=np.uint8), "boxes": boxes, "ids": ids}
    return state_codec.encode(payload, allowed={})


def _decode_saved(data: bytes) -> tuple[bytes, npt.NDArray[np.float64], list[int]]:
    saved = state_codec.decode(data, allowed={})
    if not isinstance(saved, dict):
        raise state_codec.StateFormatError("reid state: not a mapping")
    tracker, boxes, ids = saved.get("tracker"), saved.get("boxes"), saved.get("ids")
    if not isinstance(tracker, np.ndarray) or tracker.dtype != np.uint8 or not isinstance(boxes, np.ndarray) \
            or boxes.dtype != np.float64 or boxes.ndim != 2 or not isinstance(ids, list) \
            or not all(isinstance(i, int) for i in ids):
        raise state_codec.StateFormatError("reid state: unexpected fields")
    return tracker.tobytes(), boxes, ids


class ReidMatcher:
    """Answers CVAT ``reid`` requests with a tracker whose state survives between calls.

    Args:
        template: a tracker with the wanted settings (and ReID network, if any); it is never
            updated itself, each chain of calls gets :meth:`MotTracker.fresh`.
        store: where states live between calls.
        namespace: separates the keys of different functions sharing one Redis.
    """

    def __init__(
        self, template: MotTracker, store: StateStore, *, namespace: str, limits: WorkLimits | None = None
    ) -> None:
        self.template = template
        self.store = store
        self.namespace = namespace
        self.limits = limits or WorkLimits()

    def __call__(self, body: dict[str, Any]) -> list[int]:
        """The matching for one request body (CVAT's format); see the module docstring.

        Raises:
            InputError: a missing or malformed field (named in the message).
        """
        text0 = _image_text(body, "image0")
        text1 = _image_text(body, "image1")
        size0 = image_size(text0, field="image0", limits=self.limits)
        size1 = image_size(text1, field="image1", limits=self.limits)
        if self.template.config.needs_image and min(size0) < _MIN_SIDE_WITH_PIXELS:
            raise InputError(
                f"image0: frame is {size0[0]}x{size0[1]}; this tracker's camera-motion compensation "
                f"needs at least {_MIN_SIDE_WITH_PIXELS} px per side"
            )
        if size0 != size1:
            raise InputError(f"image1: frame size {size1[0]}x{size1[1]} differs from image0's {size0[0]}x{size0[1]}")
        boxes0 = _boxes(body, "boxes0", self.limits, *size0)
        boxes1 = _boxes(body, "boxes1", self.limits, *size1)
        optional_float(body, "threshold", default=None, low=0.0, high=1.0)
        max_distance = optional_float(body, "max_distance", default=None, low=0.0)
        if not len(boxes0):
            return []
        usable0 = boxes0[:, 6] > 0
        usable1 = boxes1[:, 6] > 0
        dets0, dets1 = boxes0[usable0, :6], boxes1[usable1, :6]
        index0, index1 = np.flatnonzero(usable0), np.flatnonzero(usable1)

        key0 = image_fingerprint(text0, namespace=self.namespace)
        tracker, ids0 = self._resume(key0, dets0)
        if tracker is None:
            tracker = self.template.fresh()
            tracker.update(dets0, self._pixels(text0, "image0"), 0)
            assigned = tracker.assignments()
            ids0 = [assigned.get(i, -1) for i in range(len(dets0))]
        assert tracker.last_frame is not None  # set by _resume or the update above
        tracker.update(dets1, self._pixels(text1, "image1"), tracker.last_frame + 1)
        assigned = tracker.assignments()
        ids1 = [assigned.get(j, -1) for j in range(len(dets1))]
        self._save(image_fingerprint(text1, namespace=self.namespace), tracker, dets1, ids1)

        where = {tid: int(index1[j]) for j, tid in enumerate(ids1) if tid >= 0}
        matches = [-1] * len(boxes0)
        for k, tid in enumerate(ids0):
            if tid >= 0:
                matches[int(index0[k])] = where.get(tid, -1)
        if max_distance is not None:
            matches = self._gate(matches, boxes0, boxes1, max_distance)
        return matches

    # ------------------------------------------------------------------ helpers
    def _pixels(self, text: str, field: str) -> npt.NDArray[np.uint8] | None:
        return decode_image(text, field=field, limits=self.limits) if self.template.config.needs_image else None

    def _resume(self, key: str, dets0: npt.NDArray[np.float64]) -> tuple[MotTracker | None, list[int]]:
        try:
            raw = self.store.get(key)
        except InputError as exc:  # failed authentication: someone else's bytes
            logger.warning("reid: refused stored state (%s); starting a fresh tracker", exc)
            return None, []
        except Exception as exc:  # noqa: BLE001 - a store outage must not fail the request
            logger.warning("reid: state store read failed (%s); starting a fresh tracker", exc)
            return None, []
        if raw is None:
            return None, []
        try:
            tracker_bytes, boxes, ids = _decode_saved(raw)
            if boxes.shape != dets0.shape or not np.allclose(boxes[:, :4], dets0[:, :4], atol=1e-3):
                logger.info("reid: boxes0 differ from the stored state; starting a fresh tracker")
                return None, []
            tracker = self.template.fresh()
            tracker.load_state(tracker_bytes)
        except (InputError, TypeError, ValueError, KeyError, AttributeError) as exc:
            logger.warning("reid: unusable stored state (%s); starting a fresh tracker", exc)
            return None, []
        try:
            self.store.delete(key)  # taken: a chain holds one entry however long the task
        except Exception as exc:  # noqa: BLE001 - the entry then just expires
            logger.warning("reid: state store delete failed (%s)", exc)
        return tracker, list(ids)

    def _save(self, key: str, tracker: MotTracker, dets1: npt.NDArray[np.float64], ids1: list[int]) -> None:
        data = _encode_saved(tracker.state_bytes(), np.ascontiguousarray(dets1, dtype=np.float64), ids1)
        try:
            self.store.put(key, data)
        except StoreFullError:
            raise  # 503 + Retry-After: the caller retries, nobody else's state is dropped
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
    - ``REDIS_URL`` / ``CVAT_FUNCTIONS_REDIS_*``, ``TRACKER_STATE_*``: the state store
      (``TRACKER_STATE_KEY`` signs it);
    - ``LIMIT_*``: work limits (:class:`~cvat_extension.adapters.nuclio.limits.WorkLimits`).

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
    return ReidMatcher(
        MotTracker(config), store_from_env(env, namespace=namespace), namespace=namespace,
        limits=WorkLimits.from_env(env),
    )
