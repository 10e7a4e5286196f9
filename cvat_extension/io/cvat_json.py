"""CVAT annotation JSON (``LabeledData``), as returned by ``GET /api/{tasks|jobs}/{id}/annotations``.

The document is ``{version, tags, shapes, tracks}``; each track is
``{id, label_id, frame, group, source, attributes, shapes: [TrackedShape], elements}`` and
holds only keyframes (``cvat-interfaces.md`` §3.3). Rectangle tracks become rows of a
:class:`~cvat_extension.core.tracks.Tracks` (one row per keyframe, CVAT track id in
``track_id``, ``z_order`` in ``data``); everything else (tags, non-rectangle tracks and
shapes, attributes, groups, skeleton elements, shape ids) is kept verbatim in
:class:`CvatAnnotations`, so that a read → write round trip gives back exactly the JSON of
every track we did not modify. An annotator's work is never lost by passing through us.

Label ids map to names through a labels list (``[{"id", "name"}]``) that callers pass (from
``task.get_labels()``), or a sidecar ``"labels"`` key in the file. A sidecar ``"meta"`` key
(``{"size", "job_starts", "width", "height", "name"}``) carries what the API returns beside
the annotations; neither sidecar key is sent to the server.
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import IO, Any

import numpy as np

from cvat_extension.core.keyframes import expand_keyframes, thin_keyframes
from cvat_extension.core.tracks import SOURCES, SequenceInfo, Source, Tracks
from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io._atomic import write_atomic
from cvat_extension.io._limits import MAX_COORD, MAX_FRAMES, frame_ok, int32_ok

__all__ = ["CvatAnnotations", "CvatLabel", "parse_labeled_data", "read_cvat_json", "write_cvat_json"]

_SOURCE_CODE = {s.value: i for i, s in enumerate(SOURCES)}


@dataclass(frozen=True, slots=True)
class CvatLabel:
    """A CVAT label: server id and name."""

    id: int
    name: str


@dataclass(frozen=True, eq=False)
class CvatAnnotations:
    """A parsed ``LabeledData`` document that can be written back without loss.

    Attributes:
        tracks: keyframes of rectangle tracks; ``track_id`` is the CVAT track id (or an id
            above all others for tracks without one, listed in ``synthetic_ids``).
        shapes: plain rectangle shapes (one row each; ``track_id`` is the shape id).
        labels: the label list used to map ``label_id`` ↔ name; ``tracks.labels`` holds
            the names in the same order.
        version: the document's ``version``.
        raw_tracks: original JSON of every rectangle track, by ``track_id``.
        track_order: original order of all tracks: ``("rect", track_id)`` or
            ``("other", index into other_tracks)``.
        other_tracks: non-rectangle tracks, verbatim.
        raw_shapes: every plain shape (rectangles included), verbatim, in file order.
        tags: tags, verbatim.
        extra: other top-level keys (e.g. ``intervals``), verbatim.
        synthetic_ids: track ids we assigned because the input had none.
        meta: sidecar meta (``size``, ``job_starts``, ``width``, ``height``, ``name``).
    """

    tracks: Tracks
    shapes: Tracks
    labels: tuple[CvatLabel, ...]
    version: int = 0
    raw_tracks: Mapping[int, dict[str, Any]] = field(default_factory=dict)
    track_order: tuple[tuple[str, int], ...] = ()
    other_tracks: tuple[dict[str, Any], ...] = ()
    raw_shapes: tuple[dict[str, Any], ...] = ()
    tags: tuple[dict[str, Any], ...] = ()
    extra: Mapping[str, Any] = field(default_factory=dict)
    synthetic_ids: frozenset[int] = frozenset()
    meta: Mapping[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ helpers
    def label_id(self, name: str) -> int:
        """CVAT label id of label ``name``.

        Raises:
            AnnotationFormatError: the name is not in :attr:`labels`.
        """
        for label in self.labels:
            if label.name == name:
                return label.id
        known = ", ".join(repr(lb.name) for lb in self.labels)
        raise AnnotationFormatError(f"unknown label {name!r}; the task has {known}")

    def sequence_info(self) -> SequenceInfo:
        """What the sidecar meta says about the task (zeros where unknown)."""
        m = self.meta
        return SequenceInfo(
            num_frames=int(m.get("size", 0) or 0),
            width=int(m.get("width", 0) or 0),
            height=int(m.get("height", 0) or 0),
            frame_base=0,
            job_starts=tuple(int(s) for s in m.get("job_starts", ()) or ()),
            name=str(m.get("name", "") or ""),
        )

    def with_labels(self, labels: Sequence[CvatLabel]) -> CvatAnnotations:
        """The same document whose label list is ``labels`` (codes remapped by name)."""
        return _replace_labels(self, tuple(labels))

    # ------------------------------------------------------------------ writing
    def to_labeled_data(
        self,
        tracks: Tracks | None = None,
        *,
        dense: bool = False,
        stop_frame: int | None = None,
        tolerance_px: float = 1.0,
        changed_only: bool = False,
        keep_new_ids: bool = False,
    ) -> dict[str, Any]:
        """A ``LabeledData`` JSON dict for PUT (or, with ``changed_only``, for PATCH).

        Args:
            tracks: the rectangle tracks to write; default :attr:`tracks` unchanged. A track
                id of the original document whose keyframes (or, with ``dense``, whose
                expanded boxes) are unchanged is written as its original JSON, byte for
                byte. Ids missing from ``tracks`` are left out (deleted by a PUT). Other ids
                become new tracks without ``id``.
            dense: ``tracks`` holds per-frame boxes (e.g. from a MOT file or a merge); they
                are thinned to keyframes with outside keyframes at gaps.
            stop_frame: last task frame (for expansion and thinning); default the sidecar
                ``size - 1``, else the last frame in the data.
            tolerance_px: thinning tolerance.
            changed_only: emit only new and modified tracks (PATCH ``create`` for those
                without ``id``, ``update`` for those with one), and no tags or shapes.
            keep_new_ids: write ``id`` on new tracks too (files only: keeps object ids
                through conversions; never send such a document to the server).

        Raises:
            AnnotationFormatError: a track changes label (a CVAT track has one label) or
                uses a label missing from :attr:`labels`.
        """
        given = self.tracks if tracks is None else tracks
        stop = self._stop_frame(given, stop_frame)
        by_id = dict(given.iter_tracks())
        out_tracks: list[dict[str, Any]] = []
        for kind, key in self.track_order:
            if kind == "other":
                if not changed_only:
                    out_tracks.append(self.other_tracks[key])
                continue
            if key not in by_id:
                continue
            rows = by_id.pop(key)
            kf = self._keyframes_of(rows, dense=dense, stop=stop, tolerance_px=tolerance_px)
            if self._unchanged(key, rows, kf, dense=dense, stop=stop):
                if not changed_only:
                    out_tracks.append(self.raw_tracks[key])
                continue
            out_tracks.append(self._track_json(kf, self.raw_tracks[key], key))
        for key in sorted(by_id):
            kf = self._keyframes_of(by_id[key], dense=dense, stop=stop, tolerance_px=tolerance_px)
            if len(kf):
                out_tracks.append(self._track_json(kf, None, key, keep_id=keep_new_ids))
        doc: dict[str, Any] = {"version": self.version}
        if changed_only:
            doc.update({"tags": [], "shapes": [], "tracks": out_tracks})
        else:
            doc.update(
                {
                    "tags": list(self.tags),
                    "shapes": list(self.raw_shapes),
                    "tracks": out_tracks,
                    **self.extra,
                }
            )
        return copy.deepcopy(doc)

    def _stop_frame(self, given: Tracks, stop_frame: int | None) -> int:
        if stop_frame is not None:
            return int(stop_frame)
        size = int(self.meta.get("size", 0) or 0)
        if size:
            return size - 1
        frames = [int(given.frame.max())] if len(given) else []
        if len(self.tracks):
            frames.append(int(self.tracks.frame.max()))
        return max(frames) if frames else 0

    def _keyframes_of(self, rows: Tracks, *, dense: bool, stop: int, tolerance_px: float) -> Tracks:
        if not dense:
            return rows
        return thin_keyframes(rows, tolerance_px=tolerance_px, stop_frame=stop)

    def _unchanged(self, key: int, rows: Tracks, kf: Tracks, *, dense: bool, stop: int) -> bool:
        orig = self.tracks.track(key)
        if dense:
            a = expand_keyframes(orig, stop_frame=stop).visible()
            b = rows.visible()
            return (
                len(a) == len(b)
                and bool(np.array_equal(a.frame, b.frame))
                and bool(np.allclose(a.xyxy, b.xyxy, rtol=0, atol=1e-6))
                and bool(np.array_equal(a.occluded, b.occluded))
                and bool(np.array_equal(a.label, b.label))
            )
        return (
            len(orig) == len(kf)
            and bool(np.array_equal(orig.frame, kf.frame))
            and bool(np.array_equal(orig.xyxy, kf.xyxy))
            and bool(np.array_equal(orig.outside, kf.outside))
            and bool(np.array_equal(orig.occluded, kf.occluded))
            and bool(np.array_equal(orig.rotation, kf.rotation))
            and bool(np.array_equal(orig.label, kf.label))
            and _same_column(orig, kf, "z_order")
        )

    def _track_json(
        self, kf: Tracks, raw: dict[str, Any] | None, key: int, *, keep_id: bool = False
    ) -> dict[str, Any]:
        names = {kf.labels[c] for c in np.unique(kf.label)}
        if len(names) != 1:
            raise AnnotationFormatError(
                f"changes label ({', '.join(sorted(names))}); a CVAT track has one label",
                track_id=key,
            )
        label_id = self.label_id(names.pop())
        orig_shapes = {int(s["frame"]): s for s in (raw or {}).get("shapes", [])}
        orig_frames = np.array(sorted(orig_shapes), dtype=np.int64)
        z = kf.data.get("z_order")
        shapes = []
        for r in range(len(kf)):
            frame = int(kf.frame[r])
            points = [float(v) for v in kf.xyxy[r]]
            shape: dict[str, Any] = {
                "type": "rectangle",
                "frame": frame,
                "points": points,
                "rotation": float(kf.rotation[r]),
                "outside": bool(kf.outside[r]),
                "occluded": bool(kf.occluded[r]),
                "z_order": int(z[r]) if z is not None else 0,
                "attributes": [],
            }
            o = orig_shapes.get(frame)
            if o is not None:
                if "id" in o:
                    shape["id"] = o["id"]
                shape["attributes"] = copy.deepcopy(o.get("attributes", []))
            elif len(orig_frames):
                # Mutable attributes are inherited from the previous keyframe (CVAT rule).
                prev = orig_frames[orig_frames <= frame]
                if len(prev):
                    shape["attributes"] = copy.deepcopy(orig_shapes[int(prev[-1])].get("attributes", []))
            shapes.append(shape)
        if raw is not None:
            track = {k: copy.deepcopy(v) for k, v in raw.items() if k != "shapes"}
        else:
            track = {"group": 0, "attributes": [], "elements": []}
            track["source"] = SOURCES[int(kf.source[0])].value
        if key in self.synthetic_ids or raw is None:
            track.pop("id", None)
        if keep_id and raw is None:
            track = {"id": int(key), **track}
        track["label_id"] = label_id
        track["frame"] = int(kf.frame[0])
        track["shapes"] = shapes
        return track


def _same_column(a: Tracks, b: Tracks, key: str) -> bool:
    if key not in a.data and key not in b.data:
        return True
    ca = np.asarray(a.data.get(key, np.zeros(len(a), dtype=np.int32)))
    cb = np.asarray(b.data.get(key, np.zeros(len(b), dtype=np.int32)))
    return bool(np.array_equal(ca, cb))


def _replace_labels(doc: CvatAnnotations, labels: tuple[CvatLabel, ...]) -> CvatAnnotations:
    names = tuple(lb.name for lb in labels)
    index = {n: i for i, n in enumerate(names)}

    def remap(t: Tracks) -> Tracks:
        missing = {t.labels[c] for c in np.unique(t.label)} - set(index)
        if missing:
            raise AnnotationFormatError(f"labels {sorted(missing)} are not in the new label list")
        lut = np.array([index.get(n, 0) for n in t.labels] or [0], dtype=np.int32)
        return Tracks.from_columns(**{**_cols(t), "label": lut[t.label] if len(t) else t.label, "labels": names})

    return replace(doc, tracks=remap(doc.tracks), shapes=remap(doc.shapes), labels=labels)


def _cols(t: Tracks) -> dict[str, Any]:
    return {
        "frame": t.frame,
        "track_id": t.track_id,
        "xyxy": t.xyxy,
        "label": t.label,
        "outside": t.outside,
        "occluded": t.occluded,
        "keyframe": t.keyframe,
        "visibility": t.visibility,
        "source": t.source,
        "score": t.score,
        "rotation": t.rotation,
        "labels": t.labels,
        "data": dict(t.data),
    }


# ---------------------------------------------------------------------------------- parsing
class _Ctx:
    def __init__(self, path: str | None) -> None:
        self.path = path

    def fail(self, msg: str, element: str, *, frame: int | None = None, track_id: int | None = None) -> AnnotationFormatError:
        return AnnotationFormatError(msg, path=self.path, element=element, frame=frame, track_id=track_id)


def _labels_from(value: Any, ctx: _Ctx, where: str) -> tuple[CvatLabel, ...]:
    if isinstance(value, Mapping) and "results" in value:
        value = value["results"]  # a raw paginated /api/labels answer
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes)):
        raise ctx.fail("labels must be a list of {id, name}", where)
    out = []
    for i, item in enumerate(value):
        if isinstance(item, CvatLabel):
            out.append(item)
            continue
        get = item.get if isinstance(item, Mapping) else (lambda k, d=None, _o=item: getattr(_o, k, d))
        lid, name = get("id"), get("name")
        if not isinstance(lid, int) or isinstance(lid, bool) or not isinstance(name, str):
            raise ctx.fail("each label needs an integer 'id' and a string 'name'", f"{where}[{i}]")
        out.append(CvatLabel(int(lid), name))
    return tuple(out)


def _num(value: Any, ctx: _Ctx, where: str, what: str, *, integer: bool = False,
         in_range: Callable[[float], bool] = int32_ok) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ctx.fail(f"{what} must be a number, got {value!r}", where)
    if integer and not float(value).is_integer():
        raise ctx.fail(f"{what} must be an integer, got {value!r}", where)
    if not math.isfinite(float(value)):
        raise ctx.fail(f"{what} must be finite, got {value!r}", where)
    if integer and not in_range(value):
        raise ctx.fail(f"{what} out of range, got {value!r}", where)
    if abs(value) > MAX_COORD:
        raise ctx.fail(f"{what} out of range (|value| <= {MAX_COORD:g}), got {value!r}", where)
    return float(value)


def _list(obj: Mapping[str, Any], key: str, ctx: _Ctx, where: str) -> list[Any]:
    value = obj.get(key, [])
    if value is None:
        return []
    if not isinstance(value, list):
        raise ctx.fail(f"'{key}' must be a list, got {type(value).__name__}", where)
    return value


def parse_labeled_data(
    data: Mapping[str, Any],
    *,
    labels: Sequence[Any] | None = None,
    path: str | Path | None = None,
) -> CvatAnnotations:
    """Parse a ``LabeledData`` dict (from the API or a file) into :class:`CvatAnnotations`.

    Args:
        data: the JSON dict (an SDK model's ``to_dict()`` works too).
        labels: ``[{"id", "name"}]`` or :class:`CvatLabel` list; default the sidecar
            ``"labels"`` key; without either, label names are the ids as strings.
        path: file name for error messages.

    Raises:
        AnnotationFormatError: the structure, a number, a box or a label is invalid; the
            message names the element (``tracks[3].shapes[5]``).
    """
    ctx = _Ctx(str(path) if path is not None else None)
    if not isinstance(data, Mapping):
        raise ctx.fail(f"expected a JSON object with 'tracks', got {type(data).__name__}", "document")
    if labels is not None:
        label_list = _labels_from(labels, ctx, "labels argument")
    elif "labels" in data:
        label_list = _labels_from(data["labels"], ctx, "labels")
    else:
        ids: set[int] = set()
        for key in ("tracks", "shapes", "tags"):
            for obj in _list(data, key, ctx, "document"):
                if isinstance(obj, Mapping) and isinstance(obj.get("label_id"), int):
                    ids.add(int(obj["label_id"]))
        label_list = tuple(CvatLabel(i, str(i)) for i in sorted(ids))
    code_of = {lb.id: i for i, lb in enumerate(label_list)}
    names = tuple(lb.name for lb in label_list) or ("object",)

    raw_tracks_list = _list(data, "tracks", ctx, "document")
    used_ids = {int(t["id"]) for t in raw_tracks_list if isinstance(t, Mapping) and isinstance(t.get("id"), int)}
    next_id = max(used_ids, default=-1) + 1
    cols: dict[str, list[Any]] = {k: [] for k in ("frame", "track_id", "xyxy", "label", "outside", "occluded", "source", "rotation", "z_order")}
    raw_tracks: dict[int, dict[str, Any]] = {}
    order: list[tuple[str, int]] = []
    others: list[dict[str, Any]] = []
    synthetic: set[int] = set()
    for ti, track in enumerate(raw_tracks_list):
        where = f"tracks[{ti}]"
        if not isinstance(track, Mapping):
            raise ctx.fail("a track must be an object", where)
        shapes = _list(track, "shapes", ctx, where)
        if not shapes:
            raise ctx.fail("a track needs at least one shape", where)
        types = {s.get("type") if isinstance(s, Mapping) else None for s in shapes}
        if types != {"rectangle"}:
            if None in types:
                raise ctx.fail("each tracked shape must be an object with a 'type'", where)
            others.append(dict(track))
            order.append(("other", len(others) - 1))
            continue
        if isinstance(track.get("id"), int) and not isinstance(track.get("id"), bool):
            tid = int(track["id"])
            if not int32_ok(tid):
                raise ctx.fail(f"track id {tid} out of range", where)
            if tid in raw_tracks:
                raise ctx.fail(f"duplicate track id {tid}", where, track_id=tid)
        else:
            tid = next_id
            next_id += 1
            synthetic.add(tid)
        where = f"tracks[{ti}] (id {tid})"
        lid = track.get("label_id")
        if not isinstance(lid, int) or lid not in code_of:
            raise ctx.fail(f"unknown label_id {lid!r}", where, track_id=tid)
        src = _SOURCE_CODE.get(str(track.get("source", "manual")), _SOURCE_CODE[Source.MANUAL.value])
        frames_seen: set[int] = set()
        for si, shape in enumerate(shapes):
            sw = f"{where}.shapes[{si}]"
            frame = int(_num(shape.get("frame"), ctx, sw, "frame", integer=True, in_range=frame_ok))
            if frame < 0:
                raise ctx.fail(f"frame must be >= 0, got {frame}", sw, track_id=tid)
            if frame in frames_seen:
                raise ctx.fail("two shapes of one track on the same frame", sw, frame=frame, track_id=tid)
            frames_seen.add(frame)
            pts = shape.get("points")
            if not isinstance(pts, list) or len(pts) != 4:
                raise ctx.fail(f"a rectangle needs 4 points, got {pts!r}", sw, frame=frame, track_id=tid)
            box = [_num(v, ctx, sw, "points") for v in pts]
            if box[2] < box[0] or box[3] < box[1]:
                raise ctx.fail(f"negative box size: points {pts}", sw, frame=frame, track_id=tid)
            cols["frame"].append(frame)
            cols["track_id"].append(tid)
            cols["xyxy"].append(box)
            cols["label"].append(code_of[lid])
            cols["outside"].append(bool(shape.get("outside", False)))
            cols["occluded"].append(bool(shape.get("occluded", False)))
            cols["source"].append(src)
            cols["rotation"].append(_num(shape.get("rotation", 0.0) or 0.0, ctx, sw, "rotation"))
            cols["z_order"].append(int(_num(shape.get("z_order", 0) or 0, ctx, sw, "z_order", integer=True)))
        raw_tracks[tid] = dict(track)
        order.append(("rect", tid))

    tracks = Tracks.from_columns(
        frame=np.asarray(cols["frame"], dtype=np.int64),
        track_id=np.asarray(cols["track_id"], dtype=np.int64),
        xyxy=np.asarray(cols["xyxy"], dtype=np.float64).reshape(-1, 4),
        label=np.asarray(cols["label"], dtype=np.int32),
        outside=np.asarray(cols["outside"], dtype=bool),
        occluded=np.asarray(cols["occluded"], dtype=bool),
        source=np.asarray(cols["source"], dtype=np.uint8),
        rotation=np.asarray(cols["rotation"], dtype=np.float64),
        labels=names,
        data={"z_order": np.asarray(cols["z_order"], dtype=np.int32)},
    )
    raw_shapes = _list(data, "shapes", ctx, "document")
    shapes_doc = _parse_shapes(raw_shapes, ctx, code_of, names)
    tags = _list(data, "tags", ctx, "document")
    extra = {k: v for k, v in data.items() if k not in ("version", "tags", "shapes", "tracks", "labels", "meta")}
    meta = data.get("meta", {}) if isinstance(data.get("meta", {}), Mapping) else {}
    _check_meta(meta, ctx)
    version = data.get("version", 0)
    return CvatAnnotations(
        tracks=tracks,
        shapes=shapes_doc,
        labels=label_list,
        version=int(version) if isinstance(version, int) else 0,
        raw_tracks=raw_tracks,
        track_order=tuple(order),
        other_tracks=tuple(others),
        raw_shapes=tuple(raw_shapes),
        tags=tuple(tags),
        extra=extra,
        synthetic_ids=frozenset(synthetic),
        meta=dict(meta),
    )


def _check_meta(meta: Mapping[str, Any], ctx: _Ctx) -> None:
    """The sidecar meta's numbers are whole, in range (sizes and starts within
    :data:`~cvat_extension.io._limits.MAX_FRAMES`), so that reading them never fails later."""
    for key in ("size", "width", "height"):
        value = meta.get(key, 0) or 0
        if isinstance(value, bool) or not isinstance(value, int) or not int32_ok(value) or value < 0 \
                or (key == "size" and not frame_ok(value)):
            raise ctx.fail(f"meta.{key} must be a whole number in 0..{MAX_FRAMES if key == 'size' else 2**31 - 1}, "
                           f"got {value!r}", "meta")
    starts = meta.get("job_starts", []) or []
    if not isinstance(starts, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and frame_ok(s) for s in starts):
        raise ctx.fail(f"meta.job_starts must be a list of frame numbers, got {starts!r}", "meta")


def _parse_shapes(shapes: list[Any], ctx: _Ctx, code_of: Mapping[int, int], names: tuple[str, ...]) -> Tracks:
    rows: dict[str, list[Any]] = {k: [] for k in ("frame", "track_id", "xyxy", "label", "occluded", "rotation", "score", "source", "z_order")}
    synthetic = max((int(s["id"]) for s in shapes if isinstance(s, Mapping) and isinstance(s.get("id"), int)), default=-1) + 1
    for i, shape in enumerate(shapes):
        where = f"shapes[{i}]"
        if not isinstance(shape, Mapping):
            raise ctx.fail("a shape must be an object", where)
        if shape.get("type") != "rectangle":
            continue
        lid = shape.get("label_id")
        if not isinstance(lid, int) or lid not in code_of:
            raise ctx.fail(f"unknown label_id {lid!r}", where)
        frame = int(_num(shape.get("frame"), ctx, where, "frame", integer=True, in_range=frame_ok))
        pts = shape.get("points")
        if not isinstance(pts, list) or len(pts) != 4:
            raise ctx.fail(f"a rectangle needs 4 points, got {pts!r}", where, frame=frame)
        box = [_num(v, ctx, where, "points") for v in pts]
        if box[2] < box[0] or box[3] < box[1] or frame < 0:
            raise ctx.fail(f"negative box size or frame: points {pts}", where, frame=frame)
        sid = shape.get("id")
        if not isinstance(sid, int):
            sid, synthetic = synthetic, synthetic + 1
        rows["frame"].append(frame)
        rows["track_id"].append(sid)
        rows["xyxy"].append(box)
        rows["label"].append(code_of[lid])
        rows["occluded"].append(bool(shape.get("occluded", False)))
        rows["rotation"].append(_num(shape.get("rotation", 0.0) or 0.0, ctx, where, "rotation"))
        rows["score"].append(_num(shape.get("score", 1.0) if shape.get("score") is not None else 1.0, ctx, where, "score"))
        rows["source"].append(_SOURCE_CODE.get(str(shape.get("source", "manual")), _SOURCE_CODE[Source.MANUAL.value]))
        rows["z_order"].append(int(_num(shape.get("z_order", 0) or 0, ctx, where, "z_order", integer=True)))
    return Tracks.from_columns(
        frame=np.asarray(rows["frame"], dtype=np.int64),
        track_id=np.asarray(rows["track_id"], dtype=np.int64),
        xyxy=np.asarray(rows["xyxy"], dtype=np.float64).reshape(-1, 4),
        label=np.asarray(rows["label"], dtype=np.int32),
        occluded=np.asarray(rows["occluded"], dtype=bool),
        rotation=np.asarray(rows["rotation"], dtype=np.float64),
        score=np.asarray(rows["score"], dtype=np.float32),
        source=np.asarray(rows["source"], dtype=np.uint8),
        labels=names,
        data={"z_order": np.asarray(rows["z_order"], dtype=np.int32)},
    )


def read_cvat_json(path: str | Path, *, labels: Sequence[Any] | None = None) -> CvatAnnotations:
    """Read a CVAT annotation JSON file.

    Raises:
        AnnotationFormatError: the file is not JSON (with its line), or JSON of another kind
            (a COCO file, a label list: the message says which), or not valid ``LabeledData``.
    """
    from cvat_extension.io.sniff import describe_json

    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")  # Windows tools write a byte-order mark
    except UnicodeDecodeError as exc:
        raise AnnotationFormatError(f"not UTF-8 text (byte {exc.start}): not a CVAT JSON file", path=p) from exc
    except OSError as exc:
        raise AnnotationFormatError(f"cannot read: {exc.strerror or exc}", path=p) from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise AnnotationFormatError(f"invalid JSON: {exc.msg} (column {exc.colno})", path=p, line=exc.lineno) from exc
    other = describe_json(data)
    if other is not None:
        raise AnnotationFormatError(f"{other}, not CVAT annotations", path=p)
    return parse_labeled_data(data, labels=labels, path=p)


def write_cvat_json(
    path: str | Path,
    doc: CvatAnnotations,
    tracks: Tracks | None = None,
    *,
    dense: bool = False,
    stop_frame: int | None = None,
    tolerance_px: float = 1.0,
    info: SequenceInfo | None = None,
) -> None:
    """Write ``doc`` (with ``tracks`` replacing its tracks, see ``to_labeled_data``) atomically.

    The file also gets the sidecar ``labels`` and ``meta`` keys so that it reads back alone.
    """
    body = doc.to_labeled_data(
        tracks, dense=dense, stop_frame=stop_frame, tolerance_px=tolerance_px, keep_new_ids=True
    )
    body["labels"] = [{"id": lb.id, "name": lb.name} for lb in doc.labels]
    meta = dict(doc.meta)
    if info is not None:
        if info.num_frames:
            meta["size"] = info.num_frames
        if info.width and info.height:
            meta["width"], meta["height"] = info.width, info.height
        if info.job_starts:
            meta["job_starts"] = list(info.job_starts)
        if info.name:
            meta["name"] = info.name
    if meta:
        body["meta"] = meta

    def dump(fh: IO[str]) -> None:
        json.dump(body, fh, indent=1)
        fh.write("\n")

    write_atomic(path, dump)


def empty_document(labels: Sequence[str], *, first_id: int = 1) -> CvatAnnotations:
    """A document with no annotations and labels ``labels`` (ids from ``first_id``).

    Used when converting MOT or XML to CVAT JSON: there is no server document to keep.
    """
    label_list = tuple(CvatLabel(first_id + i, name) for i, name in enumerate(labels))
    return CvatAnnotations(
        tracks=Tracks.empty(labels=tuple(labels) or ("object",)),
        shapes=Tracks.empty(labels=tuple(labels) or ("object",)),
        labels=label_list,
    )
