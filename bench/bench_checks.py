"""Benchmark: every QA check on a 100k-frame x 50-track task, speed and peak memory.

Prints, for ``run_checks`` on about 5 M box-frames:

- box-frames per second of the shared preparation, of the shared detection match, and of
  each check (given both, one thread; the kernels are compiled before timing), and of the whole ``run_checks`` call on one and on two threads:
  track-only (no detections, no frames), and with ~4.5 M detections (ghost support and missing_object match every box against them);
  no frames, so appearance_jump is skipped (it is bound by image decoding);
- the reference: a plain per-track Python loop of the consecutive-frame IoU check, timed in
  the same run (on a subset of tracks, per box-frame), and the ratio to it;
- peak memory as a user sees it: ``run_checks`` in a fresh subprocess that only loads the
  inputs (``run_checks`` defaults, two threads), with the RSS high-water mark (``VmHWM``, reset after loading through
  ``/proc/self/clear_refs``; ``resource.getrusage`` off Linux) before and after the call,
  and, in another fresh subprocess, the peak of Python allocations during the call
  (tracemalloc; numpy reports its buffers to it).

Usage: OMP_NUM_THREADS=2 python bench/bench_checks.py [--frames 100000] [--tracks 50]
"""

from __future__ import annotations

import argparse
import json
import pickle
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cvat_extension.core.checks import CHECKS, ChecksConfig, run_checks
from cvat_extension.core.checks._common import prepare
from cvat_extension.core.checks._matching import match_detections
from cvat_extension.core.tracks import Tracks


def python_loop_iou_check(tracks: Tracks, min_iou: float = 0.5) -> int:
    """Reference: per track, per consecutive pair, IoU in plain Python; count breaks."""
    flagged = 0
    for _, t in tracks.iter_tracks():
        boxes = t.xyxy.tolist()
        frames = t.frame.tolist()
        for k in range(1, len(boxes)):
            if frames[k] != frames[k - 1] + 1:
                continue
            a, b = boxes[k - 1], boxes[k]
            iw = min(a[2], b[2]) - max(a[0], b[0])
            ih = min(a[3], b[3]) - max(a[1], b[1])
            inter = iw * ih if iw > 0 and ih > 0 else 0.0
            union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
            if union > 0 and inter / union < min_iou:
                flagged += 1
    return flagged


def _peak_rss_kib() -> int:
    """The process's RSS high-water mark in KiB.

    ``VmHWM`` where Linux has it: ``getrusage``'s ``ru_maxrss`` survives ``exec`` and would
    report the parent's peak (the bench itself holds the scene), and ``clear_refs`` cannot
    reset it. Elsewhere ``ru_maxrss``.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def _memory_child(path: str, mode: str, with_detections: bool) -> None:
    """Run in a fresh interpreter: load the inputs, run all checks once, print JSON."""
    import tracemalloc

    with open(path, "rb") as fh:
        tracks, det, info = pickle.load(fh)
    det = det if with_detections else None
    del fh
    # Unpickling peaks at twice the inputs; reset the high-water mark (Linux) to the RSS now.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = _peak_rss_kib()
    if mode == "tracemalloc":
        tracemalloc.start()
    t = time.perf_counter()
    run_checks(tracks, detections=det, info=info)
    secs = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1] if mode == "tracemalloc" else 0
    after = _peak_rss_kib()
    print(json.dumps({"rss_before_kib": before, "rss_after_kib": after, "traced_peak": peak,
                      "seconds": secs}))


def _measure_memory(path: str, mode: str, with_detections: bool) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", path, mode, "1" if with_detections else "0"],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _memory_child(sys.argv[2], sys.argv[3], sys.argv[4] == "1")
        return 0
    from cvat_extension.synthetic.inject import inject_errors, make_detections
    from cvat_extension.synthetic.scene import SceneConfig, make_scene

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--loop-tracks", type=int, default=10, help="tracks timed in the Python loop")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    t0 = time.perf_counter()
    gt, info = make_scene(SceneConfig(num_frames=a.frames, num_objects=a.tracks, seed=0,
                                      entry_exit_fraction=0.0, compute_visibility=False))
    tracks, _truth = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                                   count_per_kind=5, seed=0, info=info)
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=0, info=info)
    del gt
    n = len(tracks)
    print(f"task: {a.frames} frames x {a.tracks} tracks = {n:,} box-frames, "
          f"{len(det):,} detections (built in {time.perf_counter() - t0:.1f}s)")

    result: list[object] = []

    def best_of(fn: object) -> float:
        """Best wall time of ``a.repeat`` calls; the last call's result goes to ``result``."""
        best = float("inf")
        for _ in range(a.repeat):
            t = time.perf_counter()
            out = fn()  # type: ignore[operator]
            best = min(best, time.perf_counter() - t)
        result[:] = [out]
        return best

    # The reference first, so that both sides see the same machine state.
    sub = tracks[tracks.track_id <= sorted(tracks.ids)[a.loop_tracks - 1]]
    loop_s = best_of(lambda: python_loop_iou_check(sub))
    loop_rate = len(sub) / loop_s
    print(f"reference per-track Python IoU loop: {len(sub):,} box-frames in {loop_s:.2f}s = "
          f"{loop_rate / 1e6:.3f} M box-frames/s")

    cfg = ChecksConfig()
    prep_s = best_of(lambda: prepare(tracks))
    prepared = prepare(tracks)
    match_s = best_of(lambda: match_detections(prepared, det, cfg.ghost.min_det_score))
    matched = result[0]
    print(f"best of {a.repeat}, box-frames/s (and ratio to the reference loop):")
    print(f"  {'(preparation)':16s} {prep_s:7.3f}s {n / prep_s / 1e6:8.2f} M/s")
    print(f"  {'(detection match)':16s} {match_s:7.3f}s {n / match_s / 1e6:8.2f} M/s  "
          "(shared by ghost and missing_object; not in their times below)")
    for name, spec in CHECKS.items():
        if "frames" in spec.needs:
            print(f"  {name:16s}  skipped (needs frames)")
            continue
        s = best_of(lambda spec=spec, name=name: spec.func(
            tracks, getattr(cfg, name), detections=det, info=info, prepared=prepared,
            matched=matched))
        print(f"  {name:16s} {s:7.3f}s {n / s / 1e6:8.2f} M/s {n / s / loop_rate:8.1f}x")
    for label, kw in (("track-only checks (no detections)", {}),
                      ("all checks with detections", {"detections": det})):
        for workers in (1, 2):
            secs = best_of(lambda kw=kw, workers=workers: run_checks(
                tracks, info=info, workers=workers, **kw))
            rate = n / secs
            print(f"run_checks total, {label}, {workers} thread(s): {secs:.3f}s = "
                  f"{rate / 1e6:.2f} M box-frames/s, {rate / loop_rate:.1f}x the reference loop, "
                  f"{len(result[0])} findings")  # type: ignore[arg-type]

    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "inputs.pkl")
        with open(path, "wb") as fh:
            pickle.dump((tracks, det, info), fh, protocol=pickle.HIGHEST_PROTOCOL)
        for with_det in (False, True):
            rss = _measure_memory(path, "rss", with_det)
            tm = _measure_memory(path, "tracemalloc", with_det)
            what = "with detections" if with_det else "track-only"
            print(f"peak memory, {what}, fresh process: max RSS {rss['rss_after_kib'] / 1024:.0f} MiB "
                  f"(inputs loaded: {rss['rss_before_kib'] / 1024:.0f} MiB, so run_checks adds "
                  f"{(rss['rss_after_kib'] - rss['rss_before_kib']) / 1024:.0f} MiB); "
                  f"tracemalloc peak during run_checks {tm['traced_peak'] / 2**20:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
