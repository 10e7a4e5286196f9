"""MOTA, IDF1 and HOTA between two track sets, computed by TrackEval's own metric classes.

Why TrackEval and not our own formulas: these are the numbers the MOT community reports, and
small differences (CLEAR's IDSW bookkeeping, HOTA's averaging over 19 IoU thresholds) make
home-made versions quietly disagree with papers. We call ``trackeval.metrics.HOTA``,
``CLEAR`` and ``Identity`` on data built in memory, so no files or dataset classes are
involved.

TrackEval 1.3.0 predates numpy 2. Its code of that era used ``np.float``/``np.int``/``np.bool``,
which numpy 2 removed. :func:`_numpy_compat` gives TrackEval's modules (and only them) a view of
numpy that still has those aliases, when numpy lacks them; numpy itself is never modified and
TrackEval is not forked.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
import types
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from cvat_extension.core.geometry import iou_xyxy_batch
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import InputError, MissingDependencyError

__all__ = ["TrackMetrics", "evaluate_tracks", "evaluate_tracks_mot", "metrics_from_data", "trackeval_module"]

logger = logging.getLogger(__name__)

_REMOVED_ALIASES = {"float": float, "int": int, "bool": bool, "object": object, "str": str,
                    "long": int, "complex": complex}


class _NumpyWithAliases(types.ModuleType):
    """numpy, plus the scalar aliases numpy 2 removed; everything else is numpy's own."""

    def __init__(self) -> None:
        super().__init__("numpy")
        for name, value in _REMOVED_ALIASES.items():
            setattr(self, name, value)

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)


def _numpy_compat(package: types.ModuleType) -> int:
    """Point ``np`` inside TrackEval's modules at numpy-with-aliases if numpy lacks them.

    Returns the number of modules patched (0 on numpy < 2, where nothing is needed).
    """
    if all(name in np.__dict__ for name in ("float", "int", "bool")):
        return 0
    proxy = _NumpyWithAliases()
    patched = 0
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.startswith("trackeval.baselines") or "plotting" in info.name:
            continue  # optional modules with extra imports (matplotlib); we do not use them
        try:
            mod = importlib.import_module(info.name)
        except ImportError:  # optional dependency of a module we do not use
            continue
        if getattr(mod, "np", None) is np:
            mod.np = proxy  # type: ignore[attr-defined]
            patched += 1
    return patched


def trackeval_module() -> types.ModuleType:
    """The ``trackeval`` package, made usable on numpy 2 (see :func:`_numpy_compat`)."""
    try:
        import trackeval  # noqa: PLC0415  (imported lazily: it pulls scipy and friends)
    except ImportError as exc:  # pragma: no cover - trackeval is a base dependency
        raise MissingDependencyError(
            "trackeval is needed for metrics: pip install 'trackeval>=1.3'"
        ) from exc
    if not getattr(trackeval, "_cvat_extension_compat", False):
        n = _numpy_compat(trackeval)
        trackeval._cvat_extension_compat = True  # type: ignore[attr-defined]
        logger.debug("trackeval numpy-2 compatibility: %d modules patched", n)
    return trackeval


@dataclass(frozen=True, slots=True)
class TrackMetrics:
    """Standard MOT metrics of a prediction against ground truth (fractions 0..1, counts).

    HOTA, DetA and AssA are TrackEval's values averaged over its 19 localisation thresholds
    (α = 0.05 … 0.95), as published; MOTA/IDF1 use IoU ≥ 0.5 matches.
    """

    hota: float
    deta: float
    assa: float
    mota: float
    motp: float
    idf1: float
    idp: float
    idr: float
    mt: int
    pt: int
    ml: int
    fp: int
    fn: int
    idsw: int
    frag: int
    num_gt_ids: int
    num_pred_ids: int
    num_gt_dets: int
    num_pred_dets: int

    def to_json(self) -> dict[str, float | int]:
        """Plain JSON numbers, fractions rounded to 6 decimals."""
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def _per_frame(tracks: Tracks, num_frames: int) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray]:
    """Split visible rows by frame: (ids per frame, boxes per frame, distinct ids)."""
    vis = tracks.visible()
    ids, dense = np.unique(vis.track_id, return_inverse=True)
    order = np.argsort(vis.frame, kind="stable")
    frames = vis.frame[order]
    cuts = np.searchsorted(frames, np.arange(num_frames + 1))
    id_list = [dense[order[a:b]].astype(int) for a, b in zip(cuts[:-1], cuts[1:])]
    box_list = [vis.xyxy[order[a:b]] for a, b in zip(cuts[:-1], cuts[1:])]
    return id_list, box_list, ids


def _check_input(tracks: Tracks, what: str) -> None:
    vis = tracks.visible()
    if len(vis) and int(vis.frame.min()) < 0:
        raise InputError(f"{what}: frame numbers must be >= 0, got {int(vis.frame.min())}")
    key = vis.frame * (int(vis.track_id.max()) + 1 if len(vis) else 1) + vis.track_id
    if len(np.unique(key)) != len(key):
        raise InputError(f"{what}: a track has two visible boxes on one frame")


def evaluate_tracks(
    gt: Tracks,
    pred: Tracks,
    *,
    num_frames: int = 0,
    iou_threshold: float = 0.5,
) -> TrackMetrics:
    """Compare predicted tracks with ground truth, one sequence, all labels pooled.

    Only visible rows (not ``outside``) count. Frames without boxes count as empty frames.

    Args:
        gt: ground-truth tracks (per-frame boxes).
        pred: predicted or annotated tracks to score (per-frame boxes).
        num_frames: sequence length; 0 means one past the last frame of either set.
        iou_threshold: match threshold of CLEAR (MOTA) and Identity (IDF1).

    Raises:
        InputError: negative frames or duplicate (track, frame) boxes.

    >>> t = Tracks.from_columns(frame=[0, 1], track_id=[1, 1], xyxy=[[0, 0, 9, 9]] * 2)
    >>> m = evaluate_tracks(t, t)
    >>> m.mota, m.idf1, m.hota
    (1.0, 1.0, 1.0)
    """
    _check_input(gt, "ground truth")
    _check_input(pred, "prediction")
    last = max(int(gt.frame.max()) if len(gt) else -1, int(pred.frame.max()) if len(pred) else -1)
    num_frames = max(num_frames, last + 1)
    gt_ids, gt_boxes, gt_uniq = _per_frame(gt, num_frames)
    pr_ids, pr_boxes, pr_uniq = _per_frame(pred, num_frames)
    sims = [iou_xyxy_batch(g, p) for g, p in zip(gt_boxes, pr_boxes)]
    data: dict[str, Any] = {
        "num_timesteps": num_frames,
        "num_gt_ids": len(gt_uniq),
        "num_tracker_ids": len(pr_uniq),
        "num_gt_dets": int(sum(len(x) for x in gt_ids)),
        "num_tracker_dets": int(sum(len(x) for x in pr_ids)),
        "gt_ids": gt_ids,
        "tracker_ids": pr_ids,
        "similarity_scores": sims,
    }
    return metrics_from_data(data, iou_threshold=iou_threshold)


def evaluate_tracks_mot(
    gt: Tracks,
    pred: Tracks,
    *,
    gt_class: np.ndarray,
    gt_consider: np.ndarray,
    num_frames: int = 0,
    benchmark: str = "MOT17",
) -> TrackMetrics:
    """Like :func:`evaluate_tracks`, with MOTChallenge's rules (TrackEval's preprocessing).

    Predictions matched to distractor-class ground truth are removed; only pedestrian rows
    not marked "ignore" are scored (see :mod:`cvat_extension.metrics.mot_preprocess`). The
    numbers equal TrackEval's own file-based MOTChallenge evaluation.

    Raises:
        InputError: negative frames, duplicate (track, frame) boxes, a non-MOT class.
    """
    from cvat_extension.metrics.mot_preprocess import preprocess_mot

    _check_input(gt, "ground truth")
    _check_input(pred, "prediction")
    seq = preprocess_mot(gt, gt_class, gt_consider, pred, num_frames=num_frames, benchmark=benchmark)
    return metrics_from_data(seq.data)


def metrics_from_data(data: dict[str, Any], *, iou_threshold: float = 0.5) -> TrackMetrics:
    """HOTA, CLEAR and Identity of one sequence given in TrackEval's preprocessed form."""
    te = trackeval_module()
    quiet = {"PRINT_CONFIG": False}
    cfg = {**quiet, "THRESHOLD": iou_threshold}
    hota = te.metrics.HOTA(dict(quiet)).eval_sequence(data)
    clear = te.metrics.CLEAR(dict(cfg)).eval_sequence(data)
    ident = te.metrics.Identity(dict(cfg)).eval_sequence(data)

    def f(x: Any) -> float:
        return float(np.mean(x))

    # TrackEval's early exits for empty sets leave some final fields out; default them.
    return TrackMetrics(
        hota=f(hota.get("HOTA", 0.0)),
        deta=f(hota.get("DetA", 0.0)),
        assa=f(hota.get("AssA", 0.0)),
        mota=f(clear.get("MOTA", 0.0)),
        motp=f(clear.get("MOTP", 0.0)),
        idf1=f(ident.get("IDF1", 0.0)),
        idp=f(ident.get("IDP", 0.0)),
        idr=f(ident.get("IDR", 0.0)),
        mt=int(clear.get("MT", 0)),
        pt=int(clear.get("PT", 0)),
        ml=int(clear.get("ML", 0)),
        fp=int(clear.get("CLR_FP", 0)),
        fn=int(clear.get("CLR_FN", 0)),
        idsw=int(clear.get("IDSW", 0)),
        frag=int(clear.get("Frag", 0)),
        num_gt_ids=int(data["num_gt_ids"]),
        num_pred_ids=int(data["num_tracker_ids"]),
        num_gt_dets=int(data["num_gt_dets"]),
        num_pred_dets=int(data["num_tracker_dets"]),
    )

