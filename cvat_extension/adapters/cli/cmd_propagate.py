"""``cvat-track propagate``: fill frames between human keyframes with SAM2 and flag doubt.

Offline: ``cvat-track propagate --frames DIR --annotations FILE --out FILE``; on CVAT:
``cvat-track propagate TASK_ID [--track ID ...] [--labels NAME ...] [--dry-run]
[--push-review] [--write boxes|masks|none]``. Each track is propagated forward from one human
keyframe and backward from the next; frames where the two directions disagree become
``propagation_disagreement`` review items (``--review`` writes them as JSON). The share of
frames flagged is printed. On CVAT the result is written back into the task's tracks as
thinned keyframes through the sync loop's safe write path, and ``--push-review`` opens the
items as CVAT issues (:mod:`cvat_extension.cvat.propagate`). Output boxes are thinned to
keyframes when written in a CVAT format.

``--write masks`` adds the chosen masks as mask tracks (a keyframe on every visible frame,
CVAT does not interpolate masks; ``group`` shared with the box track). On CVAT they go into
the task; offline they are written as CVAT JSON, because our CVAT-for-video XML writer has
boxes only: into the ``--out`` document itself when it is CVAT JSON, else into
``<out>.masks.json`` beside it (``group`` = the box track's id in ``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cvat_extension.errors import InputError

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
OUT_FORMATS = {".txt": "mot", ".csv": "mot", ".xml": "cvat_xml", ".json": "cvat_json"}


def _unit(value: str) -> float:
    v = float(value)
    if not 0.0 <= v <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number in 0..1, got {value}")
    return v


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("propagate", help="fill frames between keyframes with SAM2; flag disagreements",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("task_id", nargs="?", type=int, metavar="TASK_ID",
                   help="CVAT task id (omit with --frames/--annotations)")
    p.add_argument("--frames", type=Path, metavar="DIR", help="offline: folder of frame images, in frame order")
    p.add_argument("--annotations", type=Path, metavar="FILE",
                   help="offline: CVAT XML/JSON or MOT file with the keyframes")
    p.add_argument("--out", type=Path, metavar="FILE", help="offline: output annotation file")
    p.add_argument("--to", dest="out_format", choices=["cvat_xml", "cvat_json", "mot"], metavar="FORMAT",
                   help="format of --out: cvat_xml, cvat_json or mot (default: from its extension)")
    p.add_argument("--out-format", dest="out_format", choices=["cvat_xml", "cvat_json", "mot"],
                   default=argparse.SUPPRESS, help=argparse.SUPPRESS)  # old spelling of --to
    p.add_argument("--review", type=Path, metavar="FILE", help="write review items (JSON) for flagged frames here")
    p.add_argument("--track", type=int, action="extend", nargs="+", default=[], metavar="ID",
                   help="only these track ids (--track 3 7, or --track 3 --track 7)")
    p.add_argument("--labels", action="extend", nargs="+", default=[], metavar="NAME",
                   help="only tracks with these labels (--labels person car)")
    p.add_argument("--min-iou", type=_unit, default=0.5, metavar="FRACTION",
                   help="flag frames where forward and backward boxes overlap less (default 0.5)")
    p.add_argument("--weights", dest="checkpoint", metavar="FILE",
                   help="SAM2 weights (.pt; default the SAM2_CHECKPOINT environment variable)")
    p.add_argument("--checkpoint", dest="checkpoint", default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # old spelling of --weights
    p.add_argument("--model-config", metavar="YAML",
                   help="SAM2 model config (default configs/sam2.1/sam2.1_hiera_t.yaml)")
    p.add_argument("--image-size", type=int, metavar="PX", help="model input size in pixels (e.g. 512 on CPU)")
    p.add_argument("--device", metavar="DEVICE", help="cuda or cpu (default cuda when present)")
    p.add_argument("--random-weights", action="store_true", help=argparse.SUPPRESS)  # tests/benchmarks
    p.add_argument("--format", choices=["text", "json"], default="text", metavar="FORMAT",
                   help="summary on stdout as text or json (default text)")
    p.add_argument("--config", type=Path, default=Path("serverless.yaml"), metavar="YAML",
                   help="CVAT mode: file with the sync: section (default serverless.yaml)")
    p.add_argument("--dry-run", action="store_true", help="CVAT mode: write nothing, print what would change")
    p.add_argument("--push-review", action="store_true",
                   help="CVAT mode: open issues at disagreement frames, move jobs per sync.review")
    p.add_argument("--write", choices=["boxes", "masks", "none"], default="boxes", metavar="WHAT",
                   help="what to write: boxes (thinned keyframes), masks (boxes plus a mask track per "
                        "object, a keyframe on every frame; offline: CVAT JSON mask tracks) or none "
                        "(default boxes)")
    p.add_argument("--tolerance", type=float, metavar="PX", help="CVAT mode: keyframe thinning tolerance "
                   "in pixels (default sync.merge.thin_tolerance_px)")
    p.set_defaults(func=run)


class FrameFolder:
    """Frame source over a folder of images sorted by name: frame i is the i-th file."""

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise InputError(f"--frames: {folder}: not a folder")
        self.paths = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS)
        if not self.paths:
            raise InputError(f"--frames: {folder}: no images ({', '.join(IMAGE_EXTS)})")

    def __call__(self, frame: int) -> Any:
        import numpy as np
        from PIL import Image

        if not 0 <= frame < len(self.paths):
            raise InputError(f"--frames: frame {frame} requested, the folder has {len(self.paths)} images")
        try:
            with Image.open(self.paths[frame]) as img:
                return np.asarray(img.convert("RGB"))
        except OSError as exc:
            raise InputError(f"{self.paths[frame]}: not a readable image ({exc})") from exc


def _settings(args: argparse.Namespace) -> Any:
    import os

    from cvat_extension.models.sam2_video import Sam2Settings

    over: dict[str, Any] = {}
    if args.checkpoint:
        over["checkpoint"] = args.checkpoint
    if args.model_config:
        over["model_config"] = args.model_config
    if args.image_size:
        over["image_size"] = args.image_size
    if args.device:
        over["device"] = args.device
    if args.random_weights:
        over["allow_random_weights"] = True
    return Sam2Settings.from_env(os.environ, **over)


def make_propagator(args: argparse.Namespace) -> Any:
    """The SAM2 propagator the arguments describe (tests replace it with a fake)."""
    from cvat_extension.models.sam2_video import Sam2VideoPropagator

    return Sam2VideoPropagator(_settings(args))


def _run_cvat(args: argparse.Namespace, cfg: Any, plan: Any, out: Path | None, review: Path | None) -> int:
    from cvat_extension.cvat.config import load_sync_config
    from cvat_extension.cvat.connection import connect
    from cvat_extension.cvat.propagate import check_write_mode, run_propagate
    from cvat_extension.cvat.state_store import open_state_store

    check_write_mode(args.write)  # before connecting or loading a model (argparse checks it too)
    sync = load_sync_config(args.config)
    propagator = make_propagator(args)
    api = connect(sync.cvat, sync.retry)
    store = open_state_store(sync.state.path)
    try:
        s = run_propagate(api, store, sync, args.task_id, propagator, track_ids=args.track,
                          labels=args.labels, config=cfg, write=args.write, dry_run=args.dry_run,
                          push_review=args.push_review, tolerance_px=args.tolerance)
    finally:
        store.close()
    done = s.propagation
    assert done is not None  # set by run_propagate
    with plan.staged() as stage:
        if out is not None:
            _write_out(args, stage[out], done.result.tracks, done.snapshot.info)
        if review is not None:
            _write_json(stage[review], [it.to_json(0) for it in done.review_items])
    if args.format == "json":
        print(json.dumps(s.to_json()))
        return 0
    verb = "would write" if args.dry_run else "wrote"
    print(f"propagated {s.frames_propagated} frames over {s.segments} keyframe gaps "
          f"({s.gaps_skipped} already filled); {s.frames_flagged} flagged "
          f"({100 * s.flagged_share:.1f}%) in {s.review_items} review items")
    print(f"{verb} {s.tracks_updated} track(s), {s.keyframes_added} keyframe(s) new or moved; "
          f"issues opened {s.issues_opened}, still open {s.issues_still_open}")
    if args.write == "masks":
        print(f"{verb} mask tracks: {s.mask_tracks_created} created, {s.mask_tracks_updated} updated, "
              f"{s.mask_keyframes} mask keyframe(s)")
    for line in s.planned:
        print(f"  {line}")
    return 0


def _out_format(args: argparse.Namespace) -> str:
    """The format of ``--out``: ``--to``, else from its extension."""
    fmt = args.out_format or OUT_FORMATS.get(args.out.suffix.lower())
    if fmt is None:
        raise InputError(f"{args.out}: --out: unknown extension; use .txt/.csv, .xml or .json, or give --to")
    return str(fmt)


def _plan_outputs(args: argparse.Namespace, offline: bool) -> tuple[Any, Path | None, Path | None, Path | None]:
    """(plan, --out, --review, the mask file) declared and checked before a model is loaded."""
    from cvat_extension.io.outputs import OutputPlan

    inputs = [args.frames, args.annotations, args.checkpoint, args.model_config]
    plan = OutputPlan(inputs=inputs if offline else [args.config])
    out = masks = None
    if args.out is not None:
        fmt = _out_format(args)
        out = plan.file(args.out, option="--out", kind=fmt)
        if offline and args.write == "masks" and fmt != "cvat_json":
            masks = plan.file(args.out.with_suffix(".masks.json"), option="--write masks (<out>.masks.json)",
                              kind="json")
    review = plan.file(args.review, option="--review", kind="json")
    return plan, out, review, masks


def _write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=1), encoding="utf-8")


def _write_out(args: argparse.Namespace, path: Path, tracks: Any, info: Any) -> None:
    from cvat_extension.core.tracks import SequenceInfo
    from cvat_extension.io.formats import write_tracks

    write_tracks(path, tracks, fmt=_out_format(args), info=SequenceInfo(
        info.num_frames, info.width, info.height, info.frame_base, info.job_starts, info.name))


def _mask_tracks_json(result: Any, stop: int, label_ids: dict[str, int], groups: dict[int, int]) -> list[dict[str, Any]]:
    """One CVAT mask track per propagated object (``groups``: object id → group)."""
    from cvat_extension.cvat.propagate import mask_track_shapes

    out = []
    tracks = result.tracks
    for tid, rle in sorted(result.masks.rle.items()):
        shapes = mask_track_shapes([], {f: a.tolist() for f, a in rle.items()}, [], {}, stop)
        label = tracks.labels[int(tracks.track(tid).label[0])]
        out.append({"id": None, "label_id": label_ids[label], "frame": int(shapes[0]["frame"]),
                    "group": groups[tid], "source": "semi-auto", "attributes": [], "shapes": shapes,
                    "elements": []})
    for t in out:
        t.pop("id")
    return out


def _write_masks(args: argparse.Namespace, result: Any, stop: int, *, out: Path, masks: Path | None) -> Path:
    """Write the mask tracks offline (see the module docstring); return the file written.

    ``out`` is the staged ``--out`` (already written), ``masks`` the staged mask file, or None
    when the masks go into ``out`` itself (CVAT JSON).
    """
    if masks is None:
        path = out
        doc = json.loads(path.read_text())
        label_ids = {str(lb["name"]): int(lb["id"]) for lb in doc.get("labels") or []}
        boxes = {int(t["id"]): t for t in doc.get("tracks") or [] if t.get("id") is not None}
        used = {int(t.get("group") or 0) for t in doc.get("tracks") or []}
        groups = {}
        for tid in sorted(result.masks.rle):
            box = boxes.get(int(tid))
            if box is None:
                raise InputError(f"--out: {args.out}: track {tid} was not written, cannot group its mask track")
            if not box.get("group"):
                box["group"] = max(used | {0}) + 1
                used.add(box["group"])
            groups[tid] = int(box["group"])
    else:
        path = masks
        names = result.tracks.labels
        label_ids = {name: i + 1 for i, name in enumerate(names)}
        groups = {tid: int(tid) for tid in result.masks.rle}
        info = {"width": result.masks.width, "height": result.masks.height, "size": stop + 1}
        doc = {"version": 0, "tags": [], "shapes": [], "tracks": [],
               "labels": [{"id": i, "name": n} for n, i in label_ids.items()], "meta": info}
    doc["tracks"] = list(doc.get("tracks") or []) + _mask_tracks_json(result, stop, label_ids, groups)

    path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    return path


def run(args: argparse.Namespace) -> int:
    from cvat_extension.core.propagation import PropagationConfig
    from cvat_extension.core.review import group_findings
    from cvat_extension.cvat.propagate import select_tracks
    from cvat_extension.io.formats import read_tracks
    from cvat_extension.models.keyframe_propagation import propagate_keyframes

    offline = args.frames is not None or args.annotations is not None
    if offline == (args.task_id is not None):
        raise InputError("give either TASK_ID or both --frames and --annotations")
    if offline and (args.frames is None or args.annotations is None or args.out is None):
        raise InputError("offline propagation needs --frames, --annotations and --out")
    cfg = PropagationConfig(min_agreement_iou=args.min_iou)
    plan, out, review, masks = _plan_outputs(args, offline)
    if not offline:
        return _run_cvat(args, cfg, plan, out, review)
    assert out is not None  # offline needs --out (checked above)
    propagator = make_propagator(args)
    loaded = read_tracks(args.annotations)
    frames = FrameFolder(args.frames)
    keyframes = loaded.keyframes if loaded.keyframes is not None else loaded.tracks
    keyframes = select_tracks(keyframes, track_ids=args.track, labels=args.labels)
    info = loaded.info
    stop = max(info.num_frames - 1, len(frames.paths) - 1)
    result = propagate_keyframes(keyframes, frames, propagator, stop_frame=stop, config=cfg)
    items = group_findings(result.findings)
    masks_out = None
    with plan.staged() as stage:
        _write_out(args, stage[out], result.tracks, info)
        if args.write == "masks":
            _write_masks(args, result, stop, out=stage[out], masks=None if masks is None else stage[masks])
            masks_out = out if masks is None else masks
        if review is not None:
            _write_json(stage[review], [it.to_json(info.frame_base) for it in items])
    summary = {
        "mask_keyframes": result.masks.count,
        "masks_out": None if masks_out is None else str(masks_out),
        "segments": result.segments,
        "frames_propagated": result.frames_propagated,
        "frames_flagged": result.frames_flagged,
        "flagged_share": round(result.flagged_share, 4),
        "review_items": len(items),
    }
    if args.format == "json":
        print(json.dumps(summary))
    else:
        print(
            f"propagated {result.frames_propagated} frames over {result.segments} keyframe gaps; "
            f"{result.frames_flagged} flagged ({100 * result.flagged_share:.1f}%) in {len(items)} review items",
            file=sys.stdout,
        )
    return 0
