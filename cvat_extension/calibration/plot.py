"""The calibration curve as a PNG: precision, recall and IDF1 against detector confidence.

Left: box precision (solid) and recall (dashed) against the detector confidence, one colour
per tracker threshold, with the target band shaded. Right: IDF1 against precision, so the
trade-off inside the band is visible. The chosen setting is circled in both.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from cvat_extension.calibration.sweep import SettingResult

__all__ = ["plot_curve"]


def plot_curve(
    results: Sequence[SettingResult],
    path: str | Path,
    *,
    band: tuple[float, float],
    chosen: SettingResult | None,
    title: str = "",
    measure: str = "box",
) -> None:
    """Write the curve of ``results`` to ``path`` (PNG).

    Raises:
        MissingDependencyError: matplotlib is not installed (it comes with the models extra).
    """
    from cvat_extension._deps import require

    matplotlib = require("matplotlib", extra="models")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    threshs = sorted({r.setting.track_thresh for r in results})
    cmap = plt.get_cmap("viridis")
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5), dpi=100)
    for ax in (left, right):
        ax.axhspan(band[0], band[1], color="tab:green", alpha=0.12, lw=0) if ax is left else \
            ax.axvspan(band[0], band[1], color="tab:green", alpha=0.12, lw=0)
    for i, t in enumerate(threshs):
        rows = sorted((r for r in results if r.setting.track_thresh == t), key=lambda r: r.setting.det_conf)
        colour = cmap(i / max(len(threshs) - 1, 1))
        conf = [r.setting.det_conf for r in rows]
        left.plot(conf, [r.precision for r in rows], "-o", color=colour, ms=3, label=f"tracker {t:g}")
        left.plot(conf, [r.recall for r in rows], "--", color=colour, lw=1)
        right.plot([r.precision for r in rows], [r.idf1 for r in rows], "-o", color=colour, ms=3, label=f"tracker {t:g}")
    if chosen is not None:
        s = chosen.setting
        left.plot([s.det_conf], [chosen.precision], "o", ms=12, mfc="none", mec="red", mew=2)
        right.plot([chosen.precision], [chosen.idf1], "o", ms=12, mfc="none", mec="red", mew=2,
                   label=f"chosen: conf {s.det_conf:g}, tracker {s.track_thresh:g}")
    left.set(xlabel="detector confidence", ylabel=f"{measure} precision (solid) / recall (dashed)", ylim=(0, 1.02),
             title=f"{measure} precision, target {band[0]:.0%}–{band[1]:.0%} shaded")
    right.set(xlabel=f"{measure} precision", ylabel="IDF1", ylim=(0, 1.02), xlim=(0, 1.02), title="identities vs precision")
    left.legend(fontsize=8, loc="lower right")
    right.legend(fontsize=8, loc="lower left")
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
