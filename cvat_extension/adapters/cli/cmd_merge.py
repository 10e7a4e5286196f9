"""``cvat-track merge INPUT --out OUTPUT``: re-link track fragments, write the same format.

Tracks that one object left behind as several pieces (an occlusion, a missed stretch) are
joined when the earlier piece's motion leads to the later piece's start within
``--max-gap`` frames, sizes agree and labels are equal (see ``core/merge.py``). Pieces CVAT
cut at job boundaries are stitched on reading, before any merge.

The output has the input's format. For CVAT files, tracks that were not merged keep their
keyframes; merged tracks get thinned keyframes with an ``outside`` keyframe at every gap, as
CVAT's own merge does. ``--json`` lists the merges as ``{"into", "from", "gap", "score"}``.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from cvat_extension.adapters.cli._inputs import fps_value, nonnegative_int


def register(subparsers: Any) -> None:
    """Add the ``merge`` subcommand."""
    p = subparsers.add_parser(
        "merge", help="re-link fragments of one object into one track",
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("input", metavar="INPUT", help="tracks: MOT CSV, CVAT for video XML or CVAT JSON")
    p.add_argument("--out", required=True, metavar="FILE",
                   help="merged tracks, in the input's format (a name with that format's extension)")
    p.add_argument("--json", metavar="FILE", help="write the merges (and links left for review) as JSON")
    p.add_argument("--max-gap", type=nonnegative_int, default=None, metavar="N",
                   help="most missing frames between two pieces (default 30)")
    p.add_argument("--frames", metavar="DIR", help="folder of the sequence's images (appearance gate)")
    p.add_argument("--fps", type=fps_value, default=None, metavar="FPS",
                   help="annotated frames per second (default: seqinfo.ini frameRate, else 30); "
                        "per-frame thresholds scale with the time between annotated frames")
    p.add_argument("--config", metavar="YAML", help="settings file; its merge: section is used")
    p.add_argument("--allow-empty", action="store_true",
                   help="accept an input without boxes (otherwise refused as a likely wrong file)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Merge fragments of ``args.input`` into ``args.out``; returns the exit code."""
    import numpy as np

    from cvat_extension.adapters.cli._inputs import (
        ImageFolderFrames,
        check_config,
        load_yaml,
        merge_config,
        write_json,
    )
    from cvat_extension.core.keyframes import thin_keyframes
    from cvat_extension.core.merge import merge_fragments
    from cvat_extension.core.tracks import Tracks
    from cvat_extension.io.cvat_json import CvatAnnotations, write_cvat_json
    from cvat_extension.io.formats import Format, LoadedTracks, read_tracks, write_tracks
    from cvat_extension.io.outputs import OutputPlan

    merge_map: Any = {}
    if args.config:
        _, merge_map = check_config(load_yaml(args.config))
    config = merge_config(merge_map, args.max_gap)
    plan = OutputPlan(inputs=[args.input, args.frames, args.config])
    loaded = read_tracks(args.input, allow_empty=args.allow_empty)
    out_path = plan.file(args.out, option="--out", kind=loaded.format.value)
    json_path = plan.file(args.json, option="--json", kind="json")
    assert out_path is not None  # --out is required by the parser
    if args.fps is not None:
        loaded = dataclasses.replace(loaded, info=dataclasses.replace(loaded.info, fps=args.fps))
    frames = ImageFolderFrames(args.frames, frame_base=loaded.info.frame_base) if args.frames else None
    result = merge_fragments(loaded.tracks, config=config, frames=frames, info=loaded.info)
    info = loaded.info
    merged = result.tracks
    with plan.staged() as stage:
        if loaded.format is Format.MOT:
            write_tracks(stage[out_path], merged, fmt=Format.MOT, info=info)
        else:
            stop = info.num_frames - 1 if info.num_frames else int(merged.frame.max())
            changed = np.array(sorted({m.into for m in result.merges}), dtype=np.int64)
            gone = np.array(sorted({m.from_ for m in result.merges}), dtype=np.int64)
            kf = loaded.keyframes if loaded.keyframes is not None else merged[merged.keyframe]
            keep = ~np.isin(kf.track_id, np.r_[changed, gone])
            new_parts = [kf[keep]]
            if len(changed):
                dense = merged[np.isin(merged.track_id, changed)]
                new_parts.append(thin_keyframes(dense, stop_frame=stop))
            keyframes = Tracks.concat(new_parts) if len(new_parts) > 1 else new_parts[0]
            if loaded.format is Format.CVAT_JSON and isinstance(loaded.document, CvatAnnotations):
                write_cvat_json(stage[out_path], loaded.document, keyframes, stop_frame=stop, info=info)
            else:
                out = LoadedTracks(tracks=merged, info=info, format=loaded.format,
                                   keyframes=keyframes, document=loaded.document,
                                   piece_map=loaded.piece_map, path=loaded.path)
                write_tracks(stage[out_path], out, fmt=loaded.format)
        if json_path is not None:
            write_json(stage[json_path], {"merges": [m.to_json() for m in result.merges],
                                          "review": [m.to_json() for m in result.review]})
    before, after = len(loaded.tracks.ids), len(merged.ids)
    print(f"{args.input} -> {args.out} ({loaded.format.value}): {len(result.merges)} merges, "
          f"{before} -> {after} tracks")
    for m in result.merges:
        print(f"  track {m.from_} -> {m.into}: gap {m.gap_frames} frames, score {m.score:.2f}")
    for m in result.review:
        why = m.reason or f"score below {config.min_score}"
        print(f"  left for review: track {m.from_} after {m.previous} (score {m.score:.2f}): {why}")
    return 0
