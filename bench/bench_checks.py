"""Benchmark: every QA check on a 100k-frame x 50-track task.

Prints box-frames per second of ``run_checks`` twice: the track-only checks, and all checks
with detections (ghost support and missing_object match every box against ~4.5 M
detections); no frames, so appearance_jump is skipped (it is bound by image decoding).
Peak memory is measured with tracemalloc on the run with detections. Compared against a plain per-track Python loop of
the consecutive-frame IoU check measured in the same run (on a subset of tracks, scaled per
box-frame), and the ratio.

Usage: OMP_NUM_THREADS=2 python bench/bench_checks.py [--frames 100000] [--tracks 50]
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from cvat_extension.core.checks import CHECKS, run_checks  # noqa: E402
from cvat_extension.core.checks._common import prepare  # noqa: E402
from cvat_extension.core.tracks import Tracks  # noqa: E402
from cvat_extension.synthetic.inject import inject_errors, make_detections  # noqa: E402
from cvat_extension.synthetic.scene import SceneConfig, make_scene  # noqa: E402


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--loop-tracks", type=int, default=10, help="tracks timed in the Python loop")
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()

    t0 = time.perf_counter()
    gt, info = make_scene(SceneConfig(num_frames=a.frames, num_objects=a.tracks, seed=0,
                                      entry_exit_fraction=0.0, compute_visibility=False))
    tracks, truth = inject_errors(gt, kinds=["id_switch", "ghost", "box_jump", "size_jump"],
                                  count_per_kind=5, seed=0, info=info)
    det = make_detections(gt, miss_rate=0.1, fp_rate=0.5, seed=0, info=info)
    n = len(tracks)
    print(f"task: {a.frames} frames x {a.tracks} tracks = {n:,} box-frames, "
          f"{len(det):,} detections (built in {time.perf_counter() - t0:.1f}s)")

    def timed(**kw: object) -> tuple[float, int]:
        best, count = float("inf"), 0
        for _ in range(a.repeat):
            prepare.cache_clear()
            t = time.perf_counter()
            count = len(run_checks(tracks, info=info, **kw))  # type: ignore[arg-type]
            best = min(best, time.perf_counter() - t)
        return best, count

    t_tracks, n_tracks = timed()
    t_all, n_all = timed(detections=det)
    rate = n / t_tracks
    print(f"run_checks, track-only checks (no detections/frames), best of {a.repeat}: "
          f"{t_tracks:.3f}s = {rate / 1e6:.2f} M box-frames/s, {n_tracks} findings")
    print(f"run_checks, all checks with detections (ghost support, missing_object): "
          f"{t_all:.3f}s = {n / t_all / 1e6:.2f} M box-frames/s, {n_all} findings")

    for name in CHECKS:
        prepare.cache_clear()
        prepare(tracks)
        t = time.perf_counter()
        run_checks(tracks, detections=det, info=info, only=[name])
        print(f"  {name:16s} {time.perf_counter() - t:.3f}s (shared preparation excluded)")
    prepare.cache_clear()
    t = time.perf_counter()
    prepare(tracks)
    print(f"  {'(preparation)':16s} {time.perf_counter() - t:.3f}s")

    prepare.cache_clear()
    tracemalloc.start()
    run_checks(tracks, detections=det, info=info)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    prepare.cache_clear()
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak memory allocated by run_checks: {peak / 2**20:.0f} MiB "
          f"(process max RSS incl. scene and inputs: {rss:.0f} MiB)")

    sub = tracks[tracks.track_id <= sorted(tracks.ids)[a.loop_tracks - 1]]
    t = time.perf_counter()
    python_loop_iou_check(sub)
    loop_s = time.perf_counter() - t
    loop_rate = len(sub) / loop_s
    print(f"reference per-track Python IoU loop: {len(sub):,} box-frames in {loop_s:.2f}s = "
          f"{loop_rate / 1e6:.2f} M box-frames/s")
    print(f"ratio, track-only checks vs the Python IoU loop alone: {rate / loop_rate:.1f}x; "
          f"all checks with detections vs it: {n / t_all / loop_rate:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
