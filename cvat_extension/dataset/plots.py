"""PNG plots of a dataset card (matplotlib ``Figure`` on the Agg canvas, no pyplot).

What a reader of a tracking dataset card looks for: how long tracks are, how visible
objects are, how large boxes are, which categories there are, and how the sequences differ
in density and occlusion. All panels go into one ``card.png`` (one render instead of five:
the card stays within its time budget) and are drawn from ``card.json`` content only, so a
card can be re-plotted. With a previous version the histograms show both.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cvat_extension._deps import require

__all__ = ["write_plots"]

_BLUE = "#2f7fd8"
_GREY = "#9aa3b2"
_ORANGE = "#e8833a"


def _labels_open(edges: list[float]) -> list[str]:
    out = [f"{a:g}–{b:g}" for a, b in zip(edges[:-1], edges[1:])]
    return out + [f"≥{edges[-1]:g}"]


def write_plots(card: Mapping[str, Any], folder: Path, *, compare: Mapping[str, Any] | None = None) -> list[str]:
    """Write ``card.png`` into ``folder``; return the file names written (for ``card.md``).

    Raises:
        MissingDependencyError: matplotlib is not installed.
    """
    require("matplotlib", extra="dataset")
    import numpy as np
    from matplotlib.figure import Figure

    t = card["total"]
    old = compare.get("total") if compare else None
    fig = Figure(figsize=(15, 8.5), dpi=90)
    axes = fig.subplots(2, 3)

    def bars(ax: Any, labels: list[str], key: str, ylabel: str, title: str, xlabel: str) -> None:
        x = np.arange(len(labels))
        counts = t[key]["counts"]
        if old is not None and key in old:
            ax.bar(x - 0.2, old[key]["counts"], width=0.4, label="before", color=_GREY)
            ax.bar(x + 0.2, counts, width=0.4, label="after", color=_BLUE)
            ax.legend(fontsize=8)
        else:
            ax.bar(x, counts, color=_BLUE)
        ax.set_xticks(x, labels, rotation=40, ha="right", fontsize=8)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel(xlabel, fontsize=9)
        ax.set_ylabel(ylabel, fontsize=9)

    bars(axes[0, 0], _labels_open(t["track_length_hist"]["edges"]), "track_length_hist", "tracks",
         "Track length", "boxes per track")
    vis_edges = t["visibility_hist"]["edges"]
    bars(axes[0, 1], [f"{a:.1f}–{b:.1f}" for a, b in zip(vis_edges[:-1], vis_edges[1:])],
         "visibility_hist", "boxes", "Visibility", "visible share of the object")
    bars(axes[0, 2], _labels_open(t["box_size_hist"]["edges_sqrt_area_px"]), "box_size_hist", "boxes",
         f"Box size ({100 * t['small_share']:.1f} % under 32×32)", "sqrt(area) in px")
    seqs = card["sequences"]
    ax1 = axes[1, 0]
    x = np.arange(len(seqs))
    ax1.bar(x - 0.2, [s["boxes_per_frame"] for s in seqs], width=0.4, color=_BLUE, label="boxes / frame")
    ax1.set_ylabel("boxes per frame", fontsize=9)
    ax2 = ax1.twinx()
    ax2.bar(x + 0.2, [s["occlusion_events_per_100_frames"] for s in seqs], width=0.4, color=_ORANGE,
            label="occlusion events / 100 frames")
    ax2.set_ylabel("occlusion events per 100 frames", fontsize=9)
    ax1.set_xticks(x, [s["name"] for s in seqs], rotation=40, ha="right", fontsize=8)
    ax1.set_title("Density (blue) and occlusion (orange)", fontsize=11)
    ax = axes[1, 1]
    cats = sorted(t["categories"].items(), key=lambda kv: kv[1]["boxes"])
    ax.barh([k for k, _ in cats], [v["boxes"] for _, v in cats], color=_BLUE)
    ax.tick_params(axis="y", labelsize=8)
    ax.locator_params(axis="x", nbins=4)
    ax.set_xlabel("boxes", fontsize=9)
    ax.set_title("Categories", fontsize=11)
    ax = axes[1, 2]
    kinds = sorted(t["findings_by_kind"].items(), key=lambda kv: kv[1])
    ax.barh([k for k, _ in kinds] or ["none"], [v for _, v in kinds] or [0], color=_ORANGE)
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("findings", fontsize=9)
    ax.set_title(f"QA findings (ID consistency {100 * t['id_consistency']:.1f} %)", fontsize=11)
    fig.subplots_adjust(left=0.06, right=0.97, top=0.95, bottom=0.12, wspace=0.7, hspace=0.6)
    fig.savefig(folder / "card.png")
    return ["card.png"]
