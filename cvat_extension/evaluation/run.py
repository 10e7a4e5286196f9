"""One sequence through the whole real-error evaluation (what ``scripts/eval_real_errors.py`` runs).

For each tracker output: MOTChallenge preprocessing and CLEAR matches (asserted equal to
TrackEval's counts), error events, then the product's QA exactly as ``cvat-track check``
runs it (``adapters/cli/_qa.run_qa``: ``run_checks``, ``propose_merges``/``merge_findings``,
``plan_review`` with default settings, the tracker's detections given as ``--detections``),
and ``sync``'s merge policy (``propose_merges`` with ``sync.merge.options``, then
``applicable_merges`` at ``sync.merge.min_score``, both from ``cvat/config.py``). Rerunning
after a change to the checks, the merge or the review plan measures the new code.

Per sequence also: the same QA on the clean human ground truth (false alarms).
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from cvat_extension.core.tracks import Tracks
from cvat_extension.evaluation.events import EVENT_KINDS, find_events, match_table
from cvat_extension.evaluation.matching import assert_same_as_trackeval, clear_matches
from cvat_extension.evaluation.merges import judge_merges, sync_merge_policy
from cvat_extension.evaluation.review_value import coverage, reviewer_gains
from cvat_extension.evaluation.scoring import CONFIDENT, chance_level, judgeable, score_findings
from cvat_extension.evaluation.sequences import Sequence, SequenceSpec, load_sequence, sequence_info
from cvat_extension.evaluation.simulate import PERSON_CLASSES, simulate_detections
from cvat_extension.evaluation.trackers import run_tracker
from cvat_extension.metrics.mot_preprocess import preprocess_mot

__all__ = ["REVIEW_FRACTION", "evaluate_sequence", "limit_frames"]

#: Share of frames the simulated reviewer looks at.
REVIEW_FRACTION = 0.05


def limit_frames(seq: Sequence, n: int | None) -> Sequence:
    """The first ``n`` frames of ``seq`` (``--quick``)."""
    if not n or n >= seq.num_frames:
        return seq
    gt = seq.gt[seq.gt.frame < n]
    dets = seq.public_detections
    if dets is not None:
        dets = dets[dets.frame < n]
    return replace(seq, gt=gt, public_detections=dets, num_frames=n)


def detections_for(seq: Sequence) -> Tracks:
    """Public detections where MOTChallenge has them, else simulated ones."""
    if seq.public_detections is not None:
        return seq.public_detections
    return simulate_detections(seq.gt, seq.gt_class, num_frames=seq.num_frames, width=seq.width,
                               height=seq.height, seed_name=seq.spec.name)


def _confident_per_100(findings: list[Any], num_frames: int) -> dict[str, Any]:
    by_kind: dict[str, int] = {}
    for f in findings:
        if f.score >= CONFIDENT:
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
    total = sum(by_kind.values())
    return {"confident": total, "per_100_frames": 100 * total / num_frames if num_frames else 0.0,
            "by_kind": dict(sorted(by_kind.items())), "findings": len(findings)}


def evaluate_tracker(seq: Sequence, kind: str, dets: Tracks, cache: Path | None) -> dict[str, Any]:
    """Every measure for one tracker output of one sequence (JSON-ready)."""
    from cvat_extension.adapters.cli._qa import run_qa
    from cvat_extension.core.merge import MergeConfig, applicable_merges, propose_merges
    from cvat_extension.core.review import plan_review

    t0 = time.perf_counter()
    pred, cached = run_tracker(kind, dets, num_frames=seq.num_frames, fps=seq.fps,
                               name=f"{seq.spec.name}-{seq.num_frames}", cache=cache)
    t_track = time.perf_counter() - t0
    data = preprocess_mot(seq.gt, seq.gt_class, seq.gt_consider, pred, num_frames=seq.num_frames,
                          benchmark=seq.spec.benchmark)
    matches = clear_matches(data)
    clear = assert_same_as_trackeval(data, matches)
    tab = match_table(data, matches, seq.gt, pred)
    events = find_events(tab)
    n_switch = sum(1 for e in events if e.kind == "gt_switch")
    if n_switch != clear["IDSW"]:  # pragma: no cover - a bug in events.py
        raise AssertionError(f"{seq.spec.name}: {n_switch} gt_switch events but CLEAR IDSW {clear['IDSW']}")
    info = sequence_info(seq)
    t1 = time.perf_counter()
    qa = run_qa(pred, info, detections=dets)
    t_qa = time.perf_counter() - t1
    review_5 = plan_review(qa.findings, num_frames=seq.num_frames, budget_frames_fraction=REVIEW_FRACTION,
                           frame_base=info.frame_base)
    options, sync_min = sync_merge_policy()
    # As cvat/sync.py: propose with sync.merge.options, apply only the unambiguous links at or
    # above sync.merge.min_score (chains re-rooted over them).
    proposed = propose_merges(pred, config=MergeConfig(**options), info=info)
    sync_merges = applicable_merges(proposed, sync_min)
    # Findings on boxes TrackEval ignores (distractors, ignore regions) are neither right nor
    # wrong: no event can exist there.
    judged = judgeable(qa.findings, tab, seq.unscored_gt())
    gt_dets = max(clear["TP"] + clear["FN"], 1)
    gains = reviewer_gains(data, matches, review_5, fraction=REVIEW_FRACTION)
    return {
        "sequence": seq.spec.name, "tracker": kind, "split": seq.spec.split,
        "frames": seq.num_frames, "fps": seq.fps,
        "detections": "public FRCNN" if seq.public_detections is not None else "simulated",
        "clear": clear, "mota": 1 - (clear["FN"] + clear["FP"] + clear["IDSW"]) / gt_dets,
        "idf1": gains["idf1"] / 100, "pred_tracks": int(len(np.unique(pred.track_id))),
        "events": {k: sum(1 for e in events if e.kind == k) for k in EVENT_KINDS},
        "id_jump_categories": {c: sum(1 for e in events if e.kind == "id_jump" and e.detail["category"] == c)
                               for c in ("drift", "gap", "jump")},
        "scoring": score_findings(judged, events),
        "chance": chance_level(judged, events, {t: (int(f.min()), int(f.max()))
                                                     for t, f in tab.pred_all_frames.items()}),
        "coverage": coverage(qa.review, events, seq.num_frames),
        "reviewer": gains,
        "merges": {
            "candidates": judge_merges(qa.candidates, tab, events),
            "proposed": judge_merges(qa.merges, tab, events),
            "applied_by_sync": {**judge_merges(sync_merges, tab, events), "min_score": sync_min},
        },
        "qa_summary": qa.summary,
        "seconds": {"tracker": round(t_track, 2), "tracker_cached": cached, "qa": round(t_qa, 2),
                    "total": round(time.perf_counter() - t0, 2)},
        "event_list": [e.to_json() for e in events],
    }


def evaluate_clean_gt(seq: Sequence, dets: Tracks | None) -> dict[str, Any]:
    """Confident findings of the QA on the clean human ground truth (all false alarms).

    With ``dets`` as ``check --detections`` runs; without, as ``sync`` and plain ``check`` do.
    """
    from cvat_extension.adapters.cli._qa import run_qa

    t0 = time.perf_counter()
    # The annotation as its annotators made it: every person-like box. Seated people,
    # reflections and people on vehicles are annotated too (only not scored), and a person
    # detector fires on them, so leaving them out would make their detections "missing".
    annotated = seq.gt[np.isin(seq.gt_class, PERSON_CLASSES) & ~seq.gt.outside]
    qa = run_qa(annotated, sequence_info(seq), detections=dets)
    out = _confident_per_100(qa.findings, seq.num_frames)
    out["merges_proposed"] = len(qa.merges)
    out["seconds"] = round(time.perf_counter() - t0, 2)
    return out


def evaluate_sequence(data_dir: Path, spec: SequenceSpec, *, trackers: tuple[str, ...] | None = None,
                      quick: int | None = None, cache: Path | None = None) -> dict[str, Any]:
    """All tracker rows and the clean-GT row of one sequence."""
    seq = limit_frames(load_sequence(data_dir, spec), quick)
    dets = detections_for(seq)
    kinds = [k for k in spec.trackers if trackers is None or k in trackers]
    rows = [evaluate_tracker(seq, k, dets, cache) for k in kinds]
    return {"sequence": spec.name, "split": spec.split, "frames": seq.num_frames, "fps": seq.fps,
            "rows": rows, "clean_gt": evaluate_clean_gt(seq, dets),
            "clean_gt_no_detections": evaluate_clean_gt(seq, None)}
