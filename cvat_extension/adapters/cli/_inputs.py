"""What the CLI reads besides tracks: image folders, detection files, YAML settings.

Kept in the adapter layer because it does file I/O and decodes images (core only takes a
``FrameSource`` callable and objects).
"""

from __future__ import annotations

import argparse
from collections import OrderedDict
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import AnnotationFormatError, ConfigError, InputError

__all__ = [
    "ImageFolderFrames",
    "check_config",
    "fraction",
    "load_detections",
    "load_yaml",
    "merge_config",
    "nonnegative_int",
    "positive_int",
    "score",
    "write_json",
]

_IMAGE_EXT = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}


class ImageFolderFrames:
    """A ``FrameSource`` over a folder of images: frame i is the i-th file by name.

    This is how CVAT numbers the frames of an image task (sorted file names), and how MOT's
    ``img1/000001.jpg`` … line up with 0-based internal frames. A few decoded frames are kept,
    because checks and reports ask for neighbouring frames repeatedly.
    """

    def __init__(self, folder: str | Path, *, cache_frames: int = 16, frame_base: int = 0) -> None:
        """Index ``folder``; ``frame_base`` is the user's first frame number, for messages only."""
        self.folder = Path(folder)
        self.frame_base = frame_base
        if not self.folder.is_dir():
            raise InputError(f"{self.folder}: --frames must be a folder of images")
        self.files = sorted(p for p in self.folder.iterdir() if p.suffix.lower() in _IMAGE_EXT)
        if not self.files:
            raise InputError(f"{self.folder}: no images ({', '.join(sorted(_IMAGE_EXT))}) found")
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._cache_frames = cache_frames

    def __len__(self) -> int:
        return len(self.files)

    def __call__(self, frame: int) -> np.ndarray:
        """RGB uint8 (H, W, 3) image of 0-based ``frame``.

        Raises:
            InputError: the frame is outside the folder or the file cannot be decoded.
        """
        if frame in self._cache:
            self._cache.move_to_end(frame)
            return self._cache[frame]
        if not 0 <= frame < len(self.files):
            first = self.frame_base
            raise InputError(f"{self.folder}: no image for frame {frame + first} (the folder has "
                             f"{len(self.files)} images: frames {first}-{first + len(self.files) - 1})")
        from PIL import Image, UnidentifiedImageError

        path = self.files[frame]
        try:
            with Image.open(path) as im:
                arr = np.asarray(im.convert("RGB"))
        except (OSError, UnidentifiedImageError) as exc:
            raise InputError(f"{path}: cannot decode image: {exc}") from exc
        self._cache[frame] = arr
        if len(self._cache) > self._cache_frames:
            self._cache.popitem(last=False)
        return arr


def load_detections(path: str | Path, *, allow_empty: bool = False) -> Tracks:
    """Detections as Tracks with ``track_id`` -1 and 0-based frames.

    MOT detection files (``frame,id,x,y,w,h,conf,...``, frames from 1, id usually -1) go
    through :func:`~cvat_extension.io.mot.read_mot_detections` because they repeat ids
    within a frame, which track readers reject; CVAT XML or JSON files go through the track
    readers.

    Raises:
        AnnotationFormatError: a malformed row (file and line named), or no detections at
            all (unless ``allow_empty``).
    """
    from cvat_extension.io.sniff import EMPTY_HINT

    p = Path(path)
    from cvat_extension.io.formats import Format, detect_format, read_tracks
    from cvat_extension.io.mot import read_mot_detections

    if detect_format(p) is not Format.MOT:
        loaded = read_tracks(p, allow_empty=allow_empty)
        vis = loaded.tracks.visible()
        return vis.with_columns(track_id=np.full(len(vis), -1, dtype=np.int64))
    det = read_mot_detections(p)
    if not len(det) and not allow_empty:
        raise AnnotationFormatError(f"no detections in this file; {EMPTY_HINT}", path=p)
    return det


def load_yaml(path: str | Path) -> Mapping[str, Any]:
    """A YAML mapping from ``path`` (empty file → empty mapping).

    Raises:
        ConfigError: unreadable, invalid YAML, or not a mapping.
    """
    import yaml

    p = Path(path)
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config: {exc}") from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        what = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{where}: invalid YAML: {what}") from exc
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{p}: config must be a mapping of check names to settings")
    return data


def _number(text: str, what: str, ok: Callable[[float], bool]) -> float:
    """Parse ``text`` as a float that ``ok`` accepts, else ArgumentTypeError naming ``what``."""
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ok(v):
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return v


def number_type(what: str, ok: Callable[[float], bool]) -> Callable[[str], float]:
    """An argparse type for floats ``ok`` accepts; ``what`` names them in the error.

    >>> number_type("seconds > 0", lambda v: v > 0)("2.5")
    2.5
    """
    def parse(text: str) -> float:
        return _number(text, what, ok)

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def fraction(text: str) -> float:
    """argparse type: a number in (0, 1]."""
    return _number(text, "a number in (0, 1]", lambda v: 0 < v <= 1)


def score(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    return _number(text, "a score in 0..1", lambda v: 0 <= v <= 1)


def fps_value(text: str) -> float:
    """argparse type: a frame rate in annotated frames per second (> 0, at most 1000)."""
    return _number(text, "frames per second in (0, 1000]", lambda v: 0 < v <= 1000)


def _int_at_least(text: str, low: int) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < low:
        raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {v}")
    return v


def nonnegative_int(text: str) -> int:
    """argparse type: an integer >= 0 (counts, gaps)."""
    return _int_at_least(text, 0)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (CVAT ids, sizes)."""
    return _int_at_least(text, 1)


def write_json(path: str | Path, payload: Any) -> None:
    """Write JSON atomically (nothing is left half-written on error).

    Raises:
        InputError: the file cannot be written.
    """
    import json

    from cvat_extension.io._atomic import write_atomic

    def dump(fh: Any) -> None:
        json.dump(payload, fh, indent=1)
        fh.write("\n")

    try:
        write_atomic(path, dump)
    except OSError as exc:
        raise InputError(f"{path}: cannot write: {exc}") from exc


def check_config(mapping: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    """Split a YAML config into (checks settings, merge settings).

    The file holds check names at the top level (``ghost: {min_static_frames: 40}``), plus an
    optional ``merge:`` section with :class:`~cvat_extension.core.merge.MergeConfig` fields.
    """
    checks = {k: v for k, v in mapping.items() if k != "merge"}
    merge = mapping.get("merge") or {}
    if not isinstance(merge, Mapping):
        raise ConfigError("config 'merge' must be a mapping of MergeConfig settings")
    return checks, merge


def merge_config(mapping: Mapping[str, Any], max_gap: int | None = None) -> Any:
    """:class:`MergeConfig` from a mapping (unknown names listed) and an optional --max-gap."""
    from dataclasses import fields

    from cvat_extension.core.merge import MergeConfig

    valid = [f.name for f in fields(MergeConfig)]
    bad = [k for k in mapping if k not in valid]
    if bad:
        raise ConfigError(f"unknown merge setting {', '.join(map(repr, bad))}; valid names are {', '.join(valid)}")
    values = dict(mapping)
    if max_gap is not None:
        values["max_gap_frames"] = max_gap
    try:
        return MergeConfig(**values)
    except TypeError as exc:
        raise ConfigError(f"merge config: {exc}") from exc
