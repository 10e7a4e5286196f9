"""Rendering review videos: drawing and H.264 encoding of 1080p frames with 50 tracks.

Why: ``cvat-track render`` must keep up with 1080p sequences (target: at least 30 frames/s
of encoding on 2 cores, i.e. a 1,000-frame sequence in about half a minute). It has two
costs: drawing (Pillow, this process) and encoding (libx264 through either backend of
``cvat_extension/dataset/encode.py``). This prints, measured in the same run on the same
frames:

- ``encode only``: undrawn frames through each backend (the ceiling for that backend: the
  reference the other rows are divided by);
- ``draw only``: :class:`TrackPainter` without encoding;
- ``render``: both, as the command runs them, per backend, and its ratio to the encode-only
  reference;

and says which backend is faster here. Frames are a real 1080p MOT17-04 frame (from
``../shared/data/MOT17-mini``, shifted a few pixels each frame so that the encoder sees
motion) or, without the shared data, a textured canvas; 50 synthetic tracks move across it,
a fifth of them occluded (dashed), with trails.

Run: ``python bench/bench_render.py [--frames 1000] [--tracks 50] [--preset ultrafast]``
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _background() -> tuple[np.ndarray, str]:
    # ../shared beside the checkout; a git worktree sits one level deeper.
    rel = Path("shared/data/MOT17-mini/train/MOT17-04-FRCNN/img1/000001.jpg")
    img = next((p for p in (ROOT.parent / rel, ROOT.parent.parent / rel) if p.is_file()), ROOT / rel)
    if img.is_file():
        from PIL import Image

        with Image.open(img) as im:
            return np.asarray(im.convert("RGB")), f"real frame {img.name} of MOT17-04"
    rng = np.random.default_rng(0)
    small = rng.integers(0, 255, (135, 240, 3), dtype=np.uint8)
    return small.repeat(8, 0).repeat(8, 1), "textured canvas (no shared data)"


def _tracks(n_frames: int, n_tracks: int) -> object:
    from cvat_extension.core.tracks import Tracks

    rng = np.random.default_rng(1)
    frame = np.tile(np.arange(n_frames), n_tracks)
    tid = np.repeat(np.arange(1, n_tracks + 1), n_frames)
    x0 = rng.uniform(0, 1700, n_tracks).repeat(n_frames)
    y0 = rng.uniform(100, 800, n_tracks).repeat(n_frames)
    vx = rng.uniform(-2, 2, n_tracks).repeat(n_frames)
    x = (x0 + vx * frame) % 1700
    w = rng.uniform(40, 160, n_tracks).repeat(n_frames)
    xyxy = np.stack([x, y0, x + w, y0 + 2.5 * w], axis=1)
    occluded = (tid % 5 == 0)
    return Tracks.from_columns(frame=frame, track_id=tid, xyxy=xyxy, occluded=occluded)


def _frames(bg: np.ndarray, n: int):
    for f in range(n):
        yield f, np.roll(bg, 2 * (f % 50), axis=1)


def _cpu() -> float:
    """CPU seconds of this process and its finished children (the ffmpeg encoder)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1000)
    ap.add_argument("--tracks", type=int, default=50)
    ap.add_argument("--preset", default="ultrafast")
    args = ap.parse_args()
    from cvat_extension.dataset.encode import Encoder, open_video_writer
    from cvat_extension.dataset.render import TrackPainter, render_frames

    bg, what = _background()
    h, w = bg.shape[:2]
    tracks = _tracks(args.frames, args.tracks)
    painter = TrackPainter(tracks)
    print(f"{args.frames} frames {w}x{h} ({what}), {args.tracks} tracks, preset {args.preset}, "
          f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f}")
    tmp = Path(tempfile.mkdtemp())
    t, c = time.perf_counter(), _cpu()
    for f, im in _frames(bg, args.frames):
        painter.draw(f, im)
    draw_fps = args.frames / (time.perf_counter() - t)
    print(f"draw only            {draw_fps:7.1f} frames/s ({1000 * (_cpu() - c) / args.frames:.1f} CPU-ms/frame)")
    results = {}
    for enc in Encoder:
        path = tmp / f"{enc.value}.mp4"
        writer = open_video_writer(path, (w, h), 30, encoder=enc, preset=args.preset)
        t = time.perf_counter()
        for _, im in _frames(bg, args.frames):
            writer.write(im)
        writer.close()
        ref = args.frames / (time.perf_counter() - t)
        writer = open_video_writer(path, (w, h), 30, encoder=enc, preset=args.preset)
        t, c = time.perf_counter(), _cpu()
        render_frames(painter, _frames(bg, args.frames), [writer])
        writer.close()
        fps = args.frames / (time.perf_counter() - t)
        cpu_ms = 1000 * (_cpu() - c) / args.frames
        results[enc] = fps
        size = path.stat().st_size / 1e6
        print(f"{enc.value:7s} encode only {ref:7.1f} frames/s | render {fps:7.1f} frames/s "
              f"({fps / ref:.2f}x of encode only; {size:.1f} MB, {8 * size / (args.frames / 30):.1f} Mbit/s); "
              f"{cpu_ms:.1f} CPU-ms/frame = at most {2000 / cpu_ms:.1f} frames/s on 2 idle cores")
    best = max(results, key=results.__getitem__)
    other = min(results, key=results.__getitem__)
    print(f"faster backend here: {best.value} ({results[best] / results[other]:.2f}x {other.value}); "
          f"target 30 frames/s: {'met' if results[best] >= 30 else 'NOT met'} ({results[best]:.1f})")


if __name__ == "__main__":
    main()
