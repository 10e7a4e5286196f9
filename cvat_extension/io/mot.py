"""MOT Challenge CSV: ``frame,id,x,y,w,h,conf,class,visibility[,...]``, frames from 1.

Every row is one box of a dense track (a MOT file has no keyframes). Frames are shifted to
CVAT's 0-based numbering on reading (``SequenceInfo.frame_base = 1``) and back on writing.

Columns beyond the first six are optional. ``conf`` goes to ``score`` (in ground truth it is
the 0/1 "consider" flag), ``visibility`` to ``visibility``, and ``class`` both to the label
(names from a ``labels.txt`` beside the file, one per line as CVAT's "MOT 1.1" export writes
it, else the MOT17 class names) and verbatim to ``data["mot_class"]`` so that MOT → MOT
round-trips exactly. A ``seqinfo.ini`` beside or above the file gives the frame count and
size.
"""

from __future__ import annotations

import configparser
import io
import math
from dataclasses import replace
from pathlib import Path
from typing import IO

import numpy as np

from cvat_extension.core.geometry import xywh_to_xyxy, xyxy_to_xywh
from cvat_extension.core.tracks import SOURCES, SequenceInfo, Source, Tracks
from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io._atomic import write_atomic

__all__ = ["MOT_CLASS_NAMES", "read_mot", "read_mot_detections", "write_mot"]

_AUTO_SOURCE = SOURCES.index(Source.AUTO)

#: MOT17/MOT20 ground-truth class ids (1-based) and their names.
MOT_CLASS_NAMES: tuple[str, ...] = (
    "pedestrian",
    "person on vehicle",
    "car",
    "bicycle",
    "motorbike",
    "non motorized vehicle",
    "static person",
    "distractor",
    "occluder",
    "occluder on the ground",
    "occluder full",
    "reflection",
    "crowd",
)


def _seqinfo(path: Path) -> SequenceInfo:
    for folder in (path.parent, path.parent.parent):
        ini = folder / "seqinfo.ini"
        if ini.is_file():
            cp = configparser.ConfigParser()
            try:
                cp.read(ini, encoding="utf-8")
                s = cp["Sequence"]
                return SequenceInfo(
                    num_frames=int(s.get("seqLength", 0)),
                    width=int(s.get("imWidth", 0)),
                    height=int(s.get("imHeight", 0)),
                    frame_base=1,
                    name=s.get("name", ""),
                    fps=float(s.get("frameRate", 0) or 0),
                )
            except (configparser.Error, KeyError, ValueError) as exc:
                raise AnnotationFormatError(f"invalid seqinfo.ini: {exc}", path=ini) from exc
    return SequenceInfo(frame_base=1, name=path.parent.parent.name if path.parent.name == "gt" else path.stem)


def _parse_rows(text: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(values (n, 9), 1-based line numbers (n,)); slow exact parse only on failure."""
    lines = text.splitlines()
    keep = [i for i, ln in enumerate(lines) if ln.strip() and not ln.lstrip().startswith("#")]
    if not keep:
        return np.zeros((0, 9)), np.zeros(0, dtype=np.int64)
    body = "\n".join(lines[i] for i in keep)
    try:
        arr = np.loadtxt(io.StringIO(body), delimiter=",", ndmin=2, dtype=np.float64)
        ok = 6 <= arr.shape[1] <= 10
    except ValueError:
        ok = False
    if not ok:
        width = None
        for i in keep:
            parts = [p.strip() for p in lines[i].split(",")]
            if not 6 <= len(parts) <= 10:
                raise AnnotationFormatError(
                    f"expected 6 to 10 comma-separated values (frame,id,x,y,w,h,conf,class,visibility), got {len(parts)}",
                    path=path, line=i + 1,
                )
            if width is not None and len(parts) != width:
                raise AnnotationFormatError(f"expected {width} values like the lines above, got {len(parts)}", path=path, line=i + 1)
            width = len(parts)
            for p in parts:
                try:
                    float(p)
                except ValueError:
                    raise AnnotationFormatError(f"not a number: {p!r}", path=path, line=i + 1) from None
        raise AnnotationFormatError("cannot parse as MOT CSV", path=path)  # pragma: no cover - defensive
    out = np.full((len(arr), 9), np.nan)
    out[:, 6:9] = (1.0, -1.0, 1.0)  # conf, class, visibility defaults
    m = min(arr.shape[1], 9)
    out[:, :m] = arr[:, :m]
    return out, np.asarray(keep, dtype=np.int64) + 1


def _read_rows(path: str | Path) -> tuple[Path, np.ndarray, np.ndarray]:
    """Parse and validate what every MOT file shares: (path, values (n, 9), line numbers).

    Raises:
        AnnotationFormatError: unreadable file, malformed line, NaN/infinite value, frame
            below 1 or not an integer, negative size; names file and line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AnnotationFormatError(f"cannot read: {exc}", path=p) from exc
    vals, line_no = _parse_rows(text, p)
    _fail_at(~np.isfinite(vals).all(axis=1), "NaN or infinite value", p, line_no)
    _fail_at(vals[:, 0] != np.round(vals[:, 0]), "frame must be an integer", p, line_no)
    _fail_at(vals[:, 0] < 1, "frame must be >= 1 (MOT frames start at 1)", p, line_no)
    _fail_at((vals[:, 4] < 0) | (vals[:, 5] < 0), "negative box width or height", p, line_no)
    return p, vals, line_no


def _fail_at(mask: np.ndarray, msg: str, path: Path, line_no: np.ndarray) -> None:
    if mask.any():
        raise AnnotationFormatError(msg, path=path, line=int(line_no[int(np.flatnonzero(mask)[0])]))


def read_mot_detections(path: str | Path) -> Tracks:
    """Read a MOT detection file (``det.txt``) into Tracks: ``track_id`` -1, 0-based frames.

    Detection files repeat ids (usually -1) within a frame, which :func:`read_mot` rejects
    as duplicate boxes; scores are column 7 (clipped to 0..1) and the source is ``auto``.

    Raises:
        AnnotationFormatError: as :func:`read_mot`, minus the id rules.
    """
    _p, vals, _lines = _read_rows(path)
    return Tracks.from_columns(
        frame=vals[:, 0].astype(np.int64) - 1,
        track_id=np.full(len(vals), -1),
        xyxy=xywh_to_xyxy(vals[:, 2:6]),
        score=np.clip(vals[:, 6], 0.0, 1.0),
        source=np.full(len(vals), _AUTO_SOURCE),
        labels=("person",),
    )


def read_mot(path: str | Path) -> tuple[Tracks, SequenceInfo]:
    """Read a MOT CSV file into dense tracks (0-based frames) and its sequence info.

    Raises:
        AnnotationFormatError: a malformed line, NaN/infinite value, negative size, frame
            below 1, non-integer frame or id, or a duplicate (frame, id); names file and line.
    """
    p, vals, line_no = _read_rows(path)
    _fail_at(vals[:, 1] != np.round(vals[:, 1]), "id must be an integer", p, line_no)
    frame = vals[:, 0].astype(np.int64) - 1
    tid = vals[:, 1].astype(np.int64)
    if len(frame) > 1:
        order = np.lexsort((line_no, frame, tid))
        dup = (tid[order][1:] == tid[order][:-1]) & (frame[order][1:] == frame[order][:-1])
        if dup.any():
            k = int(np.flatnonzero(dup)[0])
            a, b = int(line_no[order][k]), int(line_no[order][k + 1])
            raise AnnotationFormatError(
                f"duplicate box for id {int(tid[order][k])} on frame {int(frame[order][k]) + 1} (also on line {a})",
                path=p, line=b,
            )
    cls = vals[:, 7].astype(np.int64)
    names = _class_names(p)
    uniq = np.unique(cls)
    label_names = tuple(_class_name(int(c), names) for c in uniq)
    label = np.searchsorted(uniq, cls).astype(np.int32)
    tracks = Tracks.from_columns(
        frame=frame,
        track_id=tid,
        xyxy=xywh_to_xyxy(vals[:, 2:6]),
        label=label,
        visibility=np.clip(vals[:, 8], 0.0, 1.0).astype(np.float32),
        score=vals[:, 6].astype(np.float32),
        labels=label_names or ("pedestrian",),
        data={"mot_class": cls},
    )
    info = _seqinfo(p)
    if not info.num_frames and len(frame):
        info = replace(info, num_frames=int(frame.max()) + 1)
    return tracks, info


def _class_names(path: Path) -> tuple[str, ...] | None:
    f = path.parent / "labels.txt"
    if f.is_file():
        return tuple(ln.strip() for ln in f.read_text(encoding="utf-8").splitlines() if ln.strip())
    return None


def _class_name(c: int, names: tuple[str, ...] | None) -> str:
    table = names if names is not None else MOT_CLASS_NAMES
    if 1 <= c <= len(table):
        return table[c - 1]
    return "object" if c <= 0 else f"class {c}"


def write_mot(path: str | Path, tracks: Tracks, *, info: SequenceInfo | None = None) -> None:
    """Write visible boxes as MOT CSV (frames from ``info.frame_base``, default 1), atomically.

    ``class`` is ``data["mot_class"]`` when present, else the label's position in
    :data:`MOT_CLASS_NAMES` (1 = pedestrian) or the label index + 1, as CVAT's MOT export.
    Outside rows are not written: MOT has no "absent" rows.
    """
    vis = tracks.visible()
    base = 1 if info is None or info.frame_base == 0 else info.frame_base
    if "mot_class" in vis.data:
        cls = np.asarray(vis.data["mot_class"], dtype=np.int64)
    else:
        lut = np.array(
            [MOT_CLASS_NAMES.index(n) + 1 if n in MOT_CLASS_NAMES else i + 1 for i, n in enumerate(vis.labels)] or [1],
            dtype=np.int64,
        )
        cls = lut[vis.label] if len(vis) else np.zeros(0, dtype=np.int64)
    order = np.lexsort((vis.track_id, vis.frame))
    xywh = xyxy_to_xywh(vis.xyxy)[order]

    def dump(fh: IO[str]) -> None:
        fr = vis.frame[order] + base
        ids = vis.track_id[order]
        score = vis.score[order]
        visib = vis.visibility[order]
        c = cls[order]
        for i in range(len(order)):
            fh.write(
                f"{fr[i]},{ids[i]},{_g(xywh[i, 0])},{_g(xywh[i, 1])},{_g(xywh[i, 2])},{_g(xywh[i, 3])},"
                f"{_g(score[i], 7)},{c[i]},{_g(visib[i], 7)}\n"
            )

    write_atomic(path, dump)


def _g(v: float, digits: int = 12) -> str:
    """Shortest clean decimal: integers without a point, floats to ``digits`` significant digits."""
    x = float(v)
    if x.is_integer() and math.isfinite(x):
        return str(int(x))
    return f"{x:.{digits}g}"
