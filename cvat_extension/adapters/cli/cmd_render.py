"""``cvat-track render TRACKS --out video.mp4``: a video of the tracks for the linking pass.

Every track keeps one colour and shows its id; a trail shows its last ``--trail`` centres;
occluded boxes (CVAT's flag, or MOT visibility < 0.5) are dashed; review items (``--review``:
the JSON of ``check --json`` or ``agreement --json``) turn their tracks red and name
themselves in a banner on their frames.

Frames come from ``--frames DIR`` (images in frame order), from CVAT (``--task ID``: the
task's chunks, as ``annotate`` reads them), or a blank canvas. ``--gif FILE`` also writes a
small GIF for reports (any folder). H.264 through ``--encoder pyav`` (default) or ``ffmpeg`` (imageio-ffmpeg);
``pyav`` (default); see ``bench/bench_render.py``. Files appear when complete.
"""

from __future__ import annotations

import argparse
from typing import Any

from cvat_extension.adapters.cli._inputs import nonnegative_int, positive_int


def register(subparsers: Any) -> None:
    """Add the ``render`` subcommand."""
    p = subparsers.add_parser(
        "render", help="MP4/GIF of the tracks with colour-stable ids, trails and review items",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("tracks", nargs="?", help="tracks: MOT CSV, CVAT XML or CVAT JSON (omit with --task)")
    p.add_argument("--task", type=positive_int, metavar="ID", help="a CVAT task: its tracks and its frames")
    p.add_argument("--config", default="serverless.yaml", metavar="YAML",
                   help="file with the sync: section for --task (default serverless.yaml)")
    p.add_argument("--frames", metavar="DIR", help="folder of the sequence's images, in frame order")
    p.add_argument("--out", required=True, metavar="FILE", help="output video (.mp4)")
    p.add_argument("--gif", metavar="FILE", help="also write a small GIF (480 px wide, every 3rd frame)")
    p.add_argument("--review", metavar="JSON", help="review items to highlight (check/agreement --json output)")
    p.add_argument("--start", type=nonnegative_int, metavar="FRAME", help="first frame (your numbering)")
    p.add_argument("--stop", type=nonnegative_int, metavar="FRAME", help="last frame (your numbering)")
    p.add_argument("--trail", type=nonnegative_int, default=30, metavar="FRAMES", help="trail length (default 30)")
    p.add_argument("--fps", type=float, help="frame rate (default: seqinfo.ini, else 30)")
    p.add_argument("--encoder", choices=["pyav", "ffmpeg"], default="pyav",
                   help="H.264 backend (default pyav: least CPU per frame in bench/bench_render.py)")
    p.add_argument("--labels", action="store_true", help="show label names after the ids")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept a tracks file without boxes (renders the frames alone); otherwise refused")
    p.set_defaults(func=run)


def load_review_items(path: str, frame_base: int) -> list[Any]:
    """Review items from a ``check --json`` / ``agreement --json`` file (internal frames).

    Raises:
        InputError: unreadable or without a ``review`` list of items.
    """
    import json
    from pathlib import Path

    from cvat_extension.core.findings import ReviewItem
    from cvat_extension.errors import InputError

    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
        items = []
        for it in doc["review"]:
            frames = (int(it["frames"][0]) - frame_base, int(it["frames"][1]) - frame_base)
            items.append(ReviewItem(
                track_ids=tuple(int(t) for t in it["track_ids"]), frames=frames,
                frame=int(it.get("frame", it["frames"][0])) - frame_base,
                box=tuple(float(v) for v in it["box"]) if it.get("box") else None,  # type: ignore[arg-type]
                score=float(it.get("score", 0.0)), kinds=tuple(str(k) for k in it.get("kinds", ())),
                findings=(), message=str(it.get("message", ""))))
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise InputError(f"{p}: not a review JSON of 'check --json' or 'agreement --json': {exc}") from exc
    return items


def run(args: argparse.Namespace) -> int:
    """Render; returns the exit code."""
    import sys

    from cvat_extension.dataset.encode import Encoder, GifWriter, open_video_writer
    from cvat_extension.dataset.render import (
        RenderConfig,
        TrackPainter,
        blank_frames,
        render_frames,
    )
    from cvat_extension.errors import InputError
    from cvat_extension.io.outputs import OutputPlan

    if bool(args.tracks) == bool(args.task):
        raise InputError("give a tracks file or --task ID (one of them)")
    plan = OutputPlan(inputs=[args.tracks, args.frames, args.review, args.config if args.task else None])
    out = plan.file(args.out, option="--out", kind="mp4")
    gif = plan.file(args.gif, option="--gif", kind="gif")
    assert out is not None  # --out is required by the parser
    api = None
    try:
        if args.task:
            from cvat_extension.dataset.cvat_source import connect_from_config, task_sequence

            api, _cfg = connect_from_config(args.config)
            seq = task_sequence(api, args.task)
        else:
            from cvat_extension.dataset.sequences import read_sequence

            seq = read_sequence(args.tracks, allow_empty=args.allow_empty)
        info, base = seq.info, seq.info.frame_base
        n = seq.num_frames
        first = (args.start - base) if args.start is not None else 0
        last = (args.stop - base) if args.stop is not None else n - 1
        if not 0 <= first <= last < max(n, 1):
            raise InputError(f"frames {first + base}..{last + base} are outside the sequence "
                             f"({base}..{n - 1 + base})")
        items = load_review_items(args.review, base) if args.review else []
        if args.frames:
            from cvat_extension.adapters.cli._inputs import ImageFolderFrames

            folder = ImageFolderFrames(args.frames)
            if len(folder) < last + 1:
                raise InputError(f"{args.frames}: {len(folder)} images, the sequence needs {last + 1}")
            frames: Any = ((f, folder(f)) for f in range(first, last + 1))
            probe = folder(first)
            size = (probe.shape[1], probe.shape[0])
        elif api is not None:
            from cvat_extension.cvat.annotate import iter_task_frames

            task = api.get_task(args.task)
            size = (info.width, info.height)
            stream = iter_task_frames(api, args.task, last + 1, start=first,
                                      chunk_size=int(task.get("data_chunk_size") or 0) or None, frame_size=size)
            frames = stream
        else:
            if not (info.width and info.height):
                raise InputError(f"{seq.source}: frame size unknown; give --frames (or a seqinfo.ini)")
            size = (info.width, info.height)
            frames = blank_frames(info.width, info.height, range(first, last + 1))
        fps = args.fps or seq.fps
        painter = TrackPainter(seq.tracks, items=items, config=RenderConfig(trail_frames=args.trail,
                                                                               show_labels=args.labels),
                               frame_base=base)
        from tqdm import tqdm

        with plan.staged() as stage:
            video = open_video_writer(stage[out], size, fps, encoder=Encoder(args.encoder))
            writers: list[Any] = [video]
            if gif is not None:
                writers.append(GifWriter(stage[gif], fps))
            with tqdm(total=last - first + 1, unit="frame", desc="render", file=sys.stderr,
                      disable=not sys.stderr.isatty()) as bar:
                written = render_frames(painter, frames, writers, progress=bar.update)
            for w in writers:
                w.close()
    finally:
        if api is not None:
            api.client.close()
    print(f"rendered {written} frames ({first + base}..{last + base}) of {seq.name} with "
          f"{len(seq.tracks.ids)} tracks, {len(items)} review items -> {out}"
          + (f", {args.gif}" if args.gif else ""))
    return 0
