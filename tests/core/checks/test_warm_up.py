"""The background warm-up reaches every compiled kernel with a real run's argument types,
and ``check`` starts it only for inputs that will use numba."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from cvat_extension.core import _kernels
from cvat_extension.core.checks.warm_up import (
    MIN_BYTES_PER_BOX,
    _warm_up,
    most_boxes_in,
    start_warm_up,
)
from cvat_extension.core.kernels import ENV_VAR


def _dispatchers() -> dict[str, object]:
    return {name: getattr(_kernels, name) for name in _kernels.__all__}


def test_warm_up_dispatches_every_kernel() -> None:
    """A kernel the warm-up never calls would load (or compile) on the main thread: adding
    one means giving the warm-up scene a reason to call it."""
    _warm_up(with_detections=True)
    never = [name for name, d in _dispatchers().items() if not d.signatures]  # type: ignore[attr-defined]
    assert never == []


def test_warm_up_uses_the_signatures_of_a_real_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """After the warm-up, a real check loads no new specialisation: every signature a real
    run dispatches was dispatched by the warm-up already (else it would compile one)."""
    from cvat_extension.adapters.cli._qa import run_qa
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    monkeypatch.setenv(ENV_VAR, "numba")  # the real run on numba, as a large task would be

    start_warm_up(with_detections=True).join(timeout=300)
    before = {name: set(d.signatures) for name, d in _dispatchers().items()}  # type: ignore[attr-defined]
    tracks, info = make_scene(SceneConfig(num_frames=300, num_objects=12, seed=3))
    run_qa(tracks, info, detections=tracks)
    after = {name: set(d.signatures) for name, d in _dispatchers().items()}  # type: ignore[attr-defined]
    assert after == before


def test_most_boxes_in_bounds_real_files_from_above(tmp_path, fixtures_dir) -> None:  # type: ignore[no-untyped-def]
    """The estimate is never below the boxes a file holds, on our fixtures and on files
    whose lines shorten by up to the margin (so a numba run gets its warm-up); a missing
    path counts as empty."""
    from cvat_extension.io.formats import read_tracks

    for path in sorted(fixtures_dir.rglob("*")):
        if path.suffix not in (".txt", ".xml", ".json") or not path.is_file():
            continue
        try:
            n = len(read_tracks(str(path)).tracks)
        except Exception:  # noqa: BLE001, S112 - not a tracks file
            continue
        assert most_boxes_in(path) >= n, path
    tight = tmp_path / "gt.txt"
    tight.write_text("".join(f"{f},{i},1,1,9,9\n" for f in range(1, 10) for i in range(1, 10)))
    assert tight.stat().st_size / 81 >= MIN_BYTES_PER_BOX
    assert most_boxes_in(tight) >= 81
    # longer lines first (wide boxes early in a sequence), shorter after: within the margin
    mixed = tmp_path / "mixed.txt"
    rows = [f"{f},{i},1234.56,1234.56,299.12,299.12,1,1,1\n" for f in range(1, 2000) for i in range(1, 3)]
    rows += [f"{f},{i},12.5,12.5,99.5,99.5,1,1,1\n" for f in range(1, 4000) for i in range(1, 3)]
    mixed.write_text("".join(rows))
    assert most_boxes_in(mixed) >= len(rows)
    one_line = tmp_path / "one.json"
    one_line.write_text('{"shapes": [' + ",".join(['{"frame":1,"points":[1,1,9,9]}'] * 20000) + "]}")
    assert most_boxes_in(one_line) >= 20000
    assert most_boxes_in(tmp_path / "missing.txt") == 0
    for f in ("/work/shared/data/motgt/MOT17-04/gt.txt",):
        if os.path.exists(f):
            assert 108_005 <= most_boxes_in(f) < 200_000


@pytest.mark.parametrize(("forced", "loads_numba"), [("auto", False), ("numba", True)])
def test_check_on_a_small_file_never_imports_numba(tmp_path, forced: str, loads_numba: bool) -> None:  # type: ignore[no-untyped-def]
    """A small input runs on the numpy twins: no warm-up thread, numba never imported."""

    from cvat_extension.io.mot import write_mot
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    tracks, info = make_scene(SceneConfig(num_frames=200, num_objects=8, seed=1))
    path = tmp_path / "gt.txt"
    write_mot(path, tracks)
    code = ("import sys; from cvat_extension.adapters.cli.main import main; "
            f"rc = main(['check', {str(path)!r}]); print('numba' in sys.modules, rc)")
    env = {**os.environ, ENV_VAR: forced}
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
    assert out.stdout.strip().splitlines()[-1] == f"{loads_numba} 0"
