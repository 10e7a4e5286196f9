"""Decode the mp4 data chunks CVAT serves for video tasks into RGB frames.

Why: a video task's frames one by one cost one HTTP request and one server-side decode each
(CVAT decodes the chunk holding the frame, then re-encodes that frame as PNG). Its chunks are
what CVAT keeps anyway: ``Mpeg4ChunkWriter`` in ``cvat/apps/engine/media_extractors.py``
writes an mp4 container with one H.264 stream (``libopenh264``, or ``libx264`` when that is
missing), ``yuv420p`` at 25 fps, with width and height padded up to even numbers; the
``compressed`` quality (``Mpeg4CompressedChunkWriter``) also halves the size until the height
is under 1080. Task chunk ``N`` holds the task's (relative) frames ``N*chunk_size`` up to
``(N+1)*chunk_size - 1`` (``TaskFrameProvider.get_chunk`` in ``frame_provider.py``: the
absolute video frames ``start_frame + rel*step``, so ``frame_filter``/step are already applied
by the server), and CVAT itself reads a chunk back by decoding every frame in order
(``VideoReader``), so frame ``k`` of the chunk is the ``k``-th decoded picture.

Decoding uses OpenCV's FFmpeg backend (already a dependency of the models extra; PyAV would
add a 35 MB wheel for the same FFmpeg). OpenCV reads files, so the chunk goes through a
temporary file. The caller checks the decoded count against what the chunk should hold and
falls back to per-frame requests on a mismatch: a wrong count means the frames cannot be
matched to frame numbers safely.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np
import numpy.typing as npt

__all__ = ["chunk_kind", "decode_video_chunk"]

_MP4_BRANDS = (b"ftyp",)


def chunk_kind(data: bytes) -> str:
    """``"imageset"`` (zip), ``"video"`` (ISO-BMFF/mp4) or ``"unknown"`` from the first bytes.

    Sniffing guards against a task whose declared chunk type does not match what a proxy or an
    older CVAT actually sends.

    >>> chunk_kind(b"PK\\x03\\x04rest"), chunk_kind(b"\\x00\\x00\\x00\\x18ftypisom"), chunk_kind(b"<html>")
    ('imageset', 'video', 'unknown')
    """
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        return "imageset"
    if data[4:8] in _MP4_BRANDS:
        return "video"
    return "unknown"


def decode_video_chunk(
    data: bytes, *, frame_size: tuple[int, int] | None = None, limit: int | None = None,
) -> list[npt.NDArray[np.uint8]]:
    """All frames of an mp4 chunk as RGB ``(h, w, 3)`` uint8 arrays, in decode order.

    ``frame_size`` ``(width, height)``: the task's frame size; CVAT pads odd sizes to even ones
    for ``yuv420p`` (cropped off here) and the ``compressed`` chunks of tall videos are
    downscaled (resized back here, so boxes stay in task pixel coordinates). ``limit`` stops
    after that many frames plus one (enough to detect a count mismatch without decoding a
    runaway stream). Returns ``[]`` when OpenCV cannot open the data.

    Raises:
        MissingDependencyError: OpenCV is not installed.
    """
    from cvat_extension._deps import require

    cv2 = require("cv2", extra="models")
    fd, path = tempfile.mkstemp(suffix=".mp4", prefix="cvat-chunk-")
    frames: list[npt.NDArray[np.uint8]] = []
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG)
        try:
            if not cap.isOpened():
                return []
            while limit is None or len(frames) <= limit:
                ok, bgr = cap.read()
                if not ok:
                    break
                frames.append(_fit(cv2, bgr, frame_size))
        finally:
            cap.release()
    finally:
        os.unlink(path)
    return frames


def _fit(cv2: object, bgr: npt.NDArray[np.uint8], frame_size: tuple[int, int] | None) -> npt.NDArray[np.uint8]:
    """BGR → RGB at the task's frame size (crop the even-size padding, or undo a downscale)."""
    rgb = bgr[:, :, ::-1]
    if frame_size is not None:
        w, h = frame_size
        fh, fw = rgb.shape[:2]
        if (fw, fh) != (w, h):
            if w <= fw <= w + 1 and h <= fh <= h + 1:
                rgb = rgb[:h, :w]
            else:
                rgb = cv2.resize(np.ascontiguousarray(rgb), (w, h), interpolation=cv2.INTER_LINEAR)  # type: ignore[attr-defined]
    return np.ascontiguousarray(rgb)
