"""A command that fails on its input exits 2 with one line, even while kernels load behind it.

``check`` starts loading numba's kernels on a thread before it reads a large input; a
daemon thread stopped inside numba's compiler at interpreter exit aborted the process
(exit 134, "terminate called without an active exception") instead of the promised exit 2.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cvat_extension.core.checks.warm_up import start_warm_up


@pytest.mark.parametrize("seqinfo", ["[Sequence]\nseqLength=99999999999999999999\n", "[Sequence]\nframeRate=nan\n"])
def test_bad_seqinfo_beside_a_large_input_exits_2_with_one_line(tmp_path: Path, seqinfo: str) -> None:
    (tmp_path / "gt").mkdir()
    rows = "".join(f"{t},{t * 30},40,20,50,1,1,1\n" for t in range(1, 201))
    # 600 k boxes: enough that check loads the compiled kernels while it reads.
    (tmp_path / "gt" / "gt.txt").write_text("".join(f"{f}," + r for f in range(1, 3001) for r in rows.splitlines(True)))
    (tmp_path / "seqinfo.ini").write_text(seqinfo)
    proc = subprocess.run([sys.executable, "-m", "cvat_extension", "check", str(tmp_path / "gt" / "gt.txt")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "seqinfo.ini" in lines[0], proc.stderr


def test_warm_up_thread_is_not_a_daemon() -> None:
    thread = start_warm_up()
    assert not thread.daemon
    thread.join(timeout=300)
