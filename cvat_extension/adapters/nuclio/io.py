"""Decode requests and encode responses for every Nuclio handler we ship.

Our ``functions/<name>/main.py`` files stay two functions long (``init_context`` and
``handler``); everything that touches the wire lives here so it is written and tested once:

- :func:`decode_image` turns CVAT's base64 frame into an RGB ``uint8`` array;
- :func:`body_of` plus the ``require_*`` / ``optional_*`` helpers validate the JSON body and
  raise :class:`~cvat_extension.errors.InputError` naming the offending field;
- :func:`respond` builds a ``context.Response`` with a JSON body (numpy values allowed);
- :func:`handle` runs a handler body and maps errors: ``InputError`` → 400
  ``{"error": message}`` (or the error's own ``status_code``, e.g. 410 for a lost tracker
  state); an error with ``status_code`` 503 (a full state store) → 503 with ``Retry-After``;
  anything else → 500 with a generic body, the traceback going to ``context.logger`` only
  (CVAT shows the body to users, and a stack trace is no help there).

CVAT reads the body with ``response.json()`` and checks only the status, so the error body's
shape is ours to choose: ``{"error": str}`` everywhere.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import math
import traceback
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt

from cvat_extension.adapters.nuclio.limits import ALLOWED_IMAGE_FORMATS, WorkLimits
from cvat_extension.errors import CvatTrackError, InputError

_DEFAULT_LIMITS = WorkLimits()

JSON_CONTENT_TYPE = "application/json"


def body_of(event: Any) -> dict[str, Any]:
    """The request body as a dict, whatever form Nuclio delivered it in.

    Nuclio's Python wrapper hands over a dict when it could parse ``application/json``, and
    the raw bytes otherwise (wrong content type, or JSON it could not parse).

    Raises:
        InputError: the body is empty, not JSON, or not a JSON object.
    """
    body = getattr(event, "body", None)
    if isinstance(body, (bytes, bytearray, memoryview, str)):
        text = body if isinstance(body, str) else bytes(body)
        if not text.strip():
            raise InputError("request body is empty: expected a JSON object")
        try:
            body = json.loads(text if isinstance(text, str) else text.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:  # incl. ints over Python's digit limit
            raise InputError(f"request body is not valid JSON: {exc}") from exc
        except RecursionError as exc:
            raise InputError("request body is JSON nested too deeply") from exc
    if body is None:
        raise InputError("request body is empty: expected a JSON object")
    if not isinstance(body, dict):
        raise InputError(f"request body must be a JSON object, got {type(body).__name__}")
    return body


def decode_image(
    data: object, *, field: str = "image", limits: WorkLimits | None = None
) -> npt.NDArray[np.uint8]:
    """Decode a base64-encoded image (as CVAT sends frames) into an ``(h, w, 3)`` RGB array.

    A ``data:image/...;base64,`` prefix is accepted too, so requests built in a browser work.
    Only JPEG, PNG, WebP and BMP are tried (PIL's other plugins never see the bytes), and the
    size read from the header is checked against ``limits`` before any pixel is decoded.
    Grey, palette, CMYK and alpha images are converted to RGB.

    Raises:
        InputError: not a string, not base64, not an allowed image format, or outside the
            limits; the message names ``field``.
    """
    return np.asarray(_read_image(data, field, limits or _DEFAULT_LIMITS, decode=True), dtype=np.uint8)


def image_size(data: object, *, field: str = "image", limits: WorkLimits | None = None) -> tuple[int, int]:
    """``(width, height)`` of a base64 image from its header only (no pixel decode).

    Same checks as :func:`decode_image` except decoding the pixels.

    Raises:
        InputError: as :func:`decode_image`.
    """
    width, height = _read_image(data, field, limits or _DEFAULT_LIMITS, decode=False)
    return int(width), int(height)


def _read_image(data: object, field: str, limits: WorkLimits, *, decode: bool) -> Any:
    """The RGB PIL image (``decode``) or its ``(width, height)`` from the header only.

    One place maps every way an image can be unreadable to the same InputError: only the
    allowed formats are tried, a decompression bomb warning is an error, and the header's
    size is checked against ``limits`` before any pixel is decoded.
    """
    from PIL import Image

    raw = _b64_bytes(data, field)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with _pil_open()(io.BytesIO(raw), formats=ALLOWED_IMAGE_FORMATS) as img:
                size = (int(img.width), int(img.height))
                limits.check_image_size(*size, field=field)
                return img.convert("RGB") if decode else size
    except InputError:
        raise
    except (OSError, SyntaxError, ValueError, ImportError, EOFError, MemoryError,
            Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise InputError(
            f"{field}: not a readable image in an allowed format "
            f"({', '.join(ALLOWED_IMAGE_FORMATS)}): {type(exc).__name__}"
        ) from exc


def _b64_bytes(data: object, field: str) -> bytes:
    if not isinstance(data, str) or not data:
        raise InputError(f"{field}: expected a base64-encoded image string, got {_kind(data)}")
    text = data.split(",", 1)[1] if data.startswith("data:") and "," in data else data
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InputError(f"{field}: not valid base64") from exc


def _pil_open() -> Any:
    """PIL's own ``Image.open``.

    ultralytics replaces ``PIL.Image.open`` at import with a wrapper that, on an unreadable
    image, tries to pip-install a HEIF plugin: a network call (and an ImportError offline) on
    every malformed request. We bypass it and keep PIL's behaviour.
    """
    import sys

    from PIL import Image

    patches = sys.modules.get("ultralytics.utils.patches")
    original = getattr(patches, "_image_open", None)
    return original if callable(original) else Image.open


def encode_image(image_rgb: npt.NDArray[np.uint8], *, fmt: str = "JPEG") -> str:
    """Base64 of an RGB image encoded as ``fmt``: the inverse of :func:`decode_image`.

    Used by tests and by the gateway's self-check to build CVAT-shaped requests.
    """
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image_rgb)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def require_field(body: Mapping[str, Any], name: str) -> Any:
    """``body[name]``, or an InputError naming the missing field."""
    if name not in body or body[name] is None:
        raise InputError(f"{name}: required field is missing")
    return body[name]


def optional_float(
    body: Mapping[str, Any],
    name: str,
    *,
    default: float | None,
    low: float = -math.inf,
    high: float = math.inf,
) -> float | None:
    """A number field within ``[low, high]``, ``default`` when absent or null.

    CVAT sends ``threshold`` only when it is truthy, so absence is normal.

    Raises:
        InputError: present but not a finite number in range.
    """
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{name}: expected a number, got {_kind(value)}")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InputError(f"{name}: expected a number in [{low}, {high}], got {value!r}")
    return number


def require_list(body: Mapping[str, Any], name: str, *, allow_missing: bool = False) -> list[Any]:
    """A list field (``[]`` when missing and ``allow_missing``).

    Raises:
        InputError: missing (unless allowed) or not a list.
    """
    if body.get(name) is None:
        if allow_missing:
            return []
        raise InputError(f"{name}: required field is missing")
    value = body[name]
    if not isinstance(value, list):
        raise InputError(f"{name}: expected a list, got {_kind(value)}")
    return value


def points_of(
    shape: object, *, field: str, count: int | None = None, max_values: int | None = None
) -> list[float]:
    """The finite ``points`` of a CVAT shape given as a dict ``{"points": [...]}`` or a list.

    Raises:
        InputError: not a shape, non-numeric or non-finite points, not ``count`` of them, or
            more than ``max_values`` (checked before looking at them).
    """
    points = shape.get("points") if isinstance(shape, Mapping) else shape
    if isinstance(points, list) and max_values is not None and len(points) > max_values:
        raise InputError(f"{field}: {len(points)} point values, above the limit of {max_values}")
    if not isinstance(points, list) or not all(
        isinstance(p, (int, float)) and not isinstance(p, bool) for p in points
    ):
        raise InputError(f"{field}: expected a list of numbers as points, got {_kind(points)}")
    values = [float(p) for p in points]
    if not all(math.isfinite(v) for v in values):
        raise InputError(f"{field}: points must be finite numbers")
    if count is not None and len(values) != count:
        raise InputError(f"{field}: expected {count} points, got {len(values)}")
    return values


def _default(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_json(payload: Any) -> str:
    """JSON text of ``payload``; numpy arrays and scalars become lists and numbers."""
    return json.dumps(payload, default=_default, allow_nan=False)


def respond(context: Any, body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Any:
    """A ``context.Response`` with ``body`` as JSON and ``status``."""
    return context.Response(
        body=to_json(body),
        headers=dict(headers or {}),
        content_type=JSON_CONTENT_TYPE,
        status_code=status,
    )


def handle(context: Any, event: Any, fn: Callable[[dict[str, Any]], Any]) -> Any:
    """Run ``fn(body)`` for a Nuclio event and turn its result or failure into a Response.

    - success → 200 with ``fn``'s return value as JSON;
    - :class:`InputError` (malformed request) → 400 ``{"error": message}``;
    - anything else → 500 ``{"error": "internal error in <function>; see the function logs"}``
      and the traceback logged through ``context.logger.error``.
    """
    try:
        body = body_of(event)
        result = fn(body)
    except InputError as exc:
        _log(context, "warn", "bad request: %s", exc)
        return respond(context, {"error": str(exc)}, status=int(getattr(exc, "status_code", 400)))
    except CvatTrackError as exc:
        status = getattr(exc, "status_code", None)
        if status is None:
            _log(context, "error", "handler failed: %s\n%s", exc, traceback.format_exc())
            return respond(context, {"error": "internal error; see the function logs"}, status=500)
        _log(context, "warn", "refused: %s", exc)
        retry = getattr(exc, "retry_after_s", None)
        return respond(context, {"error": str(exc)}, status=int(status),
                       headers={"Retry-After": str(retry)} if retry is not None else None)
    except Exception as exc:  # noqa: BLE001 - the boundary: nothing may escape as a crash
        _log(context, "error", "handler failed: %s\n%s", exc, traceback.format_exc())
        return respond(context, {"error": "internal error; see the function logs"}, status=500)
    try:
        return respond(context, result)
    except (TypeError, ValueError) as exc:
        _log(context, "error", "result is not JSON serialisable: %s", exc)
        return respond(context, {"error": "internal error; see the function logs"}, status=500)


def _log(context: Any, level: str, message: str, *args: Any) -> None:
    logger = getattr(context, "logger", None)
    if logger is not None:
        getattr(logger, level)(message, *args)


def _kind(value: object) -> str:
    return "nothing" if value is None else type(value).__name__
