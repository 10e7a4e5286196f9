"""Choose between forward and backward propagation per frame and flag where they disagree.

VASR-style keyframe propagation: a human annotated the object on keyframes ``k0`` and
``k1``. A video segmenter (SAM2) propagates the ``k0`` shape forward and the ``k1`` shape
backward over the frames in between. Where both directions agree the result is
trustworthy; where they disagree one of them drifted (or the object was occluded), and
a human should look. This module is pure numpy: the model runs in ``models/sam2_video``,
the adapters feed its masks or boxes here.

The choice per frame weights each direction's confidence by how close the frame is to
that direction's keyframe, because propagation errors accumulate with distance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.geometry import iou_xyxy_pairwise
from cvat_extension.core.masks import mask_iou_pairwise, masks_to_xyxy
from cvat_extension.errors import ConfigError, InputError

__all__ = [
    "BidirectionalSelection",
    "DirectionalResult",
    "PropagationConfig",
    "disagreement_findings",
    "select_bidirectional",
]

FORWARD = 0
BACKWARD = 1
NONE = -1  # neither direction sees the object: the frame is "outside"

FINDING_KIND = "propagation_disagreement"


@dataclass(frozen=True, slots=True)
class PropagationConfig:
    """How forward and backward propagation results are compared and chosen.

    Attributes:
        min_agreement_iou: frames where forward and backward overlap less than this are
            flagged for review. Raising it flags more frames (more review work, fewer missed
            drifts); lowering it trusts the model more.
        min_confidence: a direction whose confidence is below this counts as "object not
            found" on that frame. Raising it turns weak detections into losses.
        distance_weight: how much a direction's confidence is discounted with distance from
            its keyframe, 0 (ignore distance) .. 1 (confidence falls to 0 at the other
            keyframe). Raising it prefers the nearer keyframe more strongly.
        use_masks: compare masks (when both results carry them) instead of boxes; mask IoU
            is stricter and sees shape drift that boxes hide.
    """

    min_agreement_iou: float = 0.5
    min_confidence: float = 0.5
    distance_weight: float = 0.5
    use_masks: bool = True

    def __post_init__(self) -> None:
        for name in ("min_agreement_iou", "min_confidence", "distance_weight"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ConfigError(f"PropagationConfig.{name} must be in 0..1, got {value}")


@dataclass(frozen=True, slots=True)
class DirectionalResult:
    """One direction's propagation over a frame range.

    Attributes:
        frames: ``(n,)`` int64 internal frame numbers, strictly increasing.
        xyxy: ``(n, 4)`` float64 pixel-edge boxes; NaN rows where the object is lost.
        confidence: ``(n,)`` float64 in 0..1 (SAM2: sigmoid of the object-score logit).
        masks: optional ``(n, H, W)`` bool masks aligned with ``frames``.
    """

    frames: np.ndarray
    xyxy: np.ndarray
    confidence: np.ndarray
    masks: np.ndarray | None = None

    @classmethod
    def from_masks(
        cls, frames: npt.ArrayLike, masks: npt.ArrayLike, confidence: npt.ArrayLike
    ) -> DirectionalResult:
        """Build from masks; boxes are derived, empty masks become lost frames."""
        m = np.asarray(masks, dtype=bool)
        return cls.build(frames, masks_to_xyxy(m), confidence, masks=m)

    @classmethod
    def build(
        cls,
        frames: npt.ArrayLike,
        xyxy: npt.ArrayLike,
        confidence: npt.ArrayLike,
        *,
        masks: npt.ArrayLike | None = None,
    ) -> DirectionalResult:
        """Validate and normalise dtypes.

        Raises:
            InputError: misaligned lengths, bad shapes, unsorted frames.
        """
        f = np.asarray(frames, dtype=np.int64).reshape(-1)
        b = np.asarray(xyxy, dtype=np.float64).reshape(-1, 4)
        c = np.asarray(confidence, dtype=np.float64).reshape(-1)
        m = None if masks is None else np.asarray(masks, dtype=bool)
        if not (len(f) == len(b) == len(c)) or (m is not None and (m.ndim != 3 or len(m) != len(f))):
            raise InputError(
                f"propagation result columns disagree: {len(f)} frames, {len(b)} boxes, "
                f"{len(c)} confidences, masks {None if m is None else m.shape}"
            )
        if len(f) > 1 and np.any(np.diff(f) <= 0):
            raise InputError("propagation result frames must be strictly increasing")
        return cls(frames=f, xyxy=b, confidence=np.clip(np.nan_to_num(c), 0.0, 1.0), masks=m)


@dataclass(frozen=True, slots=True)
class BidirectionalSelection:
    """The per-frame choice between forward and backward results.

    Attributes:
        frames: ``(n,)`` frames ``k0..k1`` inclusive.
        xyxy: ``(n, 4)`` chosen boxes, NaN where the object is judged not visible.
        masks: ``(n, H, W)`` chosen masks when both inputs had masks, else None.
        confidence: ``(n,)`` confidence of the chosen direction (0 where not visible).
        choice: ``(n,)`` int8: 0 forward, 1 backward, -1 neither.
        agreement_iou: ``(n,)`` IoU of forward vs backward (1 where both say "absent").
        disagree: ``(n,)`` bool, frames to send to review.
    """

    frames: np.ndarray
    xyxy: np.ndarray
    masks: np.ndarray | None
    confidence: np.ndarray
    choice: np.ndarray
    agreement_iou: np.ndarray
    disagree: np.ndarray

    @property
    def flagged_share(self) -> float:
        """Share of the propagated frames (keyframes excluded) flagged for review."""
        inner = self.disagree[1:-1]
        return float(inner.mean()) if len(inner) else 0.0


def _align(result: DirectionalResult, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Boxes, confidences and masks of ``result`` on ``frames``; missing frames are lost."""
    idx = np.searchsorted(result.frames, frames)
    idx_c = np.clip(idx, 0, max(len(result.frames) - 1, 0))
    hit = (idx < len(result.frames)) & (result.frames[idx_c] == frames) if len(result.frames) else np.zeros(len(frames), bool)
    boxes = np.full((len(frames), 4), np.nan)
    conf = np.zeros(len(frames))
    masks = None
    if len(result.frames):
        boxes[hit] = result.xyxy[idx_c[hit]]
        conf[hit] = result.confidence[idx_c[hit]]
        if result.masks is not None:
            masks = np.zeros((len(frames), *result.masks.shape[1:]), dtype=bool)
            masks[hit] = result.masks[idx_c[hit]]
    return boxes, conf, masks


def select_bidirectional(
    forward: DirectionalResult,
    backward: DirectionalResult,
    k0: int,
    k1: int,
    *,
    config: PropagationConfig | None = None,
) -> BidirectionalSelection:
    """Choose forward or backward per frame in ``k0..k1`` and flag disagreements.

    Per frame: a direction "sees" the object when its box is finite and its confidence
    reaches ``min_confidence``. Where both see it, the one with the higher
    distance-discounted confidence is chosen, and the frame is flagged when their IoU is
    below ``min_agreement_iou``. Where only one sees it, that one is chosen and the frame is
    flagged (one direction lost the object: occlusion or drift, a human decides). Where
    neither sees it, the object is taken as not visible, without a flag. Frames missing
    from a result count as "not seen" by that direction. On ``k0`` and ``k1`` (human
    keyframes) the direction starting there is kept and nothing is flagged.

    Raises:
        InputError: ``k1 < k0`` or masks of different sizes.
    """
    cfg = config or PropagationConfig()
    if k1 < k0:
        raise InputError(f"keyframes must be ordered, got k0={k0} > k1={k1}")
    frames = np.arange(k0, k1 + 1, dtype=np.int64)
    fb, fc, fm = _align(forward, frames)
    bb, bc, bm = _align(backward, frames)
    use_masks = cfg.use_masks and fm is not None and bm is not None
    if use_masks and fm.shape[1:] != bm.shape[1:]:  # type: ignore[union-attr]
        raise InputError(f"forward masks {fm.shape[1:]} and backward masks {bm.shape[1:]} differ")  # type: ignore[union-attr]

    f_seen = np.isfinite(fb).all(axis=1) & (fc >= cfg.min_confidence)
    b_seen = np.isfinite(bb).all(axis=1) & (bc >= cfg.min_confidence)

    span = max(k1 - k0, 1)
    dist_f = (frames - k0) / span
    dist_b = (k1 - frames) / span
    score_f = np.where(f_seen, fc * (1.0 - cfg.distance_weight * dist_f), -1.0)
    score_b = np.where(b_seen, bc * (1.0 - cfg.distance_weight * dist_b), -1.0)

    choice = np.where(score_b > score_f, BACKWARD, FORWARD).astype(np.int8)
    choice[~f_seen & ~b_seen] = NONE
    # The keyframes themselves are human shapes: each direction starts from its own.
    choice[0] = FORWARD if f_seen[0] else NONE
    if k1 > k0:
        choice[-1] = BACKWARD if b_seen[-1] else NONE

    if use_masks:
        fm_seen = fm & f_seen[:, None, None]
        bm_seen = bm & b_seen[:, None, None]
        iou = mask_iou_pairwise(fm_seen, bm_seen)
    else:
        iou = iou_xyxy_pairwise(np.nan_to_num(fb), np.nan_to_num(bb))
    iou = np.where(f_seen & b_seen, iou, np.where(f_seen | b_seen, 0.0, 1.0))
    disagree = iou < cfg.min_agreement_iou
    disagree[[0, -1]] = False  # never send a human keyframe back to review

    pick_b = choice == BACKWARD
    xyxy = np.where(pick_b[:, None], bb, fb)
    xyxy[choice == NONE] = np.nan
    conf = np.where(pick_b, bc, fc)
    conf[choice == NONE] = 0.0
    masks = None
    if fm is not None and bm is not None:
        masks = np.where(pick_b[:, None, None], bm, fm)
        masks[choice == NONE] = False
    return BidirectionalSelection(
        frames=frames,
        xyxy=xyxy,
        masks=masks,
        confidence=conf,
        choice=choice,
        agreement_iou=iou,
        disagree=disagree,
    )


def disagreement_findings(
    selection: BidirectionalSelection, track_id: int, *, frame_base: int = 0
) -> list[Finding]:
    """One :class:`Finding` per run of consecutive flagged frames, sorted by frame.

    The finding's box is the chosen box on its first frame (None when neither direction
    saw the object there); its score is ``1 - min IoU`` over the run, so a run where the
    directions do not overlap at all ranks first. Messages number frames as the user's
    file does (``frame_base``, 1 for MOT); ``Finding.frames`` stay internal.
    """
    d = selection.disagree
    if not d.any():
        return []
    edges = np.diff(np.concatenate([[0], d.astype(np.int8), [0]]))
    starts = np.flatnonzero(edges == 1)
    ends = np.flatnonzero(edges == -1) - 1
    out: list[Finding] = []
    for s, e in zip(starts.tolist(), ends.tolist()):
        run_iou = selection.agreement_iou[s : e + 1]
        worst = float(run_iou.min())
        box_row = selection.xyxy[s]
        box = None if not np.isfinite(box_row).all() else tuple(float(v) for v in box_row)
        f0, f1 = int(selection.frames[s]), int(selection.frames[e])
        a, b = frame_label(f0, frame_base), frame_label(f1, frame_base)
        where = f"frame {a}" if f0 == f1 else f"frames {a}-{b}"
        out.append(
            Finding(
                kind=FINDING_KIND,
                track_ids=(int(track_id),),
                frames=(f0, f1),
                box=box,  # type: ignore[arg-type]
                score=float(np.clip(1.0 - worst, 0.0, 1.0)),
                message=(
                    f"track {track_id} at {where}: forward and backward propagation disagree "
                    f"(min IoU {worst:.2f}); check the shape"
                ),
                metrics={
                    "min_iou": worst,
                    "mean_iou": float(run_iou.mean()),
                    "frames_flagged": float(e - s + 1),
                },
            )
        )
    return out
