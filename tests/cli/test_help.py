"""Issue 13 point 9: one CLI vocabulary, help written for users, global options anywhere."""

from __future__ import annotations

import argparse
import re

import pytest

from cvat_extension.adapters.cli.main import build_parser, main

_PARSER = build_parser()
_SUBS = next(a for a in _PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices  # noqa: SLF001
_MARKUP = re.compile(r"``|:(class|func|meth|mod|data|attr|obj|exc|ref):`")

#: Spellings retired by the vocabulary; they may stay as hidden aliases, never in --help.
_RETIRED = ("--imgsz", "--out-format", "--checkpoint")


@pytest.mark.parametrize("name", sorted(_SUBS))
def test_every_subcommand_help_is_plain_with_example_and_exit_codes(name):
    text = _SUBS[name].format_help()
    assert not _MARKUP.search(text), _MARKUP.search(text)
    assert "Examples:\n  cvat-track " + name in text
    assert "Exit codes:" in text
    assert _SUBS[name].description and len(_SUBS[name].description.strip()) > 40
    for action in _SUBS[name]._actions:  # noqa: SLF001
        if action.help and action.help is not argparse.SUPPRESS:
            assert not action.help.rstrip().endswith((":", ",")), (name, action.option_strings)
        if action.option_strings and action.nargs != 0 and action.help is not argparse.SUPPRESS:
            assert action.metavar is None or action.metavar.isupper() or action.choices, action
    shown = {o for a in _SUBS[name]._actions if a.help is not argparse.SUPPRESS for o in a.option_strings}  # noqa: SLF001
    assert not shown & set(_RETIRED), (name, shown & set(_RETIRED))


def test_main_help_states_exit_codes():
    assert "Exit codes:" in _PARSER.format_help()


def test_verbose_after_the_subcommand(tmp_path, capsys):
    src = tmp_path / "gt.txt"
    src.write_text("".join(f"{f},1,{10 + f},20,30,40,1,1,1\n" for f in range(1, 31)))
    assert main(["check", str(src), "-v"]) == 0
    assert main(["-v", "check", str(src), "-vv"]) == 0
    assert "30 frames" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["annotate", "--frames", "d", "--weights", "w"], {"imgsz": 640, "checkpoint": None}),
        (["annotate", "--frames", "d", "--weights", "w", "--image-size", "320", "--resume-file", "r"],
         {"imgsz": 320, "checkpoint": "r"}),
        (["annotate", "--frames", "d", "--weights", "w", "--imgsz", "320", "--checkpoint", "r"],
         {"imgsz": 320, "checkpoint": "r"}),
        (["propagate", "--weights", "s.pt", "--to", "mot", "--track", "3", "7", "--track", "9"],
         {"checkpoint": "s.pt", "out_format": "mot", "track": [3, 7, 9]}),
        (["propagate", "--checkpoint", "s.pt", "--out-format", "mot", "--labels", "a", "--labels", "b"],
         {"checkpoint": "s.pt", "out_format": "mot", "labels": ["a", "b"]}),
        (["propagate"], {"checkpoint": None, "out_format": None, "track": [], "labels": []}),
    ],
)
def test_renamed_options_keep_their_old_spelling(argv, expected):
    args = build_parser().parse_args(argv)
    assert {k: (str(v) if k == "checkpoint" and v is not None else v)
            for k, v in vars(args).items() if k in expected} == expected
