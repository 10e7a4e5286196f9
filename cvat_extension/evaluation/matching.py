"""Per-frame prediction ↔ ground-truth matches, exactly as TrackEval's CLEAR metric makes them.

TrackEval's ``CLEAR.eval_sequence`` computes the matches but returns only counts; the error
events need the matches themselves. :func:`clear_matches` repeats its loop over the same
preprocessed data: per frame, Hungarian assignment on IoU ≥ 0.5 with a bonus of 1000 for
keeping the tracker id a ground-truth id had on the previous frame, IDSW counted against the
last tracker id each ground-truth id had (any number of frames ago).
:func:`assert_same_as_trackeval` runs TrackEval's CLEAR on the same data and checks TP, FP,
FN and IDSW are equal, so the reimplementation cannot drift from the reference unnoticed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import linear_sum_assignment

from cvat_extension.metrics.mot_preprocess import MotSequenceData

__all__ = ["ClearMatches", "assert_same_as_trackeval", "clear_matches"]

_EPS = np.finfo("float").eps


@dataclass(frozen=True)
class ClearMatches:
    """Matches of one sequence in TrackEval's contiguous ids.

    Attributes:
        gt_match: per frame, for each gt box (order of ``data["gt_ids"][t]``) the position
            of its matched tracker box in ``data["tracker_ids"][t]``, or -1.
        pred_match: per frame, for each tracker box the position of its matched gt box, or -1.
        tp, fp, fn, idsw: CLEAR's counts.
    """

    gt_match: list[np.ndarray]
    pred_match: list[np.ndarray]
    tp: int
    fp: int
    fn: int
    idsw: int

    def counts(self) -> dict[str, int]:
        return {"TP": self.tp, "FP": self.fp, "FN": self.fn, "IDSW": self.idsw}


def clear_matches(seq: MotSequenceData, threshold: float = 0.5) -> ClearMatches:
    """CLEAR's per-frame matching of ``seq`` (see the module docstring)."""
    data = seq.data
    n_gt = int(data["num_gt_ids"])
    prev_tracker = np.full(n_gt, np.nan)  # last matched tracker id ever (for IDSW)
    prev_step = np.full(n_gt, np.nan)  # tracker id matched on the previous frame (for matching)
    gt_match: list[np.ndarray] = []
    pred_match: list[np.ndarray] = []
    tp = fp = fn = idsw = 0
    for gt_ids, tr_ids, sim in zip(data["gt_ids"], data["tracker_ids"], data["similarity_scores"]):
        gm = np.full(len(gt_ids), -1, dtype=np.int64)
        pm = np.full(len(tr_ids), -1, dtype=np.int64)
        gt_match.append(gm)
        pred_match.append(pm)
        if len(gt_ids) == 0 or len(tr_ids) == 0:
            fp += len(tr_ids)
            fn += len(gt_ids)
            continue  # as TrackEval: the previous frame's matches stay the reference
        score = 1000.0 * (tr_ids[np.newaxis, :] == prev_step[gt_ids[:, np.newaxis]]) + sim
        score[sim < threshold - _EPS] = 0
        rows, cols = linear_sum_assignment(-score)
        ok = score[rows, cols] > 0 + _EPS
        rows, cols = rows[ok], cols[ok]
        gm[rows] = cols
        pm[cols] = rows
        m_gt, m_tr = gt_ids[rows], tr_ids[cols]
        before = prev_tracker[m_gt]
        idsw += int(np.sum(~np.isnan(before) & (m_tr != before)))
        prev_tracker[m_gt] = m_tr
        prev_step[:] = np.nan
        prev_step[m_gt] = m_tr
        tp += len(rows)
        fn += len(gt_ids) - len(rows)
        fp += len(tr_ids) - len(rows)
    return ClearMatches(gt_match=gt_match, pred_match=pred_match, tp=tp, fp=fp, fn=fn, idsw=idsw)


def assert_same_as_trackeval(seq: MotSequenceData, matches: ClearMatches) -> dict[str, int]:
    """Check our counts against TrackEval's CLEAR on the same data; returns TrackEval's.

    Raises:
        AssertionError: any of TP, FP, FN, IDSW differ.
    """
    from cvat_extension.metrics.trackeval_adapter import trackeval_module

    te = trackeval_module()
    res = te.metrics.CLEAR({"PRINT_CONFIG": False}).eval_sequence(seq.data)
    ref = {"TP": int(res["CLR_TP"]), "FP": int(res["CLR_FP"]), "FN": int(res["CLR_FN"]),
           "IDSW": int(res["IDSW"])}
    ours = matches.counts()
    if ours != ref:
        raise AssertionError(f"per-frame matching differs from TrackEval CLEAR: ours {ours}, TrackEval {ref}")
    return ref
