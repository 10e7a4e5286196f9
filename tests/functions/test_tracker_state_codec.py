"""Tracker state without pickle: the typed codec round-trips boxmot state exactly and builds
nothing outside its registry."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

pytest.importorskip("boxmot")

from cvat_extension.errors import InputError  # noqa: E402
from cvat_extension.models import state_codec  # noqa: E402
from cvat_extension.models.mot_tracker import MotTracker  # noqa: E402
from cvat_extension.models.tracker_config import load_tracker_config  # noqa: E402


def _frames(n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    base = (rng.random((120, 160, 3)) * 255).astype(np.uint8)
    out = []
    for f in range(n):
        img = np.roll(base, f, axis=1)
        dets = np.array([[10 + 3 * f, 10, 50 + 3 * f, 80, 0.9, 0],
                         [100 - 2 * f, 30, 140 - 2 * f, 100, 0.35, 0],
                         [60, 50 + f, 90, 90 + f, 0.8, 1]], float)
        if f % 4 == 3:
            dets = dets[:2]  # an object drops out for a frame (lost tracks in the state)
        out.append((dets, img))
    return out


@pytest.mark.parametrize(
    ("name", "overrides"),
    [
        ("bytetrack", {}),
        ("bytetrack", {"per_class": True}),
        ("botsort", {"gmc_method": "none"}),
        ("botsort", {"gmc_method": "sof"}),
        ("botsort", {"gmc_method": "ecc"}),
        ("botsort", {"gmc_method": "orb"}),
    ],
)
def test_saved_and_restored_tracker_continues_exactly(name: str, overrides: dict) -> None:
    config = load_tracker_config(name, **overrides)
    frames = _frames(12)
    straight = MotTracker(config)
    resumed = MotTracker(config)
    expected, got = [], []
    for f, (dets, img) in enumerate(frames):
        image = img if config.needs_image else None
        expected.append(straight.update(dets, image, f))
        got.append(resumed.update(dets, image, f))
        if f in (2, 6):
            data = resumed.state_bytes()
            assert b"pickle" not in data and data[:4] == b"CVTS"
            resumed = MotTracker(config)
            resumed.load_state(data)
    for e, g in zip(expected, got):
        np.testing.assert_array_equal(e, g)
    assert straight.assignments() == resumed.assignments()


def test_state_from_other_settings_is_refused() -> None:
    a = MotTracker(load_tracker_config("bytetrack"))
    a.update(np.array([[0, 0, 10, 10, 0.9, 0]], float), None, 0)
    b = MotTracker(load_tracker_config("bytetrack", match_thresh=0.5))
    with pytest.raises(InputError, match="different tracker settings"):
        b.load_state(a.state_bytes())


def _forge(root: dict) -> bytes:
    header = json.dumps({"root": root, "blobs": []}).encode()
    return struct.pack("<4sBI", b"CVTS", 1, len(header)) + header


@pytest.mark.parametrize(
    ("data", "match"),
    [
        (b"", "too short"),
        (b"\x80\x04\x95" + b"\x00" * 20, "not a tracker state"),  # a pickle
        (_forge({"$o": "os.system", "id": 0, "a": {}}), "not a known state class"),
        (_forge({"$o": "subprocess.Popen", "id": 0, "a": {}}), "not a known state class"),
        (_forge({"$e": "builtins.eval", "v": "1"}), "not a known state class"),
        (_forge({"$l": [{"$a": 3}]}), "out of range"),
        (_forge({"$s": "O", "v": 1}), "not allowed"),
        (_forge({"$r": 9}), "unknown object"),
        (_forge([1, 2]), "untagged"),
    ],
)
def test_decoder_builds_only_registered_state(data: bytes, match: str) -> None:
    registry = {"x.Y": dict}
    with pytest.raises(state_codec.StateFormatError, match=match):
        state_codec.decode(data, allowed=registry)


def test_array_sizes_must_match_the_payload() -> None:
    good = state_codec.encode({"a": np.arange(6, dtype=np.float32).reshape(2, 3)}, allowed={})
    assert state_codec.decode(good, allowed={})["a"].shape == (2, 3)
    with pytest.raises(state_codec.StateFormatError, match="sizes"):
        state_codec.decode(good[:-4], allowed={})
