"""Issue 13: every command's outputs are checked before any work and written all-or-nothing.

Walks every command with file outputs that can start offline and, for each output option,
gives (a) one of the command's inputs, (b) a folder where a file is expected (or, for a
folder output, a file and a folder of someone else's files), and (c) the path of another
output option. Each must exit 2 with one line naming the option and leave every file on
disk as it was. The bad paths are refused before any model, CVAT server or input is
touched, so the walk is fast even for ``annotate``, ``propagate`` and ``attention``.

Then a failure late in a command (a writer that raises after other outputs were written)
must leave no output, no temporary file and an older output untouched.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from dataset._fixture import write_sequence

from cvat_extension.adapters.cli.main import main
from cvat_extension.errors import InputError

REPO = Path(__file__).resolve().parents[2]

#: command → (argv with placeholders, {output option: extension, or None for a folder},
#: placeholder of an input to give as an output). ``OUTPUT`` is convert's positional.
COMMANDS: dict[str, tuple[list[str], dict[str, str | None], str | None]] = {
    "demo": (["demo"], {"--out": None}, None),
    "eval": (["eval", "{gt}", "{pred}"], {"--json": ".json"}, "{pred}"),
    "check": (["check", "{gt}"], {"--json": ".json", "--report": None}, "{gt}"),
    "merge": (["merge", "{gt}"], {"--out": ".txt", "--json": ".json"}, "{gt}"),
    "convert": (["convert", "{gt}", "{OUTPUT}", "--to", "mot"], {"OUTPUT": ".txt"}, "{gt}"),
    "card": (["card", "{data}", "--compare", "{card_json}", "--no-plots", "--no-checks"],
             {"--out": None, "--json": ".json"}, "{card_json}"),
    "split": (["split", "{data}"], {"--out": None, "--json": ".json"}, "{data}"),
    "export": (["export", "{data}", "--split", "{split_json}"], {"--out": None}, "{data}"),
    "render": (["render", "{seq_gt}", "--review", "{review}"], {"--out": ".mp4", "--gif": ".gif"}, "{seq_gt}"),
    "agreement": (["agreement", "{gt}", "{pred}"], {"--json": ".json", "--report": None}, "{pred}"),
    "calibrate": (["calibrate", "--gt", "{gt}", "--detections", "{det}", "--dry-run"],
                  {"--plot": ".png", "--json": ".json"}, "{det}"),
    "annotate": (["annotate", "--frames", "{frames}", "--weights", "{weights}"], {"--out": ".txt"}, "{weights}"),
    "propagate": (["propagate", "--frames", "{frames}", "--annotations", "{gt}", "--random-weights"],
                  {"--out": ".txt", "--review": ".json"}, "{gt}"),
    "attention": (["attention", "--config", "{cfg}"], {"--json": ".json", "--report": None}, "{cfg}"),
    "sync": (["sync", "--config", "{cfg}", "--once"], {"--json": ".json"}, "{cfg}"),
}

_MOT = "".join(f"{f},1,{10 + f},20,30,40,1,1,1\n" for f in range(1, 31))


def _cases() -> list[tuple[str, str, str]]:
    cases = []
    for name, (_, options, _) in COMMANDS.items():
        for option, ext in options.items():
            if COMMANDS[name][2] is not None:
                cases.append((name, option, "input"))
            cases += [(name, option, "file"), (name, option, "foreign")] if ext is None else [(name, option, "folder")]
            cases += [(name, option, f"same as {other}") for other in options if other != option]
    return cases


@pytest.fixture
def work(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Inputs of every command, and paths that exist for the bad cases."""
    monkeypatch.chdir(tmp_path)  # nothing may appear in the working folder either
    (tmp_path / "in").mkdir()
    gt = tmp_path / "in" / "gt.txt"
    gt.write_text(_MOT)
    pred = tmp_path / "in" / "pred.txt"
    pred.write_text(_MOT)
    det = tmp_path / "in" / "det.txt"
    det.write_text("".join(f"{f},-1,{10 + f},20,30,40,0.9\n" for f in range(1, 31)))
    seq = write_sequence(tmp_path / "data")
    frames = tmp_path / "frames"
    frames.mkdir()
    (frames / "000001.jpg").write_bytes(b"not decoded before the outputs are checked")
    (tmp_path / "in" / "w.pt").write_bytes(b"weights are not loaded before the outputs are checked")
    (tmp_path / "in" / "card.json").write_text(json.dumps({"total": {}, "sequences": []}))
    (tmp_path / "in" / "split.json").write_text(json.dumps({"splits": {"all": ["TINY-01"]}}))
    (tmp_path / "in" / "review.json").write_text(json.dumps({"review": []}))
    (tmp_path / "in" / "serverless.yaml").write_text("sync:\n  cvat:\n    url: http://127.0.0.1:9\n")
    (tmp_path / "existing_dir").mkdir()
    (tmp_path / "existing.txt").write_text("someone's file")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "thesis.tex").write_text("precious")
    return {"gt": str(gt), "pred": str(pred), "det": str(det), "data": str(tmp_path / "data"),
            "seq_gt": str(seq / "gt" / "gt.txt"), "frames": str(frames), "weights": str(tmp_path / "in" / "w.pt"),
            "card_json": str(tmp_path / "in" / "card.json"), "split_json": str(tmp_path / "in" / "split.json"),
            "review": str(tmp_path / "in" / "review.json"), "cfg": str(tmp_path / "in" / "serverless.yaml"),
            "root": str(tmp_path)}


def _snapshot(root: Path) -> dict[str, bytes | None]:
    """Every file's bytes and every folder (None), hidden ones included."""
    return {p.relative_to(root).as_posix(): (p.read_bytes() if p.is_file() else None) for p in root.rglob("*")}


def _argv(name: str, values: dict[str, str], work: dict[str, str]) -> list[str]:
    template, options, _ = COMMANDS[name]
    argv = [a.format(OUTPUT=values.get("OUTPUT", ""), **work) for a in template]
    for option in options:
        if option.startswith("-"):
            argv += [option, values[option]]
    return argv


def _good_paths(name: str, root: str) -> dict[str, str]:
    _, options, _ = COMMANDS[name]
    return {opt: f"{root}/out/{name}{opt.replace('-', '_')}{ext or ''}" for opt, ext in options.items()}


@pytest.mark.parametrize(("name", "option", "case"), _cases())
def test_bad_output_path_exits_2_names_the_option_and_writes_nothing(
    name: str, option: str, case: str, work: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(work["root"])
    values = _good_paths(name, work["root"])
    bad = {
        "input": (COMMANDS[name][2] or "").format(**work),
        "folder": str(root / "existing_dir"),
        "file": str(root / "existing.txt"),
        "foreign": str(root / "docs"),
    }
    values[option] = values[case.removeprefix("same as ")] if case.startswith("same as ") else bad[case]
    before = _snapshot(root)
    assert main(_argv(name, values, work)) == 2
    err = capsys.readouterr().err
    assert err.startswith("InputError: ") and "Traceback" not in err, err
    assert len(err.strip().splitlines()) == 1, err
    assert option in err, err
    assert _snapshot(root) == before


#: Options named like outputs that are inputs, and outputs named otherwise.
_INPUT_OPTIONS = {("render", "--review")}
_OUTPUT_OPTIONS = {("propagate", "--review")}
#: Commands with an output option that the walk leaves out, and why.
_NOT_WALKED: dict[str, str] = {}


def test_the_walk_covers_every_output_option_of_every_command() -> None:
    """A new output option, or a new command with one, fails here until it is walked."""
    from cvat_extension.adapters.cli.main import build_parser

    named = {"--out", "--json", "--report", "--gif", "--plot", "OUTPUT"}
    sub = next(a for a in build_parser()._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, parser in sub.choices.items():  # type: ignore[attr-defined]
        found = {s for a in parser._actions for s in (*a.option_strings, a.metavar)
                 if (s in named and (name, s) not in _INPUT_OPTIONS) or (name, s) in _OUTPUT_OPTIONS}
        if name in _NOT_WALKED:
            continue
        assert found == set(COMMANDS.get(name, (None, {}, None))[1]), name


def _card_args(work: dict[str, str], out: Path) -> list[str]:
    return ["card", work["data"], "--out", str(out), "--no-plots", "--no-checks", "--json", str(out.parent / "c.json")]


def test_late_failure_leaves_no_partial_outputs_and_the_old_ones_intact(
    work: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(work["root"])
    out = root / "out" / "card"
    assert main(_card_args(work, out)) == 0
    before = _snapshot(root)
    capsys.readouterr()

    def fail(*_a: object, **_k: object) -> str:
        raise InputError("disk full (simulated) after card.json was written")

    # card.json is in the staged folder by now; card.md fails; --json would come after.
    monkeypatch.setattr("cvat_extension.dataset.card.card_markdown", fail)
    (root / "data" / "TINY-01" / "gt" / "gt.txt").write_text("1,1,0,0,10,10,1,1,1\n")  # a new card would differ
    snap = _snapshot(root)
    assert main(_card_args(work, out)) == 2
    assert "simulated" in capsys.readouterr().err
    assert _snapshot(root) == snap  # old card and old c.json intact, no hidden staging left
    assert json.loads((out / "card.json").read_text()) == json.loads(before["out/card/card.json"] or b"")


def test_late_failure_in_agreement_leaves_no_report(
    work: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = Path(work["root"])

    def fail(*_a: object, **_k: object) -> None:
        raise InputError("cannot write (simulated) after the report was drawn")

    monkeypatch.setattr("cvat_extension.adapters.cli._inputs.write_json", fail)
    before = _snapshot(root)
    assert main(["agreement", work["gt"], work["pred"], "--report", str(root / "rep"),
                 "--json", str(root / "a.json")]) == 2
    assert "simulated" in capsys.readouterr().err
    assert _snapshot(root) == before


def test_late_failure_in_render_leaves_neither_video_nor_gif(
    work: dict[str, str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("av", reason="the dataset extra (PyAV) is not installed")
    from cvat_extension.dataset.encode import GifWriter

    root = Path(work["root"])

    def fail(self: GifWriter) -> None:
        raise InputError("GIF failed (simulated) after the MP4 was closed")

    monkeypatch.setattr(GifWriter, "close", fail)
    before = _snapshot(root)
    assert main(["render", work["seq_gt"], "--out", str(root / "v" / "v.mp4"), "--gif", str(root / "g" / "v.gif"),
                 "--stop", "3"]) == 2
    assert "simulated" in capsys.readouterr().err
    assert _snapshot(root) == before


def test_refused_manifest_edit_leaves_no_plot_or_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """calibrate edits serverless.yaml in place on purpose; its other outputs go with that edit."""
    pytest.importorskip("boxmot")
    import cvat_extension.calibration.manifest_edit as manifest_edit

    shutil.copy(REPO / "serverless.yaml", tmp_path / "serverless.yaml")
    shutil.copytree(REPO / "functions", tmp_path / "functions")
    monkeypatch.chdir(tmp_path)
    gt = tmp_path / "gt.txt"
    gt.write_text(_MOT)
    det = tmp_path / "det.txt"
    det.write_text("".join(f"{f},-1,{10 + f},20,30,40,0.9\n" for f in range(1, 31)))
    real = manifest_edit.set_function_env

    def refuse(*args: object, write: bool = True, **kw: object) -> object:
        if write:
            raise InputError("serverless.yaml changed since it was read (simulated)")
        return real(*args, write=write, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(manifest_edit, "set_function_env", refuse)
    before = _snapshot(tmp_path)
    code = main(["calibrate", "--gt", str(gt), "--detections", str(det), "--map", "person=pedestrian",
                 "--det-conf", "0.5", "--track-thresh", "0.5", "--band", "0:1", "--json", "cal.json", "--plot", "p/cal.png"])
    assert code == 2, capsys.readouterr()
    assert "simulated" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before
