"""A dataset as named sequences: tracks, sequence info and frame rate, read from files.

Inputs a user points the dataset commands at:

- a track file (MOT CSV, CVAT for video XML, CVAT JSON) — one sequence;
- a sequence folder in MOT Challenge layout (``SEQ/gt/gt.txt`` or ``SEQ/gt.txt`` with
  ``seqinfo.ini``) — one sequence;
- a dataset folder whose sub-folders are sequence folders (``MOT17-train/``) — many.

Readers are :func:`cvat_extension.io.formats.read_tracks`, so CVAT keyframes are expanded as
CVAT does and job pieces stitched. A MOT sequence without ``seqinfo.ini`` is read with a
warning (its length becomes the last annotated frame, its frame size unknown), because
every number per frame and every export depends on that length.
"""

from __future__ import annotations

import configparser
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import InputError

__all__ = [
    "Sequence", "find_seqinfo", "groups_of", "load_dataset", "load_sequences", "mask_tracks_of", "read_sequence",
]

logger = logging.getLogger(__name__)

_TRACK_SUFFIXES = {".txt", ".csv", ".xml", ".json"}


@dataclass(frozen=True, eq=False)
class Sequence:
    """One annotated sequence of a dataset.

    Attributes:
        name: unique name in the dataset (``seqinfo.ini`` name, CVAT task name, file stem).
        tracks: dense per-frame boxes, 0-based frames, job pieces stitched.
        info: frames, size, frame base.
        fps: frames per second (``seqinfo.ini`` ``frameRate``; 30 when unknown).
        source: where it came from (a path or ``cvat task 12``), for messages.
        warnings: what was assumed while reading (shown to the user, kept in manifests).
        extra: format-specific content exporters may use (e.g. ``"mask_tracks"``).
    """

    name: str
    tracks: Tracks
    info: SequenceInfo
    fps: float = 30.0
    source: str = ""
    warnings: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        """Frames in the sequence (the last annotated frame + 1 when the length is unknown)."""
        if self.info.num_frames:
            return int(self.info.num_frames)
        return int(self.tracks.frame.max()) + 1 if len(self.tracks) else 0


def find_seqinfo(track_file: Path) -> Path | None:
    """``seqinfo.ini`` beside the file or one folder up (MOT's ``SEQ/gt/gt.txt``), if any."""
    for folder in (track_file.parent, track_file.parent.parent):
        ini = folder / "seqinfo.ini"
        if ini.is_file():
            return ini
    return None


def _frame_rate(ini: Path | None) -> float:
    if ini is None:
        return 30.0
    cp = configparser.ConfigParser()
    try:
        cp.read(ini, encoding="utf-8")
        return float(cp["Sequence"].get("frameRate", "30") or 30)
    except (configparser.Error, KeyError, ValueError):
        return 30.0


def mask_tracks_of(document: object) -> tuple[dict[str, Any], ...]:
    """CVAT mask tracks of a parsed CVAT document (verbatim JSON), if any."""
    other = getattr(document, "other_tracks", ()) or ()
    return tuple(t for t in other if t.get("shapes") and all(s.get("type") == "mask" for s in t["shapes"]))


def groups_of(document: object, piece_map: Mapping[int, int]) -> dict[int, int]:
    """Stitched box-track id → CVAT ``group`` (non-zero only), to pair masks with boxes."""
    raw = getattr(document, "raw_tracks", None) or {}
    out: dict[int, int] = {}
    for pid, track in raw.items():
        group = int(track.get("group") or 0)
        if group:
            out.setdefault(int(piece_map.get(int(pid), int(pid))), group)
    return out


def read_sequence(path: str | Path, *, name: str | None = None, allow_empty: bool = False) -> Sequence:
    """Read one track file as a :class:`Sequence`.

    ``allow_empty`` accepts a file without boxes (a sequence nobody appears in); without it
    such a file is refused as a likely wrong file.

    Raises:
        AnnotationFormatError: the file does not parse (file and line named), or has no
            boxes (unless ``allow_empty``).
    """
    from cvat_extension.io.formats import Format, read_tracks

    p = Path(path)
    loaded = read_tracks(p, allow_empty=allow_empty)
    info = loaded.info
    if loaded.format is Format.MOT and not len(loaded.tracks) and not info.num_frames:
        # An empty file is not parsed, so its seqinfo.ini (name, length, size) is read here:
        # an empty sequence still has frames to count, split and render.
        from cvat_extension.io.mot import _seqinfo

        info = _seqinfo(p)
    warnings: list[str] = []
    ini = find_seqinfo(p) if loaded.format is Format.MOT else None
    if loaded.format is Format.MOT and ini is None:
        warnings.append(f"{p}: no seqinfo.ini beside or above it; length taken from the last "
                        f"annotated frame ({info.num_frames}), frame size unknown")
    default = p.parent.parent.name if p.parent.name == "gt" else (
        p.parent.name if p.stem == "gt" else p.stem)
    seq_name = name or (info.name if ini is not None and info.name else "") or default
    extra: dict[str, Any] = {}
    masks = mask_tracks_of(loaded.document)
    if masks:
        extra["mask_tracks"] = masks
        extra["groups"] = groups_of(loaded.document, loaded.piece_map)
    fps = float(getattr(info, "fps", 0.0) or 0.0) or _frame_rate(ini)
    return Sequence(name=seq_name, tracks=loaded.tracks, info=info, fps=fps,
                    source=str(p), warnings=tuple(warnings), extra=extra)


def _gt_file(folder: Path) -> Path | None:
    for candidate in (folder / "gt" / "gt.txt", folder / "gt.txt"):
        if candidate.is_file():
            return candidate
    return None


def load_sequences(paths: list[str | Path] | tuple[str | Path, ...], *, allow_empty: bool = False) -> list[Sequence]:
    """Every sequence named by ``paths`` (files, sequence folders, dataset folders).

    ``allow_empty``: see :func:`read_sequence`.

    Raises:
        InputError: a path does not exist, a folder holds no sequence, or two sequences
            share a name.
        AnnotationFormatError: a file does not parse.
    """
    out: list[Sequence] = []
    for raw in paths:
        p = Path(raw)
        if p.is_file():
            out.append(read_sequence(p, allow_empty=allow_empty))
        elif p.is_dir():
            gt = _gt_file(p)
            if gt is not None:
                out.append(read_sequence(gt, allow_empty=allow_empty))
                continue
            subs = sorted(d for d in p.iterdir() if d.is_dir() and _gt_file(d) is not None)
            files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() in _TRACK_SUFFIXES
                           and not f.name.startswith("."))
            if not subs and not files:
                raise InputError(f"{p}: no sequences found (expected SEQ/gt/gt.txt folders or track files)")
            out.extend(read_sequence(_gt_file(d) or d, allow_empty=allow_empty) for d in subs)
            out.extend(read_sequence(f, allow_empty=allow_empty) for f in files
                       if f.name not in ("seqinfo.ini", "labels.txt"))
        else:
            raise InputError(f"{p}: no such file or folder")
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"two sequences are named {dupes[0]!r}; sequence names must be unique")
    return out


def load_dataset(
    paths: list[str | Path] | tuple[str | Path, ...] = (),
    *,
    tasks: list[int] | tuple[int, ...] = (),
    config: str | Path | None = None,
    allow_empty: bool = False,
) -> list[Sequence]:
    """Sequences from files/folders and from CVAT tasks (``config``: the sync config).

    ``allow_empty``: accept files without boxes (see :func:`read_sequence`).

    Raises:
        InputError: nothing given, a path is missing, or names collide.
        ConfigError: CVAT tasks without a usable config.
    """
    if not paths and not tasks:
        raise InputError("no input: give track files, sequence folders or --task IDs")
    out = load_sequences(list(paths), allow_empty=allow_empty) if paths else []
    if tasks:
        from cvat_extension.dataset.cvat_source import connect_from_config, task_sequence

        api, _cfg = connect_from_config(config or "serverless.yaml")
        try:
            out.extend(task_sequence(api, t) for t in tasks)
        finally:
            api.client.close()
    names = [s.name for s in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InputError(f"two sequences are named {dupes[0]!r}; sequence names must be unique")
    return out
