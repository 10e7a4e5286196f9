"""The QA core must import without torch, model libraries, cvat-sdk or nuclio."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("torch", "ultralytics", "boxmot", "sam2", "cvat_sdk", "nuclio_sdk", "cv2")


def test_core_imports_no_heavy_modules() -> None:
    code = (
        "import sys, importlib, pkgutil\n"
        "import cvat_extension, cvat_extension.core\n"
        "for m in pkgutil.walk_packages(cvat_extension.core.__path__, 'cvat_extension.core.'):\n"
        "    importlib.import_module(m.name)\n"
        "for m in ('cvat_extension.io', 'cvat_extension.synthetic'):\n"
        "    pkg = importlib.import_module(m)\n"
        "    for sub in pkgutil.walk_packages(pkg.__path__, m + '.'):\n"
        "        importlib.import_module(sub.name)\n"
        f"print(sorted(set({HEAVY!r}) & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
