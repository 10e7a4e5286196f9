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
real run has it), both paths in the same run, synthetic MOT files of 50 tracks, 2 shared
cores, best of 2:

=========  ========  ========  ===========
boxes      numpy s   numba s   numba/numpy
=========  ========  ========  ===========
100 k      1.08      2.35      2.17
500 k      1.62      2.63      1.62
1 M        2.56      2.96      1.16
2 M        3.88      4.13      1.07
4 M        8.05      7.40      0.92
=========  ========  ========  ===========

In process, with the kernels already loaded, the numpy twins take ~0.8 s per million
boxes (prepare, checks, merge) against numba's ~0.4 s, so numba's ~1 s start is repaid
from about 2.5-3 M boxes; the numpy path also peaks lower (436 against 552 MiB on 1 M).
The detections' match costs ~40 ns per same-frame pair in numpy against ~5 ns in numba:
break-even about 25 M pairs (e.g. 500 k boxes among 50 detections a frame).

The detections' match costs per same-frame *pair*, not per row, so it chooses by its own
size (:func:`match_kernels_for`); both implementations give identical results, so the
choice changes time only.

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
#: start included (measured break-even 2.5-3 M boxes; see the module docstring).
NUMBA_MIN_ROWS = 3_000_000
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
