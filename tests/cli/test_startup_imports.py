"""What ``cvat-track`` imports before it does any work (issue 13: ``check`` starts fast)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cvat_extension.adapters.cli.main import _named_command, build_parser

HEAVY = ("scipy", "numba", "pyarrow", "torch", "matplotlib", "cvat_sdk", "aiohttp")


def test_full_parser_imports_nothing_heavy() -> None:
    code = ("import sys\n"
            "from cvat_extension.adapters.cli.main import build_parser\n"
            "build_parser()\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_check_on_tracks_alone_skips_scipy_optimize_and_sparse(tmp_path: Path) -> None:
    """The assignment solver and the sparse graph load only when a merge or detections need
    them (each costs 0.1-0.6 s to import)."""
    mot = tmp_path / "gt.txt"
    mot.write_text("".join(f"{f},{t},{10 * t + f},20,10,30,1,1,1\n" for f in range(1, 40) for t in (1, 2)))
    code = ("import sys\n"
            "from cvat_extension.adapters.cli.main import main\n"
            f"assert main(['check', {str(mot)!r}]) == 0\n"
            "print(sorted(m for m in ('scipy.optimize', 'scipy.sparse') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout + out.stderr


@pytest.mark.parametrize(("argv", "expected"), [
    (["check", "x.txt"], "check"),
    (["-v", "check", "x.txt"], "check"),
    (["-vv", "merge"], "merge"),
    (["serve-functions", "--help"], "serve_functions"),
    (["chek", "x.txt"], None),  # misspelt: the full parser names the choices
    (["--help"], None),
    ([], None),
])
def test_named_command(argv: list[str], expected: str | None) -> None:
    assert _named_command(argv) == expected


def test_single_command_parser_gives_the_same_help_as_the_full_one() -> None:
    full = build_parser()._subparsers._group_actions[0].choices["check"].format_help()  # noqa: SLF001
    alone = build_parser("check")._subparsers._group_actions[0].choices["check"].format_help()  # noqa: SLF001
    assert alone == full
