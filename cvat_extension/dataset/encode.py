"""Video writers for ``render``: H.264 MP4 through imageio-ffmpeg or PyAV, GIF through Pillow.

Both MP4 backends run the same libx264 (``preset`` ``ultrafast`` by default: 1080p review
videos are watched once, so encode speed matters more than a few percent of size; ``crf``
23 keeps ids and thin box lines readable). They differ in where the encoder runs:

- ``pyav`` (the default): libx264 in this process (its own threads); no second process and
  no pipe copy;
- ``ffmpeg`` (imageio-ffmpeg): frames go through a pipe to an ffmpeg process, so drawing
  (this process) and encoding (that process) overlap without sharing the GIL.

``bench/bench_render.py`` measures both on the same frames. On the 2-core development machine
both cost about 60 CPU-ms per 1080p frame with 50 tracks (PyAV 3-15 % less), i.e. at most
~33 frames/s on two idle cores; which one wins in wall time there depends on the load. GIFs (for HTML reports) are scaled down and subsampled: a full-size GIF of a 1080p
video would be hundreds of megabytes.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cvat_extension._deps import require

__all__ = ["Encoder", "GifWriter", "VideoWriter", "open_video_writer"]


class Encoder(str, Enum):
    """MP4 encoder backend."""

    FFMPEG = "ffmpeg"
    PYAV = "pyav"


class VideoWriter(Protocol):
    """Accepts RGB uint8 ``(H, W, 3)`` frames in order; ``close`` finishes the file."""

    def write(self, frame: np.ndarray) -> None: ...

    def close(self) -> None: ...


def _even(n: int) -> int:
    return n + (n % 2)


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: pad one edge row/column instead of rescaling."""
    h, w = frame.shape[:2]
    if h % 2 or w % 2:
        frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    return np.ascontiguousarray(frame)


class _FfmpegWriter:
    def __init__(self, path: Path, size: tuple[int, int], fps: float, preset: str, crf: int) -> None:
        imageio_ffmpeg = require("imageio_ffmpeg", extra="dataset")
        self._size = size
        self._gen = imageio_ffmpeg.write_frames(
            str(path), size, fps=fps, codec="libx264", quality=None, macro_block_size=2,
            pix_fmt_out="yuv420p", output_params=["-preset", preset, "-crf", str(crf), "-threads", "2"],
            ffmpeg_log_level="error",
        )
        self._gen.send(None)

    def write(self, frame: np.ndarray) -> None:
        self._gen.send(_pad_even(frame))

    def close(self) -> None:
        self._gen.close()


class _PyavWriter:
    def __init__(self, path: Path, size: tuple[int, int], fps: float, preset: str, crf: int) -> None:
        av = require("av", extra="dataset")
        from fractions import Fraction

        self._av = av
        self._container = av.open(str(path), "w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        self._stream.width, self._stream.height = size
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"preset": preset, "crf": str(crf)}
        self._stream.thread_count = 2

    def write(self, frame: np.ndarray) -> None:
        vf = self._av.VideoFrame.from_ndarray(_pad_even(frame), format="rgb24")
        for packet in self._stream.encode(vf):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()


class GifWriter:
    """Every ``step``-th frame, scaled to ``width`` px, as a looping GIF (Pillow)."""

    def __init__(self, path: Path, fps: float, *, width: int = 480, step: int = 3) -> None:
        self._path = path
        self._width = width
        self._step = max(1, step)
        self._fps = fps
        self._frames: list[Any] = []
        self._n = 0

    def write(self, frame: np.ndarray) -> None:
        """Keep a scaled copy of every ``step``-th frame."""
        from PIL import Image

        if self._n % self._step == 0:
            im = Image.fromarray(frame)
            h = max(1, round(im.height * self._width / im.width))
            self._frames.append(im.resize((self._width, h), Image.Resampling.BILINEAR).quantize(colors=128))
        self._n += 1

    def close(self) -> None:
        """Write the GIF (nothing when no frame was written)."""
        if self._frames:
            duration = int(round(1000 * self._step / self._fps))
            self._frames[0].save(self._path, save_all=True, append_images=self._frames[1:],
                                 duration=duration, loop=0, optimize=False)


def open_video_writer(path: Path, size: tuple[int, int], fps: float, *, encoder: Encoder = Encoder.PYAV,
                      preset: str = "ultrafast", crf: int = 23) -> VideoWriter:
    """An MP4 writer for frames of ``size`` ``(width, height)``; odd sizes are padded by one.

    Raises:
        MissingDependencyError: the backend's package is not installed.
    """
    even = (_even(size[0]), _even(size[1]))
    cls = _FfmpegWriter if encoder is Encoder.FFMPEG else _PyavWriter
    return cls(path, even, fps, preset, crf)
