"""Whole-task MOT auto-annotation: detector + tracker over every frame, real tracks out.

Why not CVAT's own paths: detector functions and ``cvat-cli task auto-annotate`` can only write
per-frame shapes (``cvat-interfaces.md`` §1.5, §2.3), and the ``reid`` path sees two frames at
a time. Here one detector and one multi-object tracker run over the whole sequence in order,
and the result is uploaded as CVAT tracks with sparse keyframes and ``outside`` keyframes where
an object is gone, so an annotator corrects a handful of keyframes per object instead of a box
per frame. Detector boxes jitter by several pixels a frame, so each whole track is first
smoothed (short gaps filled, flagged occluded) and then thinned with a tolerance relative to
the box size (:class:`~cvat_extension.core.smooth.SparseTrackConfig`; ``exact`` keeps the raw
boxes within a pixel tolerance instead).

Frames come through the SDK on demand, one data chunk at a time where the task allows it
(:func:`iter_task_frames`: image tasks serve zip chunks of ``data_chunk_size`` frames, so API
calls scale with chunks, not frames; video tasks serve mp4 chunks, decoded with OpenCV in
``video_chunks``), never the whole task in memory. A progress bar shows frames done, and a checkpoint file (frames done, tracker state, boxes so
far) is written every ``checkpoint_every`` frames, so an interrupted run resumes where it
stopped with the same ids. Uploads go per job (``PATCH action=create``), since CVAT cuts tracks
at job boundaries anyway (§3.3); a job that was already uploaded is recorded in the checkpoint
and not uploaded twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from cvat_extension.core.smooth import SparseTrackConfig
from cvat_extension.core.tracks import SOURCES, Source, Tracks
from cvat_extension.errors import CvatSyncError, InputError
from cvat_extension.models.mot_tracker import MotTracker

__all__ = ["Checkpoint", "annotate_task", "detect_and_track", "iter_frame_folder", "iter_task_frames", "iter_video"]

logger = logging.getLogger(__name__)

_AUTO = SOURCES.index(Source.AUTO)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


class Detector(Protocol):
    """What the pipeline needs from a detector (``YoloDetector`` satisfies it)."""

    labels: tuple[str, ...]

    def detect(self, image_rgb: npt.NDArray[np.uint8]) -> Any: ...


# ---------------------------------------------------------------------- checkpoint
#: Columns of a collected row: frame, track id, x1, y1, x2, y2, score, class.
_ROW_WIDTH = 8


@dataclass
class _Progress:
    key: str
    next_frame: int = 0
    tracker_state: bytes | None = None
    rows: list[npt.NDArray[np.float64]] = field(default_factory=list)  # (m, 8) f, id, xyxy, score, cls
    uploaded_jobs: list[int] = field(default_factory=list)


class Checkpoint:
    """Resumable progress of one run in a file: a numpy ``.npz`` of plain arrays.

    ``key`` identifies the run (source + settings); a checkpoint with another key is ignored
    with a warning, so changing settings never mixes two runs. The file holds only arrays
    and a JSON header, read with ``allow_pickle=False``: a resume file is a path anyone may
    hand over, and unpickling it would run whatever it contains.
    """

    def __init__(self, path: str | Path, key: str) -> None:
        self.path = Path(path)
        self.key = key
        self.progress = _Progress(key=key)
        if self.path.is_file():
            loaded = self._load()
            if loaded.key == key:
                self.progress = loaded
                logger.info("resuming from %s at frame %d", self.path, loaded.next_frame)
            else:
                logger.warning("%s belongs to another run (source or settings changed): starting over", self.path)

    def _load(self) -> _Progress:
        """The stored progress.

        Raises:
            InputError: not a checkpoint this code wrote (any other file, a truncated one).
        """
        try:
            with np.load(self.path, allow_pickle=False) as z:
                head = json.loads(bytes(z["header"]).decode("utf-8"))
                rows = np.asarray(z["rows"], dtype=np.float64).reshape(-1, _ROW_WIDTH)
                counts = np.asarray(z["row_counts"], dtype=np.int64)
                state = bytes(z["tracker_state"]) if bool(head["has_state"]) else None
            if counts.sum() != len(rows) or (counts < 0).any():
                raise ValueError("row counts do not add up")
            return _Progress(key=str(head["key"]), next_frame=int(head["next_frame"]), tracker_state=state,
                             rows=list(np.split(rows, np.cumsum(counts)[:-1])) if len(counts) else [],
                             uploaded_jobs=[int(j) for j in head["uploaded_jobs"]])
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:
            raise InputError(f"{self.path}: not a resume file of this tool ({exc}); delete it to start over") from exc

    def save(self) -> None:
        """Write the progress atomically (a crash mid-write keeps the previous checkpoint)."""
        p = self.progress
        head = {"key": p.key, "next_frame": p.next_frame, "has_state": p.tracker_state is not None,
                "uploaded_jobs": [int(j) for j in p.uploaded_jobs]}
        rows = np.concatenate(p.rows).reshape(-1, _ROW_WIDTH) if p.rows else np.zeros((0, _ROW_WIDTH))
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        with tmp.open("wb") as fh:
            np.savez(fh, header=np.frombuffer(json.dumps(head).encode("utf-8"), dtype=np.uint8),
                     rows=rows.astype(np.float64), row_counts=np.asarray([len(r) for r in p.rows], dtype=np.int64),
                     tracker_state=np.frombuffer(p.tracker_state or b"", dtype=np.uint8))
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def run_key(**parts: Any) -> str:
    """A stable digest of what defines a run (source, weights, settings)."""
    text = json.dumps({k: str(v) for k, v in sorted(parts.items())})
    return hashlib.sha256(text.encode()).hexdigest()[:24]


# ---------------------------------------------------------------------- pipeline
def detect_and_track(
    frames: Iterable[tuple[int, npt.NDArray[np.uint8]]],
    detector: Detector,
    tracker: MotTracker,
    *,
    checkpoint: Checkpoint | None = None,
    checkpoint_every: int = 25,
    on_frame: Callable[[int], None] | None = None,
) -> Tracks:
    """Run ``detector`` then ``tracker`` on each ``(frame, rgb)`` and return the tracked boxes.

    With a checkpoint, the tracker state and boxes so far are restored first and the caller's
    ``frames`` should start at ``checkpoint.progress.next_frame``; progress is saved every
    ``checkpoint_every`` frames and at the end.
    """
    progress = checkpoint.progress if checkpoint else _Progress(key="")
    if progress.tracker_state is not None:
        tracker.load_state(progress.tracker_state)
    done_since_save = 0
    for frame, image in frames:
        if frame < progress.next_frame:
            continue
        det = detector.detect(image)
        dets = np.column_stack([np.asarray(det.xyxy, np.float64), np.asarray(det.score, np.float64),
                                np.asarray(det.class_id, np.float64)]).reshape(-1, 6)
        out = tracker.update(dets, image, frame)
        if len(out):
            progress.rows.append(np.column_stack([np.full(len(out), frame, np.float64), out[:, 4],
                                                  out[:, :4], out[:, 5], out[:, 6]]))
        progress.next_frame = frame + 1
        done_since_save += 1
        if on_frame is not None:
            on_frame(frame)
        if checkpoint is not None and done_since_save >= checkpoint_every:
            progress.tracker_state = tracker.state_bytes()
            checkpoint.save()
            done_since_save = 0
    if checkpoint is not None:
        progress.tracker_state = tracker.state_bytes()
        checkpoint.save()
    return rows_to_tracks(progress.rows, detector.labels)


def rows_to_tracks(rows: list[npt.NDArray[np.float64]], labels: tuple[str, ...]) -> Tracks:
    """Collected ``(frame, id, x1, y1, x2, y2, score, cls)`` rows → Tracks (source auto)."""
    if not rows:
        return Tracks.empty(labels=labels or ("object",))
    a = np.concatenate(rows)
    return Tracks.from_columns(frame=a[:, 0].astype(np.int64), track_id=a[:, 1].astype(np.int64) + 1,
                               xyxy=a[:, 2:6], score=a[:, 6].astype(np.float32), label=a[:, 7].astype(np.int32),
                               source=np.full(len(a), _AUTO, np.uint8), labels=labels)


# ---------------------------------------------------------------------- offline sources
def iter_frame_folder(folder: str | Path, start: int = 0) -> tuple[int, Iterator[tuple[int, npt.NDArray[np.uint8]]]]:
    """``(count, frames)`` of the images in ``folder`` in name order, from ``start``.

    Raises:
        InputError: not a folder, or no images in it.
    """
    from PIL import Image

    path = Path(folder)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder of frames")
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise InputError(f"{path}: no images ({', '.join(IMAGE_SUFFIXES)})")

    def gen() -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        for i in range(start, len(files)):
            try:
                with Image.open(files[i]) as im:
                    yield i, np.asarray(im.convert("RGB"))
            except OSError as exc:
                raise InputError(f"{files[i]}: not a readable image ({exc})") from exc

    return len(files), gen()


def iter_video(video: str | Path, start: int = 0) -> tuple[int, Iterator[tuple[int, npt.NDArray[np.uint8]]]]:
    """``(count, frames)`` of a video file decoded with OpenCV, from ``start``.

    Raises:
        InputError: the file is missing or OpenCV cannot open it.
    """
    from cvat_extension._deps import require

    cv2 = require("cv2", extra="models")
    path = Path(video)
    if not path.is_file():
        raise InputError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        raise InputError(f"{path}: OpenCV cannot open this video")
    count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)

    def gen() -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
        try:
            index = 0
            while True:
                ok, bgr = cap.read()
                if not ok:
                    return
                if index >= start:
                    yield index, np.ascontiguousarray(bgr[:, :, ::-1])
                index += 1
        finally:
            cap.release()

    return count, gen()


# ---------------------------------------------------------------------- CVAT
def annotate_task(
    api: Any,
    task_id: int,
    detector: Detector,
    tracker: MotTracker,
    *,
    checkpoint: Checkpoint | None = None,
    tolerance_px: float = 1.0,
    on_frame: Callable[[int], None] | None = None,
    on_start: Callable[[int], None] | None = None,
    plant: Callable[[int, Tracks, list[dict[str, Any]], dict[str, Any]], Tracks] | None = None,
    keyframes: SparseTrackConfig | None = None,
    append: bool = False,
) -> dict[str, int]:
    """Detect and track every frame of CVAT task ``task_id`` and upload the tracks per job.

    Pre-annotations go into empty jobs: a job that already holds shapes or tracks (a second
    run, or people's work) is refused before any frame is read, since uploading again would
    put a duplicate of every object on it; ``append`` adds to such jobs anyway. Jobs this
    run already uploaded (recorded in the resume file) are neither checked nor uploaded again.

    Detector labels are matched to task labels by name; detections of other labels are
    dropped (counted in the result). Returns counts: frames, tracks, keyframes, dropped.
    ``plant(task_id, tracks, jobs, meta)`` (attention checks, ``cvat/attention.py``) may
    withhold boxes; it runs before the first upload, on the prepared (smoothed) tracks, so
    a withheld box stays withheld. ``keyframes`` says how tracks become keyframes (default:
    smoothed, size-relative tolerance with ``tolerance_px`` as its floor); tracks are
    prepared whole, then cut and thinned per job.

    Raises:
        InputError: no detector label exists in the task, or a job already holds
            annotations (without ``append``).
        CvatSyncError: CVAT failed (after retries).
    """
    from cvat_extension.io.cvat_json import CvatAnnotations, CvatLabel

    meta = api.get_task_meta(task_id)
    size = int(meta.get("size") or len(meta.get("frames") or []))
    task_labels = {str(lb["name"]): int(lb["id"]) for lb in api.list_labels(task_id)}
    wanted = [name for name in detector.labels if name in task_labels]
    if not wanted:
        raise InputError(
            f"task {task_id}: none of the model's labels ({', '.join(detector.labels[:10])}) is a "
            f"task label ({', '.join(task_labels) or 'none'}); add one of them to the task"
        )
    progress = checkpoint.progress if checkpoint else _Progress(key="")
    jobs = sorted(api.list_jobs(task_id=task_id, type="annotation"), key=lambda j: int(j["start_frame"]))
    if not append:
        _refuse_annotated_jobs(api, task_id, [j for j in jobs if int(j["id"]) not in progress.uploaded_jobs])
    if on_start is not None:
        on_start(size)

    task = api.get_task(task_id)
    chunk_size = int(task.get("data_chunk_size") or 0)
    sizes = meta.get("frames") or [{}]
    frame_size = (int(sizes[0]["width"]), int(sizes[0]["height"])) if "width" in sizes[0] else None
    frames = iter_task_frames(api, task_id, size, start=progress.next_frame, chunk_size=chunk_size or None,
                              frame_size=frame_size if task.get("data_original_chunk_type") == "video" else None)
    tracks = detect_and_track(frames, detector, tracker, checkpoint=checkpoint, on_frame=on_frame)
    keep = np.isin(np.asarray(tracks.labels)[tracks.label] if len(tracks) else np.zeros(0, str), wanted)
    dropped = int((~keep).sum())
    tracks = tracks[keep]
    labels = tuple(CvatLabel(task_labels[name], name) for name in tracks.labels if name in task_labels)
    if len(labels) != len(tracks.labels):  # unmatched names still sit in the labels tuple
        tracks = _relabel(tracks, wanted)
        labels = tuple(CvatLabel(task_labels[name], name) for name in tracks.labels)
    doc = CvatAnnotations(tracks=Tracks.empty(labels=tracks.labels), shapes=Tracks.empty(labels=tracks.labels),
                          labels=labels)
    sparse = keyframes if keyframes is not None else SparseTrackConfig(tolerance_px=tolerance_px)
    tracks = sparse.prepare(tracks)
    if plant is not None:
        tracks = plant(task_id, tracks, jobs, meta)
    n_tracks = n_keyframes = 0
    for job in jobs:
        jid, start, stop = int(job["id"]), int(job["start_frame"]), int(job["stop_frame"])
        piece = tracks[(tracks.frame >= start) & (tracks.frame <= stop)]
        payload = doc.to_labeled_data(sparse.keyframes(piece, stop_frame=stop), stop_frame=stop,
                                      changed_only=True)
        n_tracks += len(payload["tracks"])
        n_keyframes += sum(len(t["shapes"]) for t in payload["tracks"])
        if jid in progress.uploaded_jobs or not payload["tracks"]:
            continue
        api.patch_job_annotations(jid, "create", payload)
        progress.uploaded_jobs.append(jid)
        if checkpoint is not None:
            checkpoint.save()
    return {"frames": size, "tracks": n_tracks, "keyframes": n_keyframes, "boxes": len(tracks),
            "dropped_detections": dropped, "jobs": len(jobs)}


def _refuse_annotated_jobs(api: Any, task_id: int, jobs: list[dict[str, Any]]) -> None:
    """Raise InputError naming the first of ``jobs`` that already holds annotations."""
    for job in jobs:
        raw = api.get_job_annotations(int(job["id"]))
        held = len(raw.get("tracks") or []) + len(raw.get("shapes") or [])
        if held:
            raise InputError(
                f"task {task_id}: job {job['id']} already holds {held} track(s)/shape(s); annotate "
                "uploads pre-annotations into empty jobs (a second upload duplicates every object). "
                "Pass --append to add to them anyway"
            )


def iter_task_frames(
    api: Any, task_id: int, size: int, *, start: int = 0, chunk_size: int | None = None,
    quality: str = "original", frame_size: tuple[int, int] | None = None,
) -> Iterator[tuple[int, npt.NDArray[np.uint8]]]:
    """``(frame, rgb)`` for task frames ``start .. size-1``, fetched lazily.

    With ``chunk_size`` (the task's ``data_chunk_size``) one ``GET data?type=chunk`` serves
    ``chunk_size`` frames: task chunk ``n`` holds frames ``n*chunk_size ..`` (CVAT's
    ``TaskFrameProvider.get_chunk``). What a chunk is comes from its bytes, not from the
    task's declared chunk type: a zip for image tasks, its members named ``{index:06d}.{ext}``
    in frame order (``ZipChunkWriter``), decoded lazily; an mp4 for video tasks, decoded whole
    by :func:`~cvat_extension.cvat.video_chunks.decode_video_chunk` (``frame_size``
    ``(width, height)`` crops CVAT's even-size padding). A resumed run starts at the chunk
    holding ``start`` and skips the frames before it. A chunk that does not hold exactly the
    expected number of frames (a proxy page, a truncated or undecodable video) is fetched
    frame by frame instead, with a warning, so frame numbers never shift. Without
    ``chunk_size`` every frame is one request.

    Raises:
        CvatSyncError: an image CVAT sent cannot be decoded (frame named).
    """
    if not chunk_size:
        for f in range(start, size):
            yield f, _decode(api.get_frame(task_id, f, quality=quality), task_id, f)
        return
    for number in range(start // chunk_size, -(-size // chunk_size)):
        first = number * chunk_size
        count = min(chunk_size, size - first)
        images, problem = _chunk_images(api.get_chunk(task_id, number, quality=quality), count,
                                        task_id, first, frame_size)
        if images is None:
            logger.warning("task %d chunk %d: expected %d frames, got %s; fetching its frames one by one",
                           task_id, number, count, problem)
            for f in range(max(first, start), first + count):
                yield f, _decode(api.get_frame(task_id, f, quality=quality), task_id, f)
            continue
        for i, image in enumerate(images):
            if first + i >= start:
                yield first + i, image()


def _chunk_images(
    data: bytes, count: int, task_id: int, first: int, frame_size: tuple[int, int] | None,
) -> tuple[list[Callable[[], npt.NDArray[np.uint8]]] | None, str]:
    """One loader per frame of a chunk (zip members decode on call), or ``(None, why)``."""
    from cvat_extension.cvat.video_chunks import chunk_kind, decode_video_chunk

    kind = chunk_kind(data)
    if kind == "imageset":
        try:
            archive = zipfile.ZipFile(io.BytesIO(data))
        except zipfile.BadZipFile as exc:
            return None, f"a broken zip ({exc})"
        names = sorted(n for n in archive.namelist() if not n.endswith("/"))
        if len(names) != count:
            return None, f"a zip of {len(names)} files"

        def member(i: int, name: str) -> Callable[[], npt.NDArray[np.uint8]]:
            return lambda: _decode(archive.read(name), task_id, first + i)

        return [member(i, n) for i, n in enumerate(names)], ""
    if kind == "video":
        frames = decode_video_chunk(data, frame_size=frame_size, limit=count)
        if len(frames) != count:
            return None, f"an mp4 that decodes to {len(frames)}{'+' if len(frames) > count else ''} frames"
        return [_constant(im) for im in frames], ""
    return None, f"neither a zip nor an mp4 ({len(data)} bytes starting {data[:8]!r})"


def _constant(image: npt.NDArray[np.uint8]) -> Callable[[], npt.NDArray[np.uint8]]:
    return lambda: image


def _decode(data: bytes, task_id: int, frame: int) -> npt.NDArray[np.uint8]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise CvatSyncError(f"task {task_id} frame {frame}: CVAT sent an unreadable image ({exc})") from exc


def _relabel(tracks: Tracks, names: list[str]) -> Tracks:
    """The same rows with ``labels`` reduced to ``names`` (every row's label is in it)."""
    lut = np.array([names.index(n) if n in names else -1 for n in tracks.labels], dtype=np.int32)
    return Tracks.from_columns(frame=tracks.frame, track_id=tracks.track_id, xyxy=tracks.xyxy,
                               label=lut[tracks.label], score=tracks.score, source=tracks.source,
                               labels=tuple(names))

