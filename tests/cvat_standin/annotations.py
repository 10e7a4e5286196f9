"""CVAT's annotation storage rules: per-job storage, slicing at job boundaries, task-level merge.

Everything here works on plain JSON dicts shaped like CVAT's ``LabeledData``
(``tags``, ``shapes``, ``tracks``), because that is what CVAT's dataset manager
works on too. What each function reproduces, and where it was read:

* ``cvat/apps/dataset_manager/task.py`` (``JobAnnotation``, ``TaskAnnotation``, read
  @004c52ff):

  - Annotations live in the job (``LabeledTrack.job``). A task-level write
    (``TaskAnnotation._patch_data``) slices the request per job with
    ``AnnotationIR.slice(start, stop)`` and then runs the job-level operation on every
    job, so one uploaded track becomes one stored track per job it touches, each with its
    own id.
  - Job-level ``put`` deletes everything in the job, then creates; ``create`` adds;
    ``update`` deletes the given ids *of this job* and re-creates the objects **with the
    ids given in the request** (``models.LabeledTrack(**track)`` keeps ``id``), so ids
    survive an update, and tracked shapes sent with their ids keep them too; ``delete``
    removes the given ids of this job only (``_delete_job_labeledtracks`` filters
    ``self.db_job.labeledtrack_set``). Ids that belong to another job are ignored by
    ``delete``; on ``update`` they collide with the other job's primary key, which is an
    ``IntegrityError`` inside ``transaction.atomic`` (HTTP 500, nothing written). This
    matters for task-level ``update`` of a track that was cut into pieces: every job
    slice carries the same id, so the second job's insert collides. The stand-in
    reproduces that as a 500 with nothing applied.
  - ``_correct_frame_of_tracked_shapes``: when ``track.frame`` is before the first shape,
    an ``outside`` copy of the first shape is added at ``track.frame``; when the first
    shape is earlier, ``track.frame`` is moved to it. Tracks without shapes are dropped.
  - The job does not check that frames lie inside its segment (no such validation in
    ``JobAnnotation``); the stand-in stores them as CVAT does.
  - ``_init_version_from_db`` sets ``version = 0`` ("FIXME: should be removed"): the
    ``version`` field of a read is always 0 on current CVAT, so a client must detect
    concurrent edits with the job's ``updated_date``, never with ``version``.
  - Reads fill attributes missing on an object with the label's default values
    (``_extend_attributes``); mutable attributes missing on a tracked shape are inherited
    from the previous shape.

* ``cvat/apps/dataset_manager/annotation.py`` (``AnnotationIR``, ``AnnotationManager``,
  ``TrackManager``, read @4c4f6b5d):

  - ``_is_track_inside``: a track belongs to a segment if a visible span between two of
    its keyframes overlaps the segment, or its last keyframe is visible and not after the
    segment's stop.
  - ``_slice_track``: keep the keyframes inside the segment (dropping leading outside
    ones); if that lost anything, interpolate over ``[start, stop]`` and insert the
    interpolated shape at ``start`` when it is not a keyframe (the "interpolated
    keyframe" on the far side of a boundary), append the interpolated shape at ``stop``
    when the track goes on after the segment and moved, or an outside keyframe that ends
    it. The source can append the same outside keyframe twice; the stand-in keeps one.
  - ``TaskAnnotation.init_from_db`` merges jobs in order with
    ``AnnotationManager.merge(job_data, start_frame, overlap)``: objects starting at or
    after ``start + overlap`` are added as new; older tracks still open at ``start`` get
    an ``outside`` keyframe at ``start + overlap`` (``_modify_unmatched_object``); tracks
    that start inside the overlap are matched to older ones with the Hungarian method on
    ``1 - similarity`` (mean per-frame IoU over the overlap frames, outside mismatches
    count as error) and joined when the cost is ``<= 0.5`` (``_unite_objects``: the earlier
    track keeps its id, keyframes are unioned by frame). Hence: without overlap a track
    written across a boundary reads back as two pieces, with overlap as one.
  - ``get_interpolated_shapes``: rectangles, ellipses, cuboids and skeletons are linear
    in their points; rotation follows ``find_angle_diff`` (including its quirk: an exact
    180 degree turn becomes +1 degree); single points are linear, several points are
    copied; a visible last keyframe is copied forward to the end; outside keyframes are
    returned, interpolated outside frames are not.

Simplifications (the stand-in does not serve these faithfully): polygon and polyline
interpolation copies the earlier keyframe (CVAT matches curves by arc length), and
polygon similarity in the overlap merge is 0 (CVAT uses shapely); skeleton elements are
stored and returned but not sliced per element.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "Json",
    "AnnotationError",
    "IdCollision",
    "SHAPE_TYPES",
    "empty_data",
    "interpolated_shapes",
    "is_track_inside",
    "slice_track",
    "slice_data",
    "merge_task_data",
    "rectangle_iou",
]

Json = dict[str, Any]

#: ``ShapeType`` in ``cvat/apps/engine/models.py``.
SHAPE_TYPES = frozenset(
    {"rectangle", "polygon", "polyline", "points", "ellipse", "cuboid", "mask", "skeleton"}
)
_LINEAR_TYPES = frozenset({"rectangle", "ellipse", "cuboid", "skeleton"})


class AnnotationError(ValueError):
    """A request CVAT rejects with HTTP 400; ``detail`` is the JSON body CVAT sends."""

    def __init__(self, detail: Any) -> None:
        super().__init__(str(detail))
        self.detail = detail


class IdCollision(RuntimeError):
    """An insert reused a primary key held by another job: CVAT answers 500, writes nothing."""


def empty_data() -> Json:
    """A ``LabeledData`` with nothing in it (``version`` is always 0, see module docstring)."""
    return {"version": 0, "tags": [], "shapes": [], "tracks": []}


# --------------------------------------------------------------------------- interpolation


def _angle_diff(right: float, left: float) -> float:
    """``find_angle_diff`` from ``TrackManager.get_interpolated_shapes``, quirk included."""
    diff = ((right - left + 180.0) % 360.0) - 180.0
    if abs(diff) >= 180.0:
        diff = 1.0
    return diff


def _copy_shape(src: Json, frame: int, points: Iterable[float] | None = None,
                rotation: float | None = None) -> Json:
    out = dict(src)
    out["attributes"] = copy.deepcopy(src.get("attributes", []))
    out["keyframe"] = False
    out["frame"] = frame
    out.pop("id", None)
    if rotation is not None:
        out["rotation"] = rotation
    out["points"] = [float(p) for p in (src.get("points", []) if points is None else points)]
    return out


def _interpolate_pair(s0: Json, s1: Json) -> list[Json]:
    """Shapes strictly between two keyframes of one track."""
    if s0["type"] != s1["type"]:
        raise AnnotationError([f"cannot interpolate {s0['type']} to {s1['type']}"])
    f0, f1 = int(s0["frame"]), int(s1["frame"])
    kind = s0["type"]
    p0 = np.asarray(s0.get("points", []), dtype=np.float64)
    p1 = np.asarray(s1.get("points", []), dtype=np.float64)
    linear = kind in _LINEAR_TYPES or (kind == "points" and p0.size == 2 and p1.size == 2)
    if linear and p0.shape != p1.shape:
        linear = False
    out = []
    r0 = float(s0.get("rotation", 0.0))
    dr = _angle_diff(float(s1.get("rotation", 0.0)), r0)
    for frame in range(f0 + 1, f1):
        offset = (frame - f0) / (f1 - f0)
        if linear:
            out.append(_copy_shape(s0, frame, (p0 + (p1 - p0) * offset).tolist(),
                                   (r0 + dr * offset + 360.0) % 360.0))
        else:
            out.append(_copy_shape(s0, frame))
    return out


def interpolated_shapes(track: Json, start_frame: int, end_frame: int, *,
                        include_outside: bool = False) -> list[Json]:
    """Per-frame shapes of ``track`` for frames ``< end_frame`` (``get_interpolated_shapes``).

    Every returned shape has ``keyframe``; stored keyframes are copied, never mutated.
    ``start_frame`` only bounds the visible tail like CVAT's (which filters on the track's
    own first frame, not on ``start_frame``), so callers slice the result themselves.
    """
    del start_frame  # CVAT filters on track["frame"]; kept for the same call shape.
    shapes: list[Json] = []
    prev: Json | None = None
    for raw in sorted(track["shapes"], key=lambda s: int(s["frame"])):
        shape = copy.deepcopy(raw)
        cur = int(shape["frame"])
        if prev is not None and end_frame <= cur:
            tail = _interpolate_pair(prev, shape) + [shape]
            shape["keyframe"] = True
            shapes.extend(s for s in tail if int(s["frame"]) < end_frame)
            prev = shape
            break
        if prev is not None:
            have = {a["spec_id"] for a in shape.get("attributes", [])}
            shape.setdefault("attributes", [])
            shape["attributes"].extend(copy.deepcopy(a) for a in prev.get("attributes", [])
                                       if a["spec_id"] not in have)
            if not prev.get("outside", False) or include_outside:
                shapes.extend(_interpolate_pair(prev, shape))
        shape["keyframe"] = True
        shapes.append(shape)
        prev = shape
    if prev is not None and (not prev.get("outside", False) or include_outside):
        shapes.extend(_copy_shape(prev, f) for f in range(int(prev["frame"]) + 1, end_frame))
    first = int(track["frame"])
    return [s for s in shapes
            if first <= int(s["frame"]) < end_frame
            and (s["keyframe"] or not s.get("outside", False) or include_outside)]


# --------------------------------------------------------------------------- slicing


def _shape_inside(shape: Json, start: int, stop: int) -> bool:
    return start <= int(shape["frame"]) <= stop


def is_track_inside(track: Json, start: int, stop: int) -> bool:
    """``AnnotationIR._is_track_inside``: does any visible part of the track touch the segment."""
    prev: Json | None = None
    for shape in track["shapes"]:
        if prev is not None and not prev.get("outside", False) and \
                min(int(shape["frame"]), stop) - max(int(prev["frame"]), start) >= 0:
            return True
        prev = shape
    return prev is not None and not prev.get("outside", False) and int(prev["frame"]) <= stop


def _inside_no_leading_outside(shapes: list[Json], start: int, stop: int) -> list[Json]:
    inside = [s for s in shapes if _shape_inside(s, start, stop)]
    drop = 0
    for s in inside:
        if not s.get("outside", False):
            break
        drop += 1
    return inside[drop:]


def slice_track(track: Json, start: int, stop: int) -> Json:
    """``AnnotationIR._slice_track``: the part of ``track`` stored in segment ``[start, stop]``."""
    track = copy.deepcopy(track)
    track["shapes"] = sorted(track["shapes"], key=lambda s: int(s["frame"]))
    seg = _inside_no_leading_outside(copy.deepcopy(track["shapes"]), start, stop)
    track["elements"] = [slice_track(e, start, stop) for e in track.get("elements", [])]
    if len(seg) < len(track["shapes"]):
        interp = interpolated_shapes(track, start, stop + 1)
        scoped = _inside_no_leading_outside(interp, start, stop)
        if scoped:
            last_key = int(track["shapes"][-1]["frame"])
            if not scoped[0]["keyframe"]:
                seg.insert(0, scoped[0])
            if seg and last_key >= stop and scoped[-1]["points"] != seg[-1].get("points"):
                seg.append(scoped[-1])
            elif scoped[-1]["keyframe"] and scoped[-1].get("outside", False):
                seg.append(scoped[-1])
            else:
                nxt = [s for s in interp if int(s["frame"]) == stop + 1]
                if nxt and nxt[0].get("outside", False):
                    seg.append(nxt[0])
        # One shape per frame (the source can append the closing outside keyframe twice).
        by_frame: dict[int, Json] = {}
        for s in seg:
            by_frame.setdefault(int(s["frame"]), s)
        seg = [by_frame[f] for f in sorted(by_frame)]
        for s in seg:
            s.pop("keyframe", None)
    track["shapes"] = seg
    if seg:
        track["frame"] = int(seg[0]["frame"])
    return track


def slice_data(data: Json, start: int, stop: int) -> Json:
    """``AnnotationIR.slice``: what a task-level write sends to the job ``[start, stop]``."""
    out = empty_data()
    out["tags"] = [copy.deepcopy(t) for t in data.get("tags", []) if _shape_inside(t, start, stop)]
    out["shapes"] = [copy.deepcopy(s) for s in data.get("shapes", [])
                     if _shape_inside(s, start, stop)]
    for t in data.get("tracks", []):
        if t.get("shapes") and is_track_inside(
                {**t, "shapes": sorted(t["shapes"], key=lambda s: int(s["frame"]))}, start, stop):
            piece = slice_track(t, start, stop)
            if piece["shapes"]:
                out["tracks"].append(piece)
    return out


# --------------------------------------------------------------------------- task-level merge


def rectangle_iou(a: list[float], b: list[float]) -> float:
    """IoU of two ``[x1, y1, x2, y2]`` boxes (``ShapeManager._calc_objects_similarity``)."""
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    if area_a <= 0 or area_b <= 0:
        return 0.0
    return inter / (area_a + area_b - inter)


def _shape_similarity(s0: Json, s1: Json) -> float:
    if s0["type"] != s1["type"] or s0.get("label_id") != s1.get("label_id"):
        return 0.0
    if s0["type"] == "rectangle":
        return rectangle_iou(s0["points"], s1["points"])
    return 0.0  # polygons need shapely in CVAT; points/lines are 0 there too


def _tag_similarity(t0: Json, t1: Json) -> float:
    return 1.0 if t0["label_id"] == t1["label_id"] else 0.0


def _track_similarity(t0: Json, t1: Json, start: int, overlap: int) -> float:
    if t0["label_id"] != t1["label_id"]:
        return 0.0
    end = start + overlap
    s0 = {int(s["frame"]): s for s in interpolated_shapes(t0, start, end)}
    s1 = {int(s["frame"]): s for s in interpolated_shapes(t1, start, end)}
    if not s0 or not s1:
        return 0.0
    count, error = 0, 0.0
    for frame in range(start, end):
        a, b = s0.get(frame), s1.get(frame)
        if a is not None and b is not None:
            if bool(a.get("outside")) != bool(b.get("outside")):
                error += 1
            else:
                error += 1 - _shape_similarity({**a, "label_id": 0}, {**b, "label_id": 0})
            count += 1
        elif a is not None or b is not None:
            error += 1
            count += 1
    return 1 - error / (count or 1)


def _unite_simple(o0: Json, o1: Json) -> Json:
    return o0 if int(o0["frame"]) < int(o1["frame"]) else o1


def _unite_tracks(t0: Json, t1: Json) -> Json:
    track = t0 if int(t0["frame"]) < int(t1["frame"]) else t1
    shapes = {int(s["frame"]): s for s in t0["shapes"]}
    for s in t1["shapes"]:
        f = int(s["frame"])
        shapes[f] = _unite_simple(shapes[f], s) if f in shapes else s
    track["frame"] = min(int(t0["frame"]), int(t1["frame"]))
    track["shapes"] = [shapes[f] for f in sorted(shapes)]
    return track


def _close_track(track: Json, end_frame: int) -> None:
    last = track["shapes"][-1]
    if not last.get("outside", False):
        closing = copy.deepcopy(last)
        closing["frame"] = end_frame
        closing["outside"] = True
        track["shapes"].append(closing)
        for element in track.get("elements", []):
            _close_track(element, end_frame)


def _merge_objects(
    acc: list[Json], objects: list[Json], start: int, overlap: int, *,
    by_frame: Callable[[list[Json], int], dict[int, list[Json]]],
    similarity: Callable[[Json, Json], float],
    unite: Callable[[Json, Json], Json],
    threshold: float,
    on_unmatched: Callable[[Json, int], None] | None,
) -> None:
    """``ObjectManager.merge``: fold one job's objects into the task-level list ``acc``."""
    new = [o for o in objects if int(o["frame"]) >= start + overlap]
    inter = [o for o in objects if int(o["frame"]) < start + overlap]
    inter_by_frame = by_frame(inter, start)
    old_by_frame = by_frame(acc, start)
    acc.extend(new)
    if not old_by_frame or not inter_by_frame:
        if on_unmatched is not None:
            for olds in old_by_frame.values():
                for old in olds:
                    on_unmatched(old, start + overlap)
        acc.extend(inter)
        return
    for frame, ints in inter_by_frame.items():
        olds = old_by_frame.get(frame)
        if not olds:
            acc.extend(ints)
            continue
        cost = np.array([[1 - similarity(i, o) for o in olds] for i in ints], dtype=float)
        rows, cols = linear_sum_assignment(cost)
        used_i, used_o = set(), set()
        for i, j in zip(rows, cols):
            if cost[i, j] <= threshold:
                # As in CVAT, only the object chosen by ``unite`` is changed in place; the
                # task-level list keeps holding the old object either way.
                olds[j] = unite(ints[i], olds[j])
                used_i.add(i)
                used_o.add(j)
        acc.extend(o for k, o in enumerate(ints) if k not in used_i)
        if on_unmatched is not None:
            for k, o in enumerate(olds):
                if k not in used_o:
                    on_unmatched(o, start + overlap)


def _objects_by_frame(objects: list[Json], start: int) -> dict[int, list[Json]]:
    out: dict[int, list[Json]] = {}
    for o in objects:
        if int(o["frame"]) >= start:
            out.setdefault(int(o["frame"]), []).append(o)
    return out


def _tracks_by_frame(tracks: list[Json], start: int) -> dict[int, list[Json]]:
    live = [t for t in tracks if t["shapes"] and
            (int(t["shapes"][-1]["frame"]) >= start or not t["shapes"][-1].get("outside", False))]
    return {0: live} if live else {}


def merge_task_data(jobs: list[tuple[int, Json]], overlap: int) -> Json:
    """``TaskAnnotation.init_from_db``: the task-level read from per-job data.

    Args:
        jobs: ``(start_frame, job LabeledData)`` of every annotation job, in job order.
        overlap: the task's segment overlap (0 when the task has none).
    """
    acc = empty_data()
    for start, data in jobs:
        data = copy.deepcopy(data)
        _merge_objects(acc["tags"], data["tags"], start, overlap, by_frame=_objects_by_frame,
                       similarity=_tag_similarity, unite=_unite_simple, threshold=0.25,
                       on_unmatched=None)
        _merge_objects(acc["shapes"], data["shapes"], start, overlap,
                       by_frame=_objects_by_frame, similarity=_shape_similarity,
                       unite=_unite_simple, threshold=0.25, on_unmatched=None)
        _merge_objects(acc["tracks"], data["tracks"], start, overlap, by_frame=_tracks_by_frame,
                       similarity=lambda a, b, s=start: _track_similarity(a, b, s, overlap),
                       unite=_unite_tracks, threshold=0.5, on_unmatched=_close_track)
    return acc
