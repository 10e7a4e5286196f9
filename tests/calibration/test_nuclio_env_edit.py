"""Calibrated values reach the Nuclio function configurations CVAT deploys."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from cvat_extension.calibration.nuclio_env_edit import set_nuclio_env
from cvat_extension.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def _env(path: Path) -> dict[str, str]:
    return {e["name"]: e["value"] for e in yaml.safe_load(path.read_text())["spec"]["env"]}


@pytest.mark.parametrize("function", ["bytetrack/function.yaml", "botsort/function-gpu.yaml",
                                      "yolo-detector/function.yaml"])
def test_shipped_function_yaml_edited_in_place_comments_kept(tmp_path: Path, function: str) -> None:
    src = REPO / "functions" / function
    path = tmp_path / "function.yaml"
    shutil.copy(src, path)
    before = _env(path)
    set_nuclio_env(path, {"TRACKER_CONFIG": "/opt/nuclio/calibrated.yaml", "YOLO_CONF": "0.4"})
    after = _env(path)
    assert after == {**before, "TRACKER_CONFIG": "/opt/nuclio/calibrated.yaml", "YOLO_CONF": "0.4"}
    comments = [ln for ln in src.read_text().splitlines() if ln.lstrip().startswith("#")]
    assert comments == [ln for ln in path.read_text().splitlines() if ln.lstrip().startswith("#")]
    rest = {k: v for k, v in yaml.safe_load(path.read_text()).items() if k != "spec"}
    assert rest == {k: v for k, v in yaml.safe_load(src.read_text()).items() if k != "spec"}


def test_value_comment_kept_and_second_edit_changes_nothing_else(tmp_path: Path) -> None:
    path = tmp_path / "function.yaml"
    path.write_text("metadata:\n  name: x\nspec:\n  env:\n    - name: A\n      value: \"1\"  # why one\n"
                    "  build:\n    image: x\n")
    set_nuclio_env(path, {"A": "2"})
    assert 'value: "2"  # why one' in path.read_text()
    once = path.read_text()
    set_nuclio_env(path, {"A": "2"})
    assert path.read_text() == once


@pytest.mark.parametrize("text", [
    "metadata:\n  name: x\nspec:\n  runtime: python\n",  # no env list
    "spec:\n  env: [{name: A, value: '1'}]\n",  # flow style: not a layout the line edit reads
    "spec:\n  env:\n    A: '1'\n",  # a mapping, not Nuclio's list
    "spec: [unclosed\n",  # not YAML
])
def test_layouts_it_cannot_edit_are_refused_untouched(tmp_path: Path, text: str) -> None:
    path = tmp_path / "function.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError):
        set_nuclio_env(path, {"A": "2"})
    assert path.read_text() == text
