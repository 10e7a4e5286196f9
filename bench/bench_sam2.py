"""SAM2 propagation: our in-memory path vs the stock sam2 video predictor, same frames.

Reference: ``predictor.init_state(<JPEG folder>)`` + ``add_new_points_or_box`` +
``propagate_in_video``, i.e. what sam2's README does. Ours: ``Sam2VideoPropagator`` on
decoded in-memory frames (what ``cvat-track propagate`` and the CVAT loop use). Both run
the same randomly initialised model (speed does not depend on the weights), on the real
bedroom frames (Apache-2.0). Also measured: peak RSS growth per tracked object.

The machine is shared, so runs are interleaved reference/ours/reference/ours (ABAB, the
order of each pair alternating) and the reported figure is the **median of the per-pair
ratios**: load from other processes hits both members of a pair alike and cancels in the
ratio, where a ratio of minima or means would carry it. Wall time and the process's CPU
time are both reported: CPU time leaves out the time our threads wait while other processes
hold the cores (it still counts OpenMP spin-waiting), so when the two medians agree the
ratio is not an artefact of the load.

    OMP_NUM_THREADS=2 python bench/bench_sam2.py --frames 8 --image-size 256 --objects 1 2 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from cvat_extension.models.sam2_video import (
    ObjectPrompt,
    Sam2Settings,
    Sam2VideoPropagator,
    load_predictor,
)

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "bedroom"
BOXES = [(380, 60, 560, 440), (600, 100, 760, 460), (100, 200, 300, 500)]


os.environ.setdefault("TQDM_DISABLE", "1")  # sam2's progress bars would flood the output


def _timed(fn: Callable[..., object], *args: object) -> tuple[float, float]:
    """(wall seconds, process CPU seconds) of one call."""
    w, c = time.perf_counter(), time.process_time()
    fn(*args)
    return time.perf_counter() - w, time.process_time() - c


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _reference(predictor, folder: str, n_obj: int) -> float:
    import torch

    t = time.perf_counter()
    with torch.inference_mode():
        state = predictor.init_state(folder)
        for i in range(n_obj):
            predictor.add_new_points_or_box(state, 0, i + 1, box=np.asarray(BOXES[i], np.float32))
        for _fidx, _ids, logits in predictor.propagate_in_video(state):
            _ = (logits[:, 0] > 0).cpu().numpy()
    return time.perf_counter() - t


def _ours(prop: Sam2VideoPropagator, frames: list[np.ndarray], n_obj: int) -> float:
    t = time.perf_counter()
    out = prop.propagate(frames, 0, [ObjectPrompt(i + 1, box_xyxy=BOXES[i]) for i in range(n_obj)])
    for o in out.values():
        _ = o.xyxy
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--objects", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=9, help="ABAB pairs per object count")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    settings = Sam2Settings(image_size=args.image_size, device=args.device, allow_random_weights=True)
    predictor = load_predictor(settings)
    prop = Sam2VideoPropagator(settings, predictor=predictor)
    paths = sorted(DATA.glob("*.jpg"))[: args.frames]
    frames = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
    tmp = tempfile.mkdtemp()
    for i, p in enumerate(paths):
        shutil.copy(p, Path(tmp) / f"{i:05d}.jpg")
    print(f"SAM2.1-tiny random weights, {args.frames} frames {frames[0].shape[1]}x{frames[0].shape[0]}, "
          f"image size {args.image_size}, device {args.device}")
    _ours(prop, frames[:2], 1)  # warm-up
    print(f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, {args.repeats} ABAB pairs per row")
    _reference(predictor, tmp, 1)  # warm-up of the reference path too
    for n in args.objects:
        ref: list[tuple[float, float]] = []
        our: list[tuple[float, float]] = []
        for i in range(args.repeats):
            # ABAB with alternating order inside the pair, so neither side always runs second
            if i % 2 == 0:
                ref.append(_timed(_reference, predictor, tmp, n))
                our.append(_timed(_ours, prop, frames, n))
            else:
                our.append(_timed(_ours, prop, frames, n))
                ref.append(_timed(_reference, predictor, tmp, n))
        for k, what in ((0, "wall"), (1, "cpu ")):
            ratios = [o[k] / r[k] for o, r in zip(our, ref)]
            # Fastest run of each side: the least disturbed one (medians of raw times mix
            # loaded and quiet runs and are not comparable between the sides).
            r_ms = 1000 * min(r[k] for r in ref) / args.frames
            o_ms = 1000 * min(o[k] for o in our) / args.frames
            q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
            print(f"objects={n} {what}: reference {r_ms:.1f} ms/frame, ours {o_ms:.1f} ms/frame (fastest); "
                  f"median pair ratio {statistics.median(ratios):.3f} (quartiles {q[0]:.3f}..{q[2]:.3f}, "
                  f"range {min(ratios):.3f}..{max(ratios):.3f})")
    # Memory per tracked object: what the interactive tracker keeps per object (stored in
    # the LRU/Redis between CVAT calls) once its memory bank is full, and the clip masks.
    from cvat_extension.models.sam2_video import Sam2StreamTracker

    tr = Sam2StreamTracker(settings, predictor=predictor)
    mem = tr.init_from_shape(tr.preprocess(frames[0]), "rectangle", list(BOXES[0]))
    for i in range(predictor.num_maskmem + 1):
        tr.track(tr.preprocess(frames[1 + i % (len(frames) - 1)]), mem)
    h, w = frames[0].shape[:2]
    print(f"tracker memory per object (full bank, {predictor.num_maskmem} frames + cond): "
          f"{len(mem.to_bytes()) / 1e6:.2f} MB; clip masks per object: {h * w / 1e6:.2f} MB/frame; "
          f"process peak RSS {_rss_mb():.0f} MB")
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
