"""Review plan: turn findings into a short, ranked list of track-level review items.

Checks may raise several findings about one mistake (a swap shows up as an IoU drop, a jump
and an appearance change on the same frames). Reviewers should decide once per object and
stretch of frames, not once per finding or per frame: as in SPAM-style review, the unit of
work is a *track decision* ("these frames of track 12 belong to track 31", "delete ghost
track 7"), which a reviewer makes by looking at a few frames.

So :func:`plan_review`

1. joins findings that share a track and lie within ``join_gap_frames`` of each other
   (transitively: a swap joins both tracks' items);
2. scores each item by combining the best score of each distinct check kind (noisy-or):
   independent checks agreeing is stronger evidence than one check firing twice;
3. ranks items by *expected errors per frame looked at* (score divided by the frames the
   item costs) and keeps them while the frames a reviewer has to look at stay within the
   budget (default 3 % of the sequence's frames): the budget buys the most errors found,
   not the most alarming single items. :func:`error_mass` tells how much of the estimated
   error mass the kept items hold.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Sequence

from cvat_extension.core.findings import Finding, ReviewItem, frame_label
from cvat_extension.errors import ConfigError

__all__ = ["error_mass", "group_findings", "item_cost", "plan_review"]


class _UnionFind:
    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _item(findings: Sequence[Finding], frame_base: int) -> ReviewItem:
    fs = tuple(sorted(findings, key=Finding.sort_key))
    top = max(fs, key=lambda f: (f.score, -f.frames[0]))
    best: dict[str, float] = {}
    for f in fs:
        best[f.kind] = max(best.get(f.kind, 0.0), f.score)
    score = 1.0 - math.prod(1.0 - s for s in best.values())
    tracks = tuple(sorted({t for f in fs for t in f.track_ids}))
    first = min(f.frames[0] for f in fs)
    last = max(f.frames[1] for f in fs)
    kinds = tuple(sorted(best))
    who = ("track " if len(tracks) == 1 else "tracks ") + ", ".join(map(str, tracks))
    a, b = frame_label(first, frame_base), frame_label(last, frame_base)
    where = f"frame {a}" if first == last else f"frames {a}-{b}"
    what = ", ".join(f"{k} ({best[k]:.2f})" for k in sorted(best, key=lambda k: -best[k]))
    return ReviewItem(
        track_ids=tracks,
        frames=(first, last),
        frame=top.frames[0],
        box=top.box,
        score=min(1.0, max(0.0, score)),
        kinds=kinds,
        findings=fs,
        message=f"{who if tracks else 'no track'} at {where}: {what}",
    )


def group_findings(
    findings: Iterable[Finding], *, join_gap_frames: int = 15, frame_base: int = 0
) -> list[ReviewItem]:
    """Group findings into review items (no ranking cut), highest score first.

    Item messages show frames in the user's numbering (``frame_base``, as in
    ``SequenceInfo.frame_base``; 0 is CVAT's); item and finding frames stay internal.

    Findings are joined when they share a track and their frame ranges are at most
    ``join_gap_frames`` apart; findings without a track (e.g. a missing object) are joined
    only with each other by the same rule.
    """
    fs = list(findings)
    if not fs:
        return []
    uf = _UnionFind(len(fs))
    by_track: dict[int | None, list[int]] = defaultdict(list)
    for i, f in enumerate(fs):
        for t in f.track_ids or (None,):
            by_track[t].append(i)
    for members in by_track.values():
        members.sort(key=lambda i: fs[i].frames)
        cur, cur_end = members[0], fs[members[0]].frames[1]
        for i in members[1:]:
            if fs[i].frames[0] <= cur_end + join_gap_frames:
                uf.union(cur, i)
                cur_end = max(cur_end, fs[i].frames[1])
            else:
                cur, cur_end = i, fs[i].frames[1]
    groups: dict[int, list[Finding]] = defaultdict(list)
    for i, f in enumerate(fs):
        groups[uf.find(i)].append(f)
    items = [_item(g, frame_base) for g in groups.values()]
    items.sort(key=lambda it: (-it.score, it.frames, it.track_ids))
    return items


def item_cost(item: ReviewItem, frames_per_item: int = 3) -> int:
    """Frames a reviewer looks at for ``item``: its span, at most ``frames_per_item``."""
    return min(item.frames[1] - item.frames[0] + 1, frames_per_item)


def error_mass(items: Sequence[ReviewItem]) -> float:
    """Estimated number of real errors behind ``items``: the sum of their scores.

    Item scores are confidences that the item shows a real error, so their sum estimates
    how many errors a reviewer fixes by working through them. Comparing the mass of the
    planned items with that of every item tells how much of the estimated errors the
    budget covers.

    >>> round(error_mass([]), 2)
    0.0
    """
    return float(sum(it.score for it in items))


def plan_review(
    findings: Iterable[Finding],
    *,
    num_frames: int,
    budget_frames_fraction: float = 0.03,
    frames_per_item: int = 3,
    join_gap_frames: int = 15,
    min_score: float = 0.0,
    frame_base: int = 0,
) -> list[ReviewItem]:
    """Ranked review items that fit the review budget.

    Args:
        findings: findings of any checks, internal frames.
        num_frames: frames in the sequence; 0 when unknown (then the last finding's frame
            bounds it).
        budget_frames_fraction: share of the sequence's frames a reviewer is asked to look
            at. An item costs ``min(its span, frames_per_item)`` frames: a track-level
            decision needs its first, worst and last frame, not every frame.
        frames_per_item: frames a reviewer looks at per item (see above).
        join_gap_frames: findings on a shared track this close are one item.
        min_score: items scoring below this are dropped whatever the budget.
        frame_base: the user's numbering for item messages (``SequenceInfo.frame_base``).

    Returns:
        Items, most expected errors per frame looked at first (see the module docstring).
        At least one item is kept when any scores above ``min_score``, even if the budget
        is smaller than one item.

    Raises:
        ConfigError: a parameter out of range.

    >>> f = [Finding("ghost", (3,), (10, 90), (0, 0, 5, 5), 0.9, "track 3 ..."),
    ...      Finding("box_jump", (3,), (95, 95), (1, 1, 6, 6), 0.5, "track 3 ..."),
    ...      Finding("box_jump", (8,), (400, 400), None, 0.3, "track 8 ...")]
    >>> [(i.track_ids, i.frames, round(i.score, 2)) for i in plan_review(f, num_frames=200)]
    [((3,), (10, 95), 0.95), ((8,), (400, 400), 0.3)]
    """
    if not 0 < budget_frames_fraction <= 1:
        raise ConfigError(
            f"budget_frames_fraction must be in (0, 1], got {budget_frames_fraction}"
        )
    if frames_per_item < 1:
        raise ConfigError(f"frames_per_item must be >= 1, got {frames_per_item}")
    if join_gap_frames < 0:
        raise ConfigError(f"join_gap_frames must be >= 0, got {join_gap_frames}")
    if not 0 <= min_score <= 1:
        raise ConfigError(f"min_score must be in 0..1, got {min_score}")
    grouped = group_findings(findings, join_gap_frames=join_gap_frames, frame_base=frame_base)
    items = [it for it in grouped if it.score >= min_score]
    if not items:
        return []
    if num_frames <= 0:
        num_frames = max(it.frames[1] for it in items) + 1
    budget = max(frames_per_item, int(math.floor(budget_frames_fraction * num_frames)))
    kept: list[ReviewItem] = []
    used = 0
    # Densest first: expected errors (the item's score) per frame the reviewer looks at.
    items.sort(key=lambda it: (-it.score / item_cost(it, frames_per_item), -it.score, it.frames))
    for it in items:
        cost = item_cost(it, frames_per_item)
        if used + cost > budget:
            continue
        kept.append(it)
        used += cost
    return kept
