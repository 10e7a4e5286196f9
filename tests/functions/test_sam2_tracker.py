"""The SAM2 Nuclio tracker through nuclio-sdk, with CVAT-shaped first and follow-up calls.

The model is SAM2.1-tiny built from its config with random weights at 128 px: these tests
check the protocol, the state tokens and the stores, not mask quality.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

nuclio_sdk = pytest.importorskip("nuclio_sdk")
pytest.importorskip("sam2")

from nuclio_sdk.test.mock_platform import Platform  # noqa: E402

from cvat_extension.adapters.nuclio.io import encode_image  # noqa: E402
from cvat_extension.adapters.nuclio.sam2_tracker import (  # noqa: E402
    Sam2TrackerService,
    nuclio_handler,
)
from cvat_extension.adapters.nuclio.signed_store import SignedStateStore  # noqa: E402
from cvat_extension.adapters.nuclio.tracker_state import LruStateStore, RedisStateStore  # noqa: E402
from cvat_extension.core.masks import mask_to_rle, rle_to_mask  # noqa: E402
from cvat_extension.models.sam2_video import ObjectMemory, Sam2Settings, Sam2StreamTracker  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
MAIN = REPO / "functions" / "sam2-tracker" / "main.py"
SETTINGS = Sam2Settings(image_size=128, device="cpu", allow_random_weights=True)
W, H = 160, 90
KEY = b"test-key-" + b"k" * 23


@pytest.fixture(scope="module")
def frames(shared_data: Path) -> list[np.ndarray]:
    from PIL import Image

    return [
        np.asarray(Image.open(shared_data / "bedroom" / f"{i:05d}.jpg").convert("RGB").resize((W, H)))
        for i in range(4)
    ]


@pytest.fixture(scope="module")
def tracker() -> Sam2StreamTracker:
    return Sam2StreamTracker(SETTINGS)


def _event(body: dict[str, Any]) -> Any:
    return nuclio_sdk.Event(body=json.dumps(body).encode(), content_type="application/json")


def _call(handler: Any, context: Any, body: dict[str, Any]) -> tuple[int, Any]:
    resp = handler(context, _event(body))
    return resp.status_code, json.loads(resp.body)


def _context() -> Any:
    return nuclio_sdk.Context(logger=nuclio_sdk.Logger(10, name="sam2-test"))


def _shapes() -> list[dict[str, Any]]:
    mask = np.zeros((H, W), bool)
    mask[30:60, 100:140] = True
    return [
        {"type": "rectangle", "points": [20.0, 10.0, 70.0, 80.0]},
        {"type": "polygon", "points": [80.0, 10.0, 120.0, 15.0, 110.0, 60.0, 85.0, 50.0]},
        {"type": "mask", "points": [float(v) for v in mask_to_rle(mask)]},
    ]


def _check_shape(shape: Any, expected_type: str) -> None:
    assert shape is not None  # never a bare null: CVAT's UI reads points of every shape
    assert shape["type"] == expected_type
    pts = shape["points"]
    if expected_type == "rectangle":
        assert len(pts) == 4 and 0 <= pts[0] < pts[2] <= W and 0 <= pts[1] < pts[3] <= H
    elif expected_type == "polygon":
        assert len(pts) >= 6 and len(pts) % 2 == 0
    else:
        assert rle_to_mask(pts, W, H).any()


def test_main_py_first_and_followup_calls_several_objects(
    frames: list[np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real ``functions/sam2-tracker/main.py`` and nuclio-sdk's test platform."""
    for k, v in {
        "SAM2_IMAGE_SIZE": "128",
        "SAM2_DEVICE": "cpu",
        "SAM2_ALLOW_RANDOM_WEIGHTS": "1",
        "SAM2_MIN_CONFIDENCE": "0",
        "FUNCTION_ID": "sam2-tracker",
    }.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("CVAT_FUNCTIONS_REDIS_HOST", raising=False)
    spec = importlib.util.spec_from_file_location("sam2_tracker_main", MAIN)
    assert spec is not None and spec.loader is not None
    main = importlib.util.module_from_spec(spec)
    import sys

    sys.modules["sam2_tracker_main"] = main
    spec.loader.exec_module(main)
    platform = Platform()

    def call(body: dict[str, Any]) -> tuple[int, Any]:
        resp = platform.call_handler(main.handler, _event(body))
        return resp.status_code, json.loads(resp.body)

    shapes = _shapes()
    status, out = call({"image": encode_image(frames[0]), "shapes": shapes, "states": []})
    assert status == 200, out
    assert out["shapes"] == shapes  # the drawn shapes come back unchanged on the first frame
    states = out["states"]
    assert len(states) == 3 and len({s["sid"] for s in states}) == 3
    assert all(len(json.dumps(s)) < 200 for s in states)  # a token, not the SAM2 memory
    for frame in frames[1:3]:
        status, out = call({"image": encode_image(frame), "shapes": [None] * 3, "states": states})
        assert status == 200, out
        for shape, t in zip(out["shapes"], ("rectangle", "polygon", "mask")):
            _check_shape(shape, t)
        assert [s["sid"] for s in out["states"]] == [s["sid"] for s in states]
        states = out["states"]

    status, out = call({"image": encode_image(frames[3]), "shapes": [{"type": "ellipse", "points": [1, 2, 3, 4]}]})
    assert status == 400 and "ellipse" in out["error"]
    status, out = call({"shapes": [], "states": []})
    assert status == 400 and "image" in out["error"]


def test_legacy_protocol_and_several_tasks_at_once(frames: list[np.ndarray], tracker: Sam2StreamTracker) -> None:
    store = SignedStateStore(LruStateStore(), KEY)
    service = Sam2TrackerService(tracker, store, min_confidence=0.0)
    ctx = _context()
    other = np.ascontiguousarray(frames[0][:64, :96])  # "task B": another video, another size
    s_a, out_a = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                       {"image": encode_image(frames[0]), "shapes": [[20, 10, 70, 80]], "states": []})
    s_b, out_b = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                       {"image": encode_image(other), "shapes": [_shapes()[1]], "states": []})
    assert s_a == s_b == 200
    assert out_a["shapes"] == [[20.0, 10.0, 70.0, 80.0]]  # legacy: bare points back
    # interleave the two tasks
    for step in (1, 2):
        s, out_a = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                         {"image": encode_image(frames[step]), "shapes": [None], "states": out_a["states"]})
        assert s == 200 and len(out_a["shapes"][0]) == 4
    s, out_b = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                     {"image": encode_image(other), "shapes": [None], "states": out_b["states"]})
    assert s == 200
    mem_a = ObjectMemory.from_bytes(store.get(out_a["states"][0]["sid"]).partition(b"\n")[2])  # type: ignore[union-attr]
    mem_b = ObjectMemory.from_bytes(store.get(out_b["states"][0]["sid"]).partition(b"\n")[2])  # type: ignore[union-attr]
    assert (mem_a.frame_idx, mem_a.shape_type, mem_a.width) == (2, "rectangle", W)
    assert (mem_b.frame_idx, mem_b.shape_type, mem_b.width) == (1, "polygon", 96)
    # task B's token on task A's frames: a different image size, refused
    s, out = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                   {"image": encode_image(frames[3]), "shapes": [None], "states": out_b["states"]})
    assert s == 400 and "image" in out["error"]


def test_expired_foreign_and_malformed_tokens_are_rejected(
    frames: list[np.ndarray], tracker: Sam2StreamTracker
) -> None:
    now = [0.0]
    inner = LruStateStore(clock=lambda: now[0])
    store = SignedStateStore(inner, KEY)
    service = Sam2TrackerService(tracker, store, min_confidence=0.0)
    ctx = _context()

    def call(body: dict[str, Any]) -> tuple[int, Any]:
        return _call(lambda c, e: nuclio_handler(c, e, service), ctx, body)

    img = encode_image(frames[0])
    s, out = call({"image": img, "shapes": [_shapes()[0]], "states": []})
    assert s == 200
    token = out["states"][0]

    foreign = dict(token, fn="siammask")
    s, out = call({"image": img, "shapes": [None], "states": [foreign]})
    assert s == 400 and "issued by function 'siammask'" in out["error"]
    for junk in ({"x": 1}, "abc", [1, 2], {"v": 1, "sid": 5, "fn": "sam2-tracker"}):
        s, out = call({"image": img, "shapes": [None], "states": [junk]})
        assert s == 400 and "states[0]" in out["error"]
    s, out = call({"image": img, "shapes": [None], "states": [dict(token, sid="0" * 32)]})
    assert s == 410 and "expired or unknown" in out["error"]
    s, out = call({"image": img, "shapes": [None], "states": []})
    assert s == 400 and "shapes[0]" in out["error"]

    now[0] += 7 * 3600  # used within 8 h: still there, and the use refreshes the expiry
    s, out = call({"image": img, "shapes": [None], "states": [token]})
    assert s == 200
    now[0] += 8 * 3600 + 1
    s, out = call({"image": img, "shapes": [None], "states": [token]})
    assert s == 410 and "expired" in out["error"]
    assert len(inner) == 0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def redis_client(tmp_path: Path) -> Iterator[Any]:
    """A real ``redis-server`` when the binary exists (CI installs it), else fakeredis."""
    binary = shutil.which("redis-server")
    if binary is None:
        fakeredis = pytest.importorskip("fakeredis")
        yield fakeredis.FakeRedis()
        return
    redis = pytest.importorskip("redis")
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    try:
        for _ in range(100):
            try:
                if client.ping():
                    break
            except redis.ConnectionError:
                time.sleep(0.05)
        else:
            pytest.fail("redis-server did not start")
        yield client
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=10)


def test_redis_shared_state_across_two_instances(
    frames: list[np.ndarray], tracker: Sam2StreamTracker, redis_client: Any
) -> None:
    """Two replicas (own store clients, own contexts) continue each other's objects."""
    replica_a = Sam2TrackerService(tracker, SignedStateStore(RedisStateStore(redis_client), KEY), min_confidence=0.0)
    other_client = redis_client.__class__(connection_pool=redis_client.connection_pool)
    replica_b = Sam2TrackerService(tracker, SignedStateStore(RedisStateStore(other_client), KEY), min_confidence=0.0)
    ctx_a, ctx_b = _context(), _context()
    s, out = _call(lambda c, e: nuclio_handler(c, e, replica_a), ctx_a,
                   {"image": encode_image(frames[0]), "shapes": _shapes()[:2], "states": []})
    assert s == 200
    s, out = _call(lambda c, e: nuclio_handler(c, e, replica_b), ctx_b,
                   {"image": encode_image(frames[1]), "shapes": [None, None], "states": out["states"]})
    assert s == 200, out
    s, out = _call(lambda c, e: nuclio_handler(c, e, replica_a), ctx_a,
                   {"image": encode_image(frames[2]), "shapes": [None, None], "states": out["states"]})
    assert s == 200, out
    key = replica_a.store.inner.prefix + out["states"][0]["sid"]  # type: ignore[attr-defined]
    assert 0 < redis_client.ttl(key) <= 8 * 3600
    mem = ObjectMemory.from_bytes(redis_client.get(key)[32:].partition(b"\n")[2])
    assert mem.frame_idx == 2 and len(mem.outputs["non_cond_frame_outputs"]) == 2
    # a value altered in Redis (or planted by whoever can write there) is refused, never parsed
    key1 = replica_a.store.inner.prefix + out["states"][1]["sid"]  # type: ignore[attr-defined]
    planted = bytearray(redis_client.get(key1))
    planted[-1] ^= 0xFF
    redis_client.set(key1, bytes(planted))
    s, out3 = _call(lambda c, e: nuclio_handler(c, e, replica_b), ctx_b,
                    {"image": encode_image(frames[3]), "shapes": [None], "states": out["states"][1:]})
    assert s == 410 and "failed authentication" in out3["error"]
    redis_client.delete(key)  # e.g. Redis flushed: a clear 410
    s, out2 = _call(lambda c, e: nuclio_handler(c, e, replica_b), ctx_b,
                    {"image": encode_image(frames[3]), "shapes": [None, None], "states": out["states"]})
    assert s == 410 and "states[0]" in out2["error"]


def test_lost_object_keeps_its_last_shape_never_null(frames: list[np.ndarray], tracker: Sam2StreamTracker) -> None:
    """CVAT's UI reads ``points`` of every returned shape: a lost object answers its last shape."""
    service = Sam2TrackerService(tracker, SignedStateStore(LruStateStore(), KEY), min_confidence=1.01)
    ctx = _context()
    drawn = _shapes()[:2]
    s, out = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                   {"image": encode_image(frames[0]), "shapes": drawn, "states": []})
    assert s == 200
    for step in (1, 2):
        s, out = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                       {"image": encode_image(frames[step]), "shapes": [None, None], "states": out["states"]})
        assert s == 200 and out["shapes"] == drawn  # confidence never reaches 1.01: lost, box stays
        assert [t["lost"] for t in out["states"]] == [step, step]


def test_limits_full_store_and_bad_start_shapes(frames: list[np.ndarray], tracker: Sam2StreamTracker) -> None:
    from cvat_extension.adapters.nuclio.limits import WorkLimits

    service = Sam2TrackerService(tracker, SignedStateStore(LruStateStore(max_entries=2), KEY),
                                 min_confidence=0.0, limits=WorkLimits(max_objects=3, max_polygon_vertices=10))
    ctx = _context()
    img = encode_image(frames[0])

    def call(shapes: list[Any], states: list[Any] | None = None) -> tuple[int, Any]:
        return _call(lambda c, e: nuclio_handler(c, e, service), ctx, {"image": img, "shapes": shapes, "states": states or []})

    rect = {"type": "rectangle", "points": [20.0, 10.0, 70.0, 80.0]}
    cases = [
        ([rect] * 4, "4 objects, above the limit of 3"),
        ([{"type": "polygon", "points": [float(i % 50) for i in range(40)]}], "above the limit of 20"),
        ([{"type": "rectangle", "points": [5.0, 5.0, 5.0, 40.0]}], "no area"),
        ([{"type": "rectangle", "points": [200.0, 10.0, 300.0, 80.0]}], "outside the 160x90 frame"),
        ([{"type": "rectangle", "points": [0.0, 0.0, 1e300, 5.0]}], "x coordinates must lie within"),
    ]
    for shapes, message in cases:
        status, out = call(shapes)
        assert status == 400 and message in out["error"], (message, out)
    status, out = call([rect, rect])
    assert status == 200
    status, out2 = call([rect])  # a third object: the store is full, nobody is evicted
    assert status == 503 and "full" in out2["error"]
    status, out3 = _call(lambda c, e: nuclio_handler(c, e, service), ctx,
                         {"image": encode_image(frames[1]), "shapes": [None, None], "states": out["states"]})
    assert status == 200  # the running objects still track
