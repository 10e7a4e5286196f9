"""Outputs appear complete or not at all: write into a staging folder, then move in.

Every dataset command writes several files (a card and its plots, a split's seqmaps and
manifest, an export tree). A failure halfway must not leave a card whose plots belong to an
older run or an export TrackEval would half-read, so commands write into a hidden folder
beside the output and move its entries into place only after everything succeeded.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from cvat_extension.errors import InputError

__all__ = ["staged_output"]

logger = logging.getLogger(__name__)


@contextmanager
def staged_output(out_dir: str | Path) -> Iterator[Path]:
    """Yield an empty staging folder; on success move its entries into ``out_dir``.

    Entries replace same-named files or folders in ``out_dir``; other content of
    ``out_dir`` is left alone. On any exception the staging folder is removed and
    ``out_dir`` is untouched.

    Raises:
        InputError: ``out_dir`` is a file or cannot be created.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: --out must be a folder, not a file")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-", dir=out.parent))
    except OSError as exc:
        raise InputError(f"{out}: cannot create the output folder: {exc}") from exc
    try:
        yield stage
        out.mkdir(exist_ok=True)
        for entry in sorted(stage.iterdir()):
            target = out / entry.name
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
            os.replace(entry, target)
        logger.debug("moved staged outputs into %s", out)
    except OSError as exc:
        raise InputError(f"{out}: cannot write outputs: {exc}") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
