"""Optional-dependency imports with an install hint instead of a bare ImportError."""

from __future__ import annotations

import importlib
from types import ModuleType

from cvat_extension.errors import MissingDependencyError


def require(module: str, *, extra: str) -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install.

    Heavy libraries (torch, ultralytics, boxmot, sam2, cvat-sdk) are imported only through
    this helper, inside model wrappers and adapters, so that the QA core installs and runs
    without them.

    Raises:
        MissingDependencyError: the module cannot be imported.
    """
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(
            f"{module!r} is needed here but cannot be imported ({exc}); "
            f"install it with: pip install 'cvat-extension[{extra}]'"
        ) from exc
