"""What ``cvat-track COMMAND --help`` shows: plain text, an example, and the exit codes.

Subcommand modules describe themselves with their docstring, written for developers (Sphinx
roles, double back-quotes). :func:`plain` turns that markup into what a terminal user
reads, and :func:`finish_parser` gives every subcommand the same closing lines, so that the
vocabulary below stays one vocabulary however many commands there are.

The CLI vocabulary (new options follow it):

- Inputs are positional (``INPUT``; ``GT PRED`` for eval); CVAT objects are ``--task ID`` /
  ``--job ID``.
- The main output is ``--out PATH`` (a file, or a folder where the command writes many
  files); its format is ``--to FORMAT`` (``mot``, ``cvat_xml``, ``cvat_json``), else the
  extension.
- Machine-readable results are ``--json FILE`` (``-`` for stdout). ``--report DIR`` is the
  HTML report.
- Model files are ``--weights FILE``; a resume file is ``--resume-file FILE``; a settings
  file is ``--config YAML``; an image folder is ``--frames DIR``; a model input size is
  ``--image-size PX``; a compute device is ``--device DEVICE``.
- A list option takes one or more values after one flag and may be repeated:
  ``--labels person car`` = ``--labels person --labels car``.
- Placeholders name the kind of value: FILE, DIR, YAML, ID, N, PX, SCORE, FRACTION,
  FORMAT, NAME, URL, HOST, PORT, DEVICE.
- Help lines start lower-case, say the default as "(default X)", and use no markup.
- Renamed options stay accepted under their old spelling, hidden from ``--help``.
- Global options (``-v``) work before or after the subcommand.
"""

from __future__ import annotations

import argparse
import re

__all__ = ["EXIT_CODES", "EXAMPLES", "finish_parser", "plain"]

#: Said by every subcommand whose description does not state its own exit codes.
EXIT_CODES = "Exit codes: 0 done, 2 bad usage, input or settings (one line on stderr, nothing written)."

#: One or two typical command lines per subcommand, shown at the end of its --help.
EXAMPLES: dict[str, tuple[str, ...]] = {
    "demo": ("cvat-track demo --out demo-out",
             "cvat-track demo --scene real --device cpu"),
    "check": ("cvat-track check gt.txt --json findings.json --report report/",
              "cvat-track check task.xml --frames img1/ --detections det.txt --fail-on 0.8"),
    "merge": ("cvat-track merge tracks.txt --out merged.txt --json merges.json",),
    "convert": ("cvat-track convert annotations.json gt.txt",
                "cvat-track convert gt.txt task.xml --stop-frame 600"),
    "eval": ("cvat-track eval gt.txt tracker.txt --json metrics.json",),
    "sync": ("cvat-track sync --config serverless.yaml --once --dry-run",),
    "webhook": ("cvat-track webhook --config serverless.yaml --port 8090",),
    "restore": ("cvat-track restore --job 42 --list",
                "cvat-track restore --job 42"),
    "annotate": ("cvat-track annotate --frames img1/ --out tracks.txt --weights yolo11n.pt",
                 "cvat-track annotate 17 --weights yolo11n.pt --tracker botsort"),
    "calibrate": ("cvat-track calibrate --gt gt.txt --detections det.txt --map person=pedestrian",
                  "cvat-track calibrate --task 42 --weights yolo11n.pt --frames-range 0:299"),
    "propagate": ("cvat-track propagate --frames img1/ --annotations keyframes.xml --out dense.xml "
                  "--weights sam2.1_hiera_tiny.pt",),
    "card": ("cvat-track card ../shared/data/motgt --out card/",
             "cvat-track card reviewed/ --out card-v2/ --compare card/card.json"),
    "split": ("cvat-track split ../shared/data/motgt --out split/ --seed 0",),
    "export": ("cvat-track export ../shared/data/motgt --out mot/ --split split/split.json",
               "cvat-track export --task 12 --out coco/ --to coco --masks"),
    "render": ("cvat-track render gt.txt --frames img1/ --review findings.json --out video.mp4 --gif video.gif",),
    "agreement": ("cvat-track agreement annotator1.xml annotator2.xml --report agreement/",
                  "cvat-track agreement --jobs 41 57 --config serverless.yaml --push"),
    "serve-functions": ("cvat-track serve-functions --manifest serverless.yaml --port 8070",
                        "cvat-track serve-functions --port 8070 --direct-ports"),
    "attention": ("cvat-track attention --config serverless.yaml --report annotators/ --json attention.json",
                  "cvat-track attention --task 42 --min-restored 0.8 --flag comment"),
}

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc|ref):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str | None) -> str | None:
    """``text`` without reStructuredText markup: roles keep their last name, literals their text.

    >>> plain("see :func:`~cvat_extension.core.merge.merge_fragments` and ``--out``")
    'see merge_fragments and --out'
    """
    if text is None:
        return None
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return _LITERAL.sub(r"\1", text)


def finish_parser(name: str, parser: argparse.ArgumentParser, fallback: str | None) -> None:
    """Give a subcommand parser plain help, a description, its examples and the exit codes."""
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.description = plain(parser.description or fallback)
    for action in parser._actions:  # noqa: SLF001 - argparse keeps no public list of actions
        if action.help and action.help is not argparse.SUPPRESS:
            action.help = plain(action.help)
    examples = EXAMPLES.get(name, ())
    lines = ["Examples:", *(f"  {e}" for e in examples)] if examples else []
    if "Exit codes:" not in (parser.description or ""):
        lines += ["", EXIT_CODES] if lines else [EXIT_CODES]
    epilog = plain(parser.epilog)
    parser.epilog = "\n".join([epilog, "", *lines] if epilog else lines)
