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
from cvat_extension.core.merge import Merge, MergeConfig, merge_findings, propose_merges
from cvat_extension.core.review import plan_review
from cvat_extension.core.tracks import SequenceInfo, Tracks

__all__ = ["QaResult", "REVIEW_MIN_MERGE_SCORE", "run_qa"]

#: Fragment links down to this score become review findings (merge applies ``min_score``).
REVIEW_MIN_MERGE_SCORE = 0.05


@dataclass(frozen=True)
class QaResult:
    """Everything one QA run produced."""

    findings: list[Finding]
    merges: list[Merge]
    candidates: list[Merge]
    review: list[ReviewItem]
    summary: dict[str, Any]

    def to_json(self, frame_base: int) -> dict[str, Any]:
        """The ``check --json`` document (frames in the user's numbering)."""
        from cvat_extension.report.numbering import user_message

        def finding(f: Finding) -> dict[str, Any]:
            d = f.to_json(frame_base)
            d["message"] = user_message(d["message"], frame_base)
            return d

        def item(it: ReviewItem) -> dict[str, Any]:
            d = it.to_json(frame_base)
            d["message"] = user_message(d["message"], frame_base)
            d["findings"] = [finding(f) for f in it.findings]
            return d

        return {
            "findings": [finding(f) for f in self.findings],
            "review": [item(it) for it in self.review],
            "summary": self.summary,
        }


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

    cfg = ChecksConfig.from_mapping(checks_config) if checks_config else ChecksConfig()
    findings = run_checks(tracks, config=cfg, detections=detections, frames=frames, info=info)
    config = merge_config or MergeConfig()
    # Reviewers see every plausible fragment (low scores rank low); ``merge`` applies only
    # those at or above ``min_score``.
    review_config = replace(config, min_score=min(config.min_score, REVIEW_MIN_MERGE_SCORE))
    candidates = propose_merges(tracks, config=review_config, frames=merge_frames or frames)
    merges = [m for m in candidates if m.score >= config.min_score]
    findings = sorted([*findings, *merge_findings(candidates, tracks)], key=Finding.sort_key)
    num_frames = info.num_frames or (int(tracks.frame.max()) + 1 if len(tracks) else 0)
    review = plan_review(findings, num_frames=num_frames, budget_frames_fraction=budget)
    flagged = np.zeros(max(num_frames, 1), dtype=bool)
    for f in findings:
        flagged[max(f.frames[0], 0): f.frames[1] + 1] = True
    summary = {
        "frames": num_frames,
        "tracks": len(tracks.ids),
        "boxes": int((~tracks.outside).sum()),
        "findings": len(findings),
        "findings_by_kind": dict(sorted(Counter(f.kind for f in findings).items())),
        "flagged_frames": int(flagged.sum()),
        "flagged_fraction": round(float(flagged.mean()), 4) if num_frames else 0.0,
        "merges_proposed": len(merges),
        "fragment_candidates": len(candidates),
        "review_items": len(review),
        "review_budget_fraction": budget,
        "max_score": round(max((f.score for f in findings), default=0.0), 4),
        "frame_base": info.frame_base,
    }
    return QaResult(findings=findings, merges=merges, candidates=candidates, review=review,
                    summary=summary)
