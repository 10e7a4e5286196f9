"""The background warm-up reaches every compiled kernel with a real run's argument types."""

from __future__ import annotations

from cvat_extension.core import _kernels
from cvat_extension.core.checks.warm_up import _warm_up, start_warm_up


def _dispatchers() -> dict[str, object]:
    return {name: getattr(_kernels, name) for name in _kernels.__all__}


def test_warm_up_dispatches_every_kernel() -> None:
    """A kernel the warm-up never calls would load (or compile) on the main thread: adding
    one means giving the warm-up scene a reason to call it."""
    _warm_up(with_detections=True)
    never = [name for name, d in _dispatchers().items() if not d.signatures]  # type: ignore[attr-defined]
    assert never == []


def test_warm_up_uses_the_signatures_of_a_real_run(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """After the warm-up, a real check loads no new specialisation: every signature a real
    run dispatches was dispatched by the warm-up already (else it would compile one)."""
    from cvat_extension.adapters.cli._qa import run_qa
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    start_warm_up(with_detections=True).join(timeout=300)
    before = {name: set(d.signatures) for name, d in _dispatchers().items()}  # type: ignore[attr-defined]
    tracks, info = make_scene(SceneConfig(num_frames=300, num_objects=12, seed=3))
    run_qa(tracks, info, detections=tracks)
    after = {name: set(d.signatures) for name, d in _dispatchers().items()}  # type: ignore[attr-defined]
    assert after == before
