"""CVAT for video 1.1 XML: ``<track id label source>`` with one ``<box>`` per frame.

CVAT's export (``cvat/apps/dataset_manager/formats/cvat.py``, ``dump_as_cvat_interpolation``)
lists every frame of every track piece: ``<box frame outside occluded keyframe xtl ytl xbr ybr
z_order [rotation]>`` with coordinates to two decimals and ``keyframe="0"`` on interpolated
frames; ``<meta>`` holds the task size, segments (jobs) and labels. Reading also accepts
files with keyframes only (what a user writes by hand): missing frames are then expanded
by CVAT's rules.

Only ``<box>`` tracks are read; other shapes and ``<image>`` blocks ("CVAT for images") are
rejected with a message, since this module exists for tracks.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any
from xml.sax.saxutils import quoteattr

import numpy as np

from cvat_extension.core.tracks import SOURCES, SequenceInfo, Source, Tracks
from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io._atomic import write_atomic
from cvat_extension.io._limits import MAX_COORD, MAX_FRAMES, frame_ok, int32_ok

__all__ = ["CvatXmlDocument", "read_cvat_xml", "write_cvat_xml"]

_SOURCE_CODE = {s.value: i for i, s in enumerate(SOURCES)}


@dataclass(frozen=True, eq=False)
class CvatXmlDocument:
    """A parsed CVAT-for-video file.

    Attributes:
        tracks: the rows of the file (every frame for an export, keyframes for a
            hand-written file); ``keyframe`` as in the file (default 1).
        info: task size, frame size, job starts (from ``<segments>``), name.
        labels: label names in ``<meta>`` order (then labels only seen in tracks).
        dense: the file lists interpolated frames (some ``keyframe="0"``).
        attributes: per-row ``<attribute>`` children, by (track id, frame), verbatim.
    """

    tracks: Tracks
    info: SequenceInfo
    labels: tuple[str, ...]
    dense: bool
    attributes: dict[tuple[int, int], list[tuple[str, str]]] = field(default_factory=dict)


def _int(el: ET.Element, key: str, where: str, path: Path, default: int | None = None, *,
         in_range: Callable[[float], bool] = int32_ok) -> int:
    raw = el.get(key)
    if raw is None:
        if default is None:
            raise AnnotationFormatError(f"missing attribute {key!r}", path=path, element=where)
        return default
    try:
        value = int(raw)
    except ValueError:
        raise AnnotationFormatError(f"{key}={raw!r} is not an integer", path=path, element=where) from None
    if not in_range(value):
        raise AnnotationFormatError(f"{key}={raw!r} is out of range", path=path, element=where)
    return value


def _float(el: ET.Element, key: str, where: str, path: Path, default: float | None = None) -> float:
    raw = el.get(key)
    if raw is None:
        if default is None:
            raise AnnotationFormatError(f"missing attribute {key!r}", path=path, element=where)
        return default
    try:
        v = float(raw)
    except ValueError:
        raise AnnotationFormatError(f"{key}={raw!r} is not a number", path=path, element=where) from None
    if not math.isfinite(v):
        raise AnnotationFormatError(f"{key}={raw!r} is not finite", path=path, element=where)
    if abs(v) > MAX_COORD:
        raise AnnotationFormatError(f"{key}={raw!r} is out of range (|value| <= {MAX_COORD:g})",
                                    path=path, element=where)
    return v


def _meta(root: ET.Element, path: Path) -> tuple[SequenceInfo, list[str]]:
    meta = root.find("meta")
    if meta is None:
        return SequenceInfo(), []
    task = meta.find("task")
    if task is None:
        task = meta.find("job")
    if task is None:
        task = meta.find("project")
    names: list[str] = []
    size = width = height = 0
    starts: list[int] = []
    name = ""
    if task is not None:
        for lab in task.iterfind("labels/label"):
            n = lab.findtext("name")
            if n is not None and n not in names:
                names.append(n)
        try:
            size = int(task.findtext("size") or 0)
            stop = task.findtext("stop_frame")
            if not size and stop is not None:
                size = int(stop) + 1
            starts = sorted({int(seg.findtext("start") or 0) for seg in task.iterfind("segments/segment")})
        except ValueError as exc:
            raise AnnotationFormatError(f"invalid number in <meta>: {exc}", path=path, element="meta") from None
        if not frame_ok(size) or not all(frame_ok(s) for s in starts):
            raise AnnotationFormatError(f"frame count or segment start out of range (0..{MAX_FRAMES})",
                                        path=path, element="meta")
        name = task.findtext("name") or ""
    osz = meta.find("original_size")
    if osz is None and task is not None:
        osz = task.find("original_size")
    if osz is not None:
        try:
            width = int(float(osz.findtext("width") or 0))
            height = int(float(osz.findtext("height") or 0))
            if not (int32_ok(width) and int32_ok(height)):
                raise ValueError("out of range")
        except (ValueError, OverflowError):
            raise AnnotationFormatError("invalid <original_size>", path=path, element="meta/original_size") from None
    return SequenceInfo(num_frames=size, width=width, height=height, frame_base=0, job_starts=tuple(starts), name=name), names


def read_cvat_xml(path: str | Path) -> CvatXmlDocument:
    """Read a CVAT for video 1.1 XML file.

    Raises:
        AnnotationFormatError: malformed XML (with its line), a non-box track, a missing or
            invalid attribute, a negative box, a duplicate frame in a track, or a label
            missing from ``<meta>``; the message names the element.
    """
    p = Path(path)
    try:
        root = ET.parse(p).getroot()
    except ET.ParseError as exc:
        line = exc.position[0] if getattr(exc, "position", None) else None
        raise AnnotationFormatError(f"malformed XML: {exc}", path=p, line=line) from exc
    except LookupError as exc:  # <?xml encoding="..."?> names a codec Python does not know
        raise AnnotationFormatError(f"malformed XML: {exc}", path=p, line=1) from exc
    except OSError as exc:
        raise AnnotationFormatError(f"cannot read: {exc}", path=p) from exc
    if root.tag != "annotations":
        from cvat_extension.io.sniff import describe_xml_root

        raise AnnotationFormatError(
            f"{describe_xml_root(root.tag)}, not CVAT for video XML (root <annotations>)", path=p)
    info, names = _meta(root, p)
    meta_names = set(names)
    if root.find("image") is not None and root.find("track") is None:
        raise AnnotationFormatError(
            "this is a 'CVAT for images' file (<image> elements); export 'CVAT for video 1.1' for tracks",
            path=p, element="image",
        )
    rows: dict[str, list[Any]] = {k: [] for k in ("frame", "track_id", "xyxy", "label", "outside", "occluded", "keyframe", "source", "rotation", "z_order")}
    attributes: dict[tuple[int, int], list[tuple[str, str]]] = {}
    seen_ids: set[int] = set()
    for ti, track in enumerate(root.iterfind("track")):
        where = f"track[{ti}]"
        tid = _int(track, "id", where, p)
        where = f"track[{ti}] id={tid}"
        if tid in seen_ids:
            raise AnnotationFormatError(f"duplicate track id {tid}", path=p, element=where)
        seen_ids.add(tid)
        label = track.get("label")
        if label is None:
            raise AnnotationFormatError("missing attribute 'label'", path=p, element=where)
        if meta_names and label not in meta_names:
            raise AnnotationFormatError(f"unknown label {label!r}; <meta> lists {sorted(meta_names)}", path=p, element=where)
        if label not in names:
            names.append(label)
        src = _SOURCE_CODE.get(track.get("source", Source.MANUAL.value), 0)
        children = [c for c in track if c.tag != "attribute"]
        other = [c.tag for c in children if c.tag != "box"]
        if other:
            raise AnnotationFormatError(f"only <box> tracks are supported, found <{other[0]}>", path=p, element=where)
        frames: set[int] = set()
        for bi, box in enumerate(children):
            bw = f"{where} box[{bi}]"
            frame = _int(box, "frame", bw, p, in_range=frame_ok)
            bw = f"{where} box frame={frame}"
            if frame < 0:
                raise AnnotationFormatError("negative frame", path=p, element=bw)
            if frame in frames:
                raise AnnotationFormatError("two boxes of one track on the same frame", path=p, element=bw)
            frames.add(frame)
            xyxy = [_float(box, k, bw, p) for k in ("xtl", "ytl", "xbr", "ybr")]
            if xyxy[2] < xyxy[0] or xyxy[3] < xyxy[1]:
                raise AnnotationFormatError(f"negative box size {xyxy}", path=p, element=bw)
            rows["frame"].append(frame)
            rows["track_id"].append(tid)
            rows["xyxy"].append(xyxy)
            rows["label"].append(names.index(label))
            rows["outside"].append(bool(_int(box, "outside", bw, p, 0)))
            rows["occluded"].append(bool(_int(box, "occluded", bw, p, 0)))
            rows["keyframe"].append(bool(_int(box, "keyframe", bw, p, 1)))
            rows["source"].append(src)
            rows["rotation"].append(_float(box, "rotation", bw, p, 0.0))
            rows["z_order"].append(_int(box, "z_order", bw, p, 0))
            attrs = [(a.get("name", ""), a.text or "") for a in box.iterfind("attribute")]
            if attrs:
                attributes[(tid, frame)] = attrs
    tracks = Tracks.from_columns(
        frame=np.asarray(rows["frame"], dtype=np.int64),
        track_id=np.asarray(rows["track_id"], dtype=np.int64),
        xyxy=np.asarray(rows["xyxy"], dtype=np.float64).reshape(-1, 4),
        label=np.asarray(rows["label"], dtype=np.int32),
        outside=np.asarray(rows["outside"], dtype=bool),
        occluded=np.asarray(rows["occluded"], dtype=bool),
        keyframe=np.asarray(rows["keyframe"], dtype=bool),
        source=np.asarray(rows["source"], dtype=np.uint8),
        rotation=np.asarray(rows["rotation"], dtype=np.float64),
        labels=tuple(names) or ("object",),
        data={"z_order": np.asarray(rows["z_order"], dtype=np.int32)},
    )
    dense = bool(len(tracks)) and not bool(tracks.keyframe.all())
    return CvatXmlDocument(tracks=tracks, info=info, labels=tuple(names), dense=dense, attributes=attributes)


def write_cvat_xml(
    path: str | Path,
    tracks: Tracks,
    *,
    info: SequenceInfo | None = None,
    attributes: dict[tuple[int, int], list[tuple[str, str]]] | None = None,
) -> None:
    """Write per-frame rows (with their ``keyframe`` flags) as CVAT for video 1.1, atomically.

    Write the expansion of the keyframes (``expand_keyframes``), as CVAT's export does;
    coordinates use two decimals like CVAT's exporter. Track ids are written as they are.
    """
    info = info or SequenceInfo()
    size = info.num_frames or (int(tracks.frame.max()) + 1 if len(tracks) else 0)
    z = tracks.data.get("z_order")
    attributes = attributes or {}

    def dump(fh: IO[str]) -> None:
        fh.write('<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n  <meta>\n    <task>\n')
        fh.write(f"      <name>{_esc(info.name)}</name>\n      <size>{size}</size>\n      <mode>interpolation</mode>\n")
        fh.write(f"      <start_frame>0</start_frame>\n      <stop_frame>{max(size - 1, 0)}</stop_frame>\n")
        starts = list(info.job_starts) or [0]
        fh.write("      <segments>\n")
        for i, s in enumerate(starts):
            stop = (starts[i + 1] - 1) if i + 1 < len(starts) else max(size - 1, 0)
            fh.write(f"        <segment>\n          <id>{i}</id>\n          <start>{s}</start>\n          <stop>{stop}</stop>\n        </segment>\n")
        fh.write("      </segments>\n      <labels>\n")
        for name in tracks.labels:
            fh.write(f"        <label>\n          <name>{_esc(name)}</name>\n          <type>rectangle</type>\n        </label>\n")
        fh.write("      </labels>\n    </task>\n")
        if info.width and info.height:
            fh.write(f"    <original_size>\n      <width>{info.width}</width>\n      <height>{info.height}</height>\n    </original_size>\n")
        fh.write("  </meta>\n")
        starts_idx = tracks.track_starts
        for a, b in zip(starts_idx[:-1].tolist(), starts_idx[1:].tolist()):
            tid = int(tracks.track_id[a])
            label = tracks.labels[int(tracks.label[a])]
            source = SOURCES[int(tracks.source[a])].value
            fh.write(f"  <track id=\"{tid}\" label={quoteattr(label)} source=\"{source}\">\n")
            for r in range(a, b):
                x1, y1, x2, y2 = tracks.xyxy[r]
                attrs = (
                    f'frame="{int(tracks.frame[r])}" keyframe="{int(tracks.keyframe[r])}" '
                    f'outside="{int(tracks.outside[r])}" occluded="{int(tracks.occluded[r])}" '
                    f'xtl="{x1:.2f}" ytl="{y1:.2f}" xbr="{x2:.2f}" ybr="{y2:.2f}" '
                    f'z_order="{int(z[r]) if z is not None else 0}"'
                )
                if tracks.rotation[r]:
                    attrs += f' rotation="{tracks.rotation[r]:.2f}"'
                extra = attributes.get((tid, int(tracks.frame[r])))
                if extra:
                    fh.write(f"    <box {attrs}>\n")
                    for n, v in extra:
                        fh.write(f"      <attribute name={quoteattr(n)}>{_esc(v)}</attribute>\n")
                    fh.write("    </box>\n")
                else:
                    fh.write(f"    <box {attrs}>\n    </box>\n")
            fh.write("  </track>\n")
        fh.write("</annotations>\n")

    write_atomic(path, dump)


def _esc(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
