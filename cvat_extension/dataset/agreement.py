"""Inter-annotator agreement: MOTA/IDF1/HOTA between two annotations, and where they differ.

Two people annotated the same sequence (two files, two CVAT tasks or jobs, or the consensus
replica jobs of one job). The numbers are TrackEval's (:func:`evaluate_tracks`), computed
with ``a`` as reference and, for the symmetric variant, both ways and averaged: IDF1 and
HOTA are symmetric already, MOTA is not (FP and FN swap and the normaliser changes).
The tracking-dataset guide calls MOTA > 85 and IDF1 > 80 good agreement; those are the
default pass thresholds.

Disagreements name the tracks of ``b`` (the annotation a reviewer fixes; ``a``'s ids appear
as "reference track N"). Boxes are matched per frame by IoU (≥ ``match_iou``, Hungarian, as
CLEAR-MOT does); each reference track's *partner* is the ``b`` track it is matched to most
often, and the other way round. Runs of consecutive frames become findings:

- ``agreement_identity``: a matched box belongs to another track than the partner (an ID
  switch or swap in one of the two annotations);
- ``agreement_missing``: a reference box with no box in ``b`` (the partner has none there);
- ``agreement_extra``: a box of ``b`` with none in the reference;
- ``agreement_box``: both annotated the object but the boxes differ (the partner's box has
  IoU below ``match_iou``, or below ``box_iou`` while matched);
- ``agreement_label``: matched boxes with different labels.

Findings become ranked review items (:func:`cvat_extension.core.review.plan_review`, no
budget cut) that ``cvat-track agreement --push`` opens as CVAT issues like ``sync`` does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cvat_extension.core.findings import Finding, ReviewItem, frame_label
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConfigError

__all__ = [
    "AgreementConfig", "AgreementResult", "compute_agreement", "disagreements", "same_sequence_problem",
]

#: Weight of each kind in the rank score: identity errors cost a tracker most.
_WEIGHT = {"agreement_identity": 1.0, "agreement_missing": 0.9, "agreement_extra": 0.9,
           "agreement_box": 0.7, "agreement_label": 0.6}


@dataclass(frozen=True)
class AgreementConfig:
    """Thresholds of an agreement run.

    Attributes:
        match_iou: IoU for two boxes to be the same object (CLEAR/Identity threshold).
            Lower it for small or fast objects where annotators' boxes differ more.
        box_iou: matched boxes below this IoU are a box disagreement; raise it for
            stricter box guidelines.
        min_mota: pass threshold on MOTA (0..1).
        min_idf1: pass threshold on IDF1 (0..1).
        symmetric: gate on the mean of both directions instead of ``a`` as reference.
        frames_scale: run length (frames) at which a disagreement scores ~63 % of its
            kind's weight above the floor; longer runs rank higher.
    """

    match_iou: float = 0.5
    box_iou: float = 0.5
    min_mota: float = 0.85
    min_idf1: float = 0.80
    symmetric: bool = False
    frames_scale: float = 25.0

    def __post_init__(self) -> None:
        for name in ("match_iou", "box_iou", "min_idf1"):
            v = getattr(self, name)
            if not 0 <= v <= 1:
                raise ConfigError(f"{name} must be in 0..1, got {v}")
        if not -math.inf < self.min_mota <= 1:
            raise ConfigError(f"min_mota must be at most 1, got {self.min_mota}")
        if self.frames_scale <= 0:
            raise ConfigError(f"frames_scale must be > 0, got {self.frames_scale}")


@dataclass
class AgreementResult:
    """Metrics both ways, pass/fail, disagreements and review items."""

    reference: Any
    reverse: Any
    passed: bool
    findings: list[Finding]
    review: list[ReviewItem]
    config: AgreementConfig
    names: tuple[str, str] = ("a", "b")
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def symmetric(self) -> dict[str, float]:
        """Mean of both directions for MOTA, IDF1 and HOTA."""
        return {k: round((getattr(self.reference, k) + getattr(self.reverse, k)) / 2, 6)
                for k in ("mota", "idf1", "hota")}

    def to_json(self, frame_base: int = 0) -> dict[str, Any]:
        """The ``agreement --json`` document (frames in the user's numbering)."""
        by_kind: dict[str, int] = {}
        for f in self.findings:
            by_kind[f.kind] = by_kind.get(f.kind, 0) + 1
        return {
            "a": self.names[0], "b": self.names[1],
            "passed": self.passed,
            "thresholds": {"mota": self.config.min_mota, "idf1": self.config.min_idf1,
                           "gate": "symmetric" if self.config.symmetric else "a as reference"},
            "metrics": {"a_as_reference": self.reference.to_json(), "b_as_reference": self.reverse.to_json(),
                        "symmetric": self.symmetric},
            "disagreements_by_kind": dict(sorted(by_kind.items())),
            "findings": [f.to_json(frame_base) for f in self.findings],
            "review": [it.to_json(frame_base) for it in self.review],
            **self.extra,
        }


def _match(a: Tracks, b: Tracks, match_iou: float) -> dict[str, np.ndarray]:
    """Per-frame Hungarian IoU matching of visible rows (row indices into a and b)."""
    from scipy.optimize import linear_sum_assignment

    from cvat_extension.core.geometry import iou_xyxy_batch

    fa = np.argsort(a.frame, kind="stable")
    fb = np.argsort(b.frame, kind="stable")
    frames = np.union1d(a.frame, b.frame)
    ca = np.searchsorted(a.frame[fa], frames, side="left"), np.searchsorted(a.frame[fa], frames, side="right")
    cb = np.searchsorted(b.frame[fb], frames, side="left"), np.searchsorted(b.frame[fb], frames, side="right")
    ra: list[np.ndarray] = []
    rb: list[np.ndarray] = []
    ious: list[np.ndarray] = []
    for i in range(len(frames)):
        ia = fa[ca[0][i]:ca[1][i]]
        ib = fb[cb[0][i]:cb[1][i]]
        if not len(ia) or not len(ib):
            continue
        iou = iou_xyxy_batch(a.xyxy[ia], b.xyxy[ib])
        r, c = linear_sum_assignment(-iou)
        ok = iou[r, c] >= match_iou
        ra.append(ia[r[ok]])
        rb.append(ib[c[ok]])
        ious.append(iou[r[ok], c[ok]])
    def cat(xs: list[np.ndarray], dtype: Any) -> np.ndarray:
        return np.concatenate(xs) if xs else np.zeros(0, dtype=dtype)

    return {"a": cat(ra, np.int64), "b": cat(rb, np.int64), "iou": cat(ious, np.float64)}


def _partners(own: np.ndarray, other: np.ndarray) -> dict[int, int]:
    """Track id → the other annotation's track it is matched to most often."""
    if not len(own):
        return {}
    pairs, counts = np.unique(np.stack([own, other], axis=1), axis=0, return_counts=True)
    order = np.lexsort((pairs[:, 1], -counts, pairs[:, 0]))
    best: dict[int, int] = {}
    for k in order.tolist():
        best.setdefault(int(pairs[k, 0]), int(pairs[k, 1]))
    return best


def _runs(key: np.ndarray, frame: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Runs of consecutive frames per key: ``(key, first, last, first row)`` (row order)."""
    if not len(key):
        return []
    order = np.lexsort((frame, key))
    k, f = key[order], frame[order]
    cut = np.flatnonzero((np.diff(k) != 0) | (np.diff(f) != 1)) + 1
    starts = np.concatenate([[0], cut])
    ends = np.concatenate([cut, [len(k)]]) - 1
    return [(int(k[s]), int(f[s]), int(f[e]), int(order[s])) for s, e in zip(starts, ends)]


def _score(kind: str, frames: int, scale: float) -> float:
    return round(_WEIGHT[kind] * (0.5 + 0.5 * (1.0 - math.exp(-frames / scale))), 4)


def disagreements(a: Tracks, b: Tracks, config: AgreementConfig = AgreementConfig(), *,
                  frame_base: int = 0) -> list[Finding]:
    """Findings where ``b`` disagrees with reference ``a`` (see the module docstring)."""
    a, b = a.visible(), b.visible()
    m = _match(a, b, config.match_iou)
    a_id, b_id = a.track_id[m["a"]], b.track_id[m["b"]]
    partner_of_a = _partners(a_id, b_id)
    partner_of_b = _partners(b_id, a_id)
    out: list[Finding] = []
    def fl(frame: int) -> str:
        return frame_label(frame, frame_base)

    def add(kind: str, ids: tuple[int, ...], first: int, last: int, box: Any, msg: str, **metrics: float) -> None:
        n = last - first + 1
        span = f"frame {fl(first)}" if n == 1 else f"frames {fl(first)}-{fl(last)}"
        who = f"track {ids[0]}" if ids else "no track"
        xyxy = None if box is None else (float(box[0]), float(box[1]), float(box[2]), float(box[3]))
        out.append(Finding(kind, ids, (first, last), xyxy,
                           _score(kind, n, config.frames_scale), f"{who} at {span}: {msg}",
                           {"frames": float(n), **metrics}))

    # Identity: matched to another track than the partner, seen from either side.
    wrong_b = np.array([partner_of_a[int(x)] != int(y) for x, y in zip(a_id, b_id)], dtype=bool)
    wrong_a = np.array([partner_of_b[int(y)] != int(x) for x, y in zip(a_id, b_id)], dtype=bool)
    frame = a.frame[m["a"]]
    pair_key = b_id * (int(a_id.max(initial=0)) + 1) + a_id
    for key, first, last, row in _runs(pair_key[wrong_b | wrong_a], frame[wrong_b | wrong_a]):
        sel = np.flatnonzero(wrong_b | wrong_a)[row]
        ra, rb = int(a_id[sel]), int(b_id[sel])
        main_b = partner_of_a[ra]
        ids: tuple[int, ...]
        if main_b != rb:
            msg = f"follows reference track {ra}, which is track {main_b} elsewhere"
            ids = (rb, main_b)
        else:
            msg = f"follows reference track {ra} here but reference track {partner_of_b[rb]} elsewhere"
            ids = (rb,)
        add("agreement_identity", ids, first, last, b.xyxy[m["b"][sel]], msg)
    # Labels of matched boxes.
    la = np.array([a.label_name(int(c)) for c in a.label[m["a"]]], dtype=object)
    lb = np.array([b.label_name(int(c)) for c in b.label[m["b"]]], dtype=object)
    diff_label = la != lb if len(la) else np.zeros(0, dtype=bool)
    for key, first, last, row in _runs(b_id[diff_label], frame[diff_label]):
        sel = np.flatnonzero(diff_label)[row]
        add("agreement_label", (key,), first, last, b.xyxy[m["b"][sel]],
            f"label {lb[sel]!r}, reference track {int(a_id[sel])} says {la[sel]!r}")
    # Loose boxes while matched.
    loose = m["iou"] < config.box_iou
    for key, first, last, row in _runs(b_id[loose], frame[loose]):
        sel = np.flatnonzero(loose)[row]
        add("agreement_box", (key,), first, last, b.xyxy[m["b"][sel]],
            f"box differs from reference track {int(a_id[sel])} (IoU {m['iou'][sel]:.2f})",
            iou=float(m["iou"][sel]))
    # Unmatched rows: a box disagreement when the partner has a box there, else missing/extra.
    un_a = np.ones(len(a), dtype=bool)
    un_a[m["a"]] = False
    un_b = np.ones(len(b), dtype=bool)
    un_b[m["b"]] = False
    b_rows = {(int(t), int(f)): i for i, (t, f) in enumerate(zip(b.track_id, b.frame))}
    ia = np.flatnonzero(un_a)
    pb = np.array([partner_of_a.get(int(t), -1) for t in a.track_id[ia]], dtype=np.int64)
    has = np.array([b_rows.get((int(p), int(f)), -1) >= 0 and un_b[b_rows[(int(p), int(f))]]
                    for p, f in zip(pb, a.frame[ia])], dtype=bool)
    box_rows = ia[has]
    for key, first, last, row in _runs(pb[has], a.frame[box_rows]):
        r = box_rows[row]
        rb = b_rows[(key, int(a.frame[r]))]
        add("agreement_box", (key,), first, last, b.xyxy[rb],
            f"box differs from reference track {int(a.track_id[r])} (IoU below {config.match_iou:g})")
        un_b_cover = [b_rows[(key, f)] for f in range(first, last + 1) if (key, f) in b_rows]
        un_b[un_b_cover] = False
    miss = ia[~has]
    for key, first, last, row in _runs(a.track_id[miss], a.frame[miss]):
        r = miss[row]
        partner = partner_of_a.get(key)
        ids = (partner,) if partner is not None else ()
        add("agreement_missing", ids, first, last, a.xyxy[r],
            f"reference track {key} has a box, this annotation has none"
            + ("" if partner is None else f" (it is track {partner} elsewhere)"))
    ib = np.flatnonzero(un_b)
    for key, first, last, row in _runs(b.track_id[ib], b.frame[ib]):
        r = ib[row]
        partner = partner_of_b.get(key)
        add("agreement_extra", (key,), first, last, b.xyxy[r],
            "box not in the reference" + ("" if partner is None else f" (reference track {partner} elsewhere)"))
    return sorted(out, key=Finding.sort_key)


def compute_agreement(
    a: Tracks,
    b: Tracks,
    *,
    num_frames: int = 0,
    config: AgreementConfig = AgreementConfig(),
    frame_base: int = 0,
    names: tuple[str, str] = ("a", "b"),
) -> AgreementResult:
    """Metrics both ways, pass/fail and ranked disagreements of ``b`` against ``a``.

    Raises:
        InputError: negative frames or two boxes of one track on one frame.
    """
    from cvat_extension.core.review import plan_review
    from cvat_extension.metrics.trackeval_adapter import evaluate_tracks

    ref = evaluate_tracks(a, b, num_frames=num_frames, iou_threshold=config.match_iou)
    rev = evaluate_tracks(b, a, num_frames=num_frames, iou_threshold=config.match_iou)
    if config.symmetric:
        mota, idf1 = (ref.mota + rev.mota) / 2, (ref.idf1 + rev.idf1) / 2
    else:
        mota, idf1 = ref.mota, ref.idf1
    passed = mota >= config.min_mota and idf1 >= config.min_idf1
    findings = disagreements(a, b, config, frame_base=frame_base)
    last = max(int(a.frame.max()) if len(a) else 0, int(b.frame.max()) if len(b) else 0)
    review = plan_review(findings, num_frames=max(num_frames, last + 1), budget_frames_fraction=1.0,
                         frame_base=frame_base) if findings else []
    # Ranked by score (kind weight and length), not by the review plan's cost per frame
    # looked at: between two annotators an identity disagreement matters most however many
    # frames it takes to check, and every item is kept (no budget cut).
    review.sort(key=lambda it: (-it.score, it.frames, it.track_ids))
    return AgreementResult(reference=ref, reverse=rev, passed=passed, findings=findings, review=review,
                           config=config, names=names)


def same_sequence_problem(info_a: Any, info_b: Any, name_a: str, name_b: str) -> str | None:
    """Why two annotations cannot be of one sequence (frame size or length differ), or None."""
    if info_a.width and info_b.width and (info_a.width, info_a.height) != (info_b.width, info_b.height):
        return (f"{name_a} is {info_a.width}x{info_a.height} but {name_b} is {info_b.width}x{info_b.height}: "
                "not annotations of one sequence")
    if info_a.num_frames and info_b.num_frames and info_a.num_frames != info_b.num_frames:
        return (f"{name_a} has {info_a.num_frames} frames but {name_b} has {info_b.num_frames}: "
                "not annotations of one sequence")
    return None


