"""Set ``functions.<name>.env.<VAR>`` values in ``serverless.yaml`` without losing its comments.

Why not load and dump the YAML: the manifest is documentation as much as configuration
(every setting carries a comment saying what it trades off), and PyYAML drops comments. The
edit is therefore made on the lines — the value of an existing ``VAR:`` line is replaced and
its comment kept, a missing one is added under ``env:`` — and then *proved*: the edited text
is parsed again and must equal the original document with exactly the requested values
changed. Anything else (an unusual layout the line editor misread) is a
:class:`~cvat_extension.errors.ConfigError` and the file is not touched.
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

__all__ = ["set_function_env"]

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_.\-]+):(?P<rest>.*)$")


def _block_end(lines: list[str], start: int, indent: int) -> int:
    """Index after the block whose header is ``lines[start]`` (children indented deeper)."""
    i = start + 1
    while i < len(lines):
        text = lines[i]
        if text.strip() and not text.lstrip().startswith("#") and len(text) - len(text.lstrip(" ")) <= indent:
            break
        i += 1
    return i


def _find_child(lines: list[str], start: int, end: int, key: str, parent_indent: int) -> tuple[int, int] | None:
    """(line index, indent) of ``key:`` directly under a block spanning ``start..end``."""
    child_indent: int | None = None
    for i in range(start, end):
        m = _KEY.match(lines[i])
        if not m or lines[i].lstrip().startswith("#"):
            continue
        indent = len(m["indent"])
        if indent <= parent_indent:
            continue
        if child_indent is None:
            child_indent = indent
        if indent == child_indent and m["key"] == key:
            return i, indent
    return None


def _value_with_comment(rest: str, value: str) -> str:
    """Replace the scalar in ``rest`` (text after ``KEY:``), keeping a trailing comment."""
    comment = ""
    m = re.search(r"\s+#.*$", rest)
    if m and rest[: m.start()].count('"') % 2 == 0:
        comment = rest[m.start():]
        body = rest[: m.start()]
    else:
        body = rest
    width = len(body)
    new = f" {json.dumps(value)}"
    if comment:
        new = new.ljust(max(width, len(new)))
    return new + comment


def _edit(text: str, function: str, values: Mapping[str, str], path: Path) -> str:
    lines = text.split("\n")
    top = _find_child(lines, 0, len(lines), "functions", -1)
    if top is None or top[1] != 0:
        raise ConfigError(f"{path}: no top-level functions: section")
    f_end = _block_end(lines, top[0], 0)
    entry = _find_child(lines, top[0] + 1, f_end, function, 0)
    if entry is None:
        raise ConfigError(f"{path}: functions.{function}: no such function in the manifest")
    e_line, e_indent = entry
    e_end = _block_end(lines, e_line, e_indent)
    env = _find_child(lines, e_line + 1, e_end, "env", e_indent)
    if env is None:
        lines.insert(e_line + 1, " " * (e_indent + 2) + "env:")
        env = (e_line + 1, e_indent + 2)
        e_end += 1
    env_line, env_indent = env
    if _KEY.match(lines[env_line]) and _KEY.match(lines[env_line])["rest"].split("#")[0].strip():  # type: ignore[index]
        raise ConfigError(f"{path}: functions.{function}.env is written inline; write it as a block mapping")
    for var, value in values.items():
        env_end = _block_end(lines, env_line, env_indent)
        found = _find_child(lines, env_line + 1, env_end, var, env_indent)
        if found is not None:
            i, _ = found
            m = _KEY.match(lines[i])
            assert m is not None  # _find_child only returns matching lines
            lines[i] = f"{m['indent']}{var}:{_value_with_comment(m['rest'], value)}"
        else:
            siblings = [j for j in range(env_line + 1, env_end) if _KEY.match(lines[j])]
            indent = len(lines[siblings[0]]) - len(lines[siblings[0]].lstrip(" ")) if siblings else env_indent + 2
            insert_at = (siblings[-1] + 1) if siblings else env_line + 1
            lines.insert(insert_at, f"{' ' * indent}{var}: {json.dumps(value)}")
    return "\n".join(lines)


def set_function_env(path: str | Path, changes: Mapping[str, Mapping[str, str]], *, write: bool = True) -> str:
    """Set ``functions.<function>.env.<VAR> = value`` for every entry of ``changes``.

    Args:
        path: the manifest (``serverless.yaml``).
        changes: function name → {variable: value}; values are written as quoted strings.
        write: False to only compute (and check) the new text.

    Returns:
        The new text of the manifest.

    Raises:
        ConfigError: the file cannot be read or parsed, a function is missing, or the edit
            would change anything but the requested values. Nothing is written then.
    """
    p = Path(path)
    text, before = read_yaml(p, "manifest")
    new = text
    expected: Any = copy.deepcopy(before)
    for function, values in changes.items():
        new = _edit(new, function, values, p)
        entry = (expected.get("functions") or {}).get(function)
        if not isinstance(entry, dict):
            raise ConfigError(f"{p}: functions.{function}: expected a mapping")
        entry.setdefault("env", None)
        entry["env"] = {**(entry["env"] or {}), **{k: str(v) for k, v in values.items()}}
    return commit_edit(p, new, expected, changes, write=write)
