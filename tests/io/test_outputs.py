"""``OutputPlan`` itself: the rules every command's outputs go through (issue 13)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest

from cvat_extension.errors import InputError
from cvat_extension.io.outputs import OutputPlan


def _declare(plan: OutputPlan, root: Path, spec: tuple[str, str, str]) -> Path | None:
    how, name, kind = spec
    if how == "folder":
        return plan.folder(root / name, option=f"--{kind}", marker=("seqmaps", "annotations.json"))
    return plan.file(root / name, option=f"--{kind}", kind=kind)


@pytest.mark.parametrize(
    ("specs", "expectation"),
    [
        ([], contextlib.nullcontext()),
        ([("file", "v.mp4", "mp4"), ("file", "v.gif", "gif")], contextlib.nullcontext()),
        ([("file", "video", "mp4")], pytest.raises(InputError, match="under a name without extension; use .mp4")),
        ([("file", "plot.jpg", "png")], pytest.raises(InputError, match="PNG content under a .jpg name")),
        ([("file", "c.yml", "yaml"), ("file", "c.md", "md")], contextlib.nullcontext()),
        ([("folder", "exp", "out"), ("file", "exp/a.json", "json")],
         pytest.raises(InputError, match="a.json: --json lies inside the --out folder")),
        ([("file", "exp/a.json", "json"), ("folder", "exp", "out")],
         pytest.raises(InputError, match="a.json: --json lies inside the --out folder")),
        ([("file", "a.json", "json"), ("file", "a.json", "report")],
         pytest.raises(InputError, match="given to both --json and --report")),
    ],
)
def test_declarations(tmp_path: Path, specs: list[tuple[str, str, str]], expectation: object) -> None:
    plan = OutputPlan()
    with expectation:  # type: ignore[attr-defined]
        for spec in specs:
            _declare(plan, tmp_path, spec)


def test_an_export_folder_is_recognised_by_any_of_its_markers(tmp_path: Path) -> None:
    old = tmp_path / "exp"
    (old / "seqmaps").mkdir(parents=True)
    (old / "dataset-all").mkdir()
    assert OutputPlan().folder(old, option="--out", marker=("seqmaps", "annotations.json")) == old
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("x")
    with pytest.raises(InputError, match="no seqmaps or annotations.json"):
        OutputPlan().folder(tmp_path / "mine", option="--out", marker=("seqmaps", "annotations.json"))


def test_staged_names_keep_the_extension_and_unwritten_files_are_not_moved_in(tmp_path: Path) -> None:
    old = tmp_path / "calibrated.yaml"
    old.write_text("old: 1\n")
    plan = OutputPlan()
    png = plan.file(tmp_path / "p" / "curve.png", option="--plot", kind="png")
    yml = plan.file(old, option="TRACKER_CONFIG", kind="yaml")
    assert png is not None and yml is not None
    with plan.staged() as stage:
        assert stage[png].suffix == ".png" and stage[png].name.startswith(".curve.png.")
        assert not stage[png].exists()  # writers create their files
        stage[png].write_bytes(b"\x89PNG")
    assert png.read_bytes() == b"\x89PNG" and old.read_text() == "old: 1\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["calibrated.yaml", "curve.png", "p"]


def test_a_failure_removes_staged_files_and_created_folders(tmp_path: Path) -> None:
    plan = OutputPlan()
    out = plan.folder(tmp_path / "a" / "b" / "card", option="--out", marker="card.json")
    js = plan.file(tmp_path / "a" / "c.json", option="--json", kind="json")
    assert out is not None and js is not None
    with pytest.raises(RuntimeError), plan.staged() as stage:
        (stage[out] / "card.json").write_text("{}")
        stage[js].write_text("{}")
        raise RuntimeError("late failure")
    assert list(tmp_path.iterdir()) == []
