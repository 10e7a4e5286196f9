"""One entry point for the three track formats: detect, read (dense + keyframes), write.

Every reader returns a :class:`LoadedTracks` whose ``tracks`` are dense per-frame boxes in
CVAT's 0-based numbering, with CVAT's job-boundary pieces stitched into one track, because
that is what checks, merges and exports need. ``keyframes`` and ``document`` keep what is
needed to write back without loss.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension.core.keyframes import expand_keyframes, thin_keyframes
from cvat_extension.core.stitch import stitch_job_pieces
from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import AnnotationFormatError
from cvat_extension.io.cvat_json import CvatAnnotations, empty_document, read_cvat_json, write_cvat_json
from cvat_extension.io.cvat_xml import CvatXmlDocument, read_cvat_xml, write_cvat_xml
from cvat_extension.io.mot import read_mot, write_mot

__all__ = ["Format", "LoadedTracks", "detect_format", "read_tracks", "write_tracks"]


class Format(str, Enum):
    """Track file formats."""

    MOT = "mot"
    CVAT_XML = "cvat_xml"
    CVAT_JSON = "cvat_json"


_EXT = {".txt": Format.MOT, ".csv": Format.MOT, ".xml": Format.CVAT_XML, ".json": Format.CVAT_JSON}


@dataclass(frozen=True, eq=False)
class LoadedTracks:
    """Tracks read from a file, with what is needed to write them back.

    Attributes:
        tracks: dense per-frame boxes (outside keyframes included), pieces stitched.
        info: sequence info; ``info.frame_base`` is the file's first frame number.
        format: the file's format.
        keyframes: stitched keyframes for CVAT formats; None for MOT (every row is a box).
        document: :class:`CvatAnnotations` or :class:`CvatXmlDocument`; None for MOT.
        piece_map: CVAT piece track id → stitched track id (identity when not stitched).
        path: the file read.
    """

    tracks: Tracks
    info: SequenceInfo
    format: Format
    keyframes: Tracks | None = None
    document: CvatAnnotations | CvatXmlDocument | None = None
    piece_map: dict[int, int] = field(default_factory=dict)
    path: Path | None = None


def detect_format(path: str | Path) -> Format:
    """Format of ``path`` from its first bytes, checked against its extension.

    Content decides (``{`` → JSON, ``<`` → XML, digits and commas → MOT); the extension
    breaks ties for empty files.

    Raises:
        AnnotationFormatError: unreadable, or neither content nor extension is known, or
            content and a known extension disagree.
    """
    p = Path(path)
    try:
        with p.open("rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise AnnotationFormatError(f"cannot read: {exc}", path=p) from exc
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    by_ext = _EXT.get(p.suffix.lower())
    if text[:1] in (b"{", b"["):  # a list is never CVAT's, but read_cvat_json says what it is
        by_content: Format | None = Format.CVAT_JSON
    elif text.startswith(b"<"):
        by_content = Format.CVAT_XML
    elif text[:1].isdigit() or text[:1] in (b"-", b"#"):
        by_content = Format.MOT
    elif not text:
        by_content = None
    else:
        raise AnnotationFormatError(_unrecognised(text), path=p, line=1)
    if by_content is None:
        if by_ext is None:
            raise AnnotationFormatError("empty file with an unknown extension", path=p)
        return by_ext
    if by_ext is not None and by_ext != by_content:
        raise AnnotationFormatError(
            f"content looks like {by_content.value} but the extension {p.suffix!r} says {by_ext.value}", path=p
        )
    return by_content


def _unrecognised(text: bytes) -> str:
    """Why content that starts with neither ``{``, ``<`` nor a number is refused."""
    first = text.split(b"\n", 1)[0].strip().decode("utf-8", "replace")[:60]
    if b"\x00" in text[:512]:
        return "a binary file, not MOT CSV, CVAT XML or CVAT JSON"
    if "," in first and first.split(",")[0].strip().lower() in {"frame", "frame_id", "frameid", "#frame"}:
        return f"a header line ({first!r}); MOT files have no header: delete this line"
    return f"not MOT CSV, CVAT XML or CVAT JSON: the file starts with {first!r}"


def _empty(p: Path, fmt: Format, what: str) -> AnnotationFormatError:
    from cvat_extension.io.sniff import EMPTY_HINT

    return AnnotationFormatError(f"{what}: nothing to read as {fmt.value}; {EMPTY_HINT}", path=p)


def _stop(info: SequenceInfo, tracks: Tracks, stop_frame: int | None) -> int:
    if stop_frame is not None:
        return int(stop_frame)
    if info.num_frames:
        return info.num_frames - 1
    return int(tracks.frame.max()) if len(tracks) else 0


def read_tracks(
    path: str | Path,
    *,
    fmt: Format | str | None = None,
    stop_frame: int | None = None,
    job_starts: list[int] | tuple[int, ...] | None = None,
    labels: list[Any] | None = None,
    allow_empty: bool = False,
) -> LoadedTracks:
    """Read MOT, CVAT XML or CVAT JSON into dense, stitched tracks.

    An empty file, or one without a single box, is refused unless ``allow_empty``: an export
    of the wrong task or a truncated download must not pass as "0 findings" or "HOTA 0".

    Args:
        path: the file.
        fmt: force a format instead of detecting it.
        stop_frame: last frame (0-based) to expand keyframes to; default the file's task
            size, else the last annotated frame.
        job_starts: CVAT job start frames for stitching; default from the file's meta.
        labels: CVAT labels ``[{"id", "name"}]`` for JSON without a sidecar.
        allow_empty: accept a file without boxes (empty tracks).

    Raises:
        AnnotationFormatError: see the format readers; also an empty file or one without
            boxes (unless ``allow_empty``).
    """
    from cvat_extension._enums import parse_enum

    from cvat_extension.io.sniff import is_blank

    p = Path(path)
    f = detect_format(p) if fmt is None else parse_enum(Format, fmt)
    if p.is_file() and p.stat().st_size < 4096 and is_blank(p.read_bytes()):
        if not allow_empty:
            raise _empty(p, f, "empty file")
        return LoadedTracks(Tracks.empty(), SequenceInfo(frame_base=1 if f is Format.MOT else 0, name=p.stem),
                            f, path=p)
    loaded = _read(p, f, stop_frame=stop_frame, job_starts=job_starts, labels=labels)
    if not allow_empty and not len(loaded.tracks):
        raise _empty(p, f, "no box tracks in this file")
    return loaded


def _read(
    p: Path,
    f: Format,
    *,
    stop_frame: int | None,
    job_starts: list[int] | tuple[int, ...] | None,
    labels: list[Any] | None,
) -> LoadedTracks:
    if f is Format.MOT:
        tracks, info = read_mot(p)
        if stop_frame is not None:
            info = SequenceInfo(stop_frame + 1, info.width, info.height, info.frame_base, info.job_starts, info.name)
        return LoadedTracks(tracks=tracks, info=info, format=f, path=p, piece_map={int(i): int(i) for i in tracks.ids})
    if f is Format.CVAT_JSON:
        doc = read_cvat_json(p, labels=labels)
        info = doc.sequence_info()
        starts = tuple(job_starts) if job_starts is not None else info.job_starts
        kf, pieces = stitch_job_pieces(doc.tracks, starts)
        stop = _stop(info, doc.tracks, stop_frame)
        info = SequenceInfo(stop + 1, info.width, info.height, 0, tuple(starts), info.name or p.stem)
        dense = expand_keyframes(kf, stop_frame=stop)
        return LoadedTracks(dense, info, f, keyframes=kf, document=doc, piece_map=pieces, path=p)
    xml = read_cvat_xml(p)
    info = xml.info
    starts = tuple(job_starts) if job_starts is not None else info.job_starts
    stop = _stop(info, xml.tracks, stop_frame)
    info = SequenceInfo(stop + 1, info.width, info.height, 0, tuple(starts), info.name or p.stem)
    if xml.dense:
        dense, pieces = stitch_job_pieces(xml.tracks, starts)
        dense = dense[dense.frame <= stop]
        kf = dense[dense.keyframe]
    else:
        kf, pieces = stitch_job_pieces(xml.tracks, starts)
        dense = expand_keyframes(kf, stop_frame=stop)
    return LoadedTracks(dense, info, Format.CVAT_XML, keyframes=kf, document=xml, piece_map=pieces, path=p)


def write_tracks(
    path: str | Path,
    loaded_or_tracks: LoadedTracks | Tracks,
    *,
    fmt: Format | str,
    info: SequenceInfo | None = None,
    tolerance_px: float = 1.0,
) -> None:
    """Write tracks in ``fmt``, atomically (nothing is written on error).

    - MOT: the visible per-frame boxes (CVAT keyframes expanded as CVAT would).
    - CVAT XML: every frame with ``keyframe`` flags; dense input is thinned first so that
      CVAT gets few keyframes.
    - CVAT JSON: a CVAT document read earlier is written back unchanged for tracks that did
      not change; dense input (MOT) becomes thinned keyframes with outside keyframes at gaps.
    """
    from cvat_extension._enums import parse_enum

    f = parse_enum(Format, fmt)
    if isinstance(loaded_or_tracks, LoadedTracks):
        loaded = loaded_or_tracks
    else:
        loaded = LoadedTracks(tracks=loaded_or_tracks, info=info or SequenceInfo(), format=Format.MOT)
    info = info or loaded.info
    dense = loaded.tracks
    stop = _stop(info, dense, None)
    if f is Format.MOT:
        out_info = SequenceInfo(info.num_frames, info.width, info.height, 1, info.job_starts, info.name)
        write_mot(path, dense, info=out_info)
        return
    keyframes = loaded.keyframes
    if keyframes is None:
        keyframes = thin_keyframes(dense, tolerance_px=tolerance_px, stop_frame=stop)
    if f is Format.CVAT_XML:
        attrs = loaded.document.attributes if isinstance(loaded.document, CvatXmlDocument) else None
        rows = expand_keyframes(keyframes, stop_frame=stop)
        write_cvat_xml(path, rows, info=SequenceInfo(stop + 1, info.width, info.height, 0, info.job_starts, info.name), attributes=attrs)
        return
    if isinstance(loaded.document, CvatAnnotations) and loaded.keyframes is not None:
        write_cvat_json(path, loaded.document, info=info)
        return
    names = tuple(dict.fromkeys(keyframes.labels[c] for c in np.unique(keyframes.label))) if len(keyframes) else ()
    doc = empty_document(sorted(names) if names else ("object",))
    doc_info = SequenceInfo(stop + 1, info.width, info.height, 0, info.job_starts, info.name)
    write_cvat_json(path, doc, keyframes, stop_frame=stop, info=doc_info)

