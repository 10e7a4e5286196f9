"""The pure-torch torchvision::nms fallback: same kept indices as a reference NMS, and a no-op
when torchvision's own C ops load."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from cvat_extension.models.torchvision_fallback import (  # noqa: E402
    ensure_torchvision_ops,
    nms_reference,
)


def _numpy_greedy_nms(boxes: np.ndarray, scores: np.ndarray, thr: float) -> list[int]:
    """Textbook greedy NMS, written independently of the implementation under test."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    suppressed = np.zeros(len(scores), dtype=bool)
    keep: list[int] = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for i in order:
        if suppressed[i]:
            continue
        keep.append(i)
        w = np.clip(np.minimum(boxes[i, 2], boxes[:, 2]) - np.maximum(boxes[i, 0], boxes[:, 0]), 0, None)
        h = np.clip(np.minimum(boxes[i, 3], boxes[:, 3]) - np.maximum(boxes[i, 1], boxes[:, 1]), 0, None)
        inter = w * h
        union = area[i] + area - inter
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
        suppressed |= iou > thr  # i itself is kept already; earlier kept boxes are not revisited
    return keep


def _random_boxes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    xy = torch.rand(n, 2, generator=gen) * 600
    wh = torch.rand(n, 2, generator=gen) * 120 + 1
    return torch.cat([xy, xy + wh], 1), torch.rand(n, generator=gen)


@pytest.mark.parametrize("n", [0, 1, 3000])
@pytest.mark.parametrize("thr", [0.3, 0.7])
def test_nms_reference_matches_greedy_reference(n: int, thr: float) -> None:
    boxes, scores = _random_boxes(n, seed=n)
    kept = nms_reference(boxes, scores, thr)
    assert kept.dtype == torch.int64
    if n <= 1:
        assert kept.tolist() == list(range(n))
        return
    expected = _numpy_greedy_nms(boxes.numpy().astype(np.float64), scores.numpy(), thr)
    assert kept.tolist() == expected


def test_ties_keep_the_earlier_box_and_degenerate_boxes_survive() -> None:
    boxes = torch.tensor([[0, 0, 10, 10], [0, 0, 10, 10], [5, 5, 5, 5], [5, 5, 5, 5.0]])
    scores = torch.tensor([0.5, 0.5, 0.9, 0.9])
    assert nms_reference(boxes, scores, 0.5).tolist() == [2, 3, 0]


def test_torchvision_ops_work_after_ensure_and_match_ultralytics() -> None:
    ensure_torchvision_ops()
    import torchvision
    from ultralytics.utils.nms import TorchNMS

    boxes, scores = _random_boxes(3000, seed=7)
    kept = torchvision.ops.nms(boxes, scores, 0.5)
    assert torch.equal(kept, TorchNMS.nms(boxes, scores, 0.5))
    classes = torch.randint(0, 4, (3000,), generator=torch.Generator().manual_seed(1))
    batched = torchvision.ops.batched_nms(boxes, scores, classes, 0.5)
    expected = []
    for c in range(4):
        idx = torch.nonzero(classes == c).flatten()
        expected += idx[nms_reference(boxes[idx], scores[idx], 0.5)].tolist()
    assert sorted(batched.tolist()) == sorted(expected)
    assert ensure_torchvision_ops() == ensure_torchvision_ops()  # idempotent


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.mark.slow
def test_fresh_process_installs_fallback_only_when_ops_do_not_load() -> None:
    out = _run(
        """
        from cvat_extension.models import torchvision_fallback as fb
        native = fb._native_ops_load()
        print(native, fb.ensure_torchvision_ops(), fb.ensure_torchvision_ops())
        """
    )
    native, first, second = out.split()
    assert first == second
    assert first == str(native == "False")


@pytest.mark.slow
def test_simulated_working_ops_make_it_a_noop() -> None:
    out = _run(
        """
        import threading
        from cvat_extension.models import torchvision_fallback as fb
        fb._native_ops_load = lambda: True  # simulate a torchvision whose C ops load
        results = []
        threads = [threading.Thread(target=lambda: results.append(fb.ensure_torchvision_ops()))
                   for _ in range(4)]
        for t in threads: t.start()
        for t in threads: t.join()
        print(results, fb._nms_op_defined() or fb._LIBRARY)
        """
    )
    assert out == "[False, False, False, False] []"
