"""Mask conversions: CVAT RLE cross-checked against cvat-sdk, boxes, polygons."""

from __future__ import annotations

import contextlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from cvat_extension.core.masks import (
    box_to_mask,
    mask_iou_pairwise,
    mask_to_polygon,
    mask_to_rle,
    masks_to_xyxy,
    polygon_to_mask,
    rle_to_mask,
)
from cvat_extension.errors import InputError

cvat_masks = pytest.importorskip("cvat_sdk.masks")


@settings(max_examples=150, deadline=None)
@given(arrays(bool, st.tuples(st.integers(1, 12), st.integers(1, 12))))
def test_rle_matches_cvat_sdk(mask: np.ndarray) -> None:
    h, w = mask.shape
    ours = mask_to_rle(mask)
    if mask.any():
        assert ours == cvat_masks.encode_mask(mask)
        back = cvat_masks.decode_mask(ours, image_width=w, image_height=h)
        assert np.array_equal(back, mask)
        assert np.array_equal(rle_to_mask(ours, w, h), mask)
    else:
        assert not rle_to_mask(ours, w, h).any()


def test_rle_decodes_sdk_output_with_explicit_box() -> None:
    mask = np.zeros((6, 7), bool)
    mask[2:4, 3:6] = True
    enc = cvat_masks.encode_mask(mask, bbox=[1, 1, 7, 6])
    assert np.array_equal(rle_to_mask(enc, 7, 6), mask)


@pytest.mark.parametrize(
    ("points", "expectation"),
    [
        ([], pytest.raises(InputError, match=">= 5 numbers")),
        ([1, 0, 0, 9, 0], pytest.raises(InputError, match="outside the 4x4 image")),
        ([1, 2, 0, 0, 0, 0], pytest.raises(InputError, match="runs cover 3 pixels")),
        ([0.5, 0, 0, 0, 0], pytest.raises(InputError, match="integers")),
        ([0, 1, 0, 0, 0, 0], contextlib.nullcontext()),
    ],
)
def test_rle_rejects_bad_points(points: list[float], expectation: contextlib.AbstractContextManager[object]) -> None:
    with expectation:
        assert rle_to_mask(points, 4, 4)[0, 0]


def test_masks_to_xyxy_edges_and_empty() -> None:
    m = np.zeros((3, 5, 6), bool)
    m[0, 1:3, 2:5] = True
    m[2, 4, 5] = True
    boxes = masks_to_xyxy(m)
    assert boxes[0].tolist() == [2, 1, 5, 3]
    assert np.isnan(boxes[1]).all()
    assert boxes[2].tolist() == [5, 4, 6, 5]
    assert masks_to_xyxy(np.zeros((0, 4, 4), bool)).shape == (0, 4)


def test_box_mask_roundtrip() -> None:
    m = box_to_mask([2, 1, 5, 3], 8, 6)
    assert m.sum() == 6
    assert masks_to_xyxy(m[None])[0].tolist() == [2, 1, 5, 3]


def test_mask_iou_pairwise_empty_agrees() -> None:
    a = np.zeros((2, 4, 4), bool)
    b = a.copy()
    a[1, :2] = True
    b[1, 1:3] = True
    assert mask_iou_pairwise(a, b).tolist() == [1.0, 4 / 12]


def _ellipse(h: int, w: int, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 < 1


def test_polygon_roundtrip_keeps_shape() -> None:
    m = _ellipse(80, 100, 50, 40, 30, 18)
    poly = mask_to_polygon(m)
    assert poly is not None and len(poly) % 2 == 0 and len(poly) >= 6
    back = polygon_to_mask(poly, 100, 80)
    assert mask_iou_pairwise(m[None], back[None])[0] > 0.9


def test_polygon_takes_largest_component_and_none_for_empty() -> None:
    m = _ellipse(60, 60, 20, 20, 10, 10) | _ellipse(60, 60, 50, 50, 4, 4)
    poly = np.asarray(mask_to_polygon(m)).reshape(-1, 2)
    assert poly[:, 0].max() < 35  # the small blob at (50, 50) is not traced
    assert mask_to_polygon(np.zeros((5, 5), bool)) is None


def test_polygon_to_mask_matches_opencv() -> None:
    cv2 = pytest.importorskip("cv2")
    poly = [10.0, 5.0, 40.0, 12.0, 30.0, 35.0, 8.0, 30.0]
    ours = polygon_to_mask(poly, 50, 40)
    ref = np.zeros((40, 50), np.uint8)
    cv2.fillPoly(ref, [np.asarray(poly).reshape(-1, 2).round().astype(np.int32)], 1)
    assert mask_iou_pairwise(ours[None], ref.astype(bool)[None])[0] > 0.9


def test_polygon_rejects_too_few_points() -> None:
    with pytest.raises(InputError, match=">= 3"):
        polygon_to_mask([1, 2, 3, 4], 10, 10)
