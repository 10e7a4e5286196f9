"""Fill the frames between human keyframes with SAM2, forward and backward, and flag doubt.

For every track and every pair of consecutive visible keyframes ``k0 < k1`` (with no
``outside`` keyframe between them) the ``k0`` box is propagated forward to ``k1`` and the
``k1`` box backward to ``k0``; :func:`cvat_extension.core.propagation.select_bidirectional`
keeps the better direction per frame and flags frames where the two disagree. Tracks
that share a keyframe pair are propagated together (one image-encoder pass per frame for
all of them). The result is dense tracks (human keyframes untouched, propagated rows
``semi-auto`` with the model's confidence as score), the chosen mask of every visible
propagated frame (:class:`PropagatedMasks`) plus ``propagation_disagreement`` findings for
review.

Masks are kept as CVAT mask ``points`` (run lengths over the mask's own bounding box, then
the box), encoded right after each keyframe pair is chosen: a full-frame bool array exists
only for the pair being processed, never for every frame of the task. That is also the
form CVAT stores and :func:`cvat_sdk.masks.decode_mask` reads, so writing a mask track is a
copy.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from cvat_extension.core.findings import Finding
from cvat_extension.core.keyframes import expand_keyframes
from cvat_extension.core.masks import mask_to_rle, rle_to_mask
from cvat_extension.core.propagation import (
    NONE,
    DirectionalResult,
    PropagationConfig,
    disagreement_findings,
    select_bidirectional,
)
from cvat_extension.core.tracks import SOURCES, Source, Tracks
from cvat_extension.errors import InputError
from cvat_extension.models.sam2_video import ObjectPrompt, Sam2VideoPropagator

logger = logging.getLogger(__name__)

__all__ = ["KeyframePropagation", "PropagatedMasks", "propagate_keyframes"]

#: Above this many mask pixels per direction and object, compare boxes instead of masks.
MAX_MASK_PIXELS = 64_000_000


@dataclass(frozen=True)
class PropagatedMasks:
    """The chosen mask per (track, frame), as CVAT mask points (cropped RLE + box).

    Attributes:
        width: frame width the masks belong to (0 when there are none).
        height: frame height.
        rle: ``{track_id: {frame: int32 array [runs..., x1, y1, x2, y2]}}``, frames sorted;
            only frames where a direction was chosen (the object is visible). Human
            keyframes ``k0``/``k1`` carry SAM2's mask of the human box.
    """

    width: int = 0
    height: int = 0
    rle: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)

    def frames(self, track_id: int) -> list[int]:
        """Frames with a mask for ``track_id``, ascending."""
        return sorted(self.rle.get(int(track_id), {}))

    def points(self, track_id: int, frame: int) -> list[int]:
        """CVAT ``points`` of the mask (``[runs..., x1, y1, x2, y2]``).

        Raises:
            KeyError: no mask for that track and frame.
        """
        return [int(v) for v in self.rle[int(track_id)][int(frame)]]

    def decode(self, track_id: int, frame: int) -> np.ndarray:
        """The ``(height, width)`` bool mask."""
        return rle_to_mask(self.rle[int(track_id)][int(frame)].tolist(), self.width, self.height)

    @property
    def count(self) -> int:
        """Number of masks held."""
        return sum(len(v) for v in self.rle.values())

    @property
    def nbytes(self) -> int:
        """Bytes of encoded mask data held (run arrays only)."""
        return sum(a.nbytes for v in self.rle.values() for a in v.values())


@dataclass(frozen=True)
class KeyframePropagation:
    """What :func:`propagate_keyframes` produced.

    Attributes:
        tracks: dense tracks: human keyframes, propagated rows, and the CVAT expansion of
            everything that was not propagated.
        findings: ``propagation_disagreement`` findings, sorted by (frames, track).
        frames_propagated: track-frames filled by the model (keyframes excluded).
        frames_flagged: of those, how many were flagged.
        segments: keyframe pairs propagated.
        masks: the chosen masks (empty where the propagator gave none or a pair was too
            large to compare masks, see ``MAX_MASK_PIXELS``).
    """

    tracks: Tracks
    findings: list[Finding]
    frames_propagated: int
    frames_flagged: int
    segments: int
    masks: PropagatedMasks = field(default_factory=PropagatedMasks)

    @property
    def flagged_share(self) -> float:
        """Share of propagated frames a human should check (0 when nothing was propagated)."""
        return self.frames_flagged / self.frames_propagated if self.frames_propagated else 0.0


class _Clip(Sequence[np.ndarray]):
    """Frames ``k0..k1`` of a frame source as a lazy sequence (decoded when SAM2 asks)."""

    def __init__(self, frames: Callable[[int], np.ndarray], k0: int, k1: int) -> None:
        self._frames, self._k0, self._n = frames, k0, k1 - k0 + 1

    def __len__(self) -> int:
        return self._n

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        if not 0 <= i < self._n:
            raise IndexError(i)
        return self._frames(self._k0 + i)


def _segments(keyframes: Tracks) -> dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]]:
    """``(k0, k1) -> [(track_id, box at k0, box at k1)]`` for every fillable keyframe pair."""
    pairs: dict[tuple[int, int], list[tuple[int, np.ndarray, np.ndarray]]] = defaultdict(list)
    for tid, t in keyframes.iter_tracks():
        # consecutive stored keyframes, both visible: an outside keyframe breaks the pair
        vis = ~t.outside
        ok = vis[:-1] & vis[1:] & (np.diff(t.frame) > 1)
        for i in np.flatnonzero(ok):
            pairs[(int(t.frame[i]), int(t.frame[i + 1]))].append((int(tid), t.xyxy[i], t.xyxy[i + 1]))
    return dict(sorted(pairs.items()))


def propagate_keyframes(
    keyframes: Tracks,
    frames: Callable[[int], np.ndarray],
    propagator: Sam2VideoPropagator,
    *,
    stop_frame: int,
    config: PropagationConfig | None = None,
    progress: Callable[[int, int], None] | None = None,
    frame_base: int = 0,
) -> KeyframePropagation:
    """Propagate every track between its keyframes; see the module docstring.

    Args:
        keyframes: the human keyframes (CVAT stored shapes), already filtered to the tracks
            to propagate.
        frames: a :class:`~cvat_extension.core.frames.FrameSource` (0-based frame → RGB).
        propagator: the SAM2 propagator.
        stop_frame: last frame of the task, for the CVAT expansion of the output.
        config: agreement threshold and selection weights.
        progress: called with ``(segments done, segments total)``.
        frame_base: added to frames in finding messages (1 when the user's file is MOT).

    Raises:
        InputError: rotated boxes (SAM2 takes axis-aligned box prompts), or a frame source
            error.
    """
    cfg = config or PropagationConfig()
    if len(keyframes) and np.any(keyframes.rotation != 0):
        raise InputError("rotated rectangles cannot be propagated with SAM2 box prompts")
    dense = expand_keyframes(keyframes, stop_frame=stop_frame)
    cols = {
        "xyxy": dense.xyxy.copy(),
        "outside": dense.outside.copy(),
        "keyframe": dense.keyframe.copy(),
        "source": dense.source.copy(),
        "score": dense.score.copy(),
    }
    semi_auto = SOURCES.index(Source.SEMI_AUTO)
    findings: list[Finding] = []
    n_prop = n_flag = 0
    rle: dict[int, dict[int, np.ndarray]] = defaultdict(dict)
    size = (0, 0)
    segs = _segments(keyframes)
    for done, ((k0, k1), objs) in enumerate(segs.items()):
        clip = _Clip(frames, k0, k1)
        fwd = propagator.propagate(clip, 0, [ObjectPrompt(tid, box_xyxy=tuple(b0)) for tid, b0, _ in objs])
        bwd = propagator.propagate(
            clip, len(clip) - 1, [ObjectPrompt(tid, box_xyxy=tuple(b1)) for tid, _, b1 in objs], reverse=True
        )
        for tid, _, _ in objs:
            f, b = fwd[tid].sorted(), bwd[tid].sorted()
            keep_masks = f.masks.size <= MAX_MASK_PIXELS
            sel = select_bidirectional(
                _directional(f, k0, keep_masks), _directional(b, k0, keep_masks), k0, k1, config=cfg
            )
            rows = np.flatnonzero((dense.track_id == tid) & (dense.frame > k0) & (dense.frame < k1))
            inner = slice(1, -1)
            # expand_keyframes produced one row per frame between two visible keyframes
            assert len(rows) == k1 - k0 - 1, "dense rows cover the keyframe gap"
            chosen = sel.choice[inner] != NONE
            cols["xyxy"][rows[chosen]] = sel.xyxy[inner][chosen]
            cols["outside"][rows] = ~chosen
            cols["keyframe"][rows] = False
            cols["source"][rows] = semi_auto
            cols["score"][rows] = sel.confidence[inner].astype(np.float32)
            if sel.masks is not None:
                size = sel.masks.shape[1:]
                _keep_masks(rle[tid], sel.frames, sel.masks, sel.choice != NONE)
            findings.extend(disagreement_findings(sel, tid, frame_base=frame_base))
            n_prop += k1 - k0 - 1
            n_flag += int(sel.disagree[inner].sum())
        if progress is not None:
            progress(done + 1, len(segs))
    out = Tracks.from_columns(
        frame=dense.frame,
        track_id=dense.track_id,
        label=dense.label,
        occluded=dense.occluded,
        visibility=dense.visibility,
        rotation=dense.rotation,
        labels=dense.labels,
        data=dict(dense.data),
        **cols,
    )
    findings.sort(key=Finding.sort_key)
    logger.info("propagated %d track-frames over %d keyframe pairs, %d flagged", n_prop, len(segs), n_flag)
    masks = PropagatedMasks(int(size[1]), int(size[0]), {t: dict(sorted(m.items())) for t, m in rle.items() if m})
    return KeyframePropagation(out, findings, n_prop, n_flag, len(segs), masks)


def _keep_masks(into: dict[int, np.ndarray], frames: np.ndarray, masks: np.ndarray, visible: np.ndarray) -> None:
    """Encode the visible frames' masks as CVAT points into ``into`` (frame → int32 array).

    A frame shared by two keyframe pairs (the middle keyframe) keeps the later pair's mask:
    both are SAM2's mask of the same human box.
    """
    for i in np.flatnonzero(visible & masks.any(axis=(1, 2))):
        into[int(frames[i])] = np.asarray(mask_to_rle(masks[i]), dtype=np.int32)


def _directional(obj: object, k0: int, keep_masks: bool) -> DirectionalResult:
    from cvat_extension.models.sam2_video import PropagatedObject

    assert isinstance(obj, PropagatedObject)  # internal: built by propagate() above
    frames = obj.frames + k0
    if keep_masks:
        return DirectionalResult.from_masks(frames, obj.masks, obj.confidence)
    return DirectionalResult.build(frames, obj.xyxy, obj.confidence)
