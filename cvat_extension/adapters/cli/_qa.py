"""The QA pipeline shared by ``check`` and ``demo``: checks + fragment merge + review plan.

One function so that the demo measures exactly what ``cvat-track check`` reports.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding, ReviewItem
from cvat_extension.core.merge import (
    Merge,
    MergeConfig,
    applicable_merges,
    merge_findings,
    propose_merges,
)
from cvat_extension.core.review import error_mass, group_findings, plan_review
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["CONFIDENT_SCORE", "REVIEW_MIN_MERGE_SCORE", "QaResult", "run_qa"]

#: Fragment links down to this score become review findings (merge applies ``min_score``).
REVIEW_MIN_MERGE_SCORE = 0.05

#: Findings at or above this score count as confident in the summary
#: (``fraction_with_confident_findings``).
#: Below it are hints (a frozen box without detections scores 0.3, a short track at the
#: border 0.2..0.4): they go to the review plan ranked low, but counting them would say that
#: every frame of clean ground truth is flagged.
CONFIDENT_SCORE = 0.5


@dataclass(frozen=True)
class QaResult:
    """Everything one QA run produced."""

    findings: list[Finding]
    merges: list[Merge]
    candidates: list[Merge]
    review: list[ReviewItem]
    summary: dict[str, Any]

    def to_json(self, frame_base: int) -> dict[str, Any]:
        """The ``check --json`` document (frames in the user's numbering).

        Messages are already in that numbering: :func:`run_qa` passes ``info.frame_base``
        to the checks, the merge and the review plan that write them.
        """

        def finding(f: Finding) -> dict[str, Any]:
            return f.to_json(frame_base)

        def item(it: ReviewItem) -> dict[str, Any]:
            d = it.to_json(frame_base)
            d["findings"] = [finding(f) for f in it.findings]
            return d

        return {
            "findings": [finding(f) for f in self.findings],
            "review": [item(it) for it in self.review],
            "summary": self.summary,
        }


def _flagged(findings: list[Finding], num_frames: int) -> np.ndarray:
    """Per frame: whether some finding's frame range covers it."""
    flagged = np.zeros(max(num_frames, 1), dtype=bool)
    for f in findings:
        flagged[max(f.frames[0], 0): f.frames[1] + 1] = True
    return flagged


def run_qa(
    tracks: Tracks,
    info: SequenceInfo,
    *,
    checks_config: Mapping[str, Any] | None = None,
    merge_config: MergeConfig | None = None,
    detections: Tracks | None = None,
    frames: Callable[[int], np.ndarray] | None = None,
    merge_frames: Callable[[int], np.ndarray] | None = None,
    budget: float = 0.03,
) -> QaResult:
    """Run every check, propose fragment merges, and plan the review.

    ``frames`` feed the checks and the merge; ``merge_frames`` (default ``frames``) only the
    merge's appearance gate, which needs a few crops instead of every frame.

    Raises:
        ConfigError: bad check settings.
    """
    from cvat_extension.core.checks import ChecksConfig, run_checks
    from cvat_extension.core.checks._common import prepare

    cfg = ChecksConfig.from_mapping(checks_config) if checks_config else ChecksConfig()
    # One camera-compensated preparation serves the checks and the merge (a tenth of a
    # second per million boxes, each).
    prepared = prepare(tracks)
    findings = run_checks(tracks, config=cfg, detections=detections, frames=frames, info=info,
                          prepared=prepared)
    config = merge_config or MergeConfig()
    # Reviewers see every plausible fragment (low scores rank low); ``merge`` applies only
    # those at or above ``min_score``.
    review_config = replace(config, min_score=min(config.min_score, REVIEW_MIN_MERGE_SCORE))
    candidates = propose_merges(tracks, config=review_config, frames=merge_frames or frames,
                                info=info, prepared=prepared)
    del prepared
    merges = applicable_merges(candidates, config.min_score)
    base = info.frame_base
    findings = sorted([*findings, *merge_findings(candidates, tracks, frame_base=base)],
                      key=Finding.sort_key)
    num_frames = info.num_frames or (int(tracks.frame.max()) + 1 if len(tracks) else 0)
    review = plan_review(findings, num_frames=num_frames, budget_frames_fraction=budget,
                         frame_base=base)
    # How much of the estimated error mass (sum of item scores) the budgeted plan holds.
    mass_all = error_mass(group_findings(findings, frame_base=base))
    mass_kept = error_mass(review)
    flagged = _flagged(findings, num_frames)
    confident = _flagged([f for f in findings if f.score >= CONFIDENT_SCORE], num_frames)
    summary = {
        "frames": num_frames,
        "tracks": len(tracks.ids),
        "boxes": int((~tracks.outside).sum()),
        "findings": len(findings),
        "findings_by_kind": dict(sorted(Counter(f.kind for f in findings).items())),
        # Confident findings (score >= confident_score) and hints are counted apart: "0 frames
        # flagged" next to "every frame has a finding" read as a contradiction when both were
        # called flagged_*.
        "confident_score": CONFIDENT_SCORE,
        "confident_findings": sum(f.score >= CONFIDENT_SCORE for f in findings),
        "hint_findings": sum(f.score < CONFIDENT_SCORE for f in findings),
        "frames_with_confident_findings": int(confident.sum()),
        "fraction_with_confident_findings": round(float(confident.mean()), 4) if num_frames else 0.0,
        "frames_with_any_finding": int(flagged.sum()),
        "fraction_with_any_finding": round(float(flagged.mean()), 4) if num_frames else 0.0,
        "merges_proposed": len(merges),
        "fragment_candidates": len(candidates),
        "review_items": len(review),
        "review_budget_fraction": budget,
        "estimated_errors": round(mass_all, 2),
        "estimated_errors_in_review": round(mass_kept, 2),
        "review_covers_fraction": round(mass_kept / mass_all, 4) if mass_all > 0 else 1.0,
        "max_score": round(max((f.score for f in findings), default=0.0), 4),
        "frame_base": info.frame_base,
    }
    return QaResult(findings=findings, merges=merges, candidates=candidates, review=review,
                    summary=summary)
