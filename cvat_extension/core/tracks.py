"""The columnar track model every part of the product shares.

A :class:`Tracks` holds one row per (track, frame) box in aligned numpy columns, sorted by
``(track_id, frame)``. The same type holds two kinds of content:

- **keyframes** as CVAT stores them (``keyframe`` all true, ``outside`` rows end visibility),
  read from CVAT JSON or written back to it;
- **dense per-frame boxes**, as in a MOT file or after
  :func:`cvat_extension.core.keyframes.expand_keyframes` (``keyframe`` marks which rows were
  stored keyframes).

Frame numbers are CVAT's: 0-based task frame indices. Readers of 1-based formats (MOT)
shift by ``SequenceInfo.frame_base`` so that checks and merges see one numbering, and
writers shift back so that users see their own numbering.

Boxes are float64 because CVAT stores points as doubles: reading and writing back a track we
did not change must give the same numbers, or we would be editing an annotator's work.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["Source", "SequenceInfo", "Tracks", "SOURCES"]


class Source(str, Enum):
    """Who made a shape, with CVAT's names (``LabeledShape.source``)."""

    MANUAL = "manual"
    AUTO = "auto"
    SEMI_AUTO = "semi-auto"
    FILE = "file"
    CONSENSUS = "consensus"


#: Source codes stored in :attr:`Tracks.source`, in code order.
SOURCES: tuple[Source, ...] = tuple(Source)



def _sorted_by_track_frame(track_id: np.ndarray, frame: np.ndarray) -> bool:
    """Whether rows are in (track_id, frame) order: one linear test instead of a sort
    (readers that sorted already, and every selection of a Tracks, pass it)."""
    if len(track_id) < 2:
        return True
    dt = np.diff(track_id)
    return bool(np.all((dt > 0) | ((dt == 0) & (np.diff(frame) >= 0))))

@dataclass(frozen=True, slots=True)
class SequenceInfo:
    """What a file or CVAT task says about the sequence around its tracks.

    Attributes:
        num_frames: frames in the sequence (CVAT's ``stop_frame + 1``); 0 when unknown, in
            which case the last annotated frame bounds it.
        width: frame width in pixels; 0 when unknown.
        height: frame height in pixels; 0 when unknown.
        frame_base: what to add to an internal frame number to get the number the user's
            file uses (1 for MOT, 0 for CVAT).
        job_starts: first frame of each CVAT job/segment, sorted; empty outside CVAT. Tracks
            are cut at these frames by CVAT (see ``core/stitch.py``).
        name: sequence or task name, for reports.
        fps: annotated frames per second (MOT ``seqinfo.ini`` frameRate; a CVAT task's
            video rate divided by its frame step); 0 when unknown. The checks and the merge
            scale their per-frame thresholds by it (``core/timebase.py``).
    """

    num_frames: int = 0
    width: int = 0
    height: int = 0
    frame_base: int = 0
    job_starts: tuple[int, ...] = ()
    name: str = ""
    fps: float = 0.0


def _column(value: Any, dtype: npt.DTypeLike, n: int, name: str, fill: Any) -> np.ndarray:
    if value is None:
        return np.full(n, fill, dtype=dtype)
    arr = np.asarray(value)
    if arr.shape != (n,):
        raise ValueError(f"Tracks.{name} must have shape ({n},), got {arr.shape}")
    return arr.astype(dtype, copy=False)


def _readonly(arr: np.ndarray) -> np.ndarray:
    view = arr.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True, eq=False)
class Tracks:
    """Aligned columns of boxes, one row per (track, frame), sorted by (track_id, frame).

    Build with :meth:`from_columns` (which fills defaults and sorts); the raw constructor
    is for code that already holds sorted, typed columns.

    Attributes:
        frame: (n,) int64, 0-based task frame.
        track_id: (n,) int64.
        xyxy: (n, 4) float64, ``x1, y1, x2, y2`` in pixels (CVAT rectangle points).
        label: (n,) int32 index into :attr:`labels`.
        outside: (n,) bool; CVAT's outside flag: the object is not in the frame from here on.
        occluded: (n,) bool; CVAT's occluded flag.
        keyframe: (n,) bool; the row is a stored CVAT keyframe (all rows of a MOT file are).
        visibility: (n,) float32 in 0..1 (MOT column 9); 1.0 when unknown.
        source: (n,) uint8 index into :data:`SOURCES`.
        score: (n,) float32 confidence; 1.0 for human annotations.
        rotation: (n,) float64 degrees, CVAT's rectangle rotation about the box centre.
        labels: label names; ``label`` indexes this tuple.
        data: extra per-row columns, each with n rows (e.g. ``"z_order"``).
    """

    frame: np.ndarray
    track_id: np.ndarray
    xyxy: np.ndarray
    label: np.ndarray
    outside: np.ndarray
    occluded: np.ndarray
    keyframe: np.ndarray
    visibility: np.ndarray
    source: np.ndarray
    score: np.ndarray
    rotation: np.ndarray
    labels: tuple[str, ...] = ()
    data: Mapping[str, np.ndarray] = field(default_factory=dict)

    # ------------------------------------------------------------------ construction
    def __post_init__(self) -> None:
        n = len(self.frame)
        expected = {
            "frame": ((n,), np.int64),
            "track_id": ((n,), np.int64),
            "xyxy": ((n, 4), np.float64),
            "label": ((n,), np.int32),
            "outside": ((n,), np.bool_),
            "occluded": ((n,), np.bool_),
            "keyframe": ((n,), np.bool_),
            "visibility": ((n,), np.float32),
            "source": ((n,), np.uint8),
            "score": ((n,), np.float32),
            "rotation": ((n,), np.float64),
        }
        for name, (shape, dtype) in expected.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != shape or arr.dtype != dtype:
                got = (getattr(arr, "shape", None), getattr(arr, "dtype", type(arr)))
                raise ValueError(
                    f"Tracks.{name} must be an array of shape {shape} and dtype "
                    f"{np.dtype(dtype)}, got shape {got[0]} and dtype {got[1]}"
                )
            object.__setattr__(self, name, _readonly(arr))
        for key, arr in self.data.items():
            if len(arr) != n:
                raise ValueError(f"Tracks.data[{key!r}] must have {n} rows, got {len(arr)}")
        object.__setattr__(self, "data", {k: _readonly(np.asarray(v)) for k, v in self.data.items()})
        object.__setattr__(self, "labels", tuple(self.labels))
        if n and len(self.labels) and int(self.label.max()) >= len(self.labels):
            raise ValueError(
                f"Tracks.label holds code {int(self.label.max())} but only "
                f"{len(self.labels)} label names are given"
            )
        if n > 1:
            # Sorted (track_id, frame) order is an invariant every check relies on.
            if not _sorted_by_track_frame(self.track_id, self.frame):
                raise ValueError("Tracks rows must be sorted by (track_id, frame); use from_columns")

    @classmethod
    def from_columns(
        cls,
        *,
        frame: npt.ArrayLike,
        track_id: npt.ArrayLike,
        xyxy: npt.ArrayLike,
        label: npt.ArrayLike | None = None,
        outside: npt.ArrayLike | None = None,
        occluded: npt.ArrayLike | None = None,
        keyframe: npt.ArrayLike | None = None,
        visibility: npt.ArrayLike | None = None,
        source: npt.ArrayLike | None = None,
        score: npt.ArrayLike | None = None,
        rotation: npt.ArrayLike | None = None,
        labels: Sequence[str] = ("object",),
        data: Mapping[str, npt.ArrayLike] | None = None,
    ) -> Tracks:
        """Build a :class:`Tracks` from loose columns, filling defaults and sorting rows.

        Defaults: label 0, not outside, not occluded, keyframe true, visibility 1, source
        manual, score 1, rotation 0.

        Raises:
            ValueError: a column has the wrong length or the boxes are not (n, 4).
        """
        frame_arr = np.asarray(frame, dtype=np.int64).reshape(-1)
        n = len(frame_arr)
        box = np.asarray(xyxy, dtype=np.float64)
        if n == 0 and box.size == 0:
            box = box.reshape(0, 4)
        if box.shape != (n, 4):
            raise ValueError(f"Tracks.xyxy must have shape ({n}, 4), got {box.shape}")
        cols = {
            "frame": frame_arr,
            "track_id": _column(track_id, np.int64, n, "track_id", 0),
            "xyxy": box,
            "label": _column(label, np.int32, n, "label", 0),
            "outside": _column(outside, np.bool_, n, "outside", False),
            "occluded": _column(occluded, np.bool_, n, "occluded", False),
            "keyframe": _column(keyframe, np.bool_, n, "keyframe", True),
            "visibility": _column(visibility, np.float32, n, "visibility", 1.0),
            "source": _column(source, np.uint8, n, "source", 0),
            "score": _column(score, np.float32, n, "score", 1.0),
            "rotation": _column(rotation, np.float64, n, "rotation", 0.0),
        }
        extra = {k: np.asarray(v) for k, v in (data or {}).items()}
        if not _sorted_by_track_frame(cols["track_id"], cols["frame"]):
            # lexsort is stable: rows already in order would stay where they are.
            order = np.lexsort((cols["frame"], cols["track_id"]))
            cols = {k: v[order] for k, v in cols.items()}
            extra = {k: v[order] for k, v in extra.items()}
        return cls(**cols, labels=tuple(labels), data=extra)

    @classmethod
    def empty(cls, labels: Sequence[str] = ("object",)) -> Tracks:
        """An empty :class:`Tracks` with the given label names."""
        return cls.from_columns(frame=[], track_id=[], xyxy=np.zeros((0, 4)), labels=labels)

    @classmethod
    def concat(cls, parts: Sequence[Tracks]) -> Tracks:
        """Concatenate several :class:`Tracks` (rows re-sorted).

        Label names are unified by name, so parts read from different files can be joined.
        Extra ``data`` columns are kept only when every part has them.
        """
        parts = [p for p in parts]
        if not parts:
            return cls.empty()
        names: list[str] = []
        for p in parts:
            for name in p.labels:
                if name not in names:
                    names.append(name)
        index = {name: i for i, name in enumerate(names)}
        remapped = []
        for p in parts:
            lut = np.array([index[name] for name in p.labels] or [0], dtype=np.int32)
            remapped.append(lut[p.label] if len(p) else p.label)
        keys = set(parts[0].data)
        for p in parts[1:]:
            keys &= set(p.data)
        return cls.from_columns(
            frame=np.concatenate([p.frame for p in parts]),
            track_id=np.concatenate([p.track_id for p in parts]),
            xyxy=np.concatenate([p.xyxy for p in parts]),
            label=np.concatenate(remapped),
            outside=np.concatenate([p.outside for p in parts]),
            occluded=np.concatenate([p.occluded for p in parts]),
            keyframe=np.concatenate([p.keyframe for p in parts]),
            visibility=np.concatenate([p.visibility for p in parts]),
            source=np.concatenate([p.source for p in parts]),
            score=np.concatenate([p.score for p in parts]),
            rotation=np.concatenate([p.rotation for p in parts]),
            labels=names or ("object",),
            data={k: np.concatenate([p.data[k] for p in parts]) for k in sorted(keys)},
        )

    # ------------------------------------------------------------------ selection
    def __len__(self) -> int:
        return len(self.frame)

    def __getitem__(self, index: int | slice | npt.ArrayLike) -> Tracks:
        """Select rows by int, slice, int array or boolean mask; always returns Tracks.

        Selection keeps the (track_id, frame) order, so no re-sort is needed.
        """
        if isinstance(index, (int, np.integer)):
            idx: Any = slice(int(index), int(index) + 1 if int(index) != -1 else None)
        elif isinstance(index, slice):
            idx = index
        else:
            idx = np.asarray(index)
            if idx.dtype != np.bool_:
                idx = np.sort(idx.astype(np.int64))
        return Tracks(
            frame=self.frame[idx],
            track_id=self.track_id[idx],
            xyxy=self.xyxy[idx],
            label=self.label[idx],
            outside=self.outside[idx],
            occluded=self.occluded[idx],
            keyframe=self.keyframe[idx],
            visibility=self.visibility[idx],
            source=self.source[idx],
            score=self.score[idx],
            rotation=self.rotation[idx],
            labels=self.labels,
            data={k: v[idx] for k, v in self.data.items()},
        )

    def with_columns(self, **columns: Any) -> Tracks:
        """Return a copy with some columns replaced (rows re-sorted if ids or frames change)."""
        if "frame" in columns or "track_id" in columns:
            merged = {name: getattr(self, name) for name in _ROW_COLUMNS}
            merged.update(columns)
            merged.setdefault("labels", self.labels)
            merged.setdefault("data", dict(self.data))
            return Tracks.from_columns(**merged)
        return replace(self, **columns)

    # ------------------------------------------------------------------ per-track views
    @property
    def track_starts(self) -> np.ndarray:
        """Row index where each track's rows start, plus ``len(self)`` at the end: (k+1,)."""
        if len(self) == 0:
            return np.zeros(1, dtype=np.int64)
        cuts = np.flatnonzero(np.diff(self.track_id)) + 1
        return np.concatenate([[0], cuts, [len(self)]]).astype(np.int64)

    @property
    def ids(self) -> np.ndarray:
        """Distinct track ids, ascending: (k,)."""
        return self.track_id[self.track_starts[:-1]] if len(self) else self.track_id[:0]

    def iter_tracks(self) -> Iterator[tuple[int, Tracks]]:
        """Yield ``(track_id, rows of that track)`` in id order."""
        starts = self.track_starts
        for a, b in zip(starts[:-1], starts[1:]):
            yield int(self.track_id[a]), self[slice(int(a), int(b))]

    def track(self, track_id: int) -> Tracks:
        """Rows of one track (empty if absent)."""
        a, b = np.searchsorted(self.track_id, [track_id, track_id + 1])
        return self[slice(int(a), int(b))]

    def visible(self) -> Tracks:
        """Rows that are not outside: the boxes a viewer sees (``self`` when all are: Tracks
        is immutable, and a copy of a million-row task costs more than everything after it)."""
        if not self.outside.any():
            return self
        return self[~self.outside]

    def label_name(self, code: int) -> str:
        """Name of label code ``code``."""
        return self.labels[code] if 0 <= code < len(self.labels) else str(code)

    def __repr__(self) -> str:
        return (
            f"Tracks(rows={len(self)}, tracks={len(self.ids)}, "
            f"frames={int(self.frame.min()) if len(self) else 0}.."
            f"{int(self.frame.max()) if len(self) else 0}, labels={self.labels!r})"
        )


_ROW_COLUMNS = (
    "frame",
    "track_id",
    "xyxy",
    "label",
    "outside",
    "occluded",
    "keyframe",
    "visibility",
    "source",
    "score",
    "rotation",
)
