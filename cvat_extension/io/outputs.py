"""All-or-nothing outputs: a command's files are checked first, written aside, moved in last.

A command that writes several things (``merge --out M --json J``, ``check --json J --report
DIR``) must never leave the user with half of them: a bad second path used to be noticed
after the first file was written, and a folder given where a file was expected crashed in
the middle. :class:`OutputPlan` declares every output before any work is done and checks
them all (not a folder, not an input, not twice, a name whose extension matches what is
written, a parent that can be created); :meth:`OutputPlan.staged` then hands out temporary
paths beside each target and moves them into place only when the whole command succeeded.
On any error every temporary file, and every folder the plan created, is removed.

Folder outputs (a report, a dataset card, an export) are replaced as a whole, never merged
into: stale files of an older run (plots, sequences no longer exported) would otherwise sit
beside the new ones and pass for part of them. An existing folder is replaced only when it
holds the marker file the command writes, so a mistyped ``--out ~/Documents`` is refused.

Temporary files keep the target's extension (``.v.mp4.x1y2.tmp.mp4``) because some writers
(PyAV, matplotlib, Pillow) choose the format from it.

A crash between two final renames can still leave a mix; the renames are the last, cheap
step, so that window is as small as the file system allows.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cvat_extension.errors import InputError

__all__ = ["OutputPlan"]

#: What each kind of content is called in messages, and the extensions that fit it.
_KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "mot": ("MOT CSV", (".txt", ".csv")),
    "cvat_xml": ("CVAT for video XML", (".xml",)),
    "cvat_json": ("CVAT JSON", (".json",)),
    "json": ("JSON", (".json",)),
    "mp4": ("MP4 video", (".mp4",)),
    "gif": ("GIF", (".gif",)),
    "png": ("PNG", (".png",)),
    "html": ("HTML", (".html", ".htm")),
    "yaml": ("YAML", (".yaml", ".yml")),
    "md": ("Markdown", (".md",)),
}
#: Kinds whose writers pick the encoding from the extension: the name must carry it.
_NEEDS_EXT = frozenset({"mp4", "gif", "png"})
_ALL_EXT = {ext for _, exts in _KINDS.values() for ext in exts}


@dataclass(frozen=True)
class _Output:
    path: Path
    option: str
    kind: str  # a key of _KINDS, or "folder"


class OutputPlan:
    """Every output of one command, validated together and committed together.

    Args:
        inputs: paths the command reads; no output may be one of them (or lie inside a
            folder output that would replace it).
    """

    def __init__(self, inputs: Iterable[str | Path | None] = ()) -> None:
        self._inputs = [Path(p).resolve() for p in inputs if p is not None]
        self._outputs: list[_Output] = []

    def file(self, path: str | Path | None, *, option: str, kind: str) -> Path | None:
        """Declare an output file holding ``kind`` content; returns its path (None → None).

        Raises:
            InputError: the path is an input, declared twice, lies in a folder output, is a
                folder, its extension names another format (or, for video and images, is
                missing), or its parent is a file.
        """
        if path is None:
            return None
        p = Path(path)
        self._check_clash(p, option, folder=False)
        name, exts = _KINDS[kind]
        if p.is_dir():
            raise InputError(f"{p}: {option} is a folder; give a file name, e.g. {p / ('out' + exts[0])}")
        suffix = p.suffix.lower()
        if (suffix in _ALL_EXT or kind in _NEEDS_EXT) and suffix not in exts:
            got = f"a {suffix} name" if suffix else "a name without extension"
            raise InputError(f"{p}: {option} would get {name} content under {got}; "
                             f"use {' or '.join(exts)}")
        self._add(_Output(p, option, kind))
        return p

    def folder(self, path: str | Path | None, *, option: str,
               marker: str | tuple[str, ...] = "index.html") -> Path | None:
        """Declare an output folder, replaced as a whole; returns its path (None → None).

        An existing folder is replaced only if it is empty or holds ``marker`` (a file the
        command writes, or one of several names), so that ``--report ~/Documents`` cannot
        wipe someone's files.

        Raises:
            InputError: the path is a file, an input or holds one, overlaps another output,
                or is a foreign folder.
        """
        if path is None:
            return None
        p = Path(path)
        if p.exists() and not p.is_dir():
            raise InputError(f"{p}: {option} must be a folder, but a file of that name exists")
        self._check_clash(p, option, folder=True)
        markers = (marker,) if isinstance(marker, str) else marker
        if p.is_dir() and any(p.iterdir()) and not any((p / m).exists() for m in markers):
            raise InputError(f"{p}: {option} folder exists and holds other files (no {' or '.join(markers)}); "
                             "give a new or empty folder")
        self._add(_Output(p, option, "folder"))
        return p

    def _check_clash(self, path: Path, option: str, *, folder: bool) -> None:
        """Refuse an input as output, a path given twice, and outputs nested in a folder output."""
        target = path.resolve()
        for inp in self._inputs:
            if target == inp or (folder and target in inp.parents):
                raise InputError(f"{path}: {option} would overwrite the input {inp}; "
                                 "choose another name (inputs are never changed)")
        for other in self._outputs:
            there = other.path.resolve()
            if there == target:
                raise InputError(f"{path}: given to both {other.option} and {option}")
            if other.kind == "folder" and there in target.parents:
                raise InputError(f"{path}: {option} lies inside the {other.option} folder, which is "
                                 "replaced as a whole; write it elsewhere")
            if folder and target in there.parents:
                raise InputError(f"{other.path}: {other.option} lies inside the {option} folder, which is "
                                 "replaced as a whole; write it elsewhere")

    def _add(self, out: _Output) -> None:
        target = out.path.resolve()
        parent = next((a for a in target.parents if a.exists()), None)
        if parent is not None and not parent.is_dir():
            raise InputError(f"{out.path}: {out.option}: {parent} is a file, not a folder")
        if parent is not None and not os.access(parent, os.W_OK):
            raise InputError(f"{out.path}: {out.option}: cannot write into {parent}")
        self._outputs.append(out)

    @contextmanager
    def staged(self) -> Iterator[dict[Path, Path]]:
        """Temporary paths for every declared output, moved into place on success.

        Yields a mapping from each declared path to the path to write instead. Folders are
        created empty; files are not created (writers create them), and a file the command
        did not write (``calibrate`` that found no setting) is not moved in: its target stays
        as it was.

        Raises:
            InputError: a folder or temporary file cannot be created.
        """
        created: list[Path] = []
        stage: dict[Path, Path] = {}
        try:
            for out in self._outputs:
                created.extend(_make_parents(out.path.parent))
                if out.kind == "folder":
                    stage[out.path] = Path(tempfile.mkdtemp(prefix=f".{out.path.name}.", suffix=".tmp",
                                                            dir=out.path.parent))
                else:
                    fd, tmp = tempfile.mkstemp(prefix=f".{out.path.name}.", suffix=f".tmp{out.path.suffix}",
                                               dir=out.path.parent)
                    os.close(fd)
                    os.unlink(tmp)  # the name is reserved in a folder we write; a writer creates it
                    stage[out.path] = Path(tmp)
        except OSError as exc:
            _discard(stage.values(), created)
            raise InputError(f"cannot prepare outputs: {exc}") from exc
        try:
            yield stage
            for out in self._outputs:
                if out.kind == "folder" or stage[out.path].exists():
                    _move_in(stage[out.path], out.path, folder=out.kind == "folder")
        except BaseException:
            _discard(stage.values(), created)
            raise


def _make_parents(folder: Path) -> list[Path]:
    """Create ``folder`` and missing parents; returns those created, deepest last."""
    missing = [a for a in (folder, *folder.parents) if not a.exists()][::-1]
    for m in missing:
        m.mkdir()
    return missing


def _move_in(tmp: Path, target: Path, *, folder: bool) -> None:
    if not folder:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, target)
        return
    tmp.chmod(0o777 & ~_umask())
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old.", dir=target.parent))
        old.rmdir()
        os.replace(target, old)
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _discard(paths: Iterable[Path], created: list[Path]) -> None:
    for p in paths:
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
    for d in reversed(created):
        try:
            d.rmdir()
        except OSError:
            pass
