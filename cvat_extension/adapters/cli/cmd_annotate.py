"""``cvat-track annotate``: detector + multi-object tracker over a whole task, video or folder.

    cvat-track annotate TASK_ID --weights yolo11n.pt [--tracker bytetrack|botsort] [--url URL]
    cvat-track annotate --video clip.mp4 --weights yolo11n.pt --out tracks.txt   # MOT CSV
    cvat-track annotate --frames DIR --weights yolo11n.pt --out tracks.xml       # CVAT for video

A CVAT task gets real tracks uploaded per job: each track is smoothed (detector jitter removed,
gaps up to --fill-gaps frames filled and flagged occluded) and thinned to the keyframes that
reproduce it within --box-tolerance of the box size, outside keyframes at longer gaps.
--keyframes exact uploads the raw boxes instead (within --tolerance pixels). Offline --out files
get the same boxes CVAT would show.
Interrupted runs resume from the resume file (``--resume-file``, default
``.cvat-track/annotate-<task>.resume.npz``); it is removed after a complete run. Credentials come
from ``$CVAT_ACCESS_TOKEN`` or ``$CVAT_USER``/``$CVAT_PASSWORD``.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from cvat_extension.adapters.cli._inputs import nonnegative_int, number_type, positive_int, score
from cvat_extension.core.smooth import SmoothConfig, SparseTrackConfig

_SPARSE = SparseTrackConfig()  # the defaults shown in --help


_nonnegative_float = number_type("a finite number >= 0", lambda v: 0 <= v < float("inf"))


def _box_fraction(text: str) -> float:
    value = _nonnegative_float(text)
    if value >= 0.5:
        raise argparse.ArgumentTypeError(f"expected a fraction of the box size below 0.5, got {value}")
    return value


def sparse_config(args: argparse.Namespace) -> SparseTrackConfig:
    """The keyframe settings of the ``--keyframes``/``--tolerance``/... options."""
    return SparseTrackConfig(
        exact=args.keyframes == "exact",
        smooth=SmoothConfig(smoothness=args.smoothness, max_fill_gap_frames=args.fill_gaps),
        tolerance_px=args.tolerance,
        tolerance_box_fraction=args.box_tolerance,
    )


def register(subparsers: Any) -> None:
    """Add the ``annotate`` subcommand."""
    p = subparsers.add_parser(
        "annotate",
        help="auto-annotate real tracks (YOLO + ByteTrack/BoT-SORT) in a CVAT task, video or frame folder",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("task_id", nargs="?", type=positive_int, metavar="TASK_ID",
                   help="CVAT task id (omit with --video/--frames)")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--video", type=Path, metavar="FILE", help="offline: a video file")
    src.add_argument("--frames", type=Path, metavar="DIR", help="offline: a folder of images (name order)")
    p.add_argument("--out", type=Path, metavar="FILE",
                   help="offline output: .txt/.csv (MOT) or .xml (CVAT for video 1.1)")
    p.add_argument("--weights", required=True, metavar="FILE",
                   help="local YOLO model (.pt/.onnx/...); never downloaded")
    p.add_argument("--tracker", default="bytetrack", metavar="NAME",
                   help="bytetrack, botsort or a tracker YAML (Ultralytics-style keys; default bytetrack)")
    p.add_argument("--reid-weights", type=Path, metavar="FILE", help="BoT-SORT appearance weights (local file)")
    p.add_argument("--conf", type=score, default=0.1, metavar="SCORE",
                   help="detector confidence floor (default 0.1: ByteTrack uses low-score boxes too)")
    p.add_argument("--image-size", dest="imgsz", type=positive_int, default=640, metavar="PX",
                   help="detector input size in pixels (default 640)")
    p.add_argument("--imgsz", dest="imgsz", type=positive_int, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # old spelling of --image-size
    p.add_argument("--device", default="auto", metavar="DEVICE",
                   help="auto (CUDA when present), cpu or cuda:0 (default auto)")
    p.add_argument("--keyframes", choices=("smooth", "exact"), default="smooth",
                   help="smooth (default): smoothed tracks, few keyframes; exact: the raw boxes within --tolerance")
    p.add_argument("--tolerance", type=_nonnegative_float, default=1.0, metavar="PX",
                   help="keyframe tolerance in pixels: exact mode's, and the floor of --box-tolerance (default 1)")
    p.add_argument("--box-tolerance", type=_box_fraction, default=_SPARSE.tolerance_box_fraction, metavar="FRACTION",
                   help="smooth mode: allowed deviation as a fraction of box width/height "
                        f"(default {_SPARSE.tolerance_box_fraction})")
    p.add_argument("--smoothness", type=_nonnegative_float, default=_SPARSE.smooth.smoothness, metavar="LAMBDA",
                   help=f"smooth mode: smoothing strength (default {_SPARSE.smooth.smoothness:g}; 0 = none)")
    p.add_argument("--fill-gaps", type=nonnegative_int, default=_SPARSE.smooth.max_fill_gap_frames, metavar="FRAMES",
                   help="smooth mode: fill gaps inside a track up to this many frames, flagged occluded "
                        f"(default {_SPARSE.smooth.max_fill_gap_frames}; 0 = never)")
    p.add_argument("--url", default=None, metavar="URL",
                   help="CVAT URL (default sync.cvat.url of serverless.yaml, else localhost:8080)")
    p.add_argument("--resume-file", dest="checkpoint", type=Path, metavar="FILE",
                   help="resume file (default .cvat-track/annotate-<source>.resume.npz)")
    p.add_argument("--checkpoint", dest="checkpoint", type=Path, default=argparse.SUPPRESS,
                   help=argparse.SUPPRESS)  # old spelling of --resume-file
    p.add_argument("--append", action="store_true",
                   help="CVAT task: upload into jobs that already hold annotations too (otherwise "
                        "refused: a second run would duplicate every object)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--attention-checks", type=nonnegative_int, default=0, metavar="N",
                   help="CVAT task: withhold N clearly visible boxes per job as attention checks, recorded "
                        "in the state store (measure with `cvat-track attention`; default 0: none)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the annotation; returns the exit code."""
    import sys

    from cvat_extension.cvat.annotate import Checkpoint, run_key
    from cvat_extension.errors import InputError
    from cvat_extension.models.mot_tracker import MotTracker
    from cvat_extension.models.tracker_config import load_tracker_config
    from cvat_extension.models.yolo import YoloDetector, YoloSettings

    offline = args.video is not None or args.frames is not None
    if offline == (args.task_id is not None):
        raise InputError("annotate: give either TASK_ID or one of --video/--frames")
    if offline and args.out is None:
        raise InputError("annotate: --out FILE (.txt MOT or .xml CVAT) is needed with --video/--frames")
    if offline and args.out.suffix.lower() not in (".txt", ".csv", ".xml"):
        raise InputError(f"--out {args.out}: expected a .txt/.csv (MOT) or .xml (CVAT for video) file")
    if offline and args.attention_checks:
        raise InputError("annotate: --attention-checks needs a CVAT task (they are measured on its jobs)")
    from cvat_extension.io.outputs import OutputPlan

    name = f"task{args.task_id}" if not offline else (args.video or args.frames).name
    checkpoint_path = args.checkpoint or Path(".cvat-track") / f"annotate-{name}.resume.npz"
    tracker_file = Path(args.tracker) if Path(args.tracker).is_file() else None
    # Checked before a model is loaded; the resume file counts as an input (it is removed
    # after the run, so an --out of that name would vanish).
    plan = OutputPlan(inputs=[args.video, args.frames, args.weights, tracker_file, args.reid_weights,
                              checkpoint_path])
    out = plan.file(args.out if offline else None, option="--out",
                    kind="cvat_xml" if offline and args.out.suffix.lower() == ".xml" else "mot")
    overrides: dict[str, Any] = {}
    if args.reid_weights is not None:
        overrides.update(with_reid=True, model=args.reid_weights)
    config = load_tracker_config(args.tracker, **overrides)
    settings = YoloSettings(weights=args.weights, conf=args.conf, imgsz=args.imgsz, device=args.device,
                            setting="--weights")
    detector = YoloDetector(settings)
    tracker = MotTracker(config)
    source = str(args.task_id) if not offline else str((args.video or args.frames).resolve())
    key = run_key(source=source, weights=Path(args.weights).resolve(), tracker=config, conf=args.conf,
                  imgsz=args.imgsz, keyframes=sparse_config(args))
    checkpoint = Checkpoint(checkpoint_path, key)
    bar = _progress_bar(disabled=args.no_progress)
    try:
        if out is not None:
            with plan.staged() as stage:
                summary = _offline(args, detector, tracker, checkpoint, bar, write_to=stage[out])
        else:
            summary = _cvat(args, detector, tracker, checkpoint, bar)
    finally:
        bar.close()
    checkpoint.remove()
    print(" ".join(f"{k}={v}" for k, v in summary.items()), file=sys.stdout)
    return 0


class _Bar:
    def __init__(self, disabled: bool) -> None:
        self.disabled = disabled
        self._bar: Any = None

    def start(self, total: int, initial: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=total or None, initial=initial, unit="frame", disable=self.disabled)

    def step(self, _frame: int) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


def _progress_bar(*, disabled: bool) -> _Bar:
    return _Bar(disabled)


def _offline(args: argparse.Namespace, detector: Any, tracker: Any, checkpoint: Any, bar: _Bar, *,
             write_to: Path) -> dict[str, Any]:
    """Detect and track a video or folder; write the tracks to ``write_to`` (the staged ``--out``)."""
    from cvat_extension.core.keyframes import expand_keyframes
    from cvat_extension.core.tracks import SequenceInfo
    from cvat_extension.cvat.annotate import detect_and_track, iter_frame_folder, iter_video
    from cvat_extension.io.formats import Format, LoadedTracks, write_tracks

    start = checkpoint.progress.next_frame
    count, frames = iter_video(args.video, start) if args.video else iter_frame_folder(args.frames, start)
    bar.start(count, start)
    size: dict[str, int] = {}

    def remember(stream: Any) -> Any:
        for f, image in stream:
            size.setdefault("h", image.shape[0])
            size.setdefault("w", image.shape[1])
            yield f, image

    tracks = detect_and_track(remember(frames), detector, tracker, checkpoint=checkpoint, on_frame=bar.step)
    total = max(count, checkpoint.progress.next_frame)
    info = SequenceInfo(num_frames=total, width=size.get("w", 0), height=size.get("h", 0),
                        name=(args.video or args.frames).name)
    fmt = "cvat_xml" if args.out.suffix.lower() == ".xml" else "mot"
    # The same keyframes an upload would store; the file holds what CVAT would show.
    keyframes = sparse_config(args).sparse(tracks, stop_frame=total - 1)
    shown = expand_keyframes(keyframes, stop_frame=total - 1).visible()
    write_tracks(write_to, LoadedTracks(tracks=shown, info=info, format=Format.MOT, keyframes=keyframes),
                 fmt=fmt, info=info)
    return {"frames": total, "tracks": len(shown.ids), "boxes": len(shown), "keyframes": len(keyframes),
            "out": str(args.out)}


def _cvat(args: argparse.Namespace, detector: Any, tracker: Any, checkpoint: Any, bar: _Bar) -> dict[str, Any]:
    from cvat_extension.cvat.annotate import annotate_task
    from cvat_extension.cvat.config import CvatConfig
    from cvat_extension.cvat.connection import connect

    url = args.url or _url_from_manifest() or "http://localhost:8080"
    api = connect(CvatConfig(url=url))
    start = checkpoint.progress.next_frame
    from cvat_extension.cvat.attention import planter_from_manifest

    return annotate_task(api, args.task_id, detector, tracker, checkpoint=checkpoint, tolerance_px=args.tolerance,
                         on_frame=bar.step, on_start=lambda total: bar.start(total, start),
                         plant=planter_from_manifest(args.attention_checks), keyframes=sparse_config(args),
                         append=args.append)


def _url_from_manifest() -> str | None:
    path = Path("serverless.yaml")
    if not path.is_file():
        return None
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        return str(doc["sync"]["cvat"]["url"])
    except (yaml.YAMLError, KeyError, TypeError):
        return None
