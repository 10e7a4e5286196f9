"""MOTChallenge's evaluation rules, applied by TrackEval's own ``MotChallenge2DBox`` code.

Why not a filter of our own: MOTChallenge does more than drop ground-truth rows marked
"ignore" (column 7 = 0). It first matches every prediction to *all* ground-truth boxes of
its frame (Hungarian on IoU ≥ 0.5) and removes predictions whose match is a distractor
(person on vehicle, static person, distractor, reflection; on MOT20 also non-motorised
vehicles); only then are non-pedestrian and ignore rows dropped from the ground truth. A
prediction on a static person is therefore neither a true nor a false positive. Dropping
ignore rows alone counts those predictions as false positives (ground truth scored against
itself: MOTA −27 on MOT17-04).

TrackEval's dataset class reads files; its preprocessing step
(:meth:`MotChallenge2DBox.get_preprocessed_seq_data`) takes the in-memory "raw data" dict
that its file reader produces. :func:`preprocess_mot` builds that dict from our tracks and
calls the method of a real, initialised ``MotChallenge2DBox`` (created once per benchmark
over a placeholder folder, because its constructor insists on files), so the rules and
constants are TrackEval's, not a copy. The result feeds TrackEval's metric classes directly
and keeps, per frame, which of our rows survived (needed to turn matches back into our
tracks for the error analysis in :mod:`cvat_extension.evaluation`).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import InputError

__all__ = ["BENCHMARKS", "MotSequenceData", "distractor_classes", "mot_classes", "mot_dataset",
           "person_prediction_rows", "preprocess_mot"]

#: Benchmarks whose distractor rules differ (MOT20 adds non-motorised vehicles).
BENCHMARKS = ("MOT17", "MOT20", "MOT16")

#: MOT class ids of what MOTChallenge treats as distractors (TrackEval's list, which lives
#: inside its preprocessing method; ``tests/metrics`` checks this copy against its behaviour).
_DISTRACTORS = {"MOT17": (2, 7, 8, 12), "MOT16": (2, 7, 8, 12), "MOT20": (2, 6, 7, 8, 12)}


def distractor_classes(benchmark: str = "MOT17") -> tuple[int, ...]:
    """MOT class ids whose boxes make a matched prediction disappear instead of count."""
    return _DISTRACTORS[benchmark]


def mot_classes(tracks: Tracks) -> np.ndarray:
    """The MOT class id of every row: the file's class column, else from the label names.

    Label names are matched to MOT17's class names without regard to case, ``_`` or spaces
    (``static_person``, ``Static person``); ``person`` means pedestrian. Unknown names give
    -1.
    """
    if "mot_class" in tracks.data:
        return np.asarray(tracks.data["mot_class"], dtype=np.int64)
    from cvat_extension.io.mot import MOT_CLASS_NAMES

    def norm(name: str) -> str:
        return name.lower().replace("_", " ").replace("-", " ").strip()

    table = {norm(n): i + 1 for i, n in enumerate(MOT_CLASS_NAMES)}
    table["person"] = 1
    codes = np.array([table.get(norm(n), -1) for n in tracks.labels] or [-1], dtype=np.int64)
    return codes[tracks.label] if len(tracks) else np.zeros(0, dtype=np.int64)


def person_prediction_rows(pred: Tracks, benchmark: str = "MOT17") -> np.ndarray:
    """Rows of ``pred`` MOTChallenge can score: pedestrian, unclassed or distractor-class.

    TrackEval refuses prediction files with other classes; a ground-truth file given as the
    prediction carries cars and occluders, which are not predictions of people.
    """
    cls = mot_classes(pred)
    return (cls <= 1) | np.isin(cls, distractor_classes(benchmark))

_DATASETS: dict[str, Any] = {}
_PLACEHOLDER = "SEQ"


def mot_dataset(benchmark: str = "MOT17") -> Any:
    """A real ``trackeval.datasets.MotChallenge2DBox`` for ``benchmark`` (cached).

    Its constructor checks that sequence files exist; an empty placeholder sequence in a
    temporary folder satisfies it. Only its preprocessing method is used afterwards.
    """
    if benchmark not in BENCHMARKS:
        raise InputError(f"unknown MOTChallenge benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    if benchmark in _DATASETS:
        return _DATASETS[benchmark]
    from cvat_extension.metrics.trackeval_adapter import trackeval_module

    te = trackeval_module()
    with tempfile.TemporaryDirectory(prefix="cvat-track-te-") as tmp:
        root = Path(tmp)
        (root / "gt" / _PLACEHOLDER / "gt").mkdir(parents=True)
        (root / "gt" / _PLACEHOLDER / "gt" / "gt.txt").write_text("")
        (root / "trackers" / "t" / "data").mkdir(parents=True)
        (root / "trackers" / "t" / "data" / f"{_PLACEHOLDER}.txt").write_text("")
        ds = te.datasets.MotChallenge2DBox({
            "GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"),
            "TRACKERS_TO_EVAL": ["t"], "BENCHMARK": benchmark, "SKIP_SPLIT_FOL": True,
            "SEQ_INFO": {_PLACEHOLDER: 1}, "PRINT_CONFIG": False,
        })
    _DATASETS[benchmark] = ds
    return ds


@dataclass(frozen=True)
class MotSequenceData:
    """One sequence as TrackEval's metrics see it, with the way back to our rows.

    Attributes:
        data: TrackEval's preprocessed dict (``gt_ids``, ``tracker_ids``,
            ``similarity_scores`` per frame, counts); pass it to ``eval_sequence`` of any
            TrackEval metric.
        gt_rows: per frame, the index (into the ground truth's visible rows) of each box in
            ``data["gt_ids"][t]``, in the same order.
        pred_rows: per frame, the index (into the prediction's visible rows) of each box in
            ``data["tracker_ids"][t]``, in the same order.
        gt_track_ids: our ground-truth track id of each contiguous TrackEval gt id.
        pred_track_ids: our predicted track id of each contiguous TrackEval tracker id.
        removed_pred_rows: prediction rows (visible-row indices) removed because they matched
            a distractor.
    """

    data: dict[str, Any]
    gt_rows: list[np.ndarray]
    pred_rows: list[np.ndarray]
    gt_track_ids: np.ndarray
    pred_track_ids: np.ndarray
    removed_pred_rows: np.ndarray

    @property
    def num_frames(self) -> int:
        return int(self.data["num_timesteps"])


def _split(frames: np.ndarray, num_frames: int) -> list[np.ndarray]:
    """Row indices of each frame 0..num_frames-1, in row order."""
    order = np.argsort(frames, kind="stable")
    cuts = np.searchsorted(frames[order], np.arange(num_frames + 1))
    return [order[a:b] for a, b in zip(cuts[:-1], cuts[1:])]


def preprocess_mot(
    gt: Tracks,
    gt_class: np.ndarray,
    gt_consider: np.ndarray,
    pred: Tracks,
    *,
    num_frames: int = 0,
    benchmark: str = "MOT17",
) -> MotSequenceData:
    """Apply MOTChallenge's preprocessing (TrackEval's code) to one sequence.

    Args:
        gt: ground truth, all rows (pedestrians, distractors, ignore rows); only visible rows
            are used.
        gt_class: MOT class id (1 = pedestrian, 2 = person on vehicle, 7 = static person,
            8 = distractor, 12 = reflection, ...) of each row of ``gt``.
        gt_consider: MOT column 7 of each row of ``gt``; 0 marks "ignore".
        pred: predicted tracks (all treated as pedestrian predictions).
        num_frames: sequence length; 0 means one past the last frame of either set.
        benchmark: ``MOT17`` (also MOT16 rules) or ``MOT20``.

    Raises:
        InputError: negative frames, a class outside MOTChallenge's, or two boxes of one
            track on one frame.
    """
    ds = mot_dataset(benchmark)
    from cvat_extension.metrics.trackeval_adapter import trackeval_module

    te = trackeval_module()
    vis = ~gt.outside
    g = gt[vis]
    g_cls = np.asarray(gt_class)[vis].astype(int)
    g_con = np.asarray(gt_consider)[vis].astype(float)
    p = pred.visible()
    for what, side in (("ground truth", g), ("prediction", p)):
        if len(side) and int(side.frame.min()) < 0:
            raise InputError(f"{what}: frame numbers must be >= 0, got {int(side.frame.min())}")
    bad = np.setdiff1d(np.unique(g_cls), ds.valid_class_numbers)
    if len(bad):
        raise InputError(f"ground truth: MOT class {int(bad[0])} is not a MOTChallenge class "
                         f"(valid: {min(ds.valid_class_numbers)}..{max(ds.valid_class_numbers)})")
    last = max(int(g.frame.max()) if len(g) else -1, int(p.frame.max()) if len(p) else -1)
    n = max(int(num_frames), last + 1)
    g_by_frame, p_by_frame = _split(g.frame, n), _split(p.frame, n)
    iou = te.datasets._base_dataset._BaseDataset._calculate_box_ious
    raw: dict[str, Any] = {"num_timesteps": n, "seq": "sequence", "gt_ids": [], "gt_classes": [],
                           "gt_dets": [], "gt_extras": [], "gt_crowd_ignore_regions": [],
                           "tracker_ids": [], "tracker_classes": [], "tracker_dets": [],
                           "tracker_confidences": [], "similarity_scores": []}
    for gi, pi in zip(g_by_frame, p_by_frame):
        gd, pd = g.xyxy[gi], p.xyxy[pi]
        raw["gt_ids"].append(g.track_id[gi].astype(int))
        raw["gt_classes"].append(g_cls[gi])
        raw["gt_dets"].append(gd)
        raw["gt_extras"].append({"zero_marked": g_con[gi].astype(int)})
        raw["gt_crowd_ignore_regions"].append(np.empty((0, 4)))
        raw["tracker_ids"].append(p.track_id[pi].astype(int))
        raw["tracker_classes"].append(np.ones(len(pi), dtype=int))
        raw["tracker_dets"].append(pd)
        # Confidences are not used by any metric here: they carry our row index through
        # TrackEval's deletions, so that kept boxes can be traced back to our rows.
        raw["tracker_confidences"].append(pi.astype(float))
        raw["similarity_scores"].append(iou(gd, pd, box_format="x0y0x1y1"))
    try:
        data = ds.get_preprocessed_seq_data(raw, "pedestrian")
    except te.utils.TrackEvalException as exc:
        raise InputError(f"TrackEval preprocessing: {exc}") from exc
    pred_rows = [np.asarray(c, dtype=np.int64) for c in data["tracker_confidences"]]
    kept = np.zeros(len(p), dtype=bool)
    for r in pred_rows:
        kept[r] = True
    # TrackEval keeps ground-truth rows by this rule (step 4 of its preprocessing); we
    # recompute it only to know *which* rows, and check it against TrackEval's output.
    gt_keep = (g_con != 0) & (g_cls == ds.class_name_to_class_id["pedestrian"])
    gt_track_ids = np.unique(g.track_id[gt_keep])
    pred_track_ids = np.unique(p.track_id[kept])
    gt_rows = []
    for t, gi in enumerate(g_by_frame):
        rows = gi[gt_keep[gi]]
        expect = np.searchsorted(gt_track_ids, g.track_id[rows])
        if not np.array_equal(expect, data["gt_ids"][t]):  # pragma: no cover - TrackEval changed
            raise RuntimeError(f"TrackEval kept other ground-truth rows than expected on frame {t}")
        gt_rows.append(rows)
        if not np.array_equal(np.searchsorted(pred_track_ids, p.track_id[pred_rows[t]]),
                              data["tracker_ids"][t]):  # pragma: no cover - TrackEval changed
            raise RuntimeError(f"TrackEval relabelled predictions unexpectedly on frame {t}")
    return MotSequenceData(data=data, gt_rows=gt_rows, pred_rows=pred_rows,
                           gt_track_ids=gt_track_ids, pred_track_ids=pred_track_ids,
                           removed_pred_rows=np.flatnonzero(~kept))
