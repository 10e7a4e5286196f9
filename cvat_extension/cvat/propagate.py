"""``cvat-track propagate TASK_ID``: SAM2 keyframe propagation written back into a CVAT task.

One run:

0. finish any write to the task's jobs that a killed run left ``planned`` (journal);
1. read the task once (:func:`~cvat_extension.cvat.annotations.read_task`) and find the
   **human keyframes** of each object: the stored keyframes minus those CVAT made when it
   cut the track at a job boundary (they lie exactly on the interpolation of their
   neighbours) and minus those an earlier propagate run wrote (state store: the
   ``propagated_keyframes`` table, and the job's write journal and backup);
2. propagate every gap between consecutive human keyframes forward and backward
   (:func:`~cvat_extension.models.keyframe_propagation.propagate_keyframes`), except gaps an
   earlier run already filled whose two human keyframes are unchanged since;
3. per job, replace the shapes strictly inside the propagated gaps by thinned keyframes of
   the propagated boxes. Human keyframes are never touched; CVAT's cut keyframes at job
   boundaries take the propagated box. The writes go through the sync loop's safe path
   (``writeback``: backup, re-check that nobody edited the job, journaled PATCH ``update``;
   with ``--write masks`` also a mask track per object, see below);
   every job is re-checked before the first write, so a concurrent edit anywhere aborts
   the run with nothing written;
4. with ``push_review``, the frames where forward and backward disagree become CVAT issues
   (``review_push``: idempotent fingerprints) and their jobs move per ``sync.review``.

A second run over an unchanged task propagates nothing and writes nothing. Which keyframes
we wrote is known from the ``propagated_keyframes`` table of the state store (job, track,
frame, box hash; recorded with each write, together with the human keyframes at the ends of
the filled gaps) and, for older stores, from the job's latest write journal. The table
survives ``cvat-track sync`` writing to the job later (its journal replaces ours), so our
keyframes never turn into "human" ones.

``--write masks`` writes the boxes as above and, per object and job, a **mask track**: same
label, the box track's ``group`` (a new group when it had none) so reviewers see that they
belong together, one keyframe per frame the object is visible on (CVAT does not interpolate
masks, ``cvat-interfaces.md`` §3.11) in CVAT's mask points ``[runs..., x1, y1, x2, y2]``,
an ``outside`` keyframe after each run that ends inside the job. Like CVAT's own cut, a mask
track crossing a job boundary is one piece per job. New mask tracks go through PATCH
``create`` on the same safe path (re-read and compare, backup, journal); a create whose
answer is lost is never sent again blindly: the job is re-read and the track looked for
first (:func:`_create_state`). A later run finds the mask track by (label, group, mask type)
and updates it. Gaps an earlier run filled are not propagated again, so running ``--write
boxes`` first and ``--write masks`` later adds no masks to those gaps.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from cvat_extension.core.findings import ReviewItem
from cvat_extension.core.propagation import PropagationConfig
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import ConcurrentEditError, InputError

__all__ = [
    "PropagateSummary",
    "TaskPropagation",
    "box_hash",
    "check_write_mode",
    "human_keyframes",
    "mask_track_shapes",
    "propagate_task",
    "run_propagate",
    "select_tracks",
]

logger = logging.getLogger(__name__)

#: Run ids of our write journals start with this, so a later run can tell them apart.
RUN_PREFIX = "propagate-"
#: Two coordinates closer than this are the same point (JSON float round trips).
_EPS = 1e-6


def select_tracks(keyframes: Tracks, *, track_ids: Sequence[int] = (), labels: Sequence[str] = ()) -> Tracks:
    """The keyframes of the requested tracks and labels (all when both are empty).

    Raises:
        InputError: a requested track id or label that the annotations do not have.
    """
    keep = np.ones(len(keyframes), dtype=bool)
    if track_ids:
        missing = sorted(set(track_ids) - set(keyframes.ids.tolist()))
        if missing:
            raise InputError(f"--track: no track with id {', '.join(map(str, missing))}")
        keep &= np.isin(keyframes.track_id, list(track_ids))
    if labels:
        unknown = sorted(set(labels) - set(keyframes.labels))
        if unknown:
            raise InputError(f"--labels: unknown label {', '.join(unknown)}; known: {', '.join(keyframes.labels)}")
        codes = [keyframes.labels.index(name) for name in labels]
        keep &= np.isin(keyframes.label, codes)
    return keyframes[keep]


# ---------------------------------------------------------------------- what is human
def box_hash(points: Sequence[float]) -> str:
    """Short stable hash of a shape's points (rounded to 1e-4 px), for the state store.

    >>> box_hash([1, 2, 3, 4]) == box_hash([1.00000001, 2, 3, 4])
    True
    """
    text = ",".join(f"{round(float(v), 4):.4f}" for v in points)
    return hashlib.sha1(text.encode()).hexdigest()[:16]


@dataclass
class _Written:
    """What earlier propagate runs wrote, from their journals, backups and the store's table.

    ``ours[piece][frame]`` are the points of keyframes we added; ``base[piece][frame]`` the
    points of every keyframe the piece had before our write (the human ones), both from the
    job's latest journal when it is ours. ``ours_hashes`` and ``anchor_hashes`` are
    ``(frame, box hash)`` of the keyframes we wrote and of the human keyframes at the ends
    of the gaps we filled, from the ``propagated_keyframes`` table: they survive a later
    ``sync`` write that replaces the journal.
    """

    ours: dict[int, dict[int, tuple[float, ...]]] = field(default_factory=dict)
    base: dict[int, dict[int, tuple[float, ...]]] = field(default_factory=dict)
    ours_hashes: set[tuple[int, str]] = field(default_factory=set)
    anchor_hashes: set[tuple[int, str]] = field(default_factory=set)


def _points(shape: Mapping[str, Any]) -> tuple[float, ...]:
    return tuple(float(v) for v in shape.get("points") or ())


def _same(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    return a is not None and b is not None and len(a) == len(b) and all(abs(x - y) <= _EPS for x, y in zip(a, b))


def _written(store: Any, job_ids: Sequence[int]) -> _Written:
    from cvat_extension.cvat.backup import load_backup

    out = _Written()
    for job_id in job_ids:
        for row in store.propagated(job_id) if hasattr(store, "propagated") else ():
            (out.anchor_hashes if row.kind == "anchor" else out.ours_hashes).add((int(row.frame), row.box_hash))
        journal = store.journal(job_id)
        if journal is None or journal.status != "done" or not journal.run_id.startswith(RUN_PREFIX):
            continue  # never propagated, or another tool wrote last: the table above still knows
        try:
            base_doc = load_backup(journal.backup_path)["annotations"]
        except InputError as exc:
            logger.warning("job %d: backup of the last propagate run unreadable (%s); "
                           "relying on the propagated-keyframes table", job_id, exc)
            continue
        base = {int(t["id"]): {int(s["frame"]): _points(s) for s in t["shapes"]}
                for t in base_doc.get("tracks") or [] if t.get("id") is not None}
        for op in journal.ops:
            if op.get("action") != "update":
                continue
            for t in op["payload"].get("tracks") or []:
                if any(sh.get("type") == "mask" for sh in t.get("shapes") or []):
                    continue  # our mask tracks: not keyframes of a box track
                pid = int(t["id"])
                before = base.get(pid, {})
                out.base[pid] = before
                mine = out.ours.setdefault(pid, {})
                for s in t["shapes"]:
                    f = int(s["frame"])
                    if not _same(before.get(f), _points(s)):
                        mine[f] = _points(s)
    return out


def _cut_keyframes(keys: Tracks, boundary: set[int]) -> np.ndarray:
    """Rows CVAT made when it cut a track at a job boundary (not drawn by a person).

    Such a keyframe sits on a job's first or last frame and equals the interpolation of the
    neighbouring keyframes (which are not on a boundary).
    """
    cut = np.zeros(len(keys), dtype=bool)
    if not boundary:
        return cut
    on_b = np.isin(keys.frame, sorted(boundary))
    for start, stop in zip(keys.track_starts[:-1].tolist(), keys.track_starts[1:].tolist()):
        rows = np.arange(start, stop)
        anchors = rows[~on_b[rows]]
        for r in rows[on_b[rows]].tolist():
            f = int(keys.frame[r])
            prev = anchors[keys.frame[anchors] < f]
            nxt = anchors[keys.frame[anchors] > f]
            if not len(prev) or not len(nxt) or keys.outside[prev[-1]] or keys.outside[r]:
                continue
            p, n = int(prev[-1]), int(nxt[0])
            t = (f - keys.frame[p]) / (keys.frame[n] - keys.frame[p])
            expect = keys.xyxy[p] + (keys.xyxy[n] - keys.xyxy[p]) * t
            cut[r] = bool(np.abs(expect - keys.xyxy[r]).max() <= 1e-3)
    return cut


def _by_object(snap: Any, per_piece: Mapping[int, Mapping[int, tuple[float, ...]]]) -> dict[tuple[int, int], list[tuple[float, ...]]]:
    """``(stitched id, frame) -> [points]`` from a per-piece ``{piece: {frame: points}}`` map."""
    out: dict[tuple[int, int], list[tuple[float, ...]]] = {}
    for piece, frames in per_piece.items():
        sid = snap.piece_to_stitched.get(piece)
        if sid is None:
            continue  # the piece is gone (deleted since)
        for f, pts in frames.items():
            out.setdefault((int(sid), int(f)), []).append(pts)
    return out


def human_keyframes(snap: Any, written: _Written | None = None) -> tuple[Tracks, np.ndarray]:
    """The stitched keyframes people drew, and a mask of the stitched rows we wrote earlier.

    Returns:
        ``(human, ours)``: ``human`` is ``snap.stitched`` without CVAT's job-boundary cut
        keyframes and without keyframes of earlier propagate runs; ``ours`` marks the rows
        of ``snap.stitched`` an earlier run wrote (unchanged since: a keyframe a person
        moved counts as theirs).
    """
    keys: Tracks = snap.stitched
    ours = np.zeros(len(keys), dtype=bool)
    if written is not None and written.ours_hashes:
        hashes = [(int(f), box_hash(b)) for f, b in zip(keys.frame.tolist(), keys.xyxy.tolist())]
        ours |= np.fromiter((h in written.ours_hashes for h in hashes), dtype=bool, count=len(keys))
    if written is not None and written.ours:
        for (sid, f), candidates in _by_object(snap, written.ours).items():
            rows = np.flatnonzero((keys.track_id == sid) & (keys.frame == f))
            if len(rows) and not ours[rows[0]] and any(_same(c, tuple(keys.xyxy[rows[0]].tolist())) for c in candidates):
                ours[rows[0]] = True
    boundary = {j.start_frame for j in snap.jobs[1:]} | {j.stop_frame for j in snap.jobs[:-1]}
    rest = keys[~ours]
    cut = _cut_keyframes(rest, boundary)
    return rest[~cut], ours


def _gaps(keys: Tracks) -> list[tuple[int, int, int]]:
    """``(track, k0, k1)`` for consecutive visible keyframes with frames between them."""
    out: list[tuple[int, int, int]] = []
    for tid, t in keys.iter_tracks():
        vis = ~t.outside
        ok = vis[:-1] & vis[1:] & (np.diff(t.frame) > 1)
        out.extend((int(tid), int(t.frame[i]), int(t.frame[i + 1])) for i in np.flatnonzero(ok))
    return out


def _gap_done(
    base: Mapping[tuple[int, int], list[tuple[float, ...]]], ours_rows: Tracks, gap: tuple[int, int, int], human: Tracks,
    anchors: set[tuple[int, str]] | frozenset[tuple[int, str]] = frozenset(),
) -> bool:
    """True when an earlier run filled ``gap`` and its two human keyframes are unchanged.

    ``base``: keyframes before that run's write, by ``(object, frame)`` (journal);
    ``anchors``: ``(frame, box hash)`` of the human keyframes at the ends of gaps we filled
    (state store table).
    """
    tid, k0, k1 = gap
    inside = ours_rows[(ours_rows.track_id == tid) & (ours_rows.frame > k0) & (ours_rows.frame < k1)]
    if not len(inside):
        return False
    t = human.track(tid)
    for f in (k0, k1):
        row = t[t.frame == f]
        now = tuple(row.xyxy[0].tolist())
        if (f, box_hash(now)) not in anchors and not any(_same(b, now) for b in base.get((tid, f), [])):
            return False  # a person moved or added this keyframe since: fill again
    return True


def _disable(keys: Tracks, gaps: Sequence[tuple[int, int, int]]) -> Tracks:
    """``keys`` with an ``outside`` keyframe at ``k0 + 1`` of each gap, so it is not filled."""
    if not gaps:
        return keys
    idx = np.asarray([int(np.flatnonzero((keys.track_id == t) & (keys.frame == k0))[0]) for t, k0, _ in gaps])
    extra = keys[idx]
    extra = extra.with_columns(frame=extra.frame + 1, outside=np.ones(len(extra), dtype=bool))
    return Tracks.concat([keys, extra])


# ---------------------------------------------------------------------- result types
@dataclass(frozen=True)
class TaskPropagation:
    """Result of :func:`propagate_task`: the snapshot read, the propagation, review items.

    Attributes:
        snapshot: the task as read (:class:`~cvat_extension.cvat.annotations.TaskSnapshot`).
        result: the :class:`~cvat_extension.models.keyframe_propagation.KeyframePropagation`.
        review_items: disagreement items (task frames, stitched object ids).
        filled: ``(object, k0, k1)`` gaps propagated in this run.
        skipped: gaps an earlier run filled (unchanged since), not propagated again.
    """

    snapshot: Any
    result: Any
    review_items: list[ReviewItem]
    filled: list[tuple[int, int, int]] = field(default_factory=list)
    skipped: list[tuple[int, int, int]] = field(default_factory=list)


def propagate_task(
    api: Any,
    task_id: int,
    propagator: Any,
    *,
    track_ids: Sequence[int] = (),
    labels: Sequence[str] = (),
    config: PropagationConfig | None = None,
    store: Any | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> TaskPropagation:
    """Propagate the selected objects of task ``task_id`` between their human keyframes.

    Args:
        api: the CVAT session (:class:`~cvat_extension.cvat.connection.CvatApi`).
        task_id: the task.
        propagator: a :class:`~cvat_extension.models.sam2_video.Sam2VideoPropagator` (or an
            object with the same ``propagate`` method).
        track_ids: CVAT track ids to propagate (any piece of an object selects the whole
            object; default all).
        labels: only objects with these labels.
        config: agreement threshold and selection weights.
        store: the sync state store; with it, gaps an earlier run filled are skipped.
        progress: ``(gaps done, gaps total)``.

    Raises:
        CvatSyncError: CVAT refused a request.
        InputError: unknown track ids or labels, rotated boxes.
    """
    from cvat_extension.core.review import group_findings
    from cvat_extension.cvat.annotations import FrameCache, read_task
    from cvat_extension.models.keyframe_propagation import propagate_keyframes

    snap = read_task(api, task_id)
    written = _written(store, [j.id for j in snap.jobs]) if store is not None else _Written()
    human, ours = human_keyframes(snap, written)
    # Reviewers see piece ids (one per job); any piece of an object selects the object.
    track_ids = sorted({snap.piece_to_stitched.get(int(t), int(t)) for t in track_ids})
    human = select_tracks(human, track_ids=track_ids, labels=labels)
    gaps = _gaps(human)
    ours_rows = snap.stitched[ours]
    base = _by_object(snap, written.base) if written.ours else {}
    skipped = [g for g in gaps if _gap_done(base, ours_rows, g, human, written.anchor_hashes)]
    filled = [g for g in gaps if g not in set(skipped)]
    stop = max(snap.info.num_frames - 1, int(snap.stitched.frame.max()) if len(snap.stitched) else 0)
    result = propagate_keyframes(_disable(human, skipped), FrameCache(api, task_id), propagator,
                                 stop_frame=stop, config=config, progress=progress)
    return TaskPropagation(snap, result, group_findings(result.findings), filled, skipped)


# ---------------------------------------------------------------------- write planning
def _template(shapes: Sequence[Mapping[str, Any]], frame: int) -> Mapping[str, Any]:
    before = [s for s in shapes if int(s["frame"]) <= frame and not s.get("outside")]
    pool = before or [s for s in shapes if not s.get("outside")] or list(shapes)
    return max(pool, key=lambda s: int(s["frame"])) if before else min(pool, key=lambda s: int(s["frame"]))


def _piece_shapes(
    piece: Mapping[str, Any], dense: Tracks, gaps: Sequence[tuple[int, int]], job: Any, tolerance_px: float
) -> list[dict[str, Any]]:
    """The piece's new shape list: its shapes outside ``gaps``, thinned propagation inside."""
    from cvat_extension.core.keyframes import thin_keyframes

    shapes = list(piece["shapes"])
    inner = [(max(k0, job.start_frame), min(k1, job.stop_frame), k0, k1) for k0, k1 in gaps]
    inner = [g for g in inner if g[0] <= g[1]]

    def in_gap(f: int) -> bool:
        return any(k0 < f < k1 and lo <= f <= hi for lo, hi, k0, k1 in inner)

    keep = [s for s in shapes if not in_gap(int(s["frame"]))]
    added: list[dict[str, Any]] = []
    for lo, hi, k0, k1 in inner:
        rows = dense[(dense.frame >= lo) & (dense.frame <= hi)]
        kf = thin_keyframes(rows, tolerance_px=tolerance_px, stop_frame=hi)
        for r in range(len(kf)):
            f = int(kf.frame[r])
            if not k0 < f < k1:
                continue  # the human keyframes stay as they are
            tpl = _template(shapes, f)
            added.append({
                "type": "rectangle", "frame": f, "points": [float(v) for v in kf.xyxy[r]],
                "rotation": float(kf.rotation[r]), "outside": bool(kf.outside[r]),
                "occluded": bool(kf.occluded[r]), "z_order": int(tpl.get("z_order", 0)),
                "attributes": copy.deepcopy(tpl.get("attributes", [])),
            })
    return sorted([dict(s) for s in keep] + added, key=lambda s: int(s["frame"]))


def _signature(shapes: Sequence[Mapping[str, Any]]) -> list[tuple[int, bool, tuple[float, ...]]]:
    return [(int(s["frame"]), bool(s.get("outside")), tuple(round(float(v), 4) for v in s["points"]))
            for s in shapes]


@dataclass
class PropagateSummary:
    """What :func:`run_propagate` did (or, with ``dry_run``, would do)."""

    run_id: str
    dry_run: bool
    segments: int = 0
    gaps_skipped: int = 0
    frames_propagated: int = 0
    frames_flagged: int = 0
    review_items: int = 0
    tracks_updated: int = 0
    keyframes_added: int = 0
    mask_tracks_created: int = 0
    mask_tracks_updated: int = 0
    mask_keyframes: int = 0
    jobs_written: list[int] = field(default_factory=list)
    writes_resumed: int = 0
    issues_opened: int = 0
    issues_still_open: int = 0
    issues_resolved_respected: int = 0
    stage_changes: list[dict[str, Any]] = field(default_factory=list)
    planned: list[str] = field(default_factory=list)
    propagation: TaskPropagation | None = None

    @property
    def flagged_share(self) -> float:
        """Share of propagated frames flagged for review."""
        return self.frames_flagged / self.frames_propagated if self.frames_propagated else 0.0

    def to_json(self) -> dict[str, Any]:
        """JSON form (stable keys)."""
        return {
            "run_id": self.run_id, "dry_run": self.dry_run, "segments": self.segments,
            "gaps_skipped": self.gaps_skipped, "frames_propagated": self.frames_propagated,
            "frames_flagged": self.frames_flagged, "flagged_share": round(self.flagged_share, 4),
            "review_items": self.review_items, "tracks_updated": self.tracks_updated,
            "keyframes_added": self.keyframes_added, "mask_tracks_created": self.mask_tracks_created,
            "mask_tracks_updated": self.mask_tracks_updated, "mask_keyframes": self.mask_keyframes,
            "jobs_written": self.jobs_written,
            "writes_resumed": self.writes_resumed,
            "issues_opened": self.issues_opened, "issues_still_open": self.issues_still_open,
            "issues_resolved_respected": self.issues_resolved_respected,
            "stage_changes": self.stage_changes, "planned": self.planned,
        }


def _added_rows(piece_id: int, old: Sequence[Mapping[str, Any]], new: Sequence[Mapping[str, Any]]) -> list[Any]:
    """State-store rows for the shapes of ``new`` that ``old`` did not have (ours)."""
    from cvat_extension.cvat.state_store import PropagatedKeyframe

    before = set(_signature(old))
    return [PropagatedKeyframe(piece_id, int(sh["frame"]), box_hash(sh["points"]))
            for sh, sig in zip(new, _signature(new)) if sig not in before]


def _anchor_rows(piece_id: int, shapes: Sequence[Mapping[str, Any]], gaps: Sequence[tuple[int, int]]) -> list[Any]:
    """State-store rows for the human keyframes at the ends of ``gaps`` held by this piece."""
    from cvat_extension.cvat.state_store import PropagatedKeyframe

    ends = {f for g in gaps for f in g}
    return [PropagatedKeyframe(piece_id, int(sh["frame"]), box_hash(sh["points"]), "anchor")
            for sh in shapes if int(sh["frame"]) in ends and not sh.get("outside")]


def _next_group(raw: Mapping[str, Any], taken: set[int]) -> int:
    """A group id no object of the job uses yet."""
    used = {int(o.get("group") or 0) for kind in ("tracks", "shapes") for o in raw.get(kind) or []}
    return max(used | taken | {0}) + 1


def _is_mask_track(t: Mapping[str, Any]) -> bool:
    shapes = t.get("shapes") or []
    return bool(shapes) and all(sh.get("type") == "mask" for sh in shapes)


def mask_track_shapes(
    existing: Sequence[Mapping[str, Any]], new: Mapping[int, list[int]], replace: Sequence[tuple[int, int]],
    template: Mapping[str, Any], stop_frame: int,
) -> list[dict[str, Any]]:
    """A mask track piece's keyframes: one per visible frame, ``outside`` after each run.

    CVAT does not interpolate masks (``cvat-interfaces.md`` §3.11), so every frame the object
    is visible on is a keyframe. ``existing`` shapes on frames inside ``replace`` (the gaps
    propagated again) give way to ``new``; an ``outside`` keyframe follows the last frame of
    every run unless the run reaches ``stop_frame`` (the job's last frame: CVAT ends the
    piece there).
    """
    visible: dict[int, dict[str, Any]] = {
        int(sh["frame"]): dict(sh) for sh in existing
        if not sh.get("outside") and not any(k0 <= int(sh["frame"]) <= k1 for k0, k1 in replace)
    }
    for f, pts in new.items():
        visible[int(f)] = {
            "type": "mask", "frame": int(f), "points": [int(v) for v in pts], "rotation": 0.0,
            "outside": False, "occluded": bool(template.get("occluded", False)),
            "z_order": int(template.get("z_order", 0)), "attributes": copy.deepcopy(template.get("attributes", [])),
        }
    out = []
    for f in sorted(visible):
        out.append(visible[f])
        if f + 1 not in visible and f + 1 <= stop_frame:
            out.append({**copy.deepcopy(visible[f]), "frame": f + 1, "outside": True})
    for sh in out:
        sh.pop("id", None)
    return out


@dataclass
class _JobWrite:
    """Everything to write to one job: the update/create plan and our state-store rows."""

    plan: Any
    rows: list[Any] = field(default_factory=list)


def _plans(api: Any, done: TaskPropagation, tolerance_px: float, summary: PropagateSummary,
           *, masks: bool = False) -> list[_JobWrite]:
    """One write per job whose tracks change: box pieces updated; with ``masks`` a mask track
    per object (updated when the job has one already, created otherwise)."""
    from cvat_extension.cvat.annotations import job_annotations_by_id
    from cvat_extension.cvat.writeback import plan_job_writes

    snap, dense = done.snapshot, done.result.tracks
    mask_data = done.result.masks
    by_obj: dict[int, list[tuple[int, int]]] = {}
    for tid, k0, k1 in done.filled:
        by_obj.setdefault(tid, []).append((k0, k1))
    out: list[_JobWrite] = []
    for job in snap.jobs:
        touched = {tid: [(k0, k1) for k0, k1 in gs if k0 < job.stop_frame and k1 > job.start_frame]
                   for tid, gs in by_obj.items()}
        touched = {t: g for t, g in touched.items() if g}
        if not touched:
            continue
        raw = api.get_job_annotations(job.id)
        tracks = job_annotations_by_id(raw)
        replaced: dict[int, dict[str, Any]] = {}
        rows: list[Any] = []
        creates: list[dict[str, Any]] = []
        groups: set[int] = set()
        for tid, gaps in sorted(touched.items()):
            piece_id = snap.piece_in_job(tid, job.id)
            piece = tracks.get(piece_id) if piece_id is not None else None
            if piece is None or piece_id is None:
                logger.warning("job %d: object %d has no track piece here; skipped", job.id, tid)
                continue
            new = _piece_shapes(piece, dense.track(tid), gaps, job, tolerance_px)
            rows.extend(_anchor_rows(piece_id, piece["shapes"], gaps))
            if any(not s.get("outside") for s in new) and _signature(new) != _signature(piece["shapes"]):
                added = len(set(_signature(new)) - set(_signature(piece["shapes"])))
                summary.keyframes_added += added
                summary.planned.append(f"job {job.id}: track {piece_id} (object {tid}): "
                                       f"{len(piece['shapes'])} -> {len(new)} keyframes ({added} new or moved)")
                rows.extend(_added_rows(piece_id, piece["shapes"], new))
                replaced[piece_id] = {**{k: v for k, v in piece.items() if k != "shapes"},
                                      "frame": int(new[0]["frame"]), "shapes": new}
            if masks:
                _plan_mask(job, tid, piece_id, piece, gaps, tracks, raw, mask_data, replaced, creates, groups, summary)
        if replaced or creates:
            summary.tracks_updated += sum(1 for t in replaced.values() if not _is_mask_track(t))
            plan = plan_job_writes(job_id=job.id, task_id=snap.task_id, annotations=raw,
                                   updated_date=job.updated_date, merges=(), replaced_tracks=list(replaced.values()))
            if creates:
                plan.ops.append({"action": "create", "payload": {"tags": [], "shapes": [], "tracks": creates}})
            out.append(_JobWrite(plan, rows))
    return out


def _plan_mask(job: Any, tid: int, piece_id: int, piece: Mapping[str, Any], gaps: Sequence[tuple[int, int]],
               tracks: Mapping[int, Mapping[str, Any]], raw: Mapping[str, Any], mask_data: Any,
               replaced: dict[int, dict[str, Any]], creates: list[dict[str, Any]], groups: set[int],
               summary: PropagateSummary) -> None:
    """Add the object's mask track piece for ``job`` to ``replaced`` (update) or ``creates``.

    The mask track shares the box track's ``group`` (a new group is given to a box track
    without one), so a reviewer sees they belong together, and a later run finds it again
    by (label, group, mask type) to update it instead of creating another.
    """
    inside = [(max(k0, job.start_frame), min(k1, job.stop_frame)) for k0, k1 in gaps]
    new = {f: mask_data.points(tid, f) for f in mask_data.frames(tid)
           if any(lo <= f <= hi for lo, hi in inside)}
    if not new:
        return
    box = replaced.get(piece_id) or {**copy.deepcopy(dict(piece))}
    group = int(box.get("group") or 0)
    if not group:
        group = _next_group(raw, groups)
        box["group"] = group
        replaced[piece_id] = box
    groups.add(group)
    template = _template(box["shapes"], min(new))
    existing = next((t for t in tracks.values() if _is_mask_track(t) and int(t.get("group") or 0) == group
                     and t.get("label_id") == piece.get("label_id")), None)
    shapes = mask_track_shapes(existing["shapes"] if existing else [], new, inside, template, job.stop_frame)
    if existing is not None:
        if _signature(shapes) == _signature(existing["shapes"]):
            return
        replaced[int(existing["id"])] = {**{k: v for k, v in existing.items() if k != "shapes"},
                                         "frame": int(shapes[0]["frame"]), "shapes": shapes}
        summary.mask_tracks_updated += 1
        verb = f"update mask track {existing['id']}"
    else:
        creates.append({"label_id": piece.get("label_id"), "frame": int(shapes[0]["frame"]), "group": group,
                        "source": "semi-auto", "attributes": copy.deepcopy(piece.get("attributes") or []),
                        "shapes": shapes, "elements": []})
        summary.mask_tracks_created += 1
        verb = "create mask track"
    summary.mask_keyframes += len(new)
    summary.planned.append(f"job {job.id}: {verb} for track {piece_id} (object {tid}, group {group}): "
                           f"{len(new)} mask keyframes")


def _create_state(base: Mapping[str, Any], current: Mapping[str, Any], op: Mapping[str, Any]) -> str:
    """Whether the server holds a journaled ``create``: ``done``, ``pending`` or ``conflict``.

    A ``create`` cannot be matched like ``update``/``delete`` (the server assigns the ids), so
    the job is compared as: the objects of ``base`` unchanged, plus new objects equal (ids
    aside) to the payload's (done) or none (pending); anything else is someone's edit.
    """
    from cvat_extension.cvat.content import canonical

    def key(doc: Mapping[str, Any]) -> list[str]:
        return sorted(json.dumps({**t, "id": None}, sort_keys=True) for t in canonical(doc)["tracks"])

    base_ids = {t.get("id") for t in base.get("tracks") or []}
    cur_tracks = list(current.get("tracks") or [])
    kept = {**dict(current), "tracks": [t for t in cur_tracks if t.get("id") in base_ids]}
    if canonical(kept) != canonical(base):
        return "conflict"
    new = [t for t in cur_tracks if t.get("id") not in base_ids]
    if not new:
        return "pending"
    return "done" if key({"tracks": new}) == key({"tracks": op["payload"].get("tracks") or []}) else "conflict"


def _send_create(api: Any, job_id: int, payload: Mapping[str, Any]) -> None:
    """One ``PATCH ?action=create``; never retried blindly (a lost answer would duplicate)."""
    from cvat_sdk import models

    from cvat_extension.cvat.content import request_payload

    body = request_payload(payload)
    req = models.PatchedLabeledDataRequest(
        tags=[], shapes=[], tracks=[models.LabeledTrackRequest(**t) for t in body.get("tracks", [])])
    api.call("jobs.annotations.create", lambda: api.api.jobs_api.partial_update_annotations(
        "create", job_id, patched_labeled_data_request=req,
        _parse_response=False, _request_timeout=api.timeout_s), idempotent=False)


def _write_create(api: Any, store: Any, job_id: int, base: Mapping[str, Any], op: Mapping[str, Any],
                  attempts: int) -> None:
    """Send a journaled ``create``; after a lost answer, look before sending again."""
    from cvat_extension.cvat.connection import CvatTransientError

    for attempt in range(1, attempts + 1):
        try:
            _send_create(api, job_id, op["payload"])
            break
        except CvatTransientError:
            state = _create_state(base, api.get_job_annotations(job_id), op)
            if state == "done":
                break
            if state == "conflict":
                store.finish_journal(job_id, "aborted")
                raise ConcurrentEditError(f"job {job_id}: edited while creating mask tracks; "
                                          "nothing more written") from None
            if attempt == attempts:
                raise
    store.advance_journal(job_id, 1)
    store.finish_journal(job_id, "done")


def _execute_creates(api: Any, store: Any, job_id: int, task_id: int, op: Mapping[str, Any], expect: Mapping[str, Any],
                     *, backup_dir: str | None, run_id: str, attempts: int) -> None:
    """The safe write path for ``create``: re-read and compare, back up, journal, send once.

    ``expect``: what the job should hold now (as read, plus our updates just written).
    """
    from cvat_extension.cvat.backup import save_backup
    from cvat_extension.cvat.content import canonical, content_hash
    from cvat_extension.cvat.state_store import JournalRecord

    job = api.get_job(job_id)
    current = api.get_job_annotations(job_id)
    if canonical(current) != canonical(expect):
        raise ConcurrentEditError(f"job {job_id}: changed since it was read; mask tracks not created, "
                                  "run again")
    backup = save_backup(store, backup_dir, job_id=job_id, task_id=task_id, annotations=current,
                         updated_date=str(job.get("updated_date")))
    store.begin_journal(JournalRecord(job_id=job_id, run_id=run_id, base_hash=content_hash(current), ops=[dict(op)],
                                      ops_done=0, status="planned", backup_path=backup.path, merges=[],
                                      updated_at=time.time()))
    _write_create(api, store, job_id, current, op, attempts)


def _execute(api: Any, store: Any, jw: _JobWrite, *, backup_dir: str | None, run_id: str, attempts: int) -> None:
    """Write one job: record our keyframes in the store, then updates, then creates.

    The ``propagated_keyframes`` rows are recorded right before the journal entry and
    forgotten again when the job turns out edited before anything was written.
    """
    from cvat_extension.cvat.content import apply_ops
    from cvat_extension.cvat.writeback import execute_plan

    plan = jw.plan
    updates = [op for op in plan.ops if op["action"] != "create"]
    creates = [op for op in plan.ops if op["action"] == "create"]
    store.record_propagated(plan.job_id, run_id, jw.rows)
    if updates:
        try:
            execute_plan(api, store, replace(plan, ops=updates), backup_dir=backup_dir, run_id=run_id)
        except ConcurrentEditError:
            store.forget_propagated(plan.job_id, run_id)
            raise
    for op in creates:
        _execute_creates(api, store, plan.job_id, plan.task_id, op, apply_ops(plan.base, updates),
                         backup_dir=backup_dir, run_id=run_id, attempts=attempts)


def _resume_interrupted(api: Any, store: Any, task_id: int) -> int:
    """Finish writes to the task's jobs that a killed run (ours or sync's) left ``planned``.

    Done first: the journal tells which keyframes we wrote, and a new write would replace
    the journal of an unfinished one. A journaled mask-track ``create`` is finished only
    when the job shows it was not applied (:func:`_create_state`).

    Raises:
        ConcurrentEditError: a job was edited while its write was pending; nothing more written.
    """
    from cvat_extension.cvat.backup import load_job_backup
    from cvat_extension.cvat.writeback import resume_journal

    n = 0
    for job in api.list_jobs(task_id=task_id, page_size=100):
        journal = store.journal(int(job["id"]))
        if journal is None or journal.status != "planned":
            continue
        creates = [op for op in journal.ops if op.get("action") == "create"]
        if creates and len(journal.ops) == 1:
            base = load_job_backup(store, journal.job_id, journal.base_hash)["annotations"]
            state = _create_state(base, api.get_job_annotations(journal.job_id), creates[0])
            if state == "conflict":
                store.finish_journal(journal.job_id, "aborted")
                raise ConcurrentEditError(f"job {journal.job_id}: edited while an interrupted mask-track "
                                          "create was pending; nothing more written")
            if state == "done":
                store.advance_journal(journal.job_id, 1)
                store.finish_journal(journal.job_id, "done")
            else:
                _write_create(api, store, journal.job_id, base, creates[0], 1)
        else:
            resume_journal(api, store, journal)
        n += 1
    return n


WRITE_MODES = ("boxes", "masks", "none")


def check_write_mode(write: str) -> None:
    """Accept ``boxes``, ``masks`` (boxes plus a mask track per object) and ``none``.

    Raises:
        InputError: any other mode.
    """
    if write not in WRITE_MODES:
        raise InputError(f"--write {write}: expected one of {', '.join(WRITE_MODES)}")


def run_propagate(
    api: Any,
    store: Any,
    cfg: Any,
    task_id: int,
    propagator: Any,
    *,
    track_ids: Sequence[int] = (),
    labels: Sequence[str] = (),
    config: PropagationConfig | None = None,
    write: str = "boxes",
    dry_run: bool = False,
    push_review: bool = False,
    tolerance_px: float | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> PropagateSummary:
    """Propagate, write the result into the task's tracks and push disagreements as issues.

    Args:
        api: the CVAT session.
        store: the sync state store (journals, backups, issue fingerprints).
        cfg: the :class:`~cvat_extension.cvat.config.SyncConfig` (backup folder, review policy,
            thinning tolerance).
        task_id: the task.
        propagator: the SAM2 propagator (or an object with its ``propagate`` method).
        track_ids: stitched object ids (default all).
        labels: only these labels.
        config: agreement threshold and selection weights.
        write: ``boxes`` (thinned rectangle keyframes), ``masks`` (the same, plus one mask
            track per object and job with a keyframe on every visible frame, grouped with
            the box track) or ``none`` (review only).
        dry_run: write nothing; ``summary.planned`` lists what would change.
        push_review: open CVAT issues at the disagreement frames, move jobs per ``sync.review``.
        tolerance_px: thinning tolerance (default ``sync.merge.thin_tolerance_px``).
        progress: ``(gaps done, gaps total)``.

    Raises:
        ConcurrentEditError: a job changed while we propagated; nothing was written.
        InputError: unknown tracks or labels, an unsupported ``write``.
        CvatSyncError: CVAT kept failing (journaled writes resume on the next run).
    """
    check_write_mode(write)
    tol = cfg.merge.thin_tolerance_px if tolerance_px is None else float(tolerance_px)
    summary = PropagateSummary(run_id=RUN_PREFIX + uuid.uuid4().hex[:12], dry_run=dry_run)
    if not dry_run:
        summary.writes_resumed = _resume_interrupted(api, store, task_id)
    done = propagate_task(api, task_id, propagator, track_ids=track_ids, labels=labels,
                          config=config, store=store, progress=progress)
    summary.propagation = done
    res = done.result
    summary.segments, summary.gaps_skipped = res.segments, len(done.skipped)
    summary.frames_propagated, summary.frames_flagged = res.frames_propagated, res.frames_flagged
    summary.review_items = len(done.review_items)
    snap = done.snapshot

    writes = _plans(api, done, tol, summary, masks=write == "masks") if write != "none" else []
    if writes and not dry_run:
        # Every job is checked before the first write, so an edit anywhere leaves all untouched.
        plans = [w.plan for w in writes]
        changed = [p.job_id for p in plans if str(api.get_job(p.job_id).get("updated_date")) != p.base_updated_date]
        if changed:
            raise ConcurrentEditError(
                f"job(s) {', '.join(map(str, changed))} of task {task_id} changed while propagating; "
                "nothing written, run again")
        for w in writes:
            _execute(api, store, w, backup_dir=cfg.state.backup_dir, run_id=summary.run_id,
                     attempts=max(int(cfg.retry.attempts), 1))
            summary.jobs_written.append(w.plan.job_id)
        from cvat_extension.cvat.annotations import read_task

        snap = read_task(api, task_id)  # issues refer to the written tracks and dates
    if not push_review:
        return summary
    _push(api, store, cfg, snap, done.review_items, summary, dry_run=dry_run)
    return summary


def _push(api: Any, store: Any, cfg: Any, snap: Any, items: Sequence[ReviewItem], summary: PropagateSummary,
          *, dry_run: bool) -> None:
    """Issues per job through ``review_push``, then the job's stage per ``sync.review``."""
    from cvat_extension.cvat.config import OnFindings
    from cvat_extension.cvat.review_push import plan_issue, push_issues, stage_change, tally_push

    per_job: dict[int, list[Any]] = {}
    jobs = {j.id: j for j in snap.jobs}
    for item in items:
        job = snap.job_of_frame(item.frame)
        if job is not None:
            per_job.setdefault(job.id, []).append(plan_issue(snap, job, item))
    reviewer_id = None
    if per_job and cfg.review.reviewer and cfg.review.on_findings is OnFindings.REVIEW:
        reviewer_id = api.find_user_id(cfg.review.reviewer)
    for job_id, plans in sorted(per_job.items()):
        job = jobs[job_id]
        result = push_issues(api, store, job_id, plans, job_issue_count=job.issue_count, dry_run=dry_run)
        tally_push(summary, result)
        if dry_run:
            summary.planned.extend(f"job {job_id}: issue at frame {p.frame}: {p.message}" for p in plans)
        change = stage_change(cfg, job, result.open_count, reviewer_id=reviewer_id) if result.open_count else None
        if not change:
            continue
        summary.stage_changes.append({"job": job_id, **change})
        if dry_run:
            summary.planned.append(f"job {job_id}: set {change}")
        else:
            api.update_job(job_id, **change)
