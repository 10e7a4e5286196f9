"""Wall time and peak memory of one fresh interpreter, measured honestly (benchmarks only).

The measured child is started from a small launcher interpreter, not from the benchmark:
Linux keeps ``ru_maxrss`` across ``exec``, so a child forked from a benchmark holding a
parsed million-box file reported the benchmark's memory (918 MiB) as its own.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

__all__ = ["run_measured"]

#: Runs argv[1:] and prints its exit code, peak RSS (KiB) and wall seconds.
_LAUNCHER = (
    "import os, subprocess, sys, time\n"
    "t0 = time.perf_counter()\n"
    "p = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_pid, status, usage = os.wait4(p.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss, time.perf_counter() - t0)\n"
)


def run_measured(argv: list[str], *, env: dict[str, str] | None = None,
                 cwd: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of ``python argv...`` in a fresh interpreter.

    Raises:
        SystemExit: the child failed (its exit code is named).
    """
    res = subprocess.run([sys.executable, "-c", _LAUNCHER, sys.executable, *argv],
                         env={**os.environ, **(env or {})}, capture_output=True, text=True, check=True, cwd=cwd)
    code, rss_kib, wall = res.stdout.split()
    if int(code) != 0:
        raise SystemExit(f"child {argv} failed with exit code {code}")
    return float(wall), int(rss_kib) / 1024
