"""Benchmark: ``cvat-track check`` end to end with the numpy twins against the numba kernels.

Where does numba's fixed start (~1 s per process: its import, target registries and the
cached machine code of the kernels) pay for its faster per-row passes? For a few task
sizes (synthetic MOT files, 50 tracks), each in fresh interpreters and measured in the
same run, it prints:

- ``check FILE --json OUT`` wall time (process start to exit) and peak RSS with
  ``CVAT_TRACK_KERNELS=numpy`` and ``=numba`` (best of ``--repeat``; the numba runs get
  the background warm-up as a real large run does), their ratio, and what ``auto`` (the
  default) picks at that size (``core/kernels.NUMBA_MIN_ROWS``);
- whether both paths wrote the same findings, review and merges (they must);
- with ``--baseline DIR`` (another checkout, e.g. the main branch's), that checkout's
  ``check`` on the same files and ``--input`` files, as the before of a change.

Usage: python bench/bench_kernels.py [--sizes 100000,300000,1000000,2000000]
       [--input FILE ...] [--baseline DIR] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

def _check(root: Path, path: Path, out: Path, kernels: str) -> tuple[float, float]:
    """(wall s, peak RSS MiB) of ``check path --json out`` from checkout ``root``.

    The child runs in a scratch directory: ``python -m`` puts the working directory first
    on ``sys.path``, which would shadow ``root``.
    """
    from _launch import run_measured

    try:
        return run_measured(["-m", "cvat_extension", "check", str(path), "--json", str(out)],
                            env={"PYTHONPATH": str(root), "CVAT_TRACK_KERNELS": kernels}, cwd=out.parent)
    except SystemExit as exc:
        raise SystemExit(f"check {path} ({root}, {kernels}): {exc}") from None


def _best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), max(r[1] for r in runs)


def _same(a: Path, b: Path) -> bool:
    x, y = json.loads(a.read_text()), json.loads(b.read_text())
    x.pop("summary", None)
    y.pop("summary", None)
    return bool(x == y)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="100000,300000,1000000,2000000",
                    help="boxes per synthetic file, comma-separated")
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--input", type=Path, nargs="*", default=[], help="also time these MOT files")
    ap.add_argument("--baseline", type=Path, help="another checkout to time on the same files")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    from bench_ingest import _make_file

    from cvat_extension.core.kernels import NUMBA_MIN_ROWS
    from cvat_extension.io.mot import read_mot

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        files = list(a.input)
        for size in (int(s) for s in a.sizes.split(",") if s):
            path = tmpd / f"synthetic_{size}.txt"
            _make_file(path, max(2, size // a.tracks), a.tracks)
            files.append(path)
        print(f"auto uses numba from {NUMBA_MIN_ROWS:,} visible boxes; best of {a.repeat}, fresh processes")
        head = f"{'file':<22} {'boxes':>9}  {'numpy s':>8} {'MiB':>5}  {'numba s':>8} {'MiB':>5}  {'numba/numpy':>11}  auto"
        if a.baseline:
            head += f"  {'baseline s':>10} {'MiB':>5}  {'auto/baseline':>13}"
        print(head)
        for path in files:
            boxes = len(read_mot(path)[0])
            outs = {k: tmpd / f"{path.stem}.{k}.json" for k in ("numpy", "numba", "base")}
            runs: dict[str, list[tuple[float, float]]] = {"numpy": [], "numba": [], "base": []}
            for _ in range(a.repeat):  # interleaved: the machine's load drifts
                for k in ("numpy", "numba"):
                    runs[k].append(_check(ROOT, path, outs[k], k))
                if a.baseline:
                    runs["base"].append(_check(a.baseline, path, outs["base"], "auto"))
            (w_np, m_np), (w_nb, m_nb) = _best(runs["numpy"]), _best(runs["numba"])
            auto = "numba" if boxes >= NUMBA_MIN_ROWS else "numpy"
            label = f"{path.parent.name}/{path.name}" if path.name == "gt.txt" else path.name
            line = (f"{label[:22]:<22} {boxes:>9,}  {w_np:8.2f} {m_np:5.0f}  {w_nb:8.2f} {m_nb:5.0f}  "
                    f"{w_nb / w_np:11.2f}  {auto}")
            same = _same(outs["numpy"], outs["numba"])
            if a.baseline:
                w_b, m_b = _best(runs["base"])
                w_auto = w_nb if auto == "numba" else w_np
                line += f"  {w_b:10.2f} {m_b:5.0f}  {w_auto / w_b:13.2f}"
                same = same and _same(outs["numpy"], outs["base"])
            ok = ok and same
            print(line + ("" if same else "  FINDINGS DIFFER"), flush=True)
    print(f"findings identical: {ok}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
