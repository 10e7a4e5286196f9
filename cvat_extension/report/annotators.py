"""The annotator quality page: ``annotators.html`` in the report folder.

One table of annotators (attention checks restored, review issues per 100 frames, share of
those resolved), annotators below the attention bar first and marked red, then one table
per annotator with the same numbers per period, so a lead sees whether someone improves
after retraining. Self-contained like the task reports (no scripts, no external assets);
the JSON written beside it (``cvat-track attention --json``) holds the same numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from cvat_extension.report.html import _CSS

__all__ = ["write_annotator_report"]


def _pct(value: Any) -> str:
    return "–" if value is None else f"{100 * float(value):.0f}%"


def _row(name: str, r: Mapping[str, Any], *, first: str) -> str:
    below = r["attention_below"]
    style = ' style="color:#ff6b6b;font-weight:700"' if below else ""
    return (f"<tr><td>{escape(first)}</td><td>{r['jobs']}</td><td>{r['frames']}</td>"
            f"<td{style}>{_pct(r['attention_rate'])} ({r['attention_restored']}/{r['attention_planted']})"
            f"{' below bar' if below else ''}</td>"
            f"<td>{r['issues_per_100_frames']:.2f} ({r['review_issues']})</td><td>{_pct(r['resolved_share'])}</td>"
            f"<td>{escape(', '.join(f'{k} {n}' for k, n in r['issue_kinds'].items()) or '–')}</td></tr>")


_HEAD = ("<tr><th>{}</th><th>jobs</th><th>frames</th><th>attention checks restored</th>"
         "<th>review issues / 100 frames</th><th>issues resolved</th><th>issue kinds</th></tr>")


def write_annotator_report(summary: Mapping[str, Any], out_dir: str | Path) -> Path:
    """Write ``annotators.html`` for a :func:`summarize_annotators` result; returns its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    people: Mapping[str, Any] = summary["annotators"]
    order = sorted(people, key=lambda n: (not people[n]["attention_below"], n))
    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>Annotator quality</title>"
             f"<style>{_CSS}</style></head><body><h1>Annotator quality</h1>"
             f"<div class='sub'>attention bar {_pct(summary['min_restored'])} restored; "
             f"periods: {escape(str(summary['period']))} of hand-in</div>",
             "<table>", _HEAD.format("annotator")]
    parts += [_row(n, people[n], first=n) for n in order]
    parts.append("</table>")
    for n in order:
        parts.append(f"<h2>{escape(n)}</h2><table>{_HEAD.format('period')}")
        parts += [_row(n, p, first=p["period"]) for p in people[n]["periods"]]
        parts.append("</table>")
    if not people:
        parts.append("<p class='msg'>No finished jobs yet.</p>")
    parts.append("</body></html>")
    path = out / "annotators.html"
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
