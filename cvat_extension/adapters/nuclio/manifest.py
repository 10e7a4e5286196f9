"""The ``functions:`` section of ``serverless.yaml``: which Nuclio functions we ship and how.

Read by ``cvat-track serve-functions`` (the local gateway) and by
``scripts/deploy_functions.sh`` (through ``python -m cvat_extension.adapters.nuclio.manifest``,
which prints one tab-separated line per enabled function), so both agree on the same list.
The format is documented at the top of the section in ``serverless.yaml``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvat_extension.errors import ConfigError

__all__ = ["FunctionEntry", "load_function_yaml", "load_manifest"]

_NAME = re.compile(r"^[a-zA-Z0-9_.-]+$")
_KEYS = {"path", "gpu", "replicas", "env", "weights", "enabled"}
_WEIGHT_KEYS = {"env", "local", "deployed"}


@dataclass(frozen=True)
class FunctionEntry:
    """One function of the manifest.

    Attributes:
        name: Nuclio ``metadata.name``; CVAT's function id.
        path: the function folder (absolute).
        gpu: use ``function-gpu.yaml``.
        replicas: Nuclio min/max replicas.
        env: extra handler environment (strings).
        weights_env: variable the handler reads the weights path from, or None.
        weights_local: weights file on this machine (serve-functions), or None.
        weights_deployed: weights path inside the container (deploy), or None.
    """

    name: str
    path: Path
    gpu: bool = False
    replicas: int = 1
    env: Mapping[str, str] = field(default_factory=dict)
    weights_env: str | None = None
    weights_local: Path | None = None
    weights_deployed: str | None = None

    @property
    def function_file(self) -> Path:
        """``function-gpu.yaml`` when ``gpu`` (and present), else ``function.yaml``."""
        gpu_file = self.path / "function-gpu.yaml"
        return gpu_file if self.gpu and gpu_file.is_file() else self.path / "function.yaml"

    def handler_env(self) -> dict[str, str]:
        """Environment for running the handler locally: ``env`` plus the local weights path."""
        env = dict(self.env)
        if self.weights_env and self.weights_local is not None:
            env[self.weights_env] = str(self.weights_local)
        return env

    def deploy_env(self) -> dict[str, str]:
        """Environment passed to ``nuctl deploy --env``: ``env`` plus the deployed weights path."""
        env = dict(self.env)
        if self.weights_env and self.weights_deployed:
            env[self.weights_env] = self.weights_deployed
        return env


def _str_env(raw: Any, where: str) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}.env: expected a mapping of NAME: value")
    out = {}
    for key, value in raw.items():
        if not isinstance(key, str) or not key:
            raise ConfigError(f"{where}.env: variable names must be non-empty strings")
        out[key] = "" if value is None else str(value).lower() if isinstance(value, bool) else str(value)
    return out


def _entry(name: Any, raw: Any, base: Path, manifest: Path) -> FunctionEntry | None:
    where = f"{manifest}: functions.{name}"
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(f"{where}: function names must match [a-zA-Z0-9_.-]+ (CVAT uses them in URLs)")
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: expected a mapping")
    unknown = set(raw) - _KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}; valid keys are {sorted(_KEYS)}")
    if raw.get("enabled", True) is False:
        return None
    if not raw.get("path"):
        raise ConfigError(f"{where}.path: required (the folder with function.yaml)")
    path = (base / str(raw["path"])).resolve()
    if not (path / "function.yaml").is_file():
        raise ConfigError(f"{where}.path: {path} has no function.yaml")
    replicas = raw.get("replicas", 1)
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 1:
        raise ConfigError(f"{where}.replicas: expected an integer ≥ 1, got {replicas!r}")
    gpu = raw.get("gpu", False)
    if not isinstance(gpu, bool):
        raise ConfigError(f"{where}.gpu: expected true or false, got {gpu!r}")
    weights = raw.get("weights") or {}
    if not isinstance(weights, Mapping) or set(weights) - _WEIGHT_KEYS:
        raise ConfigError(f"{where}.weights: expected a mapping with keys {sorted(_WEIGHT_KEYS)}")
    local = weights.get("local")
    return FunctionEntry(
        name=name,
        path=path,
        gpu=gpu,
        replicas=replicas,
        env=_str_env(raw.get("env"), where),
        weights_env=weights.get("env"),
        weights_local=(base / str(local)).resolve() if local else None,
        weights_deployed=weights.get("deployed"),
    )


def load_manifest(path: str | Path, *, only: Sequence[str] = ()) -> list[FunctionEntry]:
    """The enabled functions of ``path``'s ``functions:`` section, in file order.

    Args:
        path: the manifest (``serverless.yaml``).
        only: keep just these names (all must exist).

    Raises:
        ConfigError: unreadable file, malformed entry, or an unknown name in ``only``; the
            message names the file and the entry.
    """
    import yaml

    manifest = Path(path)
    try:
        data = yaml.safe_load(manifest.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"{manifest}: cannot read the manifest ({exc})") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{manifest}: not valid YAML ({exc})") from exc
    section = data.get("functions") if isinstance(data, Mapping) else None
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"{manifest}: functions: expected a mapping of name → settings")
    base = manifest.resolve().parent
    entries = [e for n, raw in section.items() if (e := _entry(n, raw, base, manifest)) is not None]
    if only:
        known = {e.name for e in entries}
        missing = [n for n in only if n not in known]
        if missing:
            raise ConfigError(
                f"{manifest}: no enabled function named {', '.join(map(repr, missing))}; "
                f"known: {', '.join(sorted(known)) or 'none'}"
            )
        entries = [e for e in entries if e.name in set(only)]
    return entries


def load_function_yaml(entry: FunctionEntry) -> dict[str, Any]:
    """The parsed ``function.yaml`` (or ``function-gpu.yaml``) of ``entry``.

    Raises:
        ConfigError: unreadable, or its ``metadata.name`` differs from the manifest's name.
    """
    import yaml

    file = entry.function_file
    try:
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read ({exc})") from exc
    if not isinstance(data, Mapping) or not isinstance(data.get("metadata"), Mapping):
        raise ConfigError(f"{file}: expected a Nuclio function config with metadata")
    name = data["metadata"].get("name")
    if name != entry.name:
        raise ConfigError(f"{file}: metadata.name is {name!r}, the manifest calls it {entry.name!r}")
    return dict(data)


def main(argv: Sequence[str] | None = None) -> int:
    """Print ``name<TAB>path<TAB>function file<TAB>replicas<TAB>K=V,K=V`` per function.

    Used by ``scripts/deploy_functions.sh`` so the shell never parses YAML.
    """
    parser = argparse.ArgumentParser(prog="python -m cvat_extension.adapters.nuclio.manifest")
    parser.add_argument("manifest", nargs="?", default="serverless.yaml")
    parser.add_argument("--only", nargs="*", default=[])
    parser.add_argument("--gpu", action="store_true", help="use function-gpu.yaml for all")
    args = parser.parse_args(argv)
    try:
        entries = load_manifest(args.manifest, only=args.only)
    except ConfigError as exc:
        print(f"ConfigError: {exc}", file=sys.stderr)
        return 2
    for e in entries:
        if args.gpu and not e.gpu:
            e = FunctionEntry(**{**e.__dict__, "gpu": True})
        env = ",".join(f"{k}={v}" for k, v in e.deploy_env().items())
        print(f"{e.name}\t{e.path}\t{e.function_file.name}\t{e.replicas}\t{env}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
