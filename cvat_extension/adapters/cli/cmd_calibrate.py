"""``cvat-track calibrate``: pick the detector confidence and tracker threshold to pre-annotate with.

Sweeps detector confidence x tracker threshold over a small ground-truth set, runs the same
pipeline as `cvat-track annotate` (detector, tracker, smoothed tracks) and reports box
precision, box recall and IDF1 per setting. The setting whose precision lies in the target
band (default 70-85 %: annotators keep checking, and keep trusting) with the best IDF1 is
written into the functions' configuration: YOLO_CONF of the detector function and a tracker
YAML (beside the tracker function, named by its TRACKER_CONFIG) in serverless.yaml. A PNG
of the curve is written too.

Ground truth: a MOT file (MOTChallenge rules when it has the class column) or a CVAT task
whose accepted jobs (stage "acceptance") are the ground truth. Every scored frame must have
ground truth: restrict with --frames-range, or say that frames without boxes are empty with
--empty-frames-ok.

Exit codes: 0 a setting was chosen and written; 1 no setting lands in the band (nothing
written); 2 bad input (nothing written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cvat_extension.adapters.cli._inputs import positive_int

DEFAULT_CONFS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
DEFAULT_THRESHS = (0.3, 0.5, 0.7)


def _fractions(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values or any(not 0.0 <= v <= 1.0 for v in values):
        raise argparse.ArgumentTypeError(f"expected numbers in [0, 1], got {text!r}")
    return values


def _iou(text: str) -> float:
    (value,) = _fractions(text) if "," not in text else (-1.0,)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"expected an IoU between 0 and 1, got {text!r}")
    return value


def _band(text: str) -> tuple[float, float]:
    low, sep, high = text.replace("-", ":").partition(":")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LOW:HIGH, e.g. 0.70:0.85, got {text!r}") from None
    if not sep or not 0.0 <= lo < hi <= 1.0:
        raise argparse.ArgumentTypeError(f"expected 0 <= LOW < HIGH <= 1, got {text!r}")
    return lo, hi


def _frame_range(text: str) -> tuple[int, int]:
    first, sep, last = text.partition(":")
    try:
        a, b = int(first), int(last)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected FIRST:LAST frame numbers (from 0), got {text!r}") from None
    if not sep or a < 0 or b < a:
        raise argparse.ArgumentTypeError(f"expected 0 <= FIRST <= LAST, got {text!r}")
    return a, b


def register(subparsers: Any) -> None:
    """Add the ``calibrate`` subcommand."""
    p = subparsers.add_parser(
        "calibrate",
        help="sweep detector confidence and tracker threshold on ground truth; write the setting in the band",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    gt = p.add_mutually_exclusive_group(required=True)
    gt.add_argument("--gt", type=Path, metavar="FILE", help="ground-truth file (MOT, CVAT XML or CVAT JSON)")
    gt.add_argument("--task", type=positive_int, metavar="ID", help="CVAT task: its accepted jobs are the ground truth")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--detections", type=Path, metavar="FILE", help="MOT detection file (det.txt): its confidences are swept")
    src.add_argument("--frames", type=Path, metavar="DIR", help="folder of frames (name order) to run --weights on")
    src.add_argument("--video", type=Path, metavar="FILE", help="video file to run --weights on")
    p.add_argument("--weights", metavar="FILE", help="local YOLO model (with --frames/--video, or with --task for its frames)")
    p.add_argument("--image-size", dest="imgsz", type=positive_int, default=640, metavar="PX",
                   help="detector input size in pixels (default 640)")
    p.add_argument("--device", default="auto", metavar="DEVICE", help="auto, cpu or cuda:0 (default auto)")
    p.add_argument("--map", action="append", default=[], metavar="MODEL=GT",
                   help="score model label MODEL against ground-truth label GT (repeatable; default: shared names)")
    p.add_argument("--tracker", default="bytetrack", metavar="NAME",
                   help="bytetrack, botsort or a tracker YAML file: the base settings (default bytetrack)")
    p.add_argument("--det-conf", type=_fractions, default=DEFAULT_CONFS, metavar="SCORES",
                   help="detector confidences to sweep (default 0.1,...,0.9)")
    p.add_argument("--track-thresh", type=_fractions, default=DEFAULT_THRESHS, metavar="SCORES",
                   help="tracker start thresholds (track_high_thresh) to sweep (default 0.3,0.5,0.7)")
    p.add_argument("--band", type=_band, default=(0.70, 0.85), metavar="LOW:HIGH", help="target precision LOW:HIGH (default 0.70:0.85)")
    p.add_argument("--precision", choices=("box", "identity"), default="box",
                   help="what the band applies to: box (boxes matching a GT box; default) | identity (boxes on "
                        "the right GT track, IDP)")
    p.add_argument("--iou", type=_iou, default=0.5, metavar="FRACTION", help="IoU at which a box matches ground truth (default 0.5)")
    p.add_argument("--frames-range", type=_frame_range, metavar="FIRST:LAST",
                   help="score only these frames (0-based, inclusive); default every frame of the source")
    p.add_argument("--empty-frames-ok", action="store_true",
                   help="MOT ground truth: frames without rows are truly empty (default: they are an error)")
    p.add_argument("--manifest", type=Path, default=Path("serverless.yaml"), metavar="YAML",
                   help="functions manifest to write (default serverless.yaml)")
    p.add_argument("--detector-function", default="yolo-detector", metavar="NAME",
                   help="manifest entry that gets YOLO_CONF (default yolo-detector)")
    p.add_argument("--tracker-function", default=None, metavar="NAME",
                   help="manifest entry that gets TRACKER_CONFIG (default: the tracker's name, bytetrack/botsort)")
    p.add_argument("--dry-run", action="store_true", help="report and plot only; write no configuration")
    p.add_argument("--plot", type=Path, default=Path("calibration.png"), metavar="FILE",
                   help="curve PNG (default calibration.png)")
    p.add_argument("--json", type=Path, metavar="FILE", help="also write every setting's scores as JSON here")
    p.add_argument("--url", default=None, metavar="URL", help="CVAT URL with --task (default: sync.cvat.url of the manifest)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Run the calibration; returns the exit code."""
    from cvat_extension.calibration import parse_label_map
    from cvat_extension.calibration.sweep import Precision, choose_setting, run_sweep
    from cvat_extension.errors import InputError
    from cvat_extension.models.tracker_config import load_tracker_config

    if args.task is None and args.detections is None and args.frames is None and args.video is None:
        raise InputError("calibrate: give the frames or detections to pre-annotate: --detections, --frames or --video")
    if (args.frames is not None or args.video is not None or (args.task is not None and args.detections is None)) \
            and not args.weights:
        raise InputError("calibrate: --weights (a local YOLO model) is needed to detect on frames")
    if args.detections is not None and args.weights:
        raise InputError("calibrate: --weights and --detections exclude each other (detections are given)")
    label_map = parse_label_map(args.map)
    base = load_tracker_config(args.tracker)
    tracker_function = args.tracker_function or base.tracker_type.value
    from cvat_extension.io.outputs import OutputPlan

    target = None
    edited: list[Path] = []  # edited in place on purpose: never an output of the plan
    if not args.dry_run:
        _check_manifest(args.manifest, args.detector_function, tracker_function)
        target, _ = _tracker_yaml_path(args.manifest, tracker_function)
        edited = list(_nuclio_changes(args.manifest, args.detector_function, tracker_function, "0.5"))
    tracker_file = Path(args.tracker) if Path(args.tracker).is_file() else None
    if tracker_file is not None and target is not None and tracker_file.resolve() == target.resolve():
        tracker_file = None  # re-calibrating from the last result: that file is ours to replace
    plan = OutputPlan(inputs=[args.gt, args.detections, args.frames, args.video, args.weights, tracker_file,
                              args.manifest, *edited])
    plot_out = plan.file(args.plot, option="--plot", kind="png")
    json_out = plan.file(args.json, option="--json", kind="json")
    # The tracker YAML the manifest will name is staged too: a refused manifest edit must not
    # leave a calibrated.yaml that nothing points to (or that an older manifest still names).
    tracker_out = plan.file(target, option=f"{tracker_function}'s TRACKER_CONFIG", kind="yaml")
    assert plot_out is not None  # --plot has a default

    api = _connect(args) if args.task is not None else None
    source = _Source.open(args, api)
    truth, first, last = _truth(args, api, source, label_map)
    if base.needs_image and source.frames is None:
        raise InputError("calibrate: this tracker uses images (gmc_method/with_reid); give --frames/--video/--task")
    detections = source.detections(min(args.det_conf), first, last)
    results = run_sweep(detections, truth, first_frame=first, last_frame=last, tracker=base,
                        det_confs=args.det_conf, track_threshs=args.track_thresh, frames=source.frames,
                        precision=Precision(args.precision), iou_threshold=args.iou)
    chosen = choose_setting(results, band=args.band)
    _print_table(results, chosen, args.band, truth, first, last, args.precision)
    from cvat_extension.calibration.plot import plot_curve

    tracker_yaml = None
    nuclio_files: list[Path] = []
    # The plot, JSON and tracker YAML are staged; the edits of the manifest and the Nuclio
    # configurations (checked, then written) are the last step inside, so a refused edit
    # leaves none of the staged files.
    with plan.staged() as stage:
        plot_curve(results, stage[plot_out], band=args.band, chosen=chosen,
                   title=f"{source.name}: frames {first}–{last}, {base.tracker_type.value}", measure=args.precision)
        if json_out is not None:
            from cvat_extension.adapters.cli._inputs import write_json

            write_json(stage[json_out], {"band": list(args.band), "chosen": chosen.to_json() if chosen else None,
                                         "settings": [r.to_json() for r in results]})
        if chosen is not None and tracker_out is not None:
            tracker_yaml, nuclio_files = _write_settings(args.manifest, args.detector_function, tracker_function,
                                                         base, chosen, write_to=stage[tracker_out])
    if chosen is None:
        print(_miss_message(results, args.band), file=sys.stderr)
        return 1
    if tracker_yaml is None:
        return 0
    s = chosen.setting
    print(f"wrote {args.manifest}: {args.detector_function}.env.YOLO_CONF={s.det_conf:g}, "
          f"{tracker_function}.env.TRACKER_CONFIG={tracker_yaml}")
    if nuclio_files:
        print(f"wrote the same into {', '.join(map(str, nuclio_files))}: redeploy the functions "
              f"(nuctl deploy) for CVAT to use them")
    print(f"annotate with the same setting: cvat-track annotate ... --conf {s.det_conf:g} --tracker {tracker_yaml}")
    return 0


# ------------------------------------------------------------------ sources
class _Source:
    """Where detections come from: a detection file, or a detector over frames."""

    def __init__(self, name: str, count: int, frames: Any, detect: Any, model_labels: tuple[str, ...]) -> None:
        self.name = name
        self.count = count  # frames in the source
        self.frames = frames  # FrameSource or None
        self._detect = detect
        self.model_labels = model_labels

    def detections(self, conf: float, first: int, last: int) -> Any:
        return self._detect(conf, first, last)

    @classmethod
    def open(cls, args: argparse.Namespace, api: Any) -> _Source:
        from cvat_extension.errors import InputError

        if args.detections is not None:
            from cvat_extension.io.mot import read_mot_detections

            dets = read_mot_detections(args.detections)
            if not len(dets):
                raise InputError(f"{args.detections}: no detections")
            count = int(dets.frame.max()) + 1
            return cls(args.detections.name, count, None, lambda conf, a, b: dets, tuple(dets.labels))
        from cvat_extension.models.yolo import YoloDetector, YoloSettings

        detector = YoloDetector(YoloSettings(weights=args.weights, conf=0.01, imgsz=args.imgsz, device=args.device,
                                             setting="--weights"))
        if args.task is not None:
            meta = api.get_task_meta(args.task)
            count = int(meta.get("size") or len(meta.get("frames") or []))
            if count == 0:
                raise InputError(f"task {args.task}: the task has no frames")
            from cvat_extension.cvat.annotations import FrameCache

            pixels = FrameCache(api, args.task)
            name = f"task {args.task}"
        else:
            from cvat_extension.cvat.annotate import iter_frame_folder, iter_video

            count, _ = iter_video(args.video) if args.video else iter_frame_folder(args.frames)
            path = args.video or args.frames
            pixels = _LazyFrames(path, is_video=args.video is not None)
            name = path.name
        return cls(name, count, pixels, _detector_run(detector, pixels), tuple(detector.labels))


class _LazyFrames:
    """Frames of a folder or video by index, decoded on demand.

    The detector asks for frames in order, so one decoding stream is kept and advanced; only
    a request for an earlier frame (a tracker that needs pixels again) reopens it there.
    """

    def __init__(self, path: Path, *, is_video: bool) -> None:
        self.path, self.is_video = path, is_video
        self._stream: Any = None
        self._last: tuple[int, Any] | None = None

    def __call__(self, frame: int) -> Any:
        from cvat_extension.cvat.annotate import iter_frame_folder, iter_video
        from cvat_extension.errors import InputError

        if self._last is not None and self._last[0] == frame:
            return self._last[1]
        if self._stream is None or self._last is None or frame < self._last[0]:
            _, self._stream = iter_video(self.path, frame) if self.is_video else iter_frame_folder(self.path, frame)
        for f, image in self._stream:
            self._last = (f, image)
            if f == frame:
                return image
        raise InputError(f"{self.path}: frame {frame} could not be read")


def _detector_run(detector: Any, pixels: Any) -> Any:
    def run(conf: float, first: int, last: int) -> Any:
        import numpy as np

        from cvat_extension.core.tracks import Tracks

        frames, boxes, scores, classes = [], [], [], []
        for f in range(first, last + 1):
            det = detector.detect(pixels(f), conf=conf)
            n = len(det.score)
            frames.append(np.full(n, f))
            boxes.append(np.asarray(det.xyxy, np.float64).reshape(-1, 4))
            scores.append(np.asarray(det.score, np.float32))
            classes.append(np.asarray(det.class_id, np.int32))
        return Tracks.from_columns(frame=np.concatenate(frames), track_id=np.full(sum(map(len, frames)), -1),
                                   xyxy=np.concatenate(boxes), score=np.concatenate(scores),
                                   label=np.concatenate(classes), labels=tuple(detector.labels))

    return run


# ------------------------------------------------------------------ ground truth
def _truth(args: argparse.Namespace, api: Any, source: _Source, label_map: Any) -> tuple[Any, int, int]:
    import numpy as np

    from cvat_extension.calibration.ground_truth import CalibrationTruth
    from cvat_extension.errors import InputError

    first, last = args.frames_range if args.frames_range else (0, source.count - 1)
    if last >= source.count:
        raise InputError(f"--frames-range {first}:{last}: the source has {source.count} frames (0–{source.count - 1})")
    if args.gt is not None:
        from cvat_extension.io.formats import read_tracks

        loaded = read_tracks(args.gt)
        gt = loaded.tracks
        # MOTChallenge's distractor rules differ on MOT20 (as eval --motchallenge decides).
        benchmark = "MOT20" if "MOT20" in (loaded.info.name or str(args.gt)).upper() else "MOT17"
        annotated = None
        if args.empty_frames_ok:
            n = loaded.info.num_frames or (int(gt.frame.max()) + 1 if len(gt) else 0)
            annotated = np.arange(n)
        hint = (": restrict with --frames-range, or pass --empty-frames-ok if those frames are truly empty"
                if not args.empty_frames_ok else ": restrict with --frames-range")
    else:
        from cvat_extension.cvat.annotations import read_task

        snap = read_task(api, args.task)
        if snap.info.num_frames == 0:
            raise InputError(f"task {args.task}: the task has no frames")
        accepted = [j for j in snap.jobs if j.stage == "acceptance"]
        if not accepted:
            raise InputError(f"task {args.task}: no job is in the acceptance stage; accept the ground-truth jobs "
                             "in CVAT first")
        gt = snap.dense
        benchmark = "MOT17"  # CVAT tasks carry no MOT class column: the rules do not apply
        annotated = np.unique(np.concatenate([np.arange(j.start_frame, j.stop_frame + 1) for j in accepted]))
        gt = gt[np.isin(gt.frame, annotated)]
        hint = ": accept their jobs in CVAT, or restrict with --frames-range"
    truth = CalibrationTruth.from_tracks(gt, label_map=label_map, model_labels=source.model_labels,
                                         annotated=annotated, benchmark=benchmark)
    truth.check_covers(np.arange(first, last + 1), hint=hint)
    return truth.restricted(first, last), first, last


# ------------------------------------------------------------------ output
def _miss_message(results: Any, band: tuple[float, float]) -> str:
    """Why nothing was chosen, and what to do about it."""
    where = f"no setting lands in the {band[0]:.0%}–{band[1]:.0%} precision band; nothing written"
    low = min(r.precision for r in results)
    high = max(r.precision for r in results)
    if low > band[1]:
        return (f"{where}: every setting is above it (lowest {low:.1%}); these pre-annotations are more precise "
                "than the band, so annotators may stop checking them: keep the setting and plant attention "
                "checks, or widen --det-conf/--track-thresh")
    if high < band[0]:
        return f"{where}: every setting is below it (best {high:.1%}); a better detector or tracker is needed"
    return f"{where}: the grid steps over it (from {low:.1%} to {high:.1%}); sweep finer --det-conf/--track-thresh"


def _print_table(results: Any, chosen: Any, band: tuple[float, float], truth: Any, first: int, last: int,
                 measure: str) -> None:
    pairs = ", ".join(f"{m}→{g}" for m, g in truth.label_map.pairs)
    print(f"frames {first}–{last}, labels {pairs}, {len(truth.scored)} ground-truth boxes; "
          f"target {measure} precision {band[0]:.0%}–{band[1]:.0%}")
    print(f"{'det_conf':>8} {'tracker':>7} {'box prec':>8} {'id prec':>8} {'recall':>7} {'IDF1':>6} {'HOTA':>6} "
          f"{'boxes':>7} {'tracks':>6}")
    for r in results:
        mark = "  <- chosen" if r is chosen else ("  in band" if band[0] <= r.precision <= band[1] else "")
        print(f"{r.setting.det_conf:8.2f} {r.setting.track_thresh:7.2f} {100 * r.box_precision:7.1f}% "
              f"{100 * r.id_precision:7.1f}% {100 * r.recall:6.1f}% {100 * r.idf1:5.1f}% {100 * r.hota:5.1f}% "
              f"{r.pred_boxes:7d} {r.tracks:6d}{mark}")


def _tracker_yaml_path(manifest: Path, tracker_function: str) -> tuple[Path, str]:
    """(file to write, TRACKER_CONFIG value): beside the function, relative to the manifest."""
    from cvat_extension.adapters.nuclio.manifest import load_manifest

    (entry,) = load_manifest(manifest, only=[tracker_function])
    target = entry.path / "calibrated.yaml"
    base = manifest.resolve().parent
    try:
        value = str(target.relative_to(base))
    except ValueError:
        value = str(target)
    return target, value


def _nuclio_changes(manifest: Path, detector_function: str, tracker_function: str,
                    det_conf: str) -> dict[Path, dict[str, str]]:
    """The Nuclio configurations (``function.yaml``, ``function-gpu.yaml``) of both functions
    and the values each gets: what ``nuctl deploy`` builds and CVAT calls reads these, not the
    manifest. The tracker YAML lies beside function.yaml, which Nuclio copies to /opt/nuclio."""
    from cvat_extension.adapters.nuclio.manifest import load_manifest
    from cvat_extension.calibration.nuclio_env_edit import NUCLIO_FUNCTION_DIR

    values = {detector_function: {"YOLO_CONF": det_conf},
              tracker_function: {"TRACKER_CONFIG": f"{NUCLIO_FUNCTION_DIR}/calibrated.yaml"}}
    changes: dict[Path, dict[str, str]] = {}
    for entry in load_manifest(manifest, only=[detector_function, tracker_function]):
        for path in sorted(entry.path.glob("function*.yaml")):
            changes[path] = values[entry.name]
    return changes


def _check_manifest(manifest: Path, detector_function: str, tracker_function: str) -> None:
    """Fail before any work when the manifest or a function.yaml cannot take the result."""
    from cvat_extension.calibration.manifest_edit import set_function_env
    from cvat_extension.calibration.nuclio_env_edit import set_nuclio_env

    _tracker_yaml_path(manifest, tracker_function)
    set_function_env(manifest, {detector_function: {"YOLO_CONF": "0.5"},
                                tracker_function: {"TRACKER_CONFIG": "x.yaml"}}, write=False)
    for path, values in _nuclio_changes(manifest, detector_function, tracker_function, "0.5").items():
        set_nuclio_env(path, values, write=False)


def _write_settings(manifest: Path, detector_function: str, tracker_function: str, base: Any,
                    chosen: Any, *, write_to: Path) -> tuple[str, list[Path]]:
    """Write the tracker YAML to ``write_to`` (its staged path), then edit the manifest and the
    functions' Nuclio configurations; returns the manifest's TRACKER_CONFIG value and the
    function.yaml files changed. Every edit is computed and checked before the first is written."""
    import dataclasses
    import datetime

    import yaml

    from cvat_extension.calibration.manifest_edit import set_function_env
    from cvat_extension.calibration.nuclio_env_edit import set_nuclio_env
    from cvat_extension.calibration.sweep import tracker_for

    config = tracker_for(base, chosen.setting.track_thresh)
    values = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    values = {k: (v.value if hasattr(v, "value") else str(v) if isinstance(v, Path) else v) for k, v in values.items()}
    _, value = _tracker_yaml_path(manifest, tracker_function)
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    header = (f"# Written by `cvat-track calibrate` ({stamp}): detector confidence {chosen.setting.det_conf:g}, "
              f"tracker threshold {chosen.setting.track_thresh:g}\n"
              f"# box precision {chosen.box_precision:.1%}, identity precision {chosen.id_precision:.1%}, "
              f"recall {chosen.recall:.1%}, IDF1 {chosen.idf1:.1%} "
              "on the calibration ground truth.\n")
    det_conf = f"{chosen.setting.det_conf:g}"
    manifest_values = {detector_function: {"YOLO_CONF": det_conf}, tracker_function: {"TRACKER_CONFIG": value}}
    nuclio = _nuclio_changes(manifest, detector_function, tracker_function, det_conf)
    set_function_env(manifest, manifest_values, write=False)
    for path, env in nuclio.items():
        set_nuclio_env(path, env, write=False)
    write_to.write_text(header + yaml.safe_dump(values, sort_keys=False), encoding="utf-8")
    set_function_env(manifest, manifest_values)
    for path, env in nuclio.items():
        set_nuclio_env(path, env)
    return value, list(nuclio)


def _connect(args: argparse.Namespace) -> Any:
    from cvat_extension.adapters.cli.cmd_annotate import _url_from_manifest
    from cvat_extension.cvat.config import CvatConfig
    from cvat_extension.cvat.connection import connect

    return connect(CvatConfig(url=args.url or _url_from_manifest() or "http://localhost:8080"))
