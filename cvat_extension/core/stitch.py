"""Job-boundary pieces of CVAT tracks: stitch them into one track, or cut a track like CVAT.

CVAT stores annotations per job. A track written at task level is cut at every job start
(``AnnotationIR._slice_track`` in ``cvat/apps/dataset_manager/annotation.py``), and with no
segment overlap a task-level read returns the pieces as separate tracks (observed on a real
CVAT 2.73.1: 14 tracks uploaded came back as 26; ``cvat-interfaces.md`` §3.3, §6):

- the piece in job k gets the keyframes inside the job; if the track is visible at the
  job's first frame without a keyframe there, the interpolated box becomes a keyframe; if the
  track goes on after the job, the interpolated box at the job's last frame becomes a
  keyframe (unless it equals the piece's last keyframe);
- when jobs are joined for a task-level read (``TrackManager.merge`` with overlap 0), every
  piece still open at the next job's start gets an ``outside`` keyframe there, a copy of its
  last keyframe (``_modify_unmatched_object``);
- each piece has its own id.

Checks, merges and exports must see one object (otherwise every crossing of a job boundary
looks like a fragment or an ID switch; CVAT's own MOT export has this defect, CVAT issue
#8629), while write-back must go per job to the piece ids. Hence :func:`stitch_job_pieces`
returns both the stitched tracks and the piece → stitched id mapping.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cvat_extension.core.geometry import iou_xyxy_batch
from cvat_extension.core.keyframes import expand_keyframes
from cvat_extension.core.tracks import Tracks

__all__ = ["split_at_job_boundaries", "stitch_job_pieces"]


def _piece_ends(tracks: Tracks) -> tuple[np.ndarray, ...]:
    """Per track: first row, last row, last visible row (or -1)."""
    starts = tracks.track_starts
    first = starts[:-1]
    last = starts[1:] - 1
    vis_row = np.where(~tracks.outside, np.arange(len(tracks)), -1)
    last_vis = np.maximum.reduceat(vis_row, first) if len(tracks) else first
    return first, last, last_vis


def stitch_job_pieces(
    tracks: Tracks, job_starts: Sequence[int], *, min_iou: float = 0.5
) -> tuple[Tracks, dict[int, int]]:
    """Join the pieces CVAT made of one track at job boundaries.

    Piece A (ending at job start ``s``) and piece B (starting at ``s``) are joined when:

    - they have the same label;
    - A's last keyframe is ``outside`` exactly at ``s`` (task-level read), or A's last
      keyframe is visible and before ``s`` so that it runs to the end of its job (pieces
      read job by job);
    - B's first keyframe is visible at ``s``;
    - the IoU of A's last visible box and B's first box is at least ``min_iou``
      (CVAT's own overlap merge uses 0.5); pairs are chosen by maximum total IoU.

    The stitched track keeps the id of its first piece and the keyframes of all pieces,
    minus the outside keyframes at the joints, so its expansion equals the union of the
    pieces' expansions.

    Args:
        tracks: keyframes of a task-level read, piece ids in ``track_id``.
        job_starts: first frame of each job (the first job's start is ignored).
        min_iou: lower bound of the box overlap across a joint. Lowering it joins pieces
            that moved more across the boundary, at the risk of joining two objects.

    Returns:
        (stitched keyframes, mapping of every input track id to its stitched id).
    """
    ids = tracks.ids
    mapping = {int(i): int(i) for i in ids}
    bounds = sorted({int(s) for s in job_starts})
    if len(tracks) == 0 or len(bounds) < 2:
        return tracks, mapping
    first, last, last_vis = _piece_ends(tracks)
    f = tracks.frame
    label = tracks.label
    drop = np.zeros(len(tracks), dtype=bool)
    parent = {int(i): int(i) for i in ids}
    for p, s in zip(bounds[:-1], bounds[1:]):
        vis_before = (last_vis >= 0) & (f[np.maximum(last_vis, 0)] >= p)
        ends_outside = tracks.outside[last] & (f[last] == s) & vis_before
        ends_open = ~tracks.outside[last] & (f[last] >= p) & (f[last] < s)
        a_idx = np.flatnonzero(ends_outside | ends_open)
        b_idx = np.flatnonzero((f[first] == s) & ~tracks.outside[first])
        if len(a_idx) == 0 or len(b_idx) == 0:
            continue
        iou = iou_xyxy_batch(tracks.xyxy[last_vis[a_idx]], tracks.xyxy[first[b_idx]])
        iou = np.where(label[last[a_idx]][:, None] == label[first[b_idx]][None, :], iou, 0.0)
        from scipy.optimize import linear_sum_assignment  # ~0.3-0.6 s to import: only when needed

        rows, cols = linear_sum_assignment(-iou)
        for r, c in zip(rows, cols):
            if iou[r, c] >= min_iou:
                a, b = a_idx[r], b_idx[c]
                parent[int(ids[b])] = int(ids[a])
                if tracks.outside[last[a]]:
                    drop[last[a]] = True

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in mapping:
        mapping[i] = root(i)
    new_ids = np.array([mapping[int(i)] for i in ids], dtype=np.int64)
    per_row = np.repeat(new_ids, np.diff(tracks.track_starts))
    kept = tracks[~drop]
    return kept.with_columns(track_id=per_row[~drop]), mapping


def split_at_job_boundaries(
    tracks: Tracks, job_starts: Sequence[int], *, stop_frame: int | None = None
) -> Tracks:
    """Cut keyframe tracks at job starts as CVAT does for a task-level write, read back.

    The result is what a task-level read returns without segment overlap (see the module
    docstring): pieces in later jobs get new ids (above every input id, in track then job
    order); the first piece keeps the input id. ``data["split_from"]`` holds the input id.

    Args:
        tracks: keyframes.
        job_starts: first frame of each job.
        stop_frame: last frame of the task; default the last keyframe frame.
    """
    bounds = sorted({int(s) for s in job_starts})
    if len(tracks) == 0 or len(bounds) < 2:
        return tracks.with_columns(data={**tracks.data, "split_from": tracks.track_id.copy()})
    stop = int(tracks.frame.max()) if stop_frame is None else int(stop_frame)
    job_bounds = [(a, b - 1) for a, b in zip(bounds, bounds[1:] + [stop + 1]) if a <= stop]
    next_id = int(tracks.track_id.max()) + 1
    parts: list[Tracks] = []
    for tid, kf in tracks.iter_tracks():
        dense = expand_keyframes(kf, stop_frame=stop)
        first_piece = True
        for k, (start, end) in enumerate(job_bounds):
            piece = _slice(kf, dense, start, end)
            if piece is None:
                continue
            if k + 1 < len(job_bounds) and not piece.outside[-1]:
                closing = piece[len(piece) - 1].with_columns(
                    frame=np.array([end + 1]), outside=np.array([True])
                )
                piece = Tracks.concat([piece, closing])
            new_id = tid if first_piece else next_id
            if not first_piece:
                next_id += 1
            first_piece = False
            parts.append(
                piece.with_columns(
                    track_id=np.full(len(piece), new_id, dtype=np.int64),
                    data={**piece.data, "split_from": np.full(len(piece), tid, dtype=np.int64)},
                )
            )
    if not parts:
        return tracks[:0].with_columns(data={**tracks.data, "split_from": tracks.track_id[:0]})
    out = Tracks.concat(parts)
    return out.with_columns(keyframe=np.ones(len(out), dtype=bool))


def _slice(kf: Tracks, dense: Tracks, start: int, end: int) -> Tracks | None:
    """One job's piece of one track (``_slice_track``), or None when the track is absent."""
    inside = (kf.frame >= start) & (kf.frame <= end)
    seg = kf[inside]
    lead = int(np.argmax(~seg.outside)) if len(seg) and (~seg.outside).any() else len(seg)
    seg = seg[lead:]
    scoped = dense[(dense.frame >= start) & (dense.frame <= end)]
    if len(scoped) and (~scoped.outside).any():
        scoped = scoped[int(np.argmax(~scoped.outside)) :]
    else:
        scoped = scoped[:0]
    if len(scoped) == 0:
        return seg if len(seg) else None
    parts = [seg]
    if not scoped.keyframe[0]:
        parts.insert(0, scoped[0])
    cur = Tracks.concat([p for p in parts if len(p)])
    tail = scoped[len(scoped) - 1]
    if int(kf.frame.max()) >= end and not np.array_equal(tail.xyxy[0], cur.xyxy[-1]):
        parts.append(tail)
    elif tail.keyframe[0] and tail.outside[0] and cur.frame[-1] != tail.frame[0]:
        # The track ends inside this job with an outside keyframe that was dropped above as
        # "leading" because no visible keyframe of the job precedes it.
        parts.append(tail)
    piece = Tracks.concat([p for p in parts if len(p)])
    return piece
