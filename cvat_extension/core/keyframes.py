"""CVAT keyframe semantics for rectangle tracks: expansion to per-frame boxes and thinning.

CVAT stores only the keyframes of a track; every view with one box per frame (the UI, the
"CVAT for video 1.1" and "MOT 1.1" exports) is produced by
``TrackManager.get_interpolated_shapes`` (``cvat/apps/dataset_manager/annotation.py``).
:func:`expand_keyframes` reproduces that function for rectangles, vectorised over all tracks,
so that our checks see exactly the boxes an annotator sees in CVAT:

- keyframes sorted by frame; between consecutive keyframes ``k0, k1`` the frames
  ``k0+1 .. k1-1`` are generated only if ``k0`` is not outside;
- points are linear: ``p0 + (p1 - p0) * ((f - f0) / (f1 - f0))`` (same operation order as
  CVAT, so the numbers are bit-identical);
- rotation follows CVAT's ``find_angle_diff`` (shortest arc), including its quirk that a
  difference of exactly -180 degrees becomes +1 degree, then ``(r0 + d * t + 360) % 360``;
- every other field (occluded, z_order, label, score, ``data`` columns) is copied from ``k0``;
- after the last keyframe, if it is not outside, its box is copied forward to the stop frame
  (or to the end of the job storing the track when the caller says which, see
  :func:`expand_keyframes`);
- a keyframe beyond the stop frame still steers the interpolation of the frames before it,
  but nothing past the stop frame is returned;
- outside keyframes are returned themselves, flagged outside.

:func:`thin_keyframes` is the inverse: the fewest keyframes that reproduce dense per-frame
boxes within a pixel tolerance when expanded by the rules above. It exists because
trackers and MOT imports give CVAT one keyframe per frame, which makes tracks impossible to
edit in the UI (CVAT issues #349 and #9502).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import AnnotationFormatError

__all__ = ["cvat_angle_diff", "expand_keyframes", "thin_keyframes"]


def cvat_angle_diff(right: np.ndarray, left: np.ndarray) -> np.ndarray:
    """CVAT's ``find_angle_diff(right, left)``: signed shortest rotation from left to right.

    Reproduced with its quirk: after wrapping to [-180, 180) a difference of exactly -180
    degrees takes the branch ``360 - abs(d) * -1 if d > 0 else 1`` and becomes 1.

    >>> cvat_angle_diff(np.array([10.0, 350.0, 180.0]), np.array([350.0, 10.0, 0.0])).tolist()
    [20.0, -20.0, 1.0]
    """
    d = np.asarray(right, dtype=np.float64) - np.asarray(left, dtype=np.float64)
    d = np.mod(d + 180.0, 360.0) - 180.0
    return np.where(np.abs(d) >= 180.0, np.where(d > 0, 360.0 + np.abs(d), 1.0), d)


def _check_unique_frames(tracks: Tracks) -> None:
    if len(tracks) < 2:
        return
    dup = (tracks.track_id[1:] == tracks.track_id[:-1]) & (tracks.frame[1:] == tracks.frame[:-1])
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise AnnotationFormatError(
            "two shapes of one track on the same frame (CVAT allows one per frame)",
            frame=int(tracks.frame[i]),
            track_id=int(tracks.track_id[i]),
        )


def expand_keyframes(
    tracks: Tracks,
    *,
    stop_frame: int,
    job_stops: Sequence[int] | None = None,
    track_stops: Mapping[int, int] | None = None,
) -> Tracks:
    """Expand stored keyframes to one box per frame exactly as CVAT does.

    Every input row is treated as a stored keyframe (CVAT stores nothing else); in the
    result, ``keyframe`` is true only on those rows and false on generated ones.

    Args:
        tracks: keyframes, e.g. read from CVAT JSON.
        stop_frame: last frame of the task (inclusive, CVAT's ``stop_frame``); nothing after
            it is returned.
        job_stops: last frame (inclusive) of each job. When given, the last visible
            keyframe of a track is copied forward only to the end of the job holding that
            keyframe's frame, as in a job-level read of a track piece; without it, to
            ``stop_frame``. Only right when jobs do not overlap: a frame shared by two
            jobs is given the earlier job's end, while CVAT runs the track to the end of
            the job that stores it, which the frame alone cannot tell; pass
            ``track_stops`` then.
        track_stops: track id → last frame of the job that stores the track (the caller
            knows it, e.g. from a job-level read). Takes precedence over ``job_stops``
            for the tracks it names.

    A task-level read of CVAT needs neither: ``TaskAnnotation.init_from_db`` merges the
    jobs in order and closes every track still open when the next job is merged with an
    ``outside`` keyframe at ``next start + overlap`` = the end of its own job + 1
    (``ObjectManager.merge`` → ``TrackManager._modify_unmached_object``), so only tracks of
    the last job arrive open, and they run to the task's end (``stop_frame``).

    Returns:
        Dense tracks, outside keyframes included (use ``.visible()`` for drawn boxes).

    Raises:
        AnnotationFormatError: two keyframes of one track on the same frame.

    >>> kf = Tracks.from_columns(frame=[0, 4], track_id=[1, 1], xyxy=[[0, 0, 10, 10], [4, 0, 14, 10]])
    >>> d = expand_keyframes(kf, stop_frame=6)
    >>> d.frame.tolist(), d.xyxy[:, 0].tolist(), d.keyframe.astype(int).tolist()
    ([0, 1, 2, 3, 4, 5, 6], [0.0, 1.0, 2.0, 3.0, 4.0, 4.0, 4.0], [1, 0, 0, 0, 1, 0, 0])
    """
    _check_unique_frames(tracks)
    n = len(tracks)
    if n == 0:
        return tracks
    f = tracks.frame
    end = int(stop_frame) + 1
    has_next = np.zeros(n, dtype=bool)
    has_next[:-1] = tracks.track_id[1:] == tracks.track_id[:-1]
    nxt = np.minimum(np.arange(n) + 1, n - 1)
    emitted = f < end

    # Frames generated after each keyframe (before the next one or to the end).
    if job_stops is not None and len(job_stops):
        stops = np.sort(np.asarray(job_stops, dtype=np.int64))
        idx = np.searchsorted(stops, f, side="left")
        tail_end = np.where(idx < len(stops), stops[np.minimum(idx, len(stops) - 1)], stop_frame)
    else:
        tail_end = np.full(n, stop_frame, dtype=np.int64)
    if track_stops:
        ids = np.fromiter(track_stops.keys(), dtype=np.int64, count=len(track_stops))
        ends = np.fromiter(track_stops.values(), dtype=np.int64, count=len(track_stops))
        order = np.argsort(ids)
        ids, ends = ids[order], ends[order]
        pos = np.minimum(np.searchsorted(ids, tracks.track_id), len(ids) - 1)
        named = ids[pos] == tracks.track_id
        tail_end = np.where(named, ends[pos], tail_end)
    tail_end = np.minimum(tail_end, stop_frame)
    fill = np.where(has_next, np.minimum(f[nxt], end) - f - 1, tail_end - f)
    fill = np.where(tracks.outside | ~emitted, 0, np.maximum(fill, 0))
    counts = np.where(emitted, 1 + fill, 0)

    total = int(counts.sum())
    src = np.repeat(np.arange(n), counts)
    starts = np.cumsum(counts) - counts
    k = np.arange(total, dtype=np.int64) - np.repeat(starts, counts)
    out_frame = f[src] + k

    xyxy = tracks.xyxy[src].copy()
    rotation = tracks.rotation[src].copy()
    interp = (k > 0) & has_next[src]
    if interp.any():
        i0 = src[interp]
        i1 = nxt[i0]
        offset = (out_frame[interp] - f[i0]) / (f[i1] - f[i0])
        diff = tracks.xyxy[i1] - tracks.xyxy[i0]
        xyxy[interp] = tracks.xyxy[i0] + diff * offset[:, None]
        r0 = tracks.rotation[i0]
        rotation[interp] = np.mod(r0 + cvat_angle_diff(tracks.rotation[i1], r0) * offset + 360.0, 360.0)

    return Tracks(
        frame=out_frame,
        track_id=tracks.track_id[src],
        xyxy=xyxy,
        label=tracks.label[src],
        outside=tracks.outside[src],
        occluded=tracks.occluded[src],
        keyframe=k == 0,
        visibility=tracks.visibility[src],
        source=tracks.source[src],
        score=tracks.score[src],
        rotation=rotation,
        labels=tracks.labels,
        data={key: np.asarray(v)[src] for key, v in tracks.data.items()},
    )


# ---------------------------------------------------------------------------------- thinning
def _segment_errors(
    box: np.ndarray, rot: np.ndarray | None, i: int, js: np.ndarray, tol: float | np.ndarray = 0.0
) -> np.ndarray:
    """Max error (px) beyond ``tol`` of interpolating ``box[i] → box[j]`` on the frames strictly between.

    ``tol`` is a number or, for size-relative thinning, a per-row (n, 4) array of allowed
    deviations per coordinate; the result is ``max(error - tol)`` over the inner frames and
    coordinates (0 for adjacent frames), so a segment is acceptable when it is ≤ 0.

    Row positions are frame offsets (runs are contiguous), so the interpolation offset of
    position ``m`` is ``(m - i) / (j - i)`` exactly as CVAT computes it.
    """
    hi = int(js.max())
    ms = np.arange(i + 1, hi)  # inner positions
    if len(ms) == 0:
        return np.zeros(len(js))
    t = (ms[None, :] - i) / (js[:, None] - i)  # (J, M)
    inside = ms[None, :] < js[:, None]
    p0 = box[i]
    pred = p0 + (box[js] - p0)[:, None, :] * t[:, :, None]  # (J, M, 4)
    if isinstance(tol, np.ndarray):
        excess = np.abs(pred - box[ms][None, :, :]) - tol[ms][None, :, :]
    else:
        excess = np.abs(pred - box[ms][None, :, :]) - tol
    err = excess.max(axis=2)
    if rot is not None:
        r0 = rot[i]
        rpred = np.mod(r0 + cvat_angle_diff(rot[js], np.full(len(js), r0))[:, None] * t + 360.0, 360.0)
        dang = np.abs(np.mod(rpred - rot[ms][None, :] + 180.0, 360.0) - 180.0)
        half_diag = 0.5 * np.hypot(box[ms, 2] - box[ms, 0], box[ms, 3] - box[ms, 1])
        err = err + np.deg2rad(dang) * half_diag[None, :]
    return np.where(inside, err, -np.inf).max(axis=1)


def _thin_run(
    box: np.ndarray,
    rot: np.ndarray | None,
    forced: np.ndarray,
    tol: float | np.ndarray,
    *,
    open_end: bool,
) -> tuple[list[int], bool]:
    """Greedy farthest-reach keyframe choice on one contiguous run of boxes.

    ``tol``: allowed deviation per coordinate, a number or per row (n, 4).

    Returns (keyframe positions, whether the run's end is reached without a keyframe on its
    last frame). ``open_end`` means an outside keyframe follows the run, whose box may be
    set on the extension of the last segment, so the last frame need not be a keyframe.

    Greedy is never worse than the keyframes the boxes were generated from: from any
    position between two of those keyframes, the segment to the next one is exact.
    """
    n = len(box)
    kfs = [0]
    i = 0
    forced_pos = np.flatnonzero(forced)
    while i < n - 1:
        nxt_forced = np.searchsorted(forced_pos, i, side="right")
        limit = int(forced_pos[nxt_forced]) if nxt_forced < len(forced_pos) else n - 1
        if not open_end and limit == n - 1:
            # Copy-forward tail: the last keyframe's box is repeated to the stop frame.
            tail_tol = tol[i + 1 :] if isinstance(tol, np.ndarray) else tol
            tail_ok = bool((np.abs(box[i + 1 :] - box[i]) - tail_tol).max() <= 1e-9)
            if rot is not None and tail_ok:
                tail_ok = bool(np.all(rot[i + 1 :] == rot[i]))
            if tail_ok:
                return kfs, True
        window = 64
        best = i + 1
        while True:
            hi = min(i + window, limit)
            js = np.arange(i + 1, hi + 1)
            ok = _segment_errors(box, rot, i, js, tol) <= 1e-9
            best = int(js[np.flatnonzero(ok)[-1]])  # j = i+1 is always valid
            if best < hi or hi == limit:
                break
            window *= 4
        if best == n - 1 and open_end and not forced[n - 1]:
            return kfs, True
        kfs.append(best)
        i = best
    return kfs, False


def thin_keyframes(
    tracks: Tracks,
    *,
    tolerance_px: float = 1.0,
    stop_frame: int | None = None,
    force_on: Sequence[str] = ("z_order",),
    tolerance_box_fraction: float = 0.0,
) -> Tracks:
    """Fewest CVAT keyframes that reproduce dense per-frame boxes within ``tolerance_px``.

    Expanding the result with :func:`expand_keyframes` (same ``stop_frame``) gives every
    visible input box back with each coordinate within ``tolerance_px`` (rotation error is
    converted to pixels at the box's half diagonal), and no visible box where the input has
    none. Keyframes are forced where ``occluded``, the label or a ``force_on`` data column
    changes, because CVAT copies those fields from the previous keyframe.

    Gaps and ends get an ``outside`` keyframe on the frame after the last box, unless the
    track runs to ``stop_frame``. Its box lies on the extension of the last interpolated
    segment (a copy of the last box when that box is a keyframe), which lets the last
    visible frame of a run be interpolated instead of stored.

    Args:
        tracks: dense boxes; rows flagged outside are ignored.
        tolerance_px: largest allowed deviation per coordinate. Raising it trades box
            accuracy for fewer keyframes; 0 keeps exactly the corners of the motion.
        stop_frame: last frame of the sequence; a track whose last box is there gets no
            closing outside keyframe. Default: the last frame holding any box.
        force_on: ``data`` columns whose changes need a keyframe (those present are used).
        tolerance_box_fraction: size-relative tolerance for machine tracks: x coordinates
            may deviate by this fraction of the box's width and y coordinates of its height
            (with ``tolerance_px`` as the floor). 0.05 keeps every frame's IoU with the input
            box above about 0.9 whatever the object's size, where a pixel tolerance is either
            too strict for a large box or too loose for a small one. Raising it trades box
            accuracy for fewer keyframes. 0 (default) is the pixel tolerance alone; use it
            for human annotations, whose boxes should come back as drawn.

    Raises:
        AnnotationFormatError: two boxes of one track on the same frame.

    >>> dense = Tracks.from_columns(frame=range(5), track_id=[1] * 5,
    ...                             xyxy=[[0, 0, 100, 200], [3, 0, 103, 200], [4, 0, 104, 200],
    ...                                   [9, 0, 109, 200], [12, 0, 112, 200]])
    >>> len(thin_keyframes(dense)), len(thin_keyframes(dense, tolerance_box_fraction=0.03))
    (3, 2)
    """
    if tolerance_px < 0 or not np.isfinite(tolerance_px):
        raise ValueError(f"tolerance_px must be a finite number >= 0, got {tolerance_px}")
    if tolerance_box_fraction < 0 or not np.isfinite(tolerance_box_fraction):
        raise ValueError(f"tolerance_box_fraction must be a finite number >= 0, got {tolerance_box_fraction}")
    vis = tracks.visible()
    _check_unique_frames(vis)
    if len(vis) == 0:
        return vis
    stop = int(vis.frame.max()) if stop_frame is None else int(stop_frame)
    f = vis.frame
    n = len(vis)
    same = np.zeros(n, dtype=bool)
    same[1:] = (vis.track_id[1:] == vis.track_id[:-1]) & (f[1:] == f[:-1] + 1)
    run_starts = np.flatnonzero(~same)
    run_ends = np.append(run_starts[1:], n)
    changed = np.zeros(n, dtype=bool)
    changed[1:] = (vis.occluded[1:] != vis.occluded[:-1]) | (vis.label[1:] != vis.label[:-1])
    for key in force_on:
        if key in vis.data:
            col = np.asarray(vis.data[key])
            changed[1:] |= col[1:] != col[:-1]
    forced = changed & same
    has_rot = bool(np.any(vis.rotation != 0))
    tol_all: float | np.ndarray = float(tolerance_px)
    if tolerance_box_fraction > 0:
        wh = np.abs(vis.xyxy[:, 2:] - vis.xyxy[:, :2]) * float(tolerance_box_fraction)
        tol_all = np.maximum(np.tile(wh, 2), float(tolerance_px))  # (n, 4): w, h, w, h

    keep: list[np.ndarray] = []
    outside_rows: list[int] = []
    outside_boxes: list[np.ndarray] = []
    outside_frames: list[int] = []
    outside_rots: list[float] = []
    for a, b in zip(run_starts.tolist(), run_ends.tolist()):
        box = vis.xyxy[a:b]
        rot = vis.rotation[a:b] if has_rot else None
        last_frame = int(f[b - 1])
        open_end = last_frame < stop
        tol = tol_all[a:b] if isinstance(tol_all, np.ndarray) else tol_all
        kfs, reached = _thin_run(box, rot, forced[a:b], tol, open_end=open_end)
        keep.append(a + np.asarray(kfs, dtype=np.int64))
        if open_end:
            last_kf = kfs[-1]
            m = b - a - 1
            if reached and last_kf < m:
                # Extend the last segment one frame past the run: interpolating towards this
                # box reproduces the segment last_kf → m on every frame of the run.
                scale = (m + 1 - last_kf) / (m - last_kf)
                ext = box[last_kf] + (box[m] - box[last_kf]) * scale
                r0 = vis.rotation[a + last_kf]
                r_ext = float(np.mod(r0 + cvat_angle_diff(vis.rotation[a + m], r0) * scale, 360.0))
            else:
                ext = box[m]
                r_ext = float(vis.rotation[b - 1])
            outside_rots.append(r_ext)
            outside_rows.append(b - 1)
            outside_boxes.append(ext)
            outside_frames.append(last_frame + 1)

    sel = vis[np.concatenate(keep)]
    if not outside_rows:
        return sel.with_columns(keyframe=np.ones(len(sel), dtype=bool))
    closing = vis[np.asarray(outside_rows)]
    closing = closing.with_columns(
        frame=np.asarray(outside_frames, dtype=np.int64),
        xyxy=np.asarray(outside_boxes, dtype=np.float64).reshape(-1, 4),
        outside=np.ones(len(closing), dtype=bool),
        rotation=np.asarray(outside_rots, dtype=np.float64),
    )
    out = Tracks.concat([sel, closing])
    return out.with_columns(keyframe=np.ones(len(out), dtype=bool))
