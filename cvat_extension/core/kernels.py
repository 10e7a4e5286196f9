"""Which implementation of the checks' inner loops a run uses: numpy twins or numba.

The checks' per-row passes exist twice with identical results (bit for bit, tested):
``core/_kernels.py`` compiled by numba and ``core/_kernels_numpy.py`` in numpy. numba is
faster per row but costs a fixed ~1 s per process before its first kernel returns (its
import, its target registries and the cached machine code of 14 kernels); the numpy twins
start at once. :func:`kernels_for` picks the numpy module below :data:`NUMBA_MIN_ROWS`
visible boxes and numba at or above it, once per run (``run_checks``/``prepare`` decide
and every check of the run uses the module ``Prepared.kernels`` carries).

Break-even, measured by ``bench/bench_kernels.py``: ``cvat-track check FILE --json OUT``
end to end in fresh processes (numba's start included, with its background warm-up as a
real run has it), both paths in the same run, MOT files (synthetic: 50 tracks), 2 cores
shared with other work, best of 2-3; two runs an hour apart (A, B):

- MOT17-04 ground truth, 108 k boxes: numpy 0.77 s, numba 2.00 s (B);
- 300 k boxes: 1.45 s against 2.87 s (B); 500 k: 1.62 s against 2.63 s (A);
- 1 M boxes: 2.56 / 2.68 s against 2.96 / 3.35 s (A / B);
- 2 M boxes: 3.88 / 5.38 s against 4.13 / 4.82 s (numba 1.07x slower in A, 0.90x in B);
- 4 M boxes: 8.05 / 8.44 s against 7.40 / 7.81 s (numba 0.92x / 0.93x).

In process, with the kernels loaded, the numpy twins take ~0.8 s per million boxes
(prepare, checks, merge) against numba's ~0.4 s, so numba's ~1 s start is repaid from
about 2 M boxes, where the two runs disagree on the winner: :data:`NUMBA_MIN_ROWS` sits
there. The numpy path also peaks lower (437 against 541 MiB on 1 M boxes). The
detections' match costs ~40 ns per same-frame pair in numpy against ~5 ns in numba:
break-even about 25 M pairs (e.g. 500 k boxes among 50 detections a frame).

``CVAT_TRACK_KERNELS=numpy|numba|auto`` (environment) forces one path for every run of the
process, for benchmarks and tests; ``auto`` (or unset) chooses by size.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from types import ModuleType

from cvat_extension.errors import ConfigError

__all__ = ["ENV_VAR", "NUMBA_MIN_PAIRS", "NUMBA_MIN_ROWS", "kernels_for", "load",
           "match_kernels_for", "uses_numba"]

#: Visible boxes from which a run uses numba: below it the numpy twins finish first, numba's
#: start included (measured break-even about 2 M boxes; see the module docstring).
NUMBA_MIN_ROWS = 2_000_000
#: Same-frame (annotated, detected) pairs from which the detections' match uses numba
#: (~1 s start over ~35 ns saved per pair).
NUMBA_MIN_PAIRS = 25_000_000
#: Environment variable forcing one implementation (``numpy``, ``numba`` or ``auto``).
ENV_VAR = "CVAT_TRACK_KERNELS"
_CHOICES = ("auto", "numpy", "numba")
_NUMPY_MODULE = "cvat_extension.core._kernels_numpy"


def _forced() -> str:
    value = os.environ.get(ENV_VAR, "auto").strip().lower() or "auto"
    if value not in _CHOICES:
        raise ConfigError(f"{ENV_VAR} must be one of {', '.join(_CHOICES)}, got {value!r}")
    return value


def load(name: str) -> ModuleType:
    """The kernels module ``"numpy"`` or ``"numba"`` (numba imported only here, on demand).

    Raises:
        ConfigError: another name.
    """
    if name == "numpy":
        from cvat_extension.core import _kernels_numpy

        return _kernels_numpy
    if name == "numba":
        from cvat_extension.core import _kernels

        return _kernels
    raise ConfigError(f"kernels must be 'numpy' or 'numba', got {name!r}")


def uses_numba(rows: int) -> bool:
    """Whether a run over ``rows`` visible boxes uses the numba kernels."""
    forced = _forced()
    if forced != "auto":
        return forced == "numba"
    return rows >= NUMBA_MIN_ROWS


def kernels_for(rows: int) -> ModuleType:
    """The kernels module for a run over ``rows`` visible boxes (numpy below the threshold)."""
    return load("numba" if uses_numba(rows) else "numpy")


def match_kernels_for(pairs: Callable[[], int], run: ModuleType | None = None) -> ModuleType:
    """The module whose ``match_frames`` scores a detections' match.

    numba when the run's kernels ``run`` are numba's (its start is paid already) or when
    ``pairs()`` (the same-frame box pairs, counted only when needed) reaches
    :data:`NUMBA_MIN_PAIRS`; the numpy twin otherwise.
    """
    forced = _forced()
    if forced != "auto":
        return load(forced)
    if run is not None and getattr(run, "__name__", None) != _NUMPY_MODULE:
        return run  # numba's (or a caller's own module): its start is paid already
    return load("numba" if pairs() >= NUMBA_MIN_PAIRS else "numpy")
