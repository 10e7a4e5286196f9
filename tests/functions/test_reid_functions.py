"""The ``bytetrack`` / ``botsort`` CVAT reid functions, driven through nuclio-sdk like CVAT does.

CVAT's batch path (``LambdaJob._call_reid``) calls the function once per consecutive frame
pair and chains the returned matches into tracks; :func:`cvat_chain` reproduces that loop so
the tests see the tracks a user would get.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

nuclio_sdk = pytest.importorskip("nuclio_sdk")
pytest.importorskip("boxmot")

from cvat_extension.adapters.nuclio.io import encode_image  # noqa: E402
from cvat_extension.adapters.nuclio.reid import ReidMatcher  # noqa: E402
from cvat_extension.adapters.nuclio.tracker_state import LruStateStore, RedisStateStore  # noqa: E402
from cvat_extension.core.geometry import iou_xyxy_batch  # noqa: E402
from cvat_extension.models.mot_tracker import MotTracker  # noqa: E402
from cvat_extension.models.tracker_config import load_tracker_config  # noqa: E402

FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"
W, H, N_FRAMES, SPEED, SIZE = 320, 160, 30, 6, (40, 80)


# ---------------------------------------------------------------- helpers
def load_function(name: str, monkeypatch: pytest.MonkeyPatch, **env: str) -> tuple[Any, Any]:
    """Import ``functions/<name>/main.py`` and run its ``init_context`` on a fresh Context."""
    for key in ("REDIS_URL", "CVAT_FUNCTIONS_REDIS_HOST", "TRACKER_CONFIG", "REID_WEIGHTS", "TRACKER_GMC_METHOD"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location(f"function_{name.replace('-', '_')}", FUNCTIONS / name / "main.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    context = nuclio_sdk.Context(logger=nuclio_sdk.Logger(logging.DEBUG, name=name))
    module.init_context(context)
    return module, context


def call(module: Any, context: Any, body: Any) -> tuple[int, Any]:
    payload = body if isinstance(body, (bytes, str)) else body
    event = nuclio_sdk.Event(body=payload, content_type="application/json")
    response = module.handler(context, event)
    return response.status_code, json.loads(response.body)


def crossing_scene(seed: int = 0) -> tuple[list[str], list[np.ndarray]]:
    """Two same-size boxes crossing head-on at constant speed over a textured static background.

    B starts 3 px off the grid, so around the crossing each box overlaps the *other* box of
    the next frame more than its own: overlap-only matching swaps them.
    """
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 120, size=(H, W, 3), dtype=np.uint8)
    images, boxes = [], []
    for k in range(N_FRAMES):
        xa, xb = 20 + SPEED * k, 257 - SPEED * k
        b = np.array([[xa, 40, xa + SIZE[0], 40 + SIZE[1]], [xb, 40, xb + SIZE[0], 40 + SIZE[1]]], float)
        img = background.copy()
        img[40:120, int(xa):int(xa) + 40] = (220, 60, 60)
        img[40:120, int(xb):int(xb) + 40] = (60, 60, 220)
        images.append(encode_image(img))
        boxes.append(b)
    return images, boxes


def shapes(frame: int, xyxy: np.ndarray) -> list[dict[str, Any]]:
    """CVAT shape dicts as ``dm.task.get_task_data`` gives them to ``_call_reid``."""
    return [{"id": 100 * frame + i, "type": "rectangle", "frame": frame, "label_id": 1, "group": None,
             "source": "auto", "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": [],
             "points": [float(v) for v in box]} for i, box in enumerate(xyxy)]


def cvat_chain(match: Callable[[dict[str, Any]], list[int]], images: list[str], boxes: list[np.ndarray]) -> list[list[int]]:
    """CVAT's ``_call_reid`` loop: path id of every box, per frame."""
    paths: list[list[int]] = [list(range(len(boxes[0])))]
    next_id = len(boxes[0])
    for f in range(len(images) - 1):
        answer = match({"image0": images[f], "image1": images[f + 1], "boxes0": shapes(f, boxes[f]),
                        "boxes1": shapes(f + 1, boxes[f + 1]), "threshold": 0.5, "max_distance": 50})
        assert len(answer) == len(boxes[f])
        nxt = [-1] * len(boxes[f + 1])
        for i, j in enumerate(answer):
            if j >= 0:
                nxt[j] = paths[f][i]
        for j, pid in enumerate(nxt):
            if pid < 0:
                nxt[j], next_id = next_id, next_id + 1
        paths.append(nxt)
    return paths


def iou_only(body: dict[str, Any]) -> list[int]:
    """Pure overlap matching of one frame pair (Hungarian on IoU), the stateless baseline."""
    b0 = np.array([s["points"] for s in body["boxes0"]])
    b1 = np.array([s["points"] for s in body["boxes1"]])
    iou = iou_xyxy_batch(b0, b1)
    rows, cols = linear_sum_assignment(-iou)
    out = [-1] * len(b0)
    for r, c in zip(rows, cols):
        if iou[r, c] > 0.1:
            out[r] = int(c)
    return out


def via_nuclio(module: Any, context: Any) -> Callable[[dict[str, Any]], list[int]]:
    def match(body: dict[str, Any]) -> list[int]:
        status, answer = call(module, context, body)
        assert status == 200, answer
        return answer
    return match


def identities_kept(paths: list[list[int]]) -> bool:
    """Box 0 (A) and box 1 (B) keep their first-frame path ids to the last frame."""
    return all(p == paths[0] for p in paths)


# ---------------------------------------------------------------- crossing
def test_overlap_only_matching_swaps_the_crossing_objects() -> None:
    images, boxes = crossing_scene()
    assert not identities_kept(cvat_chain(iou_only, images, boxes))


@pytest.mark.parametrize("name", ["bytetrack", "botsort"])
def test_reid_functions_keep_both_identities_where_iou_swaps(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module, context = load_function(name, monkeypatch)
    images, boxes = crossing_scene()
    paths = cvat_chain(via_nuclio(module, context), images, boxes)
    assert identities_kept(paths), paths


def test_without_carried_state_the_function_degrades_to_overlap_and_swaps(monkeypatch: pytest.MonkeyPatch) -> None:
    """The state carried between calls is what fixes the crossing (a forgetful store swaps)."""

    class Forgetful:
        def get(self, key: str) -> None:
            return None

        def put(self, key: str, value: bytes) -> None:
            pass

        def delete(self, key: str) -> None:
            pass

    matcher = ReidMatcher(MotTracker(load_tracker_config("bytetrack")), Forgetful(), namespace="t")
    images, boxes = crossing_scene()
    assert not identities_kept(cvat_chain(matcher, images, boxes))


def test_two_tasks_interleaved_keep_separate_states(monkeypatch: pytest.MonkeyPatch) -> None:
    module, context = load_function("bytetrack", monkeypatch)
    (im_a, bx_a), (im_b, bx_b) = crossing_scene(1), crossing_scene(2)
    match = via_nuclio(module, context)
    paths_a: list[list[int]] = []
    paths_b: list[list[int]] = []
    # Interleave: each task's pair k is answered between the other task's pairs.
    for f in range(N_FRAMES - 1):
        for images, boxes, paths in ((im_a, bx_a, paths_a), (im_b, bx_b, paths_b)):
            answer = match({"image0": images[f], "image1": images[f + 1], "boxes0": shapes(f, boxes[f]),
                            "boxes1": shapes(f + 1, boxes[f + 1])})
            paths.append(answer)
    for paths in (paths_a, paths_b):
        assert all(answer == [0, 1] for answer in paths), paths


def test_replicas_share_state_through_redis() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    server = fakeredis.FakeServer()
    config = load_tracker_config("bytetrack")
    replicas = [ReidMatcher(MotTracker(config), RedisStateStore(fakeredis.FakeRedis(server=server)), namespace="bt")
                for _ in range(2)]
    calls = iter(range(10**6))

    def round_robin(body: dict[str, Any]) -> list[int]:
        return replicas[next(calls) % 2](body)

    images, boxes = crossing_scene()
    assert identities_kept(cvat_chain(round_robin, images, boxes))
    assert any(k.startswith(b"cvat-extension:tracker:") for k in fakeredis.FakeRedis(server=server).keys())


def test_discontinuity_restarts_and_max_distance_gates(monkeypatch: pytest.MonkeyPatch) -> None:
    matcher = ReidMatcher(MotTracker(load_tracker_config("bytetrack")), LruStateStore(), namespace="t")
    images, boxes = crossing_scene()
    base = {"image0": images[0], "image1": images[1], "boxes0": shapes(0, boxes[0]), "boxes1": shapes(1, boxes[1])}
    assert matcher(base) == [0, 1]
    # boxes0 edited since the state was stored: a fresh tracker, still a sensible answer
    edited = {**base, "image0": images[1], "image1": images[2], "boxes0": shapes(1, boxes[1][::-1]),
              "boxes1": shapes(2, boxes[2])}
    assert matcher(edited) == [1, 0]
    assert matcher({**base, "max_distance": 2}) == [-1, -1]  # boxes moved 6 px
    assert matcher({**base, "boxes0": []}) == []


# ---------------------------------------------------------------- state reuse across calls
def accelerating_scene() -> tuple[list[str], list[np.ndarray], str]:
    """One box that walks 14 px a frame for seven frames, then jumps 30 px.

    The last step leaves IoU 10/70 = 0.14 between the two boxes, below ByteTrack's overlap
    floor (1 - match_thresh = 0.2): only a tracker that learned the velocity on the earlier
    pairs predicts the box far enough ahead to link it. Also returns an image of another
    scene (same boxes, other background) to break the chain with.
    """
    rng = np.random.default_rng(3)
    background = rng.integers(40, 120, size=(H, 2 * W, 3), dtype=np.uint8)
    xs = [20]
    for step in [14] * 7 + [30]:
        xs.append(xs[-1] + step)
    images, boxes = [], []
    for x in xs:
        img = background.copy()
        img[40:120, x:x + 40] = (220, 60, 60)
        images.append(encode_image(img))
        boxes.append(np.array([[x, 40, x + 40, 120]], float))
    other = np.full_like(background, 90)
    other[40:120, xs[-2]:xs[-2] + 40] = (220, 60, 60)
    return images, boxes, encode_image(other)


@pytest.mark.parametrize("name", ["bytetrack", "botsort"])
def test_state_from_earlier_calls_links_a_jump_overlap_cannot(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The decisive pair is answered right only with the Kalman state left by the calls before it.

    Breaking the chain (``image0`` is not the previous ``image1``, or ``boxes0`` are not the
    boxes the state was left with) starts a fresh tracker, which has no velocity and loses the
    link; the stored state itself is untouched by those requests, so the true continuation
    still finds it afterwards.
    """
    module, context = load_function(name, monkeypatch)
    match = via_nuclio(module, context)
    images, boxes, other = accelerating_scene()
    last = len(images) - 2

    def pair(f: int, **change: Any) -> dict[str, Any]:
        return {"image0": images[f], "image1": images[f + 1], "boxes0": shapes(f, boxes[f]),
                "boxes1": shapes(f + 1, boxes[f + 1]), **change}

    # overlap alone is below ByteTrack's floor on the jump
    assert iou_xyxy_batch(boxes[last], boxes[last + 1])[0, 0] < 1 - load_tracker_config(name).match_thresh
    for f in range(last):
        assert match(pair(f)) == [0], f
    # discontinuities: a fresh tracker, no velocity, no link
    assert match(pair(last, image0=other)) == [-1]
    assert match(pair(last, boxes0=shapes(last, boxes[last] + [2.0, 0.0, 2.0, 0.0]))) == [-1]
    # a brand-new function instance (no stored state) fails the same pair too
    fresh_module, fresh_context = load_function(name, monkeypatch)
    assert via_nuclio(fresh_module, fresh_context)(pair(last)) == [-1]
    # the real continuation reuses the state stored by pair ``last - 1``
    assert match(pair(last)) == [0]


# ---------------------------------------------------------------- malformed requests
@pytest.fixture()
def bytetrack(monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any]:
    return load_function("bytetrack", monkeypatch)


def _valid() -> dict[str, Any]:
    images, boxes = crossing_scene()
    return {"image0": images[0], "image1": images[1], "boxes0": shapes(0, boxes[0]), "boxes1": shapes(1, boxes[1])}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"image0": None}, "image0: required field is missing"),
        ({"image1": "%%%not-base64"}, "image1: not valid base64"),
        ({"image1": "aGVsbG8gd29ybGQ="}, "image1: not a readable image in an allowed format"),
        ({"boxes0": "nope"}, "boxes0: expected a list"),
        ({"boxes1": [{"points": [1, 2, 3]}]}, r"boxes1\[0\]: expected 4 points"),
        ({"boxes1": [{"points": [1, 2, "x", 4]}]}, r"boxes1\[0\]: expected a list of numbers"),
        ({"threshold": 5}, "threshold: expected a number"),
        ({"max_distance": -1}, "max_distance: expected a number"),
    ],
)
def test_malformed_requests_get_400(bytetrack: tuple[Any, Any], change: dict[str, Any], message: str) -> None:
    module, context = bytetrack
    body = {**_valid(), **change}
    status, answer = call(module, context, body)
    assert status == 400
    assert answer["error"]
    import re

    assert re.search(message, answer["error"]), answer


def test_non_json_body_gets_400(bytetrack: tuple[Any, Any]) -> None:
    module, context = bytetrack
    status, answer = call(module, context, b"{not json")
    assert status == 400 and "not valid JSON" in answer["error"]


def test_missing_reid_weights_fail_at_init(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from cvat_extension.errors import ConfigError

    with pytest.raises(ConfigError, match="REID|ReID weights file .* does not exist"):
        load_function("botsort", monkeypatch, REID_WEIGHTS=str(tmp_path / "osnet_x0_25_msmt17.pt"))


def test_function_yaml_has_what_cvat_reads() -> None:
    import yaml

    for name in ("bytetrack", "botsort"):
        for file in ("function.yaml", "function-gpu.yaml"):
            doc = yaml.safe_load((FUNCTIONS / name / file).read_text())
            ann = doc["metadata"]["annotations"]
            assert ann["type"] == "reid"
            assert doc["metadata"]["name"].startswith(name)
            assert json.loads(ann["spec"]) == []
            assert doc["spec"]["handler"] == "main:handler"
            assert doc["spec"]["triggers"]["myHttpTrigger"]["kind"] == "http"
