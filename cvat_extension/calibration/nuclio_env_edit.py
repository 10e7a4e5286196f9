"""Set ``spec.env`` values in a Nuclio ``function.yaml`` without losing its comments.

Why: ``serverless.yaml`` configures ``serve-functions`` and ``annotate``, but CVAT calls the
functions that ``nuctl deploy`` built from ``functions/<name>/function.yaml``; a calibration
written only into the manifest never reached a deployed detector or tracker. Nuclio lists
variables as ``- name: VAR`` / ``value: ...`` items, a layout the manifest editor
(:mod:`~cvat_extension.calibration.manifest_edit`) does not read, so this module edits
those items on the lines (an existing item's value replaced, comments kept; a missing one
appended to the list) and then proves the edit as the manifest editor does: the new text,
parsed, must equal the old document with exactly the requested values changed. Anything else
is a :class:`~cvat_extension.errors.ConfigError` and the file is not touched.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvat_extension.calibration._yaml_edit import commit_edit, read_yaml
from cvat_extension.errors import ConfigError

__all__ = ["NUCLIO_FUNCTION_DIR", "set_nuclio_env"]

#: Where Nuclio puts a function's folder in the image it builds (CVAT's own functions read
#: ``/opt/nuclio/function.yaml``): a file written beside function.yaml is found here.
NUCLIO_FUNCTION_DIR = "/opt/nuclio"

_ITEM = re.compile(r"^(?P<indent> *)- +name: *(?P<name>[^#\s]+)")
_VALUE = re.compile(r"^(?P<indent> *)value:(?P<rest>.*)$")
_ENV = re.compile(r"^(?P<indent> *)env: *(#.*)?$")
_SPEC = re.compile(r"^spec: *(#.*)?$")


def _env_block(lines: list[str], path: Path) -> tuple[int, int, int]:
    """(first line after ``env:``, end of the block, indent of ``env:``) under ``spec:``."""
    spec = next((i for i, ln in enumerate(lines) if _SPEC.match(ln)), None)
    if spec is None:
        raise ConfigError(f"{path}: no top-level spec: section")
    for i in range(spec + 1, len(lines)):
        text = lines[i]
        if text.strip() and not text.startswith(" ") and not text.lstrip().startswith("#"):
            break  # the next top-level key: spec has no env block
        m = _ENV.match(text)
        if m:
            indent = len(m["indent"])
            end = i + 1
            while end < len(lines):
                t = lines[end]
                if t.strip() and not t.lstrip().startswith("#") and len(t) - len(t.lstrip(" ")) <= indent \
                        and not t.lstrip().startswith("- "):
                    break
                end += 1
            while end > i + 1 and (not lines[end - 1].strip() or lines[end - 1].lstrip().startswith("#")):
                end -= 1  # comments after the last item belong to what follows
            return i + 1, end, indent
    raise ConfigError(f"{path}: spec.env is missing; add an env: list first")


def _quoted(rest: str, value: str) -> str:
    """``rest`` (text after ``value:``) with its scalar replaced, a trailing comment kept."""
    m = re.search(r"\s+#.*$", rest)
    comment = rest[m.start():] if m and rest[: m.start()].count('"') % 2 == 0 else ""
    return f" {json.dumps(value)}{comment}"


def _edit(text: str, values: Mapping[str, str], path: Path) -> str:
    lines = text.split("\n")
    for var, value in values.items():
        start, end, env_indent = _env_block(lines, path)
        items = [(i, _ITEM.match(lines[i])) for i in range(start, end)]
        found = [(i, m) for i, m in items if m is not None and m["name"] == var]
        if found:
            i, m = found[0]
            j = i + 1
            while j < end and not _VALUE.match(lines[j]) and not _ITEM.match(lines[j]):
                j += 1
            vm = _VALUE.match(lines[j]) if j < end else None
            if vm is None:
                raise ConfigError(f"{path}: spec.env item {var} has no value: line under it")
            lines[j] = f"{vm['indent']}value:{_quoted(vm['rest'], value)}"
        else:
            first = next((m for _i, m in items if m is not None), None)
            dash = len(first["indent"]) if first is not None else env_indent + 2
            lines[end:end] = [f"{' ' * dash}- name: {var}", f"{' ' * (dash + 2)}value: {json.dumps(value)}"]
    return "\n".join(lines)


def set_nuclio_env(path: str | Path, values: Mapping[str, str], *, write: bool = True) -> str:
    """Set ``spec.env`` items ``name: VAR`` to ``value`` in a Nuclio function.yaml.

    Args:
        path: the function configuration (``functions/<name>/function.yaml``).
        values: variable → value; written as quoted strings.
        write: False to only compute (and check) the new text.

    Returns:
        The new text.

    Raises:
        ConfigError: unreadable or invalid YAML, no ``spec.env`` list, or an edit that
            would change anything but the requested values. Nothing is written then.
    """
    p = Path(path)
    text, before = read_yaml(p, "function configuration")
    env = (before.get("spec") or {}).get("env") if isinstance(before, dict) else None
    if not isinstance(env, list) or not all(isinstance(e, dict) and "name" in e for e in env):
        raise ConfigError(f"{p}: spec.env must be a list of name/value items")
    new = _edit(text, values, p)
    expected: Any = copy.deepcopy(before)
    items = expected["spec"]["env"]
    for var, value in values.items():
        match = [e for e in items if e.get("name") == var]
        if match:
            match[0]["value"] = str(value)
        else:
            items.append({"name": var, "value": str(value)})
    return commit_edit(p, new, expected, values, write=write)
