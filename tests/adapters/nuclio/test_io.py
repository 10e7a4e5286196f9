"""Shared Nuclio decode/encode, driven through real nuclio-sdk Event/Context objects."""

from __future__ import annotations

import base64
import contextlib
import io
import json
import logging

import numpy as np
import pytest

nuclio_sdk = pytest.importorskip("nuclio_sdk")

from cvat_extension.adapters.nuclio.io import (  # noqa: E402
    body_of,
    decode_image,
    encode_image,
    handle,
    optional_float,
    points_of,
    require_list,
    respond,
)
from cvat_extension.errors import InputError  # noqa: E402


@pytest.fixture()
def context(caplog: pytest.LogCaptureFixture) -> nuclio_sdk.Context:
    caplog.set_level(logging.DEBUG, logger="test-function")
    return nuclio_sdk.Context(logger=nuclio_sdk.Logger(logging.DEBUG, name="test-function"))


def _png_b64(mode: str, size: tuple[int, int] = (7, 5)) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, size).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "P"])
def test_decode_image_returns_rgb_uint8(mode: str) -> None:
    image = decode_image(_png_b64(mode))
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8


def test_decode_image_round_trips_and_accepts_data_urls() -> None:
    rgb = np.zeros((4, 6, 3), np.uint8)
    rgb[1, 2] = (255, 10, 20)
    text = encode_image(rgb, fmt="PNG")
    assert np.array_equal(decode_image(text), rgb)
    assert np.array_equal(decode_image("data:image/png;base64," + text), rgb)


@pytest.mark.parametrize(
    ("value", "match"),
    [
        (None, "image: expected a base64-encoded image string, got nothing"),
        (42, "got int"),
        ("", "got str"),
        ("not base64 !!", "image: not valid base64"),
        (base64.b64encode(b"hello world").decode(), "image: not a readable image"),
    ],
)
def test_decode_image_rejects_bad_input(value: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        decode_image(value)


@pytest.mark.parametrize(
    ("body", "expectation"),
    [
        ({"image": "x"}, contextlib.nullcontext({"image": "x"})),
        (b'{"a": 1}', contextlib.nullcontext({"a": 1})),
        ('{"a": 1}', contextlib.nullcontext({"a": 1})),
        (None, pytest.raises(InputError, match="empty")),
        (b"", pytest.raises(InputError, match="empty")),
        (b"{nope", pytest.raises(InputError, match="not valid JSON")),
        ([1, 2], pytest.raises(InputError, match="must be a JSON object, got list")),
    ],
)
def test_body_of(body: object, expectation: contextlib.AbstractContextManager) -> None:
    with expectation as expected:
        assert body_of(nuclio_sdk.Event(body=body)) == expected


def test_field_helpers() -> None:
    assert optional_float({}, "threshold", default=0.5) == 0.5
    assert optional_float({"threshold": 1}, "threshold", default=None, low=0, high=1) == 1.0
    with pytest.raises(InputError, match=r"threshold: expected a number in \[0, 1\], got 2"):
        optional_float({"threshold": 2}, "threshold", default=None, low=0, high=1)
    with pytest.raises(InputError, match="threshold: expected a number, got str"):
        optional_float({"threshold": "0.5"}, "threshold", default=None)
    with pytest.raises(InputError, match="threshold: expected a number, got bool"):
        optional_float({"threshold": True}, "threshold", default=None)
    assert require_list({}, "states", allow_missing=True) == []
    with pytest.raises(InputError, match="shapes: expected a list, got dict"):
        require_list({"shapes": {}}, "shapes")
    assert points_of({"points": [1, 2, 3, 4]}, field="boxes0[0]", count=4) == [1, 2, 3, 4]
    with pytest.raises(InputError, match=r"boxes0\[1\]: expected 4 points, got 2"):
        points_of([1, 2], field="boxes0[1]", count=4)
    with pytest.raises(InputError, match="finite"):
        points_of([1, float("nan")], field="p")


def test_respond_builds_a_nuclio_json_response(context: nuclio_sdk.Context) -> None:
    response = respond(context, {"n": np.int64(3), "a": np.arange(2, dtype=np.float32)})
    assert isinstance(response, nuclio_sdk.Response)
    assert response.status_code == 200 and response.content_type == "application/json"
    assert json.loads(response.body) == {"n": 3, "a": [0.0, 1.0]}


def test_handle_maps_input_errors_to_400(context: nuclio_sdk.Context) -> None:
    event = nuclio_sdk.Event(body={"image": "%%%"}, content_type="application/json")
    response = handle(context, event, lambda body: decode_image(body["image"]).shape)
    assert response.status_code == 400
    assert json.loads(response.body)["error"].startswith("image: not valid base64")


def test_handle_hides_internal_errors_and_logs_the_traceback(
    context: nuclio_sdk.Context, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(body: dict) -> object:
        raise RuntimeError("secret model path /opt/weights.pt")

    response = handle(context, nuclio_sdk.Event(body={}), broken)
    assert response.status_code == 500
    assert "secret" not in response.body and json.loads(response.body)["error"].startswith("internal")
    assert "Traceback" in caplog.text and "secret model path" in caplog.text


def test_handle_success_and_unserialisable_result(context: nuclio_sdk.Context) -> None:
    ok = handle(context, nuclio_sdk.Event(body=b'{"x": 2}'), lambda body: [body["x"] * 2])
    assert (ok.status_code, json.loads(ok.body)) == (200, [4])
    bad = handle(context, nuclio_sdk.Event(body={}), lambda body: {"x": object()})
    assert bad.status_code == 500
