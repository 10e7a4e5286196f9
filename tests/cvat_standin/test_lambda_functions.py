"""The stand-in's lambda function side without a gateway: signing, mapping, conversion."""

from __future__ import annotations

import pytest

from cvat_standin.lambda_functions import (
    TimestampSigner,
    ValidationError,
    _rle,
    convert_detections,
    default_mapping,
    resolve_mapping,
)

MODEL = [{"name": "person", "type": "rectangle", "attributes": [{"name": "pose", "input_type": "select",
                                                                  "values": ["up", "down"]}]},
         {"name": "cat", "type": "mask", "attributes": []}]
TASK = [{"id": 1, "name": "person", "type": "any", "attributes": [{"id": 11, "name": "pose", "input_type": "select",
                                                                   "values": ["up"]}]},
        {"id": 2, "name": "cat", "type": "polygon", "attributes": []},
        {"id": 3, "name": "dog", "type": "skeleton", "attributes": []}]


def test_signed_states_expire_and_resist_tampering() -> None:
    now = [1_000_000.0]
    signer = TimestampSigner(b"k", "cvat-tracker-state:sam2", clock=lambda: now[0])
    signed = signer.sign('{"id":"abc"}')
    assert signer.unsign(signed, max_age_s=8 * 3600) == '{"id":"abc"}'
    with pytest.raises(ValueError, match="bad signature"):
        signer.unsign(signed.replace("abc", "abd"), max_age_s=8 * 3600)
    with pytest.raises(ValueError, match="bad signature"):  # another function's salt
        TimestampSigner(b"k", "cvat-tracker-state:other", clock=lambda: now[0]).unsign(signed, max_age_s=8 * 3600)
    now[0] += 8 * 3600 + 1
    with pytest.raises(ValueError, match="expired"):
        signer.unsign(signed, max_age_s=8 * 3600)


def test_mapping_defaults_by_name_and_validates_given_ones() -> None:
    assert set(default_mapping(MODEL, TASK)) == {"person", "cat"}  # mask and polygon are compatible
    with pytest.raises(ValidationError, match='Unknown db label "horse"'):
        resolve_mapping({"person": {"name": "horse"}}, MODEL, TASK)
    with pytest.raises(ValidationError, match='Unknown model label "horse"'):
        resolve_mapping({"horse": {"name": "person"}}, MODEL, TASK)
    with pytest.raises(ValidationError, match="are not compatible"):
        resolve_mapping({"person": {"name": "dog"}}, MODEL, TASK)
    with pytest.raises(ValidationError, match='Unknown db attribute "size"'):
        resolve_mapping({"person": {"name": "person", "attributes": {"pose": "size"}}}, MODEL, TASK)


def test_detections_converted_as_cvat_does() -> None:
    mapping = default_mapping(MODEL, TASK)
    answer = [{"label": "person", "type": "rectangle", "points": [1, 2, 3, 4], "confidence": 0.9,
               "attributes": [{"name": "pose", "value": "up"}]},
              {"label": "person", "type": "rectangle", "points": [1, 2, 3, 4],
               "attributes": [{"name": "pose", "value": "down"}]},  # not a task value: dropped
              {"label": "cat", "type": "mask", "mask": [0, 1, 1, 0, 5, 5, 6, 6]},
              {"label": "unmapped", "type": "rectangle", "points": [0, 0, 1, 1]}]
    out = convert_detections(answer, mapping, TASK, frame=7, conv_mask_to_poly=False)
    shapes = out["shapes"]
    assert [s["label_id"] for s in shapes] == [1, 1, 2] and all(s["frame"] == 7 for s in shapes)
    assert shapes[0]["attributes"] == [{"spec_id": 11, "value": "up"}] and shapes[1]["attributes"] == []
    assert shapes[0]["source"] == "auto" and shapes[0]["rotation"] == 0
    assert shapes[2]["points"] == [1, 2, 1, 5, 5, 6, 6]
    assert _rle([]) == [0] and _rle([1, 1]) == [0, 2] and _rle([0, 0, 1]) == [2, 1]
