"""Reading a CVAT video task: mp4 chunks vs one request per frame (calls, seconds, fidelity).

Why: ``cvat-track annotate`` must read every frame of a task. Per frame, each frame is one
HTTP request and one PNG encode on the server and decode on the client; by chunk, one request
serves ``chunk_size`` frames and the client decodes an mp4 (``video_chunks``). This prints
both, measured in the same run on the same task, and the ratio.

What runs, in one process, against the CVAT stand-in (``tests/cvat_standin``, a real HTTP
server on loopback driven through cvat-sdk 2.80; its mp4 chunks are made with OpenCV's
``mp4v``, CVAT's with H.264, so decode time on a real CVAT differs somewhat):

- a video task of ``--frames`` real 960x540 frames (``../shared/data/bedroom``), chunk size
  ``--chunk`` (CVAT's default for 960x540 video is 36-ish; 10 keeps the run short);
- chunk warm-up: every chunk requested once (the stand-in encodes and caches mp4s, as CVAT's
  media cache does), then timed: ``iter_task_frames`` by chunk, and per frame (the stand-in,
  like CVAT, serves a video frame by decoding its chunk, keeping the last one decoded, and
  sending a PNG);
- ``decode_video_chunk`` alone, ms per frame; mean |decoded - original| (0..255).

Run: ``OMP_NUM_THREADS=1 python bench/bench_video_chunks.py [--frames 60] [--chunk 10]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=60)
    ap.add_argument("--chunk", type=int, default=10)
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "bedroom")
    args = ap.parse_args()

    from cvat_standin import CvatStandin
    from PIL import Image

    from cvat_extension.cvat.annotate import iter_task_frames
    from cvat_extension.cvat.config import CvatConfig
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.video_chunks import decode_video_chunk

    paths = sorted(args.data.glob("*.jpg"))[: args.frames]
    n = len(paths)
    originals = np.stack([np.asarray(Image.open(p).convert("RGB")) for p in paths]).astype(np.int16)
    h, w = originals.shape[1:3]
    with CvatStandin() as server:
        admin = server.seed_user("admin", "pw", is_superuser=True)
        os.environ["CVAT_ACCESS_TOKEN"] = server.create_access_token(admin)
        task_id = server.seed_task("bench", [{"name": "person"}], paths, chunk_size=args.chunk, chunk_type="video")
        api = connect(CvatConfig(url=f"http://127.0.0.1:{server.port}"))
        chunks = [api.get_chunk(task_id, c) for c in range(-(-n // args.chunk))]  # warm the mp4 cache
        api.calls.clear()

        t0 = time.perf_counter()
        by_chunk = np.stack([im for _, im in iter_task_frames(api, task_id, n, chunk_size=args.chunk,
                                                               frame_size=(w, h))]).astype(np.int16)
        t_chunk = time.perf_counter() - t0
        calls_chunk = dict(api.calls)
        api.calls.clear()
        t0 = time.perf_counter()
        per_frame = [im for _, im in iter_task_frames(api, task_id, n)]
        t_frame = time.perf_counter() - t0
        calls_frame = dict(api.calls)

    t0 = time.perf_counter()
    decoded = sum(len(decode_video_chunk(c, frame_size=(w, h))) for c in chunks)
    t_decode = time.perf_counter() - t0
    err = np.abs(by_chunk - originals).mean(axis=(1, 2, 3))
    print(f"video task: {n} frames {w}x{h}, chunk {args.chunk}, mp4 {sum(map(len, chunks)) / len(chunks) / 1e3:.0f} kB/chunk")
    print(f"by chunk : {t_chunk:7.2f} s  {1e3 * t_chunk / n:6.1f} ms/frame  calls {calls_chunk}")
    print(f"per frame: {t_frame:7.2f} s  {1e3 * t_frame / n:6.1f} ms/frame  calls {calls_frame}")
    print(f"speed-up (per frame / by chunk): {t_frame / t_chunk:.2f}x; calls ratio "
          f"{sum(calls_frame.values()) / max(1, sum(calls_chunk.values())):.1f}x")
    print(f"decode_video_chunk alone: {1e3 * t_decode / decoded:.2f} ms/frame")
    print(f"mean |decoded - original|: mean {err.mean():.2f}, max {err.max():.2f} (0..255); "
          f"same pixels by chunk and per frame: {all(np.array_equal(a, b) for a, b in zip(per_frame, by_chunk))}")


if __name__ == "__main__":
    main()
