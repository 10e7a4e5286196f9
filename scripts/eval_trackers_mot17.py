"""Tracking quality of our ByteTrack / BoT-SORT wrapper vs boxmot called directly, on MOT17.

Why: ``cvat_extension.models.mot_tracker`` adds settings, state saving and CVAT plumbing around
boxmot; this script shows it loses nothing. Both run on the *same* public FRCNN detections of
the full MOT17-02 (600 frames) and MOT17-04 (1,050 frames) sequences and are scored with
TrackEval (HOTA, IDF1, MOTA via ``cvat_extension.metrics.trackeval_adapter``) against the full
ground truth. Only detections are available for most frames (no images), so both trackers run
without pixels: ByteTrack with ``img=None``, BoT-SORT with ``use_embeddings=False`` and no CMC.

Ground truth follows MOTChallenge's evaluation rules, applied by TrackEval's own preprocessing
(``evaluate_tracks_mot``): only pedestrians (class 1) with the consider flag set count; a
prediction matched (IoU ≥ 0.5, Hungarian) to a distractor-class box (person on vehicle, static
person, distractor, reflection) is removed rather than counted as a false positive. The data is non-commercial (CC BY-NC-SA 3.0): it is read in place from
``../shared/data`` and never copied.

Run: ``OMP_NUM_THREADS=1 python scripts/eval_trackers_mot17.py [--data ../shared/data] [--json OUT]``
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from functools import partial
from pathlib import Path

import numpy as np

from cvat_extension.core.tracks import Tracks
from cvat_extension.io.mot import read_mot, read_mot_detections
from cvat_extension.metrics.trackeval_adapter import TrackMetrics, evaluate_tracks_mot
from cvat_extension.models.mot_tracker import track_sequence
from cvat_extension.models.tracker_config import TrackerConfig

SEQUENCES = {"MOT17-02": 600, "MOT17-04": 1050}


def load_gt(path: Path) -> tuple[Tracks, np.ndarray]:
    """Ground truth, every row (pedestrians, distractors, ignore rows), and its MOT classes."""
    gt, _info = read_mot(path)
    cls = np.asarray(gt.data["mot_class"])
    return gt, np.where(cls <= 0, 1, cls)


def mot_score(gt: Tracks, gt_class: np.ndarray, pred: Tracks, num_frames: int) -> TrackMetrics:
    """``pred`` scored against every ground-truth row by MOTChallenge's rules (TrackEval's
    preprocessing: distractor matches removed, pedestrians with the consider flag scored)."""
    return evaluate_tracks_mot(gt, pred, gt_class=gt_class, gt_consider=gt.score, num_frames=num_frames)


def run_direct(dets: Tracks, num_frames: int, config: TrackerConfig) -> Tracks:
    """boxmot's tracker called the plain way: one ``update(dets, None)`` per frame."""
    import boxmot

    if config.tracker_type.value == "bytetrack":
        tracker = boxmot.ByteTrack(min_conf=config.track_low_thresh, track_thresh=config.track_high_thresh,
                                   match_thresh=config.match_thresh, track_buffer=config.track_buffer,
                                   frame_rate=config.frame_rate)
    else:
        tracker = boxmot.BotSort(track_high_thresh=config.track_high_thresh,
                                 track_low_thresh=config.track_low_thresh,
                                 new_track_thresh=config.new_track_thresh, track_buffer=config.track_buffer,
                                 match_thresh=config.match_thresh, frame_rate=config.frame_rate,
                                 use_cmc=False, use_embeddings=False)
    frames, ids, boxes, scores = [], [], [], []
    for f in range(num_frames):
        m = dets.frame == f
        arr = np.column_stack([dets.xyxy[m], dets.score[m], np.zeros(int(m.sum()))]) if m.any() \
            else np.zeros((0, 6))
        out = tracker.update(arr, None)
        if len(out):
            frames.append(np.full(len(out), f))
            ids.append(out[:, 4])
            boxes.append(out[:, :4])
            scores.append(out[:, 5])
    return Tracks.from_columns(frame=np.concatenate(frames), track_id=np.concatenate(ids),
                               xyxy=np.concatenate(boxes), score=np.concatenate(scores),
                               labels=("pedestrian",))


def evaluate(data: Path) -> list[dict[str, object]]:
    """Score every (sequence, tracker, variant) and return one row each."""
    rows: list[dict[str, object]] = []
    for seq, n in SEQUENCES.items():
        dets = read_mot_detections(data / "MOT17-mini" / "train" / f"{seq}-FRCNN" / "det" / "det.txt")
        gt, gt_class = load_gt(data / "motgt" / seq / "gt.txt")
        for kind in ("bytetrack", "botsort"):
            base = TrackerConfig(tracker_type=kind)
            variants = {  # called right away, inside this iteration
                "boxmot direct": partial(run_direct, dets, n, base),
                "ours (tracker boxes)": partial(track_sequence, dets, None, base.replace(box_source="tracker"),
                                                num_frames=n),
                "ours (detection boxes, default)": partial(track_sequence, dets, None, base, num_frames=n),
            }
            results = {}
            for name, fn in variants.items():
                t0 = time.perf_counter()
                pred = fn()
                seconds = time.perf_counter() - t0
                results[name] = pred
                m = mot_score(gt, gt_class, pred, n)
                rows.append({"sequence": seq, "tracker": kind, "variant": name,
                             "HOTA": m.hota, "IDF1": m.idf1, "MOTA": m.mota, "IDSW": m.idsw,
                             "ids": m.num_pred_ids, "fps": n / seconds})
            a, b = results["boxmot direct"], results["ours (tracker boxes)"]
            same = (len(a) == len(b) and np.array_equal(a.frame, b.frame)
                    and np.array_equal(a.track_id, b.track_id) and np.allclose(a.xyxy, b.xyxy))
            rows[-2]["identical_to_direct"] = bool(same)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)
    if not (args.data / "motgt").is_dir():
        print(f"error: {args.data}/motgt not found (pass --data)", file=sys.stderr)
        return 2
    rows = evaluate(args.data)
    print(f"{'sequence':9} {'tracker':9} {'variant':32} {'HOTA':>6} {'IDF1':>6} {'MOTA':>6} {'IDSW':>5} "
          f"{'ids':>5} {'fps':>7}  same-as-direct")
    for r in rows:
        print(f"{r['sequence']:9} {r['tracker']:9} {r['variant']:32} {100 * r['HOTA']:6.2f} "
              f"{100 * r['IDF1']:6.2f} {100 * r['MOTA']:6.2f} {r['IDSW']:5d} {r['ids']:5d} {r['fps']:7.0f}  "
              f"{r.get('identical_to_direct', '')}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
