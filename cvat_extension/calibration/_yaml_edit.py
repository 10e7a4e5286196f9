"""Read, prove and write a comment-preserving line edit of a YAML file (private).

Both editors of :mod:`cvat_extension.calibration` (the manifest's ``functions.<name>.env``
and a Nuclio ``function.yaml``'s ``spec.env`` list) change values on the lines, since
PyYAML drops comments, and then prove the edit: the new text, parsed, must equal the old
document with exactly the requested values changed. Reading and that proof are shared here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvat_extension.errors import ConfigError

__all__ = ["commit_edit", "read_yaml"]


def read_yaml(path: Path, what: str) -> tuple[str, Any]:
    """(text, parsed document) of ``path``, an empty document read as ``{}``.

    Raises:
        ConfigError: unreadable or not YAML; ``what`` names the file in the message.
    """
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
        return text, yaml.safe_load(text) or {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the {what} ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc})") from exc


def commit_edit(path: Path, new: str, expected: Any, changes: Mapping[str, Any], *, write: bool) -> str:
    """Check that ``new`` parses to ``expected``, then write it atomically if ``write``.

    Raises:
        ConfigError: the edited text does not parse, or parses to anything else than
            ``expected`` (``changes`` are then named for a manual edit). Nothing is written.
    """
    import yaml

    try:
        after = yaml.safe_load(new)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: editing it would break the YAML ({exc}); nothing written") from exc
    if after != expected:
        raise ConfigError(f"{path}: a layout this edit does not understand; nothing written. "
                          f"Set these by hand: {json.dumps(dict(changes))}")
    if write:
        from cvat_extension.io._atomic import write_atomic

        write_atomic(path, lambda fh: fh.write(new))
    return new
