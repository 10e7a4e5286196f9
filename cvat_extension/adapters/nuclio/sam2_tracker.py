"""CVAT ``tracker`` Nuclio function on SAM2: rectangles, polygons and masks.

CVAT's tracker protocol (``supported_shape_types`` flavour): the first call carries
``{image, shapes: [{type, points}...], states: []}``; every later call carries
``{image, shapes: [None]*n, states: [...]}`` with the states we returned last time, signed
and checked by CVAT. We answer ``{"shapes": [...], "states": [...]}``, one entry per
object in order, a shape being ``{type, points}`` in the type the user drew. The legacy
protocol (bare ``[x1, y1, x2, y2]`` rectangles) is answered in kind.

A lost object is never answered with ``null``: CVAT's server passes a null through, but the
UI's tracking step (``cvat-ui`` ``tools-control.tsx``, ``trackedRectangleMapper``) reads
``points`` of every returned shape, so one null fails the step for every object of that
call. A lost object is answered with its *last confirmed* shape, unchanged, and its state
token says ``"lost": <frames>``. What the annotator sees: the box stops where the object was
last seen and stays there on the following frames; they mark it outside (or move it) as for
any stopped track. If SAM2 finds the object again, the box moves on from there.

Limits (``LIMIT_*`` environment, :mod:`~cvat_extension.adapters.nuclio.limits`): at most
``max_objects`` shapes/states per call, ``max_polygon_vertices`` per polygon,
``max_mask_values`` per mask, coordinates near the frame, a start shape with area. A full
state store refuses *new* objects with 503 + ``Retry-After``; a state that fails
authentication (altered in Redis) is 410, like an expired one: draw the shape again.

The state handed to CVAT is a small JSON token; the SAM2 memory stays in a
:class:`~cvat_extension.adapters.nuclio.tracker_state.StateStore`. A token is bound to the
function that issued it and to the image size; a token from another function, for
another image size, or whose memory expired gives a clear 4xx, never another object's
memory. CVAT's tracker payload carries no task id, so the binding a Nuclio function can
enforce is function + model + image size; the token id is 128 random bits, which is what
keeps one task's objects out of another's.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Mapping
from typing import Any

import numpy as np

from cvat_extension.adapters.nuclio.io import (
    decode_image,
    image_size,
    handle,
    points_of,
    require_field,
    require_list,
    respond,
)
from cvat_extension.adapters.nuclio.limits import WorkLimits
from cvat_extension.adapters.nuclio.tracker_state import StateStore
from cvat_extension.core.masks import mask_to_polygon, mask_to_rle, masks_to_xyxy
from cvat_extension.errors import InputError

logger = logging.getLogger(__name__)

__all__ = ["SUPPORTED_SHAPE_TYPES", "Sam2TrackerService", "StateLostError", "mask_to_shape_points", "nuclio_handler"]

SUPPORTED_SHAPE_TYPES = ("rectangle", "polygon", "mask")
TOKEN_VERSION = 1


class StateLostError(InputError):
    """The token is well-formed and ours, but its memory is gone (expired, evicted, restart)."""

    status_code = 410


def mask_to_shape_points(mask: np.ndarray, shape_type: str) -> list[float] | None:
    """CVAT ``points`` of ``shape_type`` for a tracked mask; None when nothing is left."""
    if not mask.any():
        return None
    if shape_type == "rectangle":
        return [float(v) for v in masks_to_xyxy(mask[None])[0]]
    if shape_type == "polygon":
        return mask_to_polygon(mask)
    return [float(v) for v in mask_to_rle(mask)]


class Sam2TrackerService:
    """The handler body: decode, init or track each object, store memories, encode.

    Args:
        tracker: a :class:`~cvat_extension.models.sam2_video.Sam2StreamTracker`.
        store: where memories live between calls.
        function_id: this function's name; tokens from other functions are refused.
        min_confidence: below this SAM2 presence probability the object is reported lost
            (None shape). Raising it reports losses sooner; lowering it keeps weak masks.
    """

    def __init__(
        self,
        tracker: Any,
        store: StateStore,
        *,
        function_id: str = "sam2-tracker",
        min_confidence: float = 0.5,
        limits: WorkLimits | None = None,
    ) -> None:
        self.tracker = tracker
        self.store = store
        self.function_id = function_id
        self.min_confidence = min_confidence
        self.limits = limits or WorkLimits()

    # -- tokens ---------------------------------------------------------------------
    def _token(self, sid: str, width: int, height: int, legacy: bool, lost: int = 0) -> dict[str, Any]:
        token = {"v": TOKEN_VERSION, "fn": self.function_id, "sid": sid, "size": [width, height], "legacy": legacy}
        if lost:
            token["lost"] = lost
        return token

    def _parse_token(self, state: object, i: int, width: int, height: int) -> tuple[str, bool]:
        where = f"states[{i}]"
        if not isinstance(state, Mapping) or state.get("v") != TOKEN_VERSION or not isinstance(state.get("sid"), str) \
                or not 0 < len(state["sid"]) <= 64:
            raise InputError(f"{where}: not a tracker state issued by {self.function_id}; start tracking again")
        if state.get("fn") != self.function_id:
            raise InputError(
                f"{where}: the state was issued by function {state.get('fn')!r}, not {self.function_id!r}"
            )
        if state.get("size") != [width, height]:
            raise InputError(f"{where}: the state is for a {state.get('size')} image, this frame is {[width, height]}")
        return state["sid"], bool(state.get("legacy", False))

    def _load(self, sid: str, i: int, width: int, height: int) -> tuple[Any, list[float]]:
        """The object's memory and last confirmed points.

        Raises:
            StateLostError: expired, unknown, or failing authentication (altered in the store).
        """
        from cvat_extension.models.sam2_video import ObjectMemory

        raw = self.store.get(sid)
        if raw is None:
            raise StateLostError(
                f"states[{i}]: tracker state expired or unknown (8 h without use, or the function "
                "restarted without shared storage); draw the shape again to restart tracking"
            )
        head, _, payload = raw.partition(b"\n")
        try:
            meta = json.loads(head)
        except (ValueError, RecursionError) as exc:
            raise StateLostError(f"states[{i}]: stored tracker state is unreadable; draw the shape again") from exc
        if not isinstance(meta, dict) or meta.get("fn") != self.function_id or meta.get("size") != [width, height]:
            # A random id colliding across functions/sizes: refuse rather than mix objects up.
            raise InputError(f"states[{i}]: the stored state belongs to another function or image size")
        last = meta.get("last")
        if not isinstance(last, list) or not all(isinstance(v, (int, float)) for v in last):
            raise StateLostError(f"states[{i}]: stored tracker state is unreadable; draw the shape again")
        try:
            memory = ObjectMemory.from_bytes(payload, device=self.tracker.device)
        except InputError as exc:
            raise StateLostError(f"states[{i}]: stored tracker state is unreadable; draw the shape again") from exc
        return memory, [float(v) for v in last]

    def _save(self, sid: str, memory: Any, last: list[float]) -> None:
        head = json.dumps({"fn": self.function_id, "size": [memory.width, memory.height], "last": last}).encode()
        self.store.put(sid, head + b"\n" + memory.to_bytes())

    # -- the call --------------------------------------------------------------------
    def __call__(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Answer one CVAT tracker request.

        Raises:
            InputError: malformed image/shapes/states, or a foreign token.
            StateLostError: a token whose memory is gone.
        """
        image_text = require_field(body, "image")
        width, height = image_size(image_text, limits=self.limits)
        shapes = require_list(body, "shapes", allow_missing=True)
        states = require_list(body, "states", allow_missing=True)
        n = max(len(shapes), len(states))
        self.limits.check_count(n, self.limits.max_objects, field="shapes/states", what="objects")
        if n == 0:
            return {"shapes": [], "states": []}
        # Validate every shape and token before decoding the frame or running the model.
        plan: list[tuple[str, Any]] = []
        for i in range(n):
            state = states[i] if i < len(states) else None
            shape = shapes[i] if i < len(shapes) else None
            if state is not None:
                sid, legacy = self._parse_token(state, i, width, height)
                plan.append(("track", (sid, legacy, *self._load(sid, i, width, height), state.get("lost", 0))))
            elif shape is not None:
                plan.append(("init", self._parse_shape(shape, i, width, height)))
            else:
                raise InputError(f"shapes[{i}] and states[{i}]: one of them is needed")
        image = decode_image(image_text, limits=self.limits)
        pp = self.tracker.preprocess(image)
        out_shapes: list[Any] = []
        out_states: list[Any] = []
        for i, (kind, item) in enumerate(plan):
            if kind == "init":
                shape_type, points, legacy = item
                memory = self.tracker.init_from_shape(pp, shape_type, points)
                sid = secrets.token_hex(16)
                self._save(sid, memory, points)
                out_shapes.append(points if legacy else {"type": shape_type, "points": points})
                out_states.append(self._token(sid, width, height, legacy))
                continue
            sid, legacy, memory, last, lost = item
            mask, conf = self.tracker.track(pp, memory)
            pts = mask_to_shape_points(mask, memory.shape_type) if conf >= self.min_confidence else None
            lost = (int(lost) + 1 if isinstance(lost, int) and not isinstance(lost, bool) else 1) if pts is None else 0
            if pts is None:
                pts = last  # see the module docstring: never a bare null to CVAT's UI
            self._save(sid, memory, pts)
            out_shapes.append(pts if legacy else {"type": memory.shape_type, "points": pts})
            out_states.append(self._token(sid, width, height, legacy, lost))
            logger.debug("object %d: confidence %.3f, lost for %d frame(s)", i, conf, lost)
        return {"shapes": out_shapes, "states": out_states}

    def _parse_shape(self, shape: object, i: int, width: int, height: int) -> tuple[str, list[float], bool]:
        where = f"shapes[{i}]"
        lim = self.limits
        if isinstance(shape, list):  # legacy protocol: a bare rectangle
            shape_type, points, legacy = "rectangle", points_of(shape, field=where, count=4), True
        elif isinstance(shape, Mapping):
            shape_type = shape.get("type", "rectangle")
            if shape_type not in SUPPORTED_SHAPE_TYPES:
                raise InputError(
                    f"{where}: shape type {str(shape_type)[:40]!r} is not one of {', '.join(SUPPORTED_SHAPE_TYPES)}"
                )
            max_values = {"rectangle": 4, "polygon": 2 * lim.max_polygon_vertices}.get(shape_type, lim.max_mask_values)
            points = points_of(shape, field=where, count=4 if shape_type == "rectangle" else None,
                               max_values=max_values)
            legacy = False
        else:
            raise InputError(f"{where}: expected a shape {{type, points}}, got {type(shape).__name__}")
        if shape_type == "mask":
            return str(shape_type), points, legacy  # runs + bbox: checked against the frame when decoded
        lim.check_coordinates(points, width, height, field=where)
        xs, ys = points[0::2], points[1::2]
        if not (max(xs) > min(xs) and max(ys) > min(ys)):
            raise InputError(f"{where}: the {shape_type} has no area; draw it again")
        if max(xs) <= 0 or max(ys) <= 0 or min(xs) >= width or min(ys) >= height:
            raise InputError(f"{where}: the {shape_type} lies outside the {width}x{height} frame")
        return str(shape_type), points, legacy


def nuclio_handler(context: Any, event: Any, service: Sam2TrackerService) -> Any:
    """Run ``service`` for one Nuclio event: 200, 400 for bad input, 410 for lost states.

    Lost states get their own status so that a client (or a person reading CVAT's error)
    can tell "start again" from "fix the request".
    """
    lost: list[StateLostError] = []

    def run(body: dict[str, Any]) -> Any:
        try:
            return service(body)
        except StateLostError as exc:
            lost.append(exc)
            return None

    response = handle(context, event, run)
    if lost:
        logger.info("tracker state lost: %s", lost[0])
        return respond(context, {"error": str(lost[0])}, status=StateLostError.status_code)
    return response


def build_service_from_env(env: Mapping[str, str], **overrides: Any) -> Sam2TrackerService:
    """The service a deployed function runs, configured by environment variables.

    ``SAM2_*`` (see :meth:`Sam2Settings.from_env`), ``REDIS_URL`` / ``TRACKER_STATE_*``
    (see :func:`store_from_env`), ``LIMIT_*`` (:class:`WorkLimits`), ``SAM2_MIN_CONFIDENCE``
    and ``FUNCTION_ID`` (default ``sam2-tracker``).

    Raises:
        ConfigError: a bad setting.
    """
    from cvat_extension.adapters.nuclio.tracker_state import store_from_env
    from cvat_extension.errors import ConfigError
    from cvat_extension.models.sam2_video import Sam2Settings, Sam2StreamTracker

    try:
        min_conf = float(env.get("SAM2_MIN_CONFIDENCE") or 0.5)
    except ValueError as exc:
        raise ConfigError(f"SAM2_MIN_CONFIDENCE: {exc}") from exc
    kw: dict[str, Any] = {
        "tracker": Sam2StreamTracker(Sam2Settings.from_env(env)),
        "store": store_from_env(env, namespace=env.get("FUNCTION_ID") or "sam2-tracker"),
        "limits": WorkLimits.from_env(env),
        "function_id": env.get("FUNCTION_ID") or "sam2-tracker",
        "min_confidence": min_conf,
    }
    kw.update(overrides)
    return Sam2TrackerService(**kw)

