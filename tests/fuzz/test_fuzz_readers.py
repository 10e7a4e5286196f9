"""Every annotation file gets a clear answer: the readers return tracks or raise one of ours.

Mutations of a valid MOT CSV, CVAT XML and CVAT JSON file (tokens inserted, spans deleted,
copied or cut off, numbers replaced by NaN, infinities, huge or negative values) and random
bytes go through :func:`read_tracks`. Anything but tracks or a ``CvatTrackError`` (which the
CLI turns into one line and exit 2) is a crash; numpy warnings count too (the suite makes
them errors). Before, ``encoding="utf0"`` in an XML declaration raised LookupError, a frame
or id of 1e20 an OverflowError, and a MOT frame of 1e308 wrapped around silently in a cast.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from cvat_extension.errors import CvatTrackError  # noqa: E402
from cvat_extension.io.formats import read_tracks  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "io"
SAMPLES = {
    ".txt": "".join(f"{f},{t},{10 * t + f},20.5,30,40,1,1,0.9\n" for f in range(1, 12) for t in (1, 2, 3)),
    ".xml": (FIXTURES / "keyframes_only.xml").read_text(encoding="utf-8"),
    ".json": (FIXTURES / "task_annotations.json").read_text(encoding="utf-8"),
}
NUMBERS = ["nan", "inf", "-inf", "1e308", "-1e308", "99999999999999999999", "-1", "0", "1.5", "2147483648"]
TOKENS = [*NUMBERS, "", "\x00", "\ufeff", ",", ";", "\n", "#", "<", ">", '"', "{", "}", "[", "]", "null",
          "true", "&a;", "é", "\r", 'encoding="utf0"', "<!DOCTYPE x [<!ENTITY a 'b'>]>"]

edit = st.tuples(st.sampled_from(["insert", "delete", "truncate", "copy", "number"]),
                 st.floats(0, 1), st.floats(0, 1), st.sampled_from(TOKENS))


def _mutate(text: str, edits: list[tuple[str, float, float, str]]) -> str:
    for op, a, b, token in edits:
        pos = int(a * len(text))
        if op == "insert":
            text = text[:pos] + token + text[pos:]
        elif op == "delete":
            text = text[:pos] + text[pos + 1 + int(b * 30):]
        elif op == "truncate":
            text = text[:pos]
        elif op == "copy":
            src = int(b * len(text))
            text = text[:pos] + text[src:src + 200] + text[pos:]
        else:
            numbers = list(re.finditer(r"-?\d+(\.\d+)?", text))
            if numbers:
                m = numbers[int(b * (len(numbers) - 1))]
                text = text[:m.start()] + (token if token in NUMBERS else "1e308") + text[m.end():]
    return text


def _read(path: Path) -> None:
    try:
        read_tracks(path)
    except CvatTrackError:
        pass


@pytest.mark.parametrize("suffix", sorted(SAMPLES))
@settings(max_examples=150, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(edits=st.lists(edit, min_size=1, max_size=4))
def test_mutated_files_get_tracks_or_our_error(tmp_path: Path, suffix: str,
                                               edits: list[tuple[str, float, float, str]]) -> None:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(_mutate(SAMPLES[suffix], edits).encode("utf-8", "surrogatepass"))
    _read(path)


@pytest.mark.parametrize("suffix", sorted(SAMPLES))
@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400))
def test_random_bytes_get_our_error(tmp_path: Path, suffix: str, data: bytes) -> None:
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    _read(path)


@pytest.mark.parametrize(("suffix", "text", "match"), [
    (".xml", '<?xml version="1.0" encoding="utf0"?>\n<annotations/>', "unknown encoding"),
    (".xml", SAMPLES[".xml"].replace('frame="1"', 'frame="99999999999999999999"', 1), "out of range"),
    (".json", SAMPLES[".json"].replace('"frame": 9,', '"frame": 1e20,', 1), "out of range"),
    (".txt", "1e308,1,10,20,30,40,1,1,1\n", "frame beyond"),
    (".txt", "1,5e9,10,20,30,40,1,1,1\n", "id out of range"),
    (".txt", "1,1,1e300,20,30,40,1,1,1\n", "box coordinate out of range"),
    (".txt", "# only a comment\n", "no box"),
])
def test_the_crashes_found_are_named_errors(tmp_path: Path, suffix: str, text: str, match: str) -> None:
    path = tmp_path / f"input{suffix}"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(CvatTrackError, match=match):
        read_tracks(path)
