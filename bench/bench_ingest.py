"""Benchmark: ``cvat-track check`` end to end on a 1 M-box MOT file, against the old ingest path.

Prints, measured in the same run on the same file:

- parsing alone (MOT CSV → validated ``Tracks``), best of ``--repeat``: the reference reader
  (the one ``check`` used before issue 13: ``numpy.loadtxt`` after a Python pass over every
  line to drop blanks and comments, kept below as :func:`reference_read_mot`) against
  :func:`cvat_extension.io.mot.read_mot` (Arrow's CSV reader, vectorised validation, line
  numbers computed only for an error);
- end to end, each in a fresh interpreter (best of ``--repeat``), wall time from process start to exit (imports,
  parse, every check, merge proposals, review plan, JSON written) and peak RSS of that
  process (``os.wait4`` in a small launcher, see ``bench/_launch.py``): the reference child (the old reader, then the same ``run_qa`` and
  JSON) against ``python -m cvat_extension check FILE --json OUT``;
- boxes per second for both and their ratio, and whether the two JSON documents list the same
  findings (they must).

The file is a synthetic 20 000-frame x 50-object scene with injected errors (``--frames``,
``--tracks``), written with our MOT writer, or ``--input FILE``.

Usage: python bench/bench_ingest.py [--frames 20000] [--tracks 50] [--input FILE] [--repeat 3]
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def reference_read_mot(path: str | Path):  # type: ignore[no-untyped-def]
    """The MOT reader as it was before issue 13 (same checks and errors, slower parse)."""
    from cvat_extension.core.geometry import xywh_to_xyxy
    from cvat_extension.core.tracks import SequenceInfo, Tracks
    from cvat_extension.errors import AnnotationFormatError
    from cvat_extension.io.mot import _class_name, _class_names, _seqinfo

    p = Path(path)
    text = p.read_text(encoding="utf-8")
    lines = text.splitlines()
    keep = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    body = "\n".join(lines[i] for i in keep)
    arr = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
    vals = np.full((len(arr), 9), np.nan)
    vals[:, 6:9] = (1.0, -1.0, 1.0)
    m = min(arr.shape[1], 9)
    vals[:, :m] = arr[:, :m]
    line_no = np.asarray(keep, dtype=np.int64) + 1
    for mask, msg in (
        (~np.isfinite(vals).all(axis=1), "NaN or infinite value"),
        (vals[:, 0] != np.round(vals[:, 0]), "frame must be an integer"),
        (vals[:, 0] < 1, "frame must be >= 1"),
        ((vals[:, 4] < 0) | (vals[:, 5] < 0), "negative box width or height"),
        (vals[:, 1] != np.round(vals[:, 1]), "id must be an integer"),
    ):
        if mask.any():
            raise AnnotationFormatError(msg, path=p, line=int(line_no[int(np.flatnonzero(mask)[0])]))
    frame = vals[:, 0].astype(np.int64) - 1
    tid = vals[:, 1].astype(np.int64)
    order = np.lexsort((line_no, frame, tid))
    dup = (tid[order][1:] == tid[order][:-1]) & (frame[order][1:] == frame[order][:-1])
    if dup.any():
        raise AnnotationFormatError("duplicate box", path=p)
    cls = vals[:, 7].astype(np.int64)
    names = _class_names(p)
    uniq = np.unique(cls)
    tracks = Tracks.from_columns(
        frame=frame, track_id=tid, xyxy=xywh_to_xyxy(vals[:, 2:6]),
        label=np.searchsorted(uniq, cls).astype(np.int32),
        visibility=np.clip(vals[:, 8], 0.0, 1.0).astype(np.float32),
        score=vals[:, 6].astype(np.float32),
        labels=tuple(_class_name(int(c), names) for c in uniq) or ("pedestrian",),
        data={"mot_class": cls},
    )
    info = _seqinfo(p)
    if not info.num_frames and len(frame):
        info = SequenceInfo(num_frames=int(frame.max()) + 1, frame_base=1, name=info.name)
    return tracks, info


def _reference_child(path: str, out: str) -> None:
    """Today's ``check`` before issue 13: every command module imported, old reader, same QA."""
    from cvat_extension.adapters.cli import main as cli_main
    from cvat_extension.adapters.cli._inputs import write_json
    from cvat_extension.adapters.cli._qa import run_qa

    cli_main.build_parser()  # the old CLI imported every subcommand module up front, too
    tracks, info = reference_read_mot(path)
    result = run_qa(tracks, info)
    result.summary["input"] = path
    result.summary["format"] = "mot"
    write_json(out, result.to_json(info.frame_base))


def _run_child(argv: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MiB) of one fresh interpreter running ``argv``."""
    from _launch import run_measured

    return run_measured(argv, env={"PYTHONPATH": str(ROOT)})


def _make_file(path: Path, frames: int, tracks: int) -> int:
    from cvat_extension.io.mot import write_mot
    from cvat_extension.synthetic.inject import inject_errors
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    gt, info = make_scene(SceneConfig(num_frames=frames, num_objects=tracks, seed=0,
                                      entry_exit_fraction=0.0, compute_visibility=False))
    bad, _truth = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                                count_per_kind=5, seed=0, info=info)
    write_mot(path, bad, info=info)
    return len(bad)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--reference-child":
        _reference_child(sys.argv[2], sys.argv[3])
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=20_000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--input", type=Path, help="use this MOT file instead of a synthetic one")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    from cvat_extension.io.mot import read_mot

    with tempfile.TemporaryDirectory() as tmp:
        src = a.input or Path(tmp) / "tracks.txt"
        if a.input is None:
            t0 = time.perf_counter()
            _make_file(src, a.frames, a.tracks)
            print(f"wrote {src.stat().st_size / 2**20:.0f} MiB in {time.perf_counter() - t0:.1f} s")
        boxes = len(read_mot(src)[0])
        print(f"file: {boxes:,} boxes, {src.stat().st_size / 2**20:.0f} MiB")

        def best(fn):  # type: ignore[no-untyped-def]
            times = []
            for _ in range(a.repeat):
                t0 = time.perf_counter()
                fn()
                times.append(time.perf_counter() - t0)
            return min(times)

        t_ref = best(lambda: reference_read_mot(src))
        t_new = best(lambda: read_mot(src))
        print(f"parse + validate   reference {t_ref:6.2f} s ({boxes / t_ref / 1e6:.2f} M boxes/s)   "
              f"new {t_new:6.2f} s ({boxes / t_new / 1e6:.2f} M boxes/s)   speed-up x{t_ref / t_new:.1f}")

        ref_json, new_json = Path(tmp) / "ref.json", Path(tmp) / "new.json"
        # Best wall time of --repeat runs each (the machine's noise is one-sided); peak RSS of
        # the same runs (it hardly varies).
        ref_runs = [_run_child([str(Path(__file__).resolve()), "--reference-child", str(src), str(ref_json)])
                    for _ in range(a.repeat)]
        new_runs = [_run_child(["-m", "cvat_extension", "check", str(src), "--json", str(new_json)])
                    for _ in range(a.repeat)]
        w_ref, rss_ref = min(r[0] for r in ref_runs), max(r[1] for r in ref_runs)
        w_new, rss_new = min(r[0] for r in new_runs), max(r[1] for r in new_runs)
        print(f"check end to end   reference {w_ref:6.2f} s ({boxes / w_ref / 1e6:.2f} M boxes/s, "
              f"peak RSS {rss_ref:.0f} MiB)   new {w_new:6.2f} s ({boxes / w_new / 1e6:.2f} M boxes/s, "
              f"peak RSS {rss_new:.0f} MiB)   speed-up x{w_ref / w_new:.2f}")
        ref = json.loads(ref_json.read_text())
        new = json.loads(new_json.read_text())
        same = ref["findings"] == new["findings"] and ref["review"] == new["review"]
        print(f"findings identical: {same} ({len(new['findings'])} findings, "
              f"{len(new['review'])} review items)")
        return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
