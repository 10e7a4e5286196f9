"""No code path may unpickle data: a grep over the package and the Nuclio functions.

Bytes from the network or a shared store (Redis, the state database) are decoded only by
typed decoders (JSON, the tracker state codec, ``torch.load(weights_only=True)``).
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ROOTS = [REPO / "cvat_extension", REPO / "functions"]

#: Calls that run code named by the data they read.
FORBIDDEN = re.compile(
    r"\bpickle\.(loads?|Unpickler)\b|\bcPickle\b|\bjsonpickle\b|\bdill\b|\bmarshal\.loads?\b"
    r"|\bshelve\.open\b|\bread_pickle\b|allow_pickle\s*=\s*True|\byaml\.(unsafe_)?load\(|\byaml\.Loader\b"
)
#: Reviewed exceptions: (file relative to the repo, pattern, why).
ALLOWED = {
    ("cvat_extension/cvat/annotate.py", "pickle.loads"): "resume file this process wrote to local disk; "
    "never network or shared-store data",
}


def _calls(text: str, name: str) -> list[str]:
    """The full text of each ``name(...)`` call (balanced parentheses)."""
    out = []
    for m in re.finditer(re.escape(name) + r"\(", text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        out.append(text[m.start():i + 1])
    return out


def test_nothing_unpickles_and_torch_load_is_weights_only() -> None:
    problems = []
    files = [p for root in ROOTS for p in root.rglob("*.py")]
    assert len(files) > 50  # the walk found the package
    for path in files:
        rel = path.relative_to(REPO).as_posix()
        text = path.read_text(encoding="utf-8")
        for m in FORBIDDEN.finditer(text):
            if (rel, m.group(0)) in ALLOWED:
                continue
            line = text.count("\n", 0, m.start()) + 1
            problems.append(f"{rel}:{line}: {m.group(0)}")
        for call in _calls(text, "torch.load"):
            if not re.search(r"weights_only\s*=\s*True", call):
                problems.append(f"{rel}: {call[:60]} without weights_only=True")
    assert problems == []


def test_the_grep_catches_what_it_should() -> None:
    for bad in ("pickle.loads(raw)", "pickle.load(f)", "np.load(p, allow_pickle=True)", "yaml.load(text)",
                "jsonpickle.decode(s)", "marshal.loads(b)"):
        assert FORBIDDEN.search(bad), bad
    assert _calls("x = torch.load(io.BytesIO(d), map_location=(dev), weights_only=True)", "torch.load") == [
        "torch.load(io.BytesIO(d), map_location=(dev), weights_only=True)"
    ]
    for fine in ("yaml.safe_load(text)", "pickle.UnpicklingError", "json.loads(b)"):
        assert not FORBIDDEN.search(fine), fine
