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
import warnings
from dataclasses import replace
from pathlib import Path
from typing import IO

import numpy as np

from cvat_extension.core.geometry import xyxy_to_xywh
from cvat_extension.core.tracks import SOURCES, SequenceInfo, Source, Tracks
from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io._atomic import write_atomic
from cvat_extension.io._limits import INT32_MAX, MAX_COORD, MAX_FRAMES, frame_ok

__all__ = ["MOT_CLASS_NAMES", "read_mot", "read_mot_detections", "write_mot"]

_AUTO_SOURCE = SOURCES.index(Source.AUTO)
_FLOAT32_MAX = float(np.finfo(np.float32).max)  # conf and visibility are stored as float32

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
                info = SequenceInfo(
                    num_frames=int(s.get("seqLength", 0)),
                    width=int(s.get("imWidth", 0)),
                    height=int(s.get("imHeight", 0)),
                    frame_base=1,
                    name=s.get("name", ""),
                    fps=float(s.get("frameRate", 0) or 0),
                )
                if not (frame_ok(info.num_frames) and 0 <= info.width <= INT32_MAX
                        and 0 <= info.height <= INT32_MAX and 0 <= info.fps <= 1e6):
                    raise ValueError(f"values out of range (seqLength 0..{MAX_FRAMES}, sizes and "
                                     "frameRate >= 0)")
                return info
            except (configparser.Error, KeyError, ValueError) as exc:
                raise AnnotationFormatError(f"invalid seqinfo.ini: {exc}", path=ini) from exc
    return SequenceInfo(frame_base=1, name=path.parent.parent.name if path.parent.name == "gt" else path.stem)


def _data_lines(text: str) -> list[int]:
    """0-based indices of the lines that hold boxes (not blank, not ``#`` comments)."""
    return [i for i, ln in enumerate(text.splitlines()) if ln.strip() and not ln.lstrip().startswith("#")]


def _diagnose(raw: bytes, path: Path) -> AnnotationFormatError:
    """The first line that does not parse, for a file the fast readers refused.

    Only runs on failure: it walks the lines in Python, which is slow but names the line.
    """
    text = _decode(raw, path)
    lines = text.splitlines()
    width = None
    for i in _data_lines(text):
        parts = [p.strip() for p in lines[i].split(",")]
        if len(parts) == 1 and len(lines[i].split()) >= 5:
            return AnnotationFormatError(
                "values separated by spaces, not commas: a YOLO or KITTI label file, not MOT CSV "
                "(frame,id,x,y,w,h,conf,class,visibility)", path=path, line=i + 1)
        if not 6 <= len(parts) <= 10:
            return AnnotationFormatError(
                f"expected 6 to 10 comma-separated values (frame,id,x,y,w,h,conf,class,visibility), got {len(parts)}",
                path=path, line=i + 1,
            )
        if width is not None and len(parts) != width:
            return AnnotationFormatError(f"expected {width} values like the lines above, got {len(parts)}",
                                         path=path, line=i + 1)
        width = len(parts)
        for p in parts:
            try:
                float(p)
            except ValueError:
                if width and parts[0].strip().lower() in {"frame", "frame_id", "frameid", "#frame"}:
                    return AnnotationFormatError(
                        f"a header line ({lines[i].strip()[:60]!r}); MOT files have no header: delete this line",
                        path=path, line=i + 1)
                return AnnotationFormatError(f"not a number: {p!r}", path=path, line=i + 1)
    return AnnotationFormatError("cannot parse as MOT CSV", path=path)


def _decode(raw: bytes, path: Path) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise AnnotationFormatError(f"not UTF-8 text (byte {exc.start}): not a MOT CSV file", path=path) from exc


#: The nine MOT columns and the value of each optional one when a file leaves it out.
_COLUMNS = ("frame", "id", "x", "y", "w", "h", "conf", "class", "visibility")
_DEFAULTS = {6: 1.0, 7: -1.0, 8: 1.0}


def _parse_arrow(raw: bytes) -> list[np.ndarray] | None:
    """The file's columns (float64, one array each) via Arrow's multi-threaded CSV reader;
    None if it refuses.

    Measured in ``bench/bench_ingest.py``: several times faster than ``numpy.loadtxt`` on a
    1 M-box file (polars' reader measured the same, and imports slower). Columns stay
    separate: a (rows, columns) matrix would be one more copy of the file. Arrow reads no
    ``#`` comments, so files with one take the next path.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    first = raw[: raw.find(b"\n") if b"\n" in raw else len(raw)].lstrip(b"\xef\xbb\xbf")
    k = first.count(b",") + 1
    if not 6 <= k <= 10 or b"#" in raw:
        return None
    try:
        table = pacsv.read_csv(
            pa.py_buffer(raw),
            read_options=pacsv.ReadOptions(autogenerate_column_names=True),
            convert_options=pacsv.ConvertOptions(
                column_types={f"f{i}": pa.float64() for i in range(k)}, null_values=[],
                strings_can_be_null=False, quoted_strings_can_be_null=False),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    if table.num_columns != k:
        return None
    out = []
    for col in table.columns[:9]:
        if col.null_count:  # none with null_values=[]; a reader that changed takes the slow path
            return None
        # Straight from Arrow's data buffers: ``to_numpy`` would import pandas (~1 s).
        parts = [np.frombuffer(c.buffers()[1], dtype=np.float64)[c.offset:c.offset + len(c)]
                 for c in col.chunks]
        out.append(parts[0] if len(parts) == 1 else np.concatenate(parts))
    return out


def _parse_loadtxt(raw: bytes, path: Path) -> list[np.ndarray] | None:
    """Columns via ``numpy.loadtxt`` (comments, spaces after commas); None if it refuses."""
    text = _decode(raw, path)
    try:
        with warnings.catch_warnings():  # comments only: "input contained no data", answered below
            warnings.filterwarnings("ignore", message="loadtxt: input contained no data", category=UserWarning)
            arr = np.loadtxt(io.StringIO(text), delimiter=",", comments="#", ndmin=2, dtype=np.float64)
    except ValueError:
        return None
    if arr.size == 0:
        return [np.zeros(0) for _ in range(6)]
    return list(arr.T[:9]) if 6 <= arr.shape[1] <= 10 else None


class _Lines:
    """Row index → 1-based line number, computed only when an error needs it."""

    def __init__(self, raw: bytes, path: Path, n: int) -> None:
        self._raw, self._path, self._n = raw, path, n
        self._map: np.ndarray | None = None

    def __getitem__(self, row: int) -> int:
        if self._map is None:
            lines = _data_lines(_decode(self._raw, self._path))
            self._map = np.asarray(lines, dtype=np.int64) + 1 if len(lines) == self._n else np.arange(1, self._n + 1)
        return int(self._map[row])


def _parse_columns(raw: bytes, path: Path) -> list[np.ndarray]:
    """The nine MOT columns (float64), defaults for missing optional ones; the exact slow
    parse only on failure."""
    ws = b"\xef\xbb\xbf \t\r\n"
    if not raw[:4096].strip(ws) and not raw.strip(ws):  # the head first: no 60 MB copy
        return [np.zeros(0) for _ in _COLUMNS]
    cols = _parse_arrow(raw)
    if cols is None:
        cols = _parse_loadtxt(raw, path)
    if cols is None:
        raise _diagnose(raw, path)
    n = len(cols[0])
    return [*cols, *(np.full(n, _DEFAULTS[j]) for j in range(len(cols), 9))]


def _read_rows(path: str | Path) -> tuple[Path, list[np.ndarray], _Lines]:
    """Parse and validate what every MOT file shares: (path, the nine columns, line numbers).

    A UTF-8 byte-order mark (Excel's CSV export writes one) is accepted.

    Raises:
        AnnotationFormatError: unreadable file, malformed line, NaN/infinite value, frame
            below 1, beyond ``MAX_FRAMES`` or not an integer, negative size, a class beyond
            32 bits; names file and line.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise AnnotationFormatError(f"cannot read: {exc.strerror or exc}", path=p) from exc
    cols = _parse_columns(raw, p)
    line_no = _Lines(raw, p, len(cols[0]))
    # Column by column, each test one pass; the combined mask (the first bad line) only on failure.
    if not all(np.isfinite(c).all() for c in cols):
        _fail_at(~np.logical_and.reduce([np.isfinite(c) for c in cols]), "NaN or infinite value", p, line_no)
    frame = cols[0]
    _fail_at(frame != np.round(frame), "frame must be an integer", p, line_no)
    _fail_at(frame < 1, "frame must be >= 1 (MOT frames start at 1)", p, line_no)
    _fail_at(frame > MAX_FRAMES, f"frame beyond {MAX_FRAMES:,} (a sequence this long is not a MOT file)", p, line_no)
    _fail_at(np.abs(cols[7]) > INT32_MAX, "class out of range", p, line_no)
    _fail_at((np.abs(cols[2]) > MAX_COORD) | (np.abs(cols[3]) > MAX_COORD) | (cols[4] > MAX_COORD)
             | (cols[5] > MAX_COORD), f"box coordinate out of range (|value| <= {MAX_COORD:g} px)", p, line_no)
    _fail_at(np.abs(cols[6]) > _FLOAT32_MAX, "conf out of range", p, line_no)
    _fail_at((cols[4] < 0) | (cols[5] < 0), "negative box width or height", p, line_no)
    return p, cols, line_no


def _fail_at(mask: np.ndarray, msg: str, path: Path, line_no: _Lines) -> None:
    if mask.any():
        raise AnnotationFormatError(msg, path=path, line=line_no[int(np.argmax(mask))])


def _xyxy(x: np.ndarray, y: np.ndarray, w: np.ndarray, h: np.ndarray,
          order: np.ndarray | None = None) -> np.ndarray:
    """(n, 4) corners from the x, y, w, h columns, rows taken in ``order`` if given."""
    if order is not None:
        x, y, w, h = x[order], y[order], w[order], h[order]
    out = np.empty((len(x), 4))
    out[:, 0], out[:, 1] = x, y
    np.add(x, w, out=out[:, 2])
    np.add(y, h, out=out[:, 3])
    return out


def read_mot_detections(path: str | Path) -> Tracks:
    """Read a MOT detection file (``det.txt``) into Tracks: ``track_id`` -1, 0-based frames.

    Detection files repeat ids (usually -1) within a frame, which :func:`read_mot` rejects
    as duplicate boxes; scores are column 7 (clipped to 0..1) and the source is ``auto``.

    Raises:
        AnnotationFormatError: as :func:`read_mot`, minus the id rules.
    """
    _p, cols, _lines = _read_rows(path)
    n = len(cols[0])
    return Tracks.from_columns(
        frame=cols[0].astype(np.int64) - 1,
        track_id=np.full(n, -1),
        xyxy=_xyxy(*cols[2:6]),
        score=np.clip(cols[6], 0.0, 1.0),
        source=np.full(n, _AUTO_SOURCE),
        labels=("person",),
    )


def read_mot(path: str | Path) -> tuple[Tracks, SequenceInfo]:
    """Read a MOT CSV file into dense tracks (0-based frames) and its sequence info.

    Raises:
        AnnotationFormatError: a malformed line, NaN/infinite value, negative size, frame
            below 1, non-integer frame or id, or a duplicate (frame, id); names file and line.
    """
    p, cols, line_no = _read_rows(path)
    _fail_at(cols[1] != np.round(cols[1]), "id must be an integer", p, line_no)
    _fail_at(np.abs(cols[1]) > INT32_MAX, "id out of range", p, line_no)
    frame = cols[0].astype(np.int64) - 1
    tid = cols[1].astype(np.int64)
    # Rows in (id, frame) order, found once here: every column is gathered in that order
    # straight into its final dtype, and Tracks.from_columns finds them sorted.
    order = _track_frame_order(tid, frame) if len(frame) > 1 else None
    if order is not None:
        frame, tid = frame[order], tid[order]
        dup = (tid[1:] == tid[:-1]) & (frame[1:] == frame[:-1])
        if dup.any():
            k = int(np.argmax(dup))
            a, b = line_no[int(order[k])], line_no[int(order[k + 1])]
            raise AnnotationFormatError(
                f"duplicate box for id {int(tid[k])} on frame {int(frame[k]) + 1} (also on line {a})",
                path=p, line=b,
            )

    def sorted_column(c: np.ndarray) -> np.ndarray:
        return c if order is None else c[order]

    cls = sorted_column(cols[7]).astype(np.int64)
    names = _class_names(p)
    uniq = np.unique(cls)
    label_names = tuple(_class_name(int(c), names) for c in uniq)
    label = np.searchsorted(uniq, cls).astype(np.int32)
    tracks = Tracks.from_columns(
        frame=frame,
        track_id=tid,
        xyxy=_xyxy(*cols[2:6], order=order),
        label=label,
        visibility=np.clip(sorted_column(cols[8]), 0.0, 1.0).astype(np.float32),
        score=sorted_column(cols[6]).astype(np.float32),
        labels=label_names or ("pedestrian",),
        data={"mot_class": cls},
    )
    info = _seqinfo(p)
    if not info.num_frames and len(frame):
        info = replace(info, num_frames=int(frame.max()) + 1)
    return tracks, info


def _track_frame_order(tid: np.ndarray, frame: np.ndarray) -> np.ndarray:
    """Stable order by (track id, frame), file order among ties.

    One stable sort of a combined int64 key when the ranges allow it (the usual case),
    which is several times faster than ``lexsort`` on a million rows.
    """
    t_min, f_span = int(tid.min()), int(frame.max()) + 1
    if int(tid.max()) - t_min < (2**62) // max(f_span, 1):
        return np.argsort((tid - t_min) * f_span + frame, kind="stable")
    return np.lexsort((frame, tid))


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
