"""The dataset card: ``card.json`` (numbers), ``card.md`` (for people), PNG plots.

A card is built from :class:`~cvat_extension.dataset.sequences.Sequence` objects, whatever
they were read from, so files and CVAT tasks give the same card. QA findings come from the
same checks ``cvat-track check`` runs (default settings, no frames or detections), which
is what the ID-consistency score and the findings summary report.

``--compare`` puts two cards side by side (before/after review): the same numbers, their
difference, per sequence present in both and in total.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvat_extension.dataset.sequences import Sequence as DatasetSequence
from cvat_extension.dataset.stats import SequenceStats, combine_stats, sequence_stats

__all__ = ["COMPARED", "Card", "build_card", "card_markdown", "compare_cards"]

logger = logging.getLogger(__name__)

#: Numbers shown in the comparison table, in order.
COMPARED: tuple[str, ...] = (
    "frames", "tracks", "boxes", "boxes_per_frame", "track_length_mean", "track_length_median",
    "occlusion_events_per_100_frames", "re_entries", "id_consistency", "small_share", "findings",
)


@dataclass
class Card:
    """Numbers of one dataset version."""

    sequences: list[SequenceStats]
    total: SequenceStats
    sources: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        """The ``card.json`` document."""
        def entry(s: SequenceStats) -> dict[str, Any]:
            d = s.to_json()
            d["findings"] = sum(s.findings_by_kind.values())
            if s.name in self.sources:
                d["source"] = self.sources[s.name]
            return d

        return {
            "version": 1,
            "total": entry(self.total),
            "sequences": [entry(s) for s in self.sequences],
            "warnings": list(self.warnings),
        }


def build_card(sequences: Sequence[DatasetSequence], *, checks: bool = True) -> Card:
    """Card numbers of ``sequences`` (QA checks included unless ``checks`` is False).

    Raises:
        ConfigError: never with the default check settings; listed for completeness.
    """
    from concurrent.futures import ThreadPoolExecutor

    def one(seq: DatasetSequence) -> SequenceStats:
        findings: list[Any] = []
        if checks and len(seq.tracks):
            from cvat_extension.core.checks import ChecksConfig, run_checks

            findings = run_checks(seq.tracks, config=ChecksConfig(), info=seq.info, workers=1)
        return sequence_stats(seq.tracks, seq.num_frames, name=seq.name, findings=findings)

    # Sequences side by side on two threads: the checks' kernels release the GIL.
    with ThreadPoolExecutor(max_workers=2) as pool:
        stats = list(pool.map(one, sequences))
    return Card(
        sequences=stats,
        total=combine_stats(stats),
        sources={s.name: s.source for s in sequences},
        warnings=[w for s in sequences for w in s.warnings],
    )


def compare_cards(before: Mapping[str, Any], after: Mapping[str, Any]) -> dict[str, Any]:
    """Before/after/delta of :data:`COMPARED` in total and per sequence present in both."""
    def diff(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, Any]:
        out = {}
        for key in COMPARED:
            x, y = a.get(key), b.get(key)
            if isinstance(x, (int, float)) and isinstance(y, (int, float)):
                out[key] = {"before": x, "after": y, "delta": round(y - x, 4)}
        return out

    old = {s["name"]: s for s in before.get("sequences", [])}
    new = {s["name"]: s for s in after.get("sequences", [])}
    return {
        "total": diff(before.get("total", {}), after.get("total", {})),
        "sequences": {n: diff(old[n], new[n]) for n in new if n in old},
        "only_before": sorted(set(old) - set(new)),
        "only_after": sorted(set(new) - set(old)),
    }


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if abs(v) < 1 else f"{v:,.2f}".rstrip("0").rstrip(".")
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


_DEFINITIONS = """\
- **boxes**: visible boxes (CVAT `outside` rows are not boxes); MOT rows with conf 0
  ("ignore" regions and classes) are included and counted separately as *ignored*.
- **track length**: boxes of a track (frames it is annotated on).
- **occluded box**: CVAT's `occluded` flag, or MOT visibility below 0.5.
- **occlusion events**: runs of consecutive occluded boxes of one track, per 100 frames.
- **re-entries**: a track annotated again after at least one frame without a box.
- **small boxes**: area under 32×32 px (COCO "small").
- **ID consistency**: share of tracks that no QA finding scoring ≥ 0.5 names (ID switch,
  box/size jump, ghost, label change, short track; `cvat-track check` defaults).
"""


def card_markdown(card: Mapping[str, Any], *, title: str, plots: Sequence[str] = (),
                  compare: Mapping[str, Any] | None = None) -> str:
    """``card.md``: summary, per-sequence table, distributions, QA, definitions, comparison."""
    t = card["total"]
    lines = [f"# {title}", ""]
    lines += [
        f"{t['sequences']} sequences, {_fmt(t['frames'])} frames, {_fmt(t['tracks'])} tracks, "
        f"{_fmt(t['boxes'])} boxes ({_fmt(t['ignored_boxes'])} marked ignore).", "",
        "## Summary", "",
        "| | value |", "|---|---|",
        f"| boxes per frame | {_fmt(t['boxes_per_frame'])} |",
        f"| track length mean / median | {_fmt(t['track_length_mean'])} / {_fmt(t['track_length_median'])} |",
        f"| occlusion events per 100 frames | {_fmt(t['occlusion_events_per_100_frames'])} |",
        f"| occluded boxes | {100 * t['occluded_share']:.1f} % |",
        f"| re-entries | {_fmt(t['re_entries'])} |",
        f"| ID consistency | {100 * t['id_consistency']:.1f} % of tracks |",
        f"| small boxes (< 32×32) | {100 * t['small_share']:.1f} % |",
        "",
        "## Sequences", "",
        "| sequence | frames | tracks | boxes | boxes/frame | track len (mean/median) | "
        "occl. events/100 fr | re-entries | ID consistency | small | findings |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for s in card["sequences"]:
        lines.append(
            f"| {s['name']} | {_fmt(s['frames'])} | {_fmt(s['tracks'])} | {_fmt(s['boxes'])} | "
            f"{_fmt(s['boxes_per_frame'])} | {_fmt(s['track_length_mean'])} / {_fmt(s['track_length_median'])} | "
            f"{_fmt(s['occlusion_events_per_100_frames'])} | {_fmt(s['re_entries'])} | "
            f"{100 * s['id_consistency']:.1f} % | {100 * s['small_share']:.1f} % | {_fmt(s['findings'])} |")
    lines += ["", "## Categories", "", "| category | tracks | boxes |", "|---|---:|---:|"]
    for name, c in t["categories"].items():
        lines.append(f"| {name} | {_fmt(c['tracks'])} | {_fmt(c['boxes'])} |")
    lines += ["", "## Quality (QA findings)", ""]
    if t["findings_by_kind"]:
        lines += ["| check | findings |", "|---|---:|"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in t["findings_by_kind"].items()]
    else:
        lines.append("No findings.")
    if plots:
        lines += ["", "## Distributions", ""]
        lines += [f"![{Path(p).stem}]({p})" for p in plots]
    if compare is not None:
        lines += ["", "## Compared with the previous version", "",
                  "| total | before | after | change |", "|---|---:|---:|---:|"]
        for key, v in compare["total"].items():
            sign = "+" if v["delta"] > 0 else ""
            lines.append(f"| {key} | {_fmt(v['before'])} | {_fmt(v['after'])} | {sign}{_fmt(v['delta'])} |")
        for label, names in (("only in the previous version", compare["only_before"]),
                             ("new in this version", compare["only_after"])):
            if names:
                lines += ["", f"Sequences {label}: {', '.join(names)}."]
    if card.get("warnings"):
        lines += ["", "## Warnings", ""] + [f"- {w}" for w in card["warnings"]]
    lines += ["", "## How the numbers are counted", "", _DEFINITIONS]
    return "\n".join(lines)
