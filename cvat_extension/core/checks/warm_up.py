"""Load the checks' numba kernels on a background thread while the input is still read.

Only for inputs that will use numba (``core/kernels.py``: large tasks; smaller ones run
the numpy twins and never import numba): :func:`most_boxes_in` bounds a file's boxes by
its size before it is read.

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
import os
import threading

logger = logging.getLogger(__name__)

__all__ = ["MIN_BYTES_PER_BOX", "most_boxes_in", "start_warm_up"]

#: Fewest bytes one box takes in any input format: a MOT line of six one-digit columns.
MIN_BYTES_PER_BOX = 12
#: Bytes read from the start of a file to measure its line length.
_HEAD_BYTES = 1 << 16
#: Margin on the line count extrapolated from the head (later lines may be shorter).
_HEAD_MARGIN = 1.5


def most_boxes_in(path: str | os.PathLike[str]) -> int:
    """A high estimate of the boxes in the tracks file ``path`` before reading it (0: unreadable).

    Every format has at least one line per box (MOT: one; CVAT XML: one per ``<box>`` plus
    others; indented JSON: several), so the lines extrapolated from the first 64 KiB,
    with a 1.5x margin for shorter lines later on, bound the boxes; a file with long
    lines (one-line JSON) falls back to its size over :data:`MIN_BYTES_PER_BOX`. High on
    purpose: a run that will use numba should get its warm-up (a needless one costs a
    background core for a second; a missed one only the overlap, never a result).
    """
    try:
        size = os.stat(path).st_size
        with open(path, "rb") as fh:
            head = fh.read(_HEAD_BYTES)
    except OSError:
        return 0
    lines = head.count(b"\n")
    if len(head) < size and lines >= 64:
        return int(size / len(head) * lines * _HEAD_MARGIN) + 1
    return size // MIN_BYTES_PER_BOX + 1


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
    """Start loading the kernels on a background thread and return it (joining is optional).

    A failure there is logged at debug level and otherwise ignored: the real run loads the
    kernels itself and reports any error where it belongs. The thread is not a daemon: a
    command that fails early (a bad input) exits only after the warm-up ends, since
    stopping a daemon thread inside numba's compiler at interpreter exit aborts the process
    ("terminate called without an active exception", exit code 134 instead of 2).
    """

    def run() -> None:
        try:
            _warm_up(with_detections)
        except Exception:  # noqa: BLE001 - the warm-up is an optimisation, never an error
            logger.debug("kernel warm-up failed", exc_info=True)

    thread = threading.Thread(target=run, name="kernel-warm-up", daemon=False)
    thread.start()
    return thread
