"""Tracker outputs to evaluate: our ByteTrack / BoT-SORT on each sequence's detections, cached.

The trackers are :func:`cvat_extension.models.mot_tracker.track_sequence` with default
settings (as ``scripts/eval_trackers_mot17.py`` runs them: no images, so ByteTrack without
pixels and BoT-SORT without ReID or camera-motion compensation), told the sequence's real
frame rate (the subsampled variants' rate is divided by the step).

Outputs are cached as ``.npz`` (plain arrays, loaded with ``allow_pickle=False``) under a key
that hashes the detections, the tracker settings and the boxmot version, so a rerun after a
change to the checks reuses them and a change to the tracker or the detections does not.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from cvat_extension.core.tracks import SOURCES, Source, Tracks

__all__ = ["TRACKERS", "run_tracker"]

TRACKERS = ("bytetrack", "botsort")
_AUTO = SOURCES.index(Source.AUTO)


def _key(dets: Tracks, num_frames: int, config_repr: str, version: str) -> str:
    h = hashlib.sha256()
    for arr in (dets.frame, dets.xyxy, dets.score, dets.label):
        h.update(np.ascontiguousarray(arr).tobytes())
    h.update(f"{num_frames}|{config_repr}|{version}".encode())
    return h.hexdigest()[:16]


def run_tracker(kind: str, dets: Tracks, *, num_frames: int, fps: float, name: str,
                cache: Path | None) -> tuple[Tracks, bool]:
    """Our tracker ``kind`` on ``dets``; returns (tracks, whether it came from the cache)."""
    from importlib.metadata import version

    from cvat_extension.models.tracker_config import TrackerConfig, TrackerType

    config = TrackerConfig(tracker_type=TrackerType(kind), frame_rate=max(1, int(round(fps))))
    key = _key(dets, num_frames, repr(config), version("boxmot"))
    path = cache / f"{name}.{kind}.{key}.npz" if cache is not None else None
    if path is not None and path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return Tracks.from_columns(frame=z["frame"], track_id=z["track_id"], xyxy=z["xyxy"],
                                       score=z["score"], source=np.full(len(z["frame"]), _AUTO),
                                       labels=("pedestrian",)), True
    import logging

    from cvat_extension.models.mot_tracker import track_sequence

    # boxmot logs every tracker's settings at INFO; 16 sequences of that drown the table.
    logging.getLogger("boxmot").setLevel(logging.WARNING)
    out = track_sequence(dets, None, config, num_frames=num_frames)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez(tmp, frame=out.frame, track_id=out.track_id, xyxy=out.xyxy, score=out.score)
        tmp.replace(path)
    return Tracks.from_columns(frame=out.frame, track_id=out.track_id, xyxy=out.xyxy, score=out.score,
                               source=np.full(len(out), _AUTO), labels=("pedestrian",)), False
