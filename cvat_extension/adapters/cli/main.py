"""Entry point of ``cvat-track``: builds the parser from the subcommand modules and runs one.

Each subcommand module ``cmd_<name>.py`` exposes ``register(subparsers)``, which adds its
parser and sets ``func`` to a callable taking the parsed namespace and returning an exit
code. Modules import heavy libraries inside ``func`` only, so ``cvat-track --help`` stays
fast and works without the optional extras.

Exit codes: 0 clean, 1 findings at or above ``--fail-on`` (check) or a failed job (sync),
2 usage/input/config error. Every subcommand's ``--help`` ends with an example and its codes
(:mod:`cvat_extension.adapters.cli._help`).
Only the CLI configures logging and prints; library errors become one line
``ErrorType: message`` on stderr.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import logging
import sys
from collections.abc import Sequence

from cvat_extension import __version__
from cvat_extension.errors import CvatTrackError

#: Subcommand modules, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "demo",
    "check",
    "merge",
    "convert",
    "eval",
    "sync",
    "webhook",
    "restore",
    "annotate",
    "calibrate",
    "propagate",
    "attention",
    "serve_functions",
    "card",
    "split",
    "export",
    "render",
    "agreement",
)


def available_commands() -> list[str]:
    """Names in :data:`COMMANDS` whose module is present in this installation."""
    return [
        name
        for name in COMMANDS
        if importlib.util.find_spec(f"cvat_extension.adapters.cli.cmd_{name}") is not None
    ]


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The ``cvat-track`` parser with every subcommand registered, or only the module
    ``cmd_<only>`` (what :func:`main` does when the command line names one: importing all
    eighteen modules costs a tenth of a second that ``check`` on a small file notices)."""
    from cvat_extension.adapters.cli._help import EXIT_CODES, finish_parser

    parser = argparse.ArgumentParser(
        prog="cvat-track",
        description="Clean multi-object tracking datasets in CVAT: check, merge, review, annotate.",
        epilog="Run 'cvat-track COMMAND --help' for a command's options and examples.\n" + EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-vv: debug); also accepted after the command")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in available_commands() if only is None else [only]:
        module = importlib.import_module(f"cvat_extension.adapters.cli.cmd_{name}")
        module.register(subparsers)
    for name, sub in subparsers.choices.items():
        # Global options after the subcommand too: "cvat-track check x.txt -v" is what users type.
        sub.add_argument("-v", "--verbose", dest="verbose_after", action="count", default=0,
                         help="more logging (-vv: debug)")
        module_name = f"cvat_extension.adapters.cli.cmd_{name.replace('-', '_')}"
        finish_parser(name, sub, getattr(sys.modules.get(module_name), "__doc__", None))
    return parser


def _named_command(argv: list[str]) -> str | None:
    """The subcommand module the command line names (its first word after global options),
    or None: then the full parser is built, which lists every command in ``--help`` and
    names the choices when the word is misspelt."""
    for word in argv:
        if word in ("-v", "-vv", "--verbose") or (word.startswith("-v") and set(word[1:]) == {"v"}):
            continue
        name = word.replace("-", "_")
        if name in COMMANDS and importlib.util.find_spec(f"cvat_extension.adapters.cli.cmd_{name}"):
            return name
        return None
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``cvat-track`` with ``argv`` and return the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_named_command(argv))
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    verbose = args.verbose + getattr(args, "verbose_after", 0)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(verbose, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.func(args))
    except CvatTrackError as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
