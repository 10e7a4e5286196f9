"""Fragment merges judged against ground truth: right person, wrong person, missed fragments.

A merge links the end of piece A (``Merge.previous``) to the start of piece B
(``Merge.from_``). Each end is named by the person most of its last (first)
:data:`~cvat_extension.evaluation.events.END_BOXES` matched boxes belong to, if at least half
of them do (as fragment events are defined). A merge is

- **correct** when both ends name the same person;
- **wrong-person** when they name two different people (the merge corrupts an identity);
- **unverifiable** otherwise (an end mostly on nobody: a false track joined to something).

Precision = correct / all merges (unverifiable ones count against it). Recall = share of
``fragment`` events (A, B) that a merge links exactly.

Three sets are judged: ``candidates`` (every link ``check`` shows reviewers, score ≥ 0.05),
``proposed`` (what ``check``'s pipeline counts as merges, ``QaResult.merges``) and
``applied_by_sync`` (what ``sync`` writes: ``propose_merges`` with ``sync.merge.options``, then
``applicable_merges`` at ``sync.merge.min_score``, both from the defaults of ``cvat/config.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cvat_extension.core.merge import Merge
from cvat_extension.evaluation.events import END_BOXES, ErrorEvent, MatchTable, majority

__all__ = ["judge_merges", "sync_merge_policy"]


def sync_merge_policy() -> tuple[dict[str, Any], float]:
    """(``sync.merge.options``, ``sync.merge.min_score``) as ``sync`` uses them by default."""
    from cvat_extension.cvat.config import MergeConfig as SyncMergeConfig

    cfg = SyncMergeConfig()
    return dict(cfg.options), float(cfg.min_score)


def _ends(tab: MatchTable) -> tuple[dict[int, int], dict[int, int]]:
    end: dict[int, int] = {}
    start: dict[int, int] = {}
    ids = np.unique(tab.p_track)
    for tid in ids.tolist():
        a, b = np.searchsorted(tab.p_track, [tid, tid + 1])
        gt = tab.p_gt[a:b]
        m = gt[gt >= 0]
        end[tid] = majority(m[-END_BOXES:]) if len(m) else -1
        start[tid] = majority(m[:END_BOXES]) if len(m) else -1
    return end, start


def judge_merges(merges: Sequence[Merge], tab: MatchTable, events: Sequence[ErrorEvent]) -> dict[str, Any]:
    """Counts, precision and recall of one set of merges."""
    end, start = _ends(tab)
    correct = wrong = unknown = 0
    wrong_list = []
    for m in merges:
        a, b = end.get(m.previous, -1), start.get(m.from_, -1)
        if a >= 0 and b >= 0:
            if a == b:
                correct += 1
            else:
                wrong += 1
                wrong_list.append({"from": m.previous, "to": m.from_, "score": round(m.score, 3),
                                   "gt": [a, b], "frames": [m.end_frame, m.start_frame]})
        else:
            unknown += 1
    frags = [e for e in events if e.kind == "fragment"]
    links = {(m.previous, m.from_) for m in merges}
    found = sum(1 for e in frags if (e.pred_ids[0], e.pred_ids[1]) in links)
    n = len(merges)
    return {"merges": n, "correct": correct, "wrong_person": wrong, "unverifiable": unknown,
            "precision": correct / n if n else None, "wrong_person_rate": wrong / n if n else None,
            "fragments": len(frags), "fragments_linked": found,
            "recall": found / len(frags) if frags else None, "wrong_person_merges": wrong_list}
