"""Load the checks' compiled kernels on a background thread while the input is still read.

The first call of the kernels in ``core/_kernels.py`` in a fresh process imports numba and
loads its cached machine code: about a second on two cores, more than the checks
themselves take on a million boxes. None of it depends on the input, so ``cvat-track
check`` starts it here before reading the file; reading and parsing (Arrow's reader, numpy)
release the GIL for most of their time, so the two overlap. The main thread's first kernel
call then finds the code loaded, or waits on numba's own lock until it is.

The warm-up runs the real entry points (``prepare`` and every check) on a small synthetic
scene, so the kernels are dispatched with exactly the argument types a real run uses (a
different type would compile a new specialisation instead of loading the cached one).
"""

from __future__ import annotations

import logging
import threading

logger = logging.getLogger(__name__)

__all__ = ["start_warm_up"]


def _warm_up(with_detections: bool) -> None:
    from cvat_extension.core.checks import run_checks
    from cvat_extension.core.kernels import load
    from cvat_extension.synthetic.inject import inject_errors
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    scene, info = make_scene(SceneConfig(num_frames=90, num_objects=8, seed=0))
    tracks, _truth = inject_errors(scene, kinds=["id_switch", "box_jump", "size_jump"],
                                   count_per_kind=1, seed=0, info=info)
    detections = scene if with_detections else None
    # numba's kernels, whatever the scene's size would choose: loading them is the point.
    run_checks(tracks, detections=detections, info=info, workers=1, kernels=load("numba"))


def start_warm_up(*, with_detections: bool = False) -> threading.Thread:
    """Start loading the kernels on a daemon thread and return it (joining is optional).

    A failure there is logged at debug level and otherwise ignored: the real run loads the
    kernels itself and reports any error where it belongs.
    """

    def run() -> None:
        try:
            _warm_up(with_detections)
        except Exception:  # noqa: BLE001 - the warm-up is an optimisation, never an error
            logger.debug("kernel warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="kernel-warm-up", daemon=True)
    thread.start()
    return thread
