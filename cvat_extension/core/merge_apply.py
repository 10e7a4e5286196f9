"""Applying fragment links: which may be written unattended, the merged tracks, the findings.

``applicable_merges`` keeps the unambiguous links and re-roots chains over them;
``apply_merges`` relabels the pieces as CVAT's own merge would; ``merge_findings`` turns
every link (applied or not) into a ``fragment`` finding for the review plan.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from cvat_extension.core.findings import Finding, frame_label
from cvat_extension.core.merge_rivals import REVIEW_ONLY_FACTOR
from cvat_extension.core.merge_types import Merge
from cvat_extension.core.tracks import Tracks

__all__ = ["applicable_merges", "apply_merges", "merge_findings"]


def applicable_merges(merges: list[Merge] | tuple[Merge, ...], min_score: float) -> list[Merge]:
    """The links that may be applied without a person, chains re-rooted over them.

    A link is applied only when :meth:`Merge.applicable` (unambiguous, scoring at least
    ``min_score``); the rest stay review items. Dropping a link in the middle of a chain
    ``A → B → C`` splits it, so ``into`` is recomputed over the kept links: with ``A → B``
    reviewed, ``B → C`` merges into ``B``, not ``A``.

    >>> ms = [Merge(1, 2, 3, 0.9, 10, 14, 1, reason="track 5 passes close by"),
    ...       Merge(1, 3, 2, 0.9, 20, 23, 2)]
    >>> [(m.into, m.from_) for m in applicable_merges(ms, 0.5)]
    [(2, 3)]
    """
    kept = [m for m in merges if m.applicable(min_score)]
    into_of = {m.from_: m.previous for m in kept}

    def root(tid: int) -> int:
        while tid in into_of:
            tid = into_of[tid]
        return tid

    out = [replace(m, into=root(m.previous)) for m in kept]
    return sorted(out, key=lambda m: (m.into, m.start_frame))


def apply_merges(tracks: Tracks, merges: list[Merge] | tuple[Merge, ...]) -> Tracks:
    """Relabel merged pieces to their chain's id and place CVAT outside rows at the gaps.

    For each merged track: outside rows of the pieces are dropped, an outside row is added on
    the frame after every visible run that a gap follows (CVAT would otherwise interpolate
    across the gap), and the last piece's own trailing outside rows are kept (a track from a
    CVAT export ends with one; a MOT track has none).
    """
    if not merges:
        return tracks
    mapping = {m.from_: m.into for m in merges}
    new_id = tracks.track_id.copy()
    for src, dst in mapping.items():
        new_id[tracks.track_id == src] = dst
    relabelled = tracks.with_columns(track_id=new_id)
    merged_ids = sorted(set(mapping.values()))
    last_piece: dict[int, int] = {}
    for m in sorted(merges, key=lambda m: m.start_frame):
        last_piece[m.into] = m.from_
    keep = np.ones(len(relabelled), dtype=bool)
    added: list[Tracks] = []
    # Each relabelled row's original id (relabelled rows are sorted by (new id, frame)).
    orig_id = tracks.track_id[np.lexsort((tracks.frame, new_id))]
    for tid in merged_ids:
        a, b = np.searchsorted(relabelled.track_id, [tid, tid + 1])
        rows = relabelled[slice(int(a), int(b))]
        vis_mask = ~rows.outside
        vis_frames = rows.frame[vis_mask]
        last_vis = int(vis_frames.max())
        tail_src = last_piece[tid]
        seg_orig = orig_id[a:b]
        # Keep only visible rows, plus the last piece's own trailing outside rows.
        drop = rows.outside & ~((seg_orig == tail_src) & (rows.frame > last_vis))
        keep[a:b] &= ~drop
        # Outside rows after every visible run followed by a gap.
        run_end = np.flatnonzero(np.diff(vis_frames) > 1)
        if len(run_end):
            vis_rows = rows[vis_mask]
            closing = vis_rows[run_end]
            added.append(
                closing.with_columns(
                    frame=closing.frame + 1,
                    outside=np.ones(len(closing), dtype=bool),
                    keyframe=np.ones(len(closing), dtype=bool),
                )
            )
    return Tracks.concat([relabelled[keep], *added]) if added else relabelled[keep]


def merge_findings(
    merges: list[Merge] | tuple[Merge, ...], tracks: Tracks, *, frame_base: int = 0
) -> list[Finding]:
    """Proposed merges as ``fragment`` findings, so that they enter review plans and reports.

    Messages show frames in the user's numbering (``frame_base``, as in
    ``SequenceInfo.frame_base``); ``Finding.frames`` stay internal.

    Each finding names the piece before and the piece after (``track_ids``), spans from
    the last frame of the first to the first frame of the second, and points at the first
    box of the later piece (where a reviewer confirms the identity). A review-only link
    (:attr:`Merge.reason`) scores 0.45 of its motion score and its message names the rivals.
    """
    out = []
    for m in merges:
        rows = tracks.track(m.from_)
        rows = rows[(rows.frame == m.start_frame) & ~rows.outside]
        box = tuple(float(v) for v in rows.xyxy[0]) if len(rows) else None
        chain = "" if m.previous == m.into else f" (chain of track {m.into})"
        # A link with a rival explanation is about as likely someone else's: under half the
        # confidence, so a review-only link never counts as a confident finding.
        score = m.score * (REVIEW_ONLY_FACTOR if m.reason else 1.0)
        why = f" if they are one object; not merged automatically: {m.reason}" if m.reason else ""
        out.append(
            Finding(
                kind="fragment",
                track_ids=(m.previous, m.from_),
                frames=(m.end_frame, m.start_frame),
                box=box,  # type: ignore[arg-type]
                score=float(min(1.0, max(0.0, score))),
                message=(
                    f"track {m.previous} → {m.from_} at frame {frame_label(m.start_frame, frame_base)}: "
                    f"track {m.previous} ends at frame {frame_label(m.end_frame, frame_base)}, "
                    f"track {m.from_} starts "
                    f"{m.gap_frames + 1} frames later where its motion leads{chain}; "
                    f"merge {m.from_} into {m.into}{why}"
                ),
                metrics={"gap_frames": float(m.gap_frames), "score": float(m.score),
                         "rivals": float(len(m.rivals)), "review_only": float(bool(m.reason))},
            )
        )
    return sorted(out, key=Finding.sort_key)
