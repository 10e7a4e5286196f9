"""Inject known annotation errors into clean tracks, and make detections from ground truth.

Why: recall can only be measured against errors whose place is known. Each injected error
mimics what annotators and trackers really do (a swap where two people cross, a box left
standing after its object walked away, a track cut in two), and records where it is, so
tests, the demo and ``scripts/eval_checks_motgt.py`` can match findings to it.

Works on any dense per-frame :class:`Tracks` (synthetic or real MOT ground truth).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cvat_extension.core.tracks import SequenceInfo, Tracks
from cvat_extension.errors import ConfigError

__all__ = ["ERROR_KINDS", "InjectedError", "inject_errors", "make_detections"]

logger = logging.getLogger(__name__)

#: Every error kind :func:`inject_errors` knows.
ERROR_KINDS: tuple[str, ...] = (
    "id_switch", "ghost", "split", "box_jump", "size_jump", "label_change", "missing_object",
)

#: Frames kept free around each injected error so that two errors never touch.
_MARGIN_FRAMES = 15


@dataclass(frozen=True)
class InjectedError:
    """Where one injected error is.

    Attributes:
        kind: one of :data:`ERROR_KINDS`.
        track_ids: ids in the *corrupted* tracks that a finding should name (both ids for a
            swap; the original and the new id for a split; the ghost's id).
        frames: inclusive internal frame range of the error (a switch: ``(k, k)``, the first
            frame on the wrong object).
        variant: sub-type, e.g. ``"swap"``/``"jump"`` for id switches,
            ``"static"``/``"lingering"`` for ghosts.
    """

    kind: str
    track_ids: tuple[int, ...]
    frames: tuple[int, int]
    variant: str = ""


class _Editor:
    """Mutable columns plus reservations; rebuilt into Tracks once at the end."""

    def __init__(self, tracks: Tracks, rng: np.random.Generator) -> None:
        self.cols = {
            name: np.array(getattr(tracks, name))
            for name in ("frame", "track_id", "xyxy", "label", "outside", "occluded",
                         "keyframe", "visibility", "source", "score", "rotation")
        }
        self.data = {k: np.array(v) for k, v in tracks.data.items()}
        self.labels = tracks.labels
        self.rng = rng
        self.reserved: dict[int, list[tuple[int, int]]] = {}
        self.next_id = int(tracks.track_id.max()) + 1 if len(tracks) else 1

    # -- bookkeeping
    def free(self, tid: int, lo: int, hi: int) -> bool:
        return all(hi + _MARGIN_FRAMES < a or lo - _MARGIN_FRAMES > b
                   for a, b in self.reserved.get(tid, []))

    def reserve(self, tid: int, lo: int, hi: int) -> None:
        self.reserved.setdefault(tid, []).append((lo, hi))

    def rows(self, tid: int) -> np.ndarray:
        return np.flatnonzero((self.cols["track_id"] == tid) & ~self.cols["outside"])

    def track_ids(self) -> np.ndarray:
        return np.unique(self.cols["track_id"][~self.cols["outside"]])

    def delete(self, idx: np.ndarray) -> None:
        keep = np.ones(len(self.cols["frame"]), dtype=bool)
        keep[idx] = False
        self.cols = {k: v[keep] for k, v in self.cols.items()}
        self.data = {k: v[keep] for k, v in self.data.items()}

    def append(self, frames: np.ndarray, tid: int, boxes: np.ndarray, label: int) -> None:
        m = len(frames)
        add = {
            "frame": frames.astype(np.int64), "track_id": np.full(m, tid, np.int64),
            "xyxy": boxes.astype(np.float64), "label": np.full(m, label, np.int32),
            "outside": np.zeros(m, bool), "occluded": np.zeros(m, bool),
            "keyframe": np.ones(m, bool), "visibility": np.ones(m, np.float32),
            "source": np.zeros(m, np.uint8), "score": np.ones(m, np.float32),
            "rotation": np.zeros(m, np.float64),
        }
        self.cols = {k: np.concatenate([v, add[k]]) for k, v in self.cols.items()}
        self.data = {k: np.concatenate([v, np.zeros(m, v.dtype)]) for k, v in self.data.items()}

    def build(self) -> Tracks:
        return Tracks.from_columns(**self.cols, labels=self.labels, data=self.data)

    def pick_track(self, min_rows: int) -> tuple[int, np.ndarray] | None:
        ids = self.track_ids()
        for tid in self.rng.permutation(ids):
            r = self.rows(int(tid))
            if len(r) >= min_rows:
                return int(tid), r
        return None


def _free_window(ed: _Editor, tid: int, rows: np.ndarray, length: int, pad: int,
                 tries: int = 20) -> int | None:
    """A row position p with ``pad`` rows before and ``length + pad`` after, all free."""
    if len(rows) < length + 2 * pad:
        return None
    frames = ed.cols["frame"][rows]
    for _ in range(tries):
        p = int(ed.rng.integers(pad, len(rows) - length - pad + 1))
        lo, hi = int(frames[p]), int(frames[p + length - 1])
        # Consecutive frames only: an existing gap would blur the error.
        if frames[p + length - 1 + pad] - frames[p - pad] == length - 1 + 2 * pad and ed.free(tid, lo, hi):
            return p
    return None


def _id_switch(ed: _Editor, variant: str) -> InjectedError | None:
    fr, tid_col, box = ed.cols["frame"], ed.cols["track_id"], ed.cols["xyxy"]
    vis = ~ed.cols["outside"]
    for _ in range(200):
        picked = ed.pick_track(40)
        if picked is None:
            return None
        a, ra = picked
        p = _free_window(ed, a, ra, 1, 15, tries=5)
        if p is None:
            continue
        k = int(fr[ra[p]])
        # Partner: the nearest other track present at k-10..k+10 (a realistic confusion).
        at_k = np.flatnonzero((fr == k) & vis & (tid_col != a))
        if len(at_k) == 0:
            continue
        ca = (box[ra[p], :2] + box[ra[p], 2:]) / 2
        cb = (box[at_k, :2] + box[at_k, 2:]) / 2
        size = np.sqrt(np.prod(box[ra[p], 2:] - box[ra[p], :2]))
        dist = np.hypot(*(cb - ca).T) / max(size, 1.0)
        for j in np.argsort(dist):
            b = int(tid_col[at_k[j]])
            rb = ed.rows(b)
            fb = fr[rb]
            # Tails change identity: they must not hold an earlier error of either track.
            if not (np.isin(np.arange(k - 15, k + 16), fb).all() and ed.free(b, k, 1 << 40)
                    and ed.free(a, k, 1 << 40)):
                continue
            if dist[j] > 3.0 and _ > 100:
                pass  # after many tries accept a farther partner
            elif dist[j] > 3.0:
                break
            a_tail = ra[fr[ra] >= k]
            b_tail = rb[fb >= k]
            if variant == "swap":
                ed.cols["track_id"][a_tail] = b
                ed.cols["track_id"][b_tail] = a
            else:  # jump: track a continues on object b; b's own track ends at k-1
                ed.cols["track_id"][b_tail] = a
                ed.delete(a_tail)
            ed.reserve(a, k, k)
            ed.reserve(b, k, k)
            return InjectedError("id_switch", (a, b), (k, k), variant)
    return None


def _ghost(ed: _Editor, variant: str, info: SequenceInfo | None) -> InjectedError | None:
    fr, box = ed.cols["frame"], ed.cols["xyxy"]
    last = int(fr.max())
    width = info.width if info and info.width else float(box[:, 2].max())
    height = info.height if info and info.height else float(box[:, 3].max())
    length = int(ed.rng.integers(31, 91))
    if variant == "lingering":
        for tid in ed.rng.permutation(ed.track_ids()):
            r = ed.rows(int(tid))
            end = int(fr[r[-1]])
            if end + 40 <= last and len(r) >= 20 and ed.free(int(tid), end, end + length):
                length = min(length, last - end)
                frames = np.arange(end + 1, end + 1 + length)
                held = np.repeat(box[r[-1]][None], length, axis=0)
                ed.append(frames, int(tid), held, int(ed.cols["label"][r[-1]]))
                ed.reserve(int(tid), end + 1, end + length)
                return InjectedError("ghost", (int(tid),), (end + 1, end + length), variant)
    # Static box where no object is.
    for _ in range(100):
        s = int(ed.rng.integers(0, max(last - length, 0) + 1))
        e = min(s + length - 1, last)
        ref = box[ed.rng.integers(0, len(box))]
        w, h = ref[2] - ref[0], ref[3] - ref[1]
        x = ed.rng.uniform(0, max(width - w, 1))
        y = ed.rng.uniform(0, max(height - h, 1))
        g = np.array([x, y, x + w, y + h])
        near = (fr >= s) & (fr <= e) & ~ed.cols["outside"]
        ob = box[near]
        iw = np.clip(np.minimum(ob[:, 2], g[2]) - np.maximum(ob[:, 0], g[0]), 0, None)
        ih = np.clip(np.minimum(ob[:, 3], g[3]) - np.maximum(ob[:, 1], g[1]), 0, None)
        if len(ob) and (iw * ih).max() > 0.1 * w * h:
            continue
        tid = ed.next_id
        ed.next_id += 1
        ed.append(np.arange(s, e + 1), tid, np.repeat(g[None], e - s + 1, axis=0), 0)
        ed.reserve(tid, s, e)
        return InjectedError("ghost", (tid,), (s, e), "static")
    return None


def _split(ed: _Editor) -> InjectedError | None:
    for _ in range(50):
        picked = ed.pick_track(60)
        if picked is None:
            return None
        tid, r = picked
        gap = int(ed.rng.integers(1, 31))
        p = _free_window(ed, tid, r, gap, 15, tries=5)
        if p is None:
            continue
        fr = ed.cols["frame"]
        k = int(fr[r[p]])
        if not ed.free(tid, k, 1 << 40):  # the tail gets a new id: no earlier error there
            continue
        new = ed.next_id
        ed.next_id += 1
        ed.cols["track_id"][r[p + gap:]] = new
        ed.delete(r[p:p + gap])
        ed.reserve(tid, k - 1, k + gap)
        ed.reserve(new, k - 1, k + gap)
        return InjectedError("split", (tid, new), (k - 1, k + gap), f"gap={gap}")
    return None


def _in_view(ed: _Editor, sel: np.ndarray, info: SequenceInfo | None) -> bool:
    """All rows clearly visible and inside the frame: where a reviewer would see the error."""
    if (ed.cols["visibility"][sel] < 0.7).any() or ed.cols["occluded"][sel].any():
        return False
    if info is not None and info.width and info.height:
        b = ed.cols["xyxy"][sel]
        return bool((b[:, :2] >= 2).all() and (b[:, 2] <= info.width - 2).all()
                    and (b[:, 3] <= info.height - 2).all())
    return True


def _box_edit(ed: _Editor, kind: str, info: SequenceInfo | None) -> InjectedError | None:
    lengths = {"box_jump": (1, 2), "size_jump": (1, 9), "label_change": (5, 31),
               "missing_object": (10, 41)}[kind]
    for _ in range(300):
        picked = ed.pick_track(40)
        if picked is None:
            return None
        tid, r = picked
        length = int(ed.rng.integers(*lengths))
        p = _free_window(ed, tid, r, length, 3, tries=5)
        if p is None:
            continue
        sel = r[p:p + length]
        if kind in ("box_jump", "size_jump") and not _in_view(ed, r[p - 1:p + length + 1], info):
            continue
        if kind == "missing_object" and (ed.cols["visibility"][sel] < 0.7).mean() > 0.5:
            continue  # an unannotated, mostly hidden object is not clearly an error
        fr = ed.cols["frame"]
        lo, hi = int(fr[sel[0]]), int(fr[sel[-1]])
        b = ed.cols["xyxy"][sel]
        wh = b[:, 2:] - b[:, :2]
        if kind == "box_jump":
            ang = ed.rng.uniform(0, 2 * np.pi)
            mag = ed.rng.uniform(1.0, 2.0)
            shift = np.array([np.cos(ang), np.sin(ang)]) * mag * wh[0]
            ed.cols["xyxy"][sel] = b + np.concatenate([shift, shift])
        elif kind == "size_jump":
            factor = ed.rng.uniform(1.8, 2.6) if ed.rng.random() < 0.5 else ed.rng.uniform(0.25, 0.5)
            c = (b[:, :2] + b[:, 2:]) / 2
            half = wh * np.sqrt(factor) / 2
            ed.cols["xyxy"][sel] = np.concatenate([c - half, c + half], axis=1)
        elif kind == "label_change":
            if len(ed.labels) < 2:
                ed.labels = (*ed.labels, "other")
            cur = int(ed.cols["label"][sel[0]])
            ed.cols["label"][sel] = (cur + 1) % len(ed.labels)
        else:  # missing_object: the object is there but nobody annotated it
            ed.delete(sel)
        ed.reserve(tid, lo, hi)
        return InjectedError(kind, (tid,), (lo, hi))
    return None


def inject_errors(
    gt: Tracks,
    *,
    kinds: Sequence[str],
    count_per_kind: int,
    seed: int,
    info: SequenceInfo | None = None,
) -> tuple[Tracks, list[InjectedError]]:
    """Corrupt ``gt`` with ``count_per_kind`` errors of each kind; return tracks and truth.

    Errors never touch each other: each keeps 15 frames of its tracks free on both sides.
    Id switches alternate between a *swap* (two nearby tracks exchange ids from frame k on)
    and a *jump* (one id continues on a nearby object, whose own track ends); ghosts
    alternate between a *static* box where no object is and a track *lingering* as a frozen
    box after its object left. Box and size jumps are placed on clearly visible boxes inside
    the frame (with ``info``), where a reviewer can judge them; occlusion explains the rest. When a kind cannot be placed (too few or too short tracks),
    fewer errors are returned and a warning is logged.

    Raises:
        ConfigError: unknown kind or negative count.

    >>> from cvat_extension.synthetic.scene import SceneConfig, make_scene
    >>> gt, info = make_scene(SceneConfig(num_objects=8))
    >>> bad, truth = inject_errors(gt, kinds=["split"], count_per_kind=2, seed=1)
    >>> [e.kind for e in truth], len(bad.ids) == len(gt.ids) + 2
    (['split', 'split'], True)
    """
    unknown = [k for k in kinds if k not in ERROR_KINDS]
    if unknown:
        raise ConfigError(f"inject_errors: unknown kinds {unknown}; valid kinds are {', '.join(ERROR_KINDS)}")
    if count_per_kind < 0:
        raise ConfigError(f"inject_errors: count_per_kind must be >= 0, got {count_per_kind}")
    ed = _Editor(gt, np.random.default_rng(seed))
    out: list[InjectedError] = []
    for kind in kinds:
        for i in range(count_per_kind):
            if kind == "id_switch":
                err = _id_switch(ed, "swap" if i % 2 == 0 else "jump")
            elif kind == "ghost":
                err = _ghost(ed, "static" if i % 2 == 0 else "lingering", info)
            elif kind == "split":
                err = _split(ed)
            else:
                err = _box_edit(ed, kind, info)
            if err is None:
                logger.warning("inject_errors: could not place %s #%d", kind, i + 1)
            else:
                out.append(err)
    return ed.build(), out


def make_detections(
    gt: Tracks,
    *,
    miss_rate: float = 0.1,
    fp_rate: float = 0.5,
    jitter_px: float = 2.0,
    seed: int = 0,
    info: SequenceInfo | None = None,
) -> Tracks:
    """Simulated detector output for ``gt``: misses, jitter, false positives and scores.

    Detections carry no identity: ``track_id`` is -1 on every row. True objects score
    0.55..0.95 (lower when occluded, and occluded ones are missed more), false positives
    are isolated random boxes scoring 0.1..0.6, ``fp_rate`` per frame on average. Source is
    ``"auto"``.

    Raises:
        ConfigError: a rate outside 0..1 (miss) or negative.
    """
    if not 0.0 <= miss_rate <= 1.0 or fp_rate < 0 or jitter_px < 0:
        raise ConfigError(
            f"make_detections: need 0 <= miss_rate <= 1, fp_rate >= 0, jitter_px >= 0; got "
            f"{miss_rate}, {fp_rate}, {jitter_px}"
        )
    rng = np.random.default_rng(seed)
    vis = gt[~gt.outside]
    p_miss = np.clip(miss_rate + (1 - vis.visibility) * 0.5, 0, 1)
    kept = vis[rng.random(len(vis)) >= p_miss]
    boxes = kept.xyxy + rng.normal(0, jitter_px, kept.xyxy.shape)
    score = np.clip(rng.uniform(0.55, 0.95, len(kept)) * (0.6 + 0.4 * kept.visibility), 0, 1)
    frames_all = np.unique(gt.frame) if len(gt) else np.zeros(0, np.int64)
    n_fp = rng.poisson(fp_rate * len(frames_all))
    width = info.width if info and info.width else float(gt.xyxy[:, 2].max()) if len(gt) else 100.0
    height = info.height if info and info.height else float(gt.xyxy[:, 3].max()) if len(gt) else 100.0
    fp_frames = rng.choice(frames_all, n_fp) if len(frames_all) else np.zeros(0, np.int64)
    fw = rng.uniform(10, 0.2 * width, n_fp)
    fh = fw * rng.uniform(1.5, 3.0, n_fp)
    fx = rng.uniform(0, width - fw)
    fy = rng.uniform(0, np.maximum(height - fh, 1))
    fp_boxes = np.stack([fx, fy, fx + fw, fy + fh], axis=1)
    return Tracks.from_columns(
        frame=np.concatenate([kept.frame, fp_frames]),
        track_id=np.full(len(kept) + n_fp, -1),
        xyxy=np.concatenate([boxes, fp_boxes]),
        label=np.concatenate([kept.label, np.zeros(n_fp, np.int32)]),
        score=np.concatenate([score, rng.uniform(0.1, 0.6, n_fp)]),
        source=np.full(len(kept) + n_fp, 1),
        labels=gt.labels,
    )
