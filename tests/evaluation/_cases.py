"""Small hand-made sequences with known tracker errors, for the evaluation tests."""

from __future__ import annotations

import numpy as np

from cvat_extension.core.tracks import Tracks

FRAMES = 60


def walker(x0: float, dx: float, frames: np.ndarray, y: float = 100.0) -> np.ndarray:
    """Boxes of a 40×100 person walking along x."""
    x = x0 + dx * frames
    return np.c_[x, np.full(len(frames), y), x + 40, np.full(len(frames), y + 100)]


def ground_truth() -> Tracks:
    """Three people over 60 frames: 1 and 2 cross paths near frame 30, 3 walks alone; plus a
    static person (class 7, ignore) the detector also sees."""
    f = np.arange(FRAMES)
    boxes = [walker(100, 4, f), walker(340, -4, f, y=110), walker(600, 2, f, y=400), walker(900, 0, f, y=50)]
    ids = [1, 2, 3, 9]
    cls = [1, 1, 1, 7]
    return Tracks.from_columns(
        frame=np.tile(f, 4), track_id=np.repeat(ids, FRAMES), xyxy=np.concatenate(boxes),
        score=np.repeat([1.0, 1.0, 1.0, 0.0], FRAMES), labels=("pedestrian",),
        data={"mot_class": np.repeat(cls, FRAMES)},
    )


def prediction() -> Tracks:
    """A tracker output with known errors, in frames 0..59:

    - track 11 follows person 1 until frame 29, then person 2 (an identity jump at 30);
      track 12 follows person 2 until 29, then person 1 (the other side of the swap);
    - person 3 is tracked by 13 until frame 19 and by 14 from frame 26 (a fragment, gap 6);
    - track 15 is a ghost on frames 40..45 where nobody is (a short false track);
    - track 16 is a false box on frames 0..14 (a false-positive run of 15 frames);
    - track 17 sits on the static person 9 (removed by the MOTChallenge preprocessing).
    """
    f = np.arange(FRAMES)
    a, b = f < 30, f >= 30
    p1, p2 = walker(100, 4, f), walker(340, -4, f, y=110)
    rows = [
        (f, 11, np.where(a[:, None], p1, p2)),
        (f, 12, np.where(a[:, None], p2, p1)),
        (f[:20], 13, walker(600, 2, f[:20], y=400)),
        (f[26:], 14, walker(600, 2, f[26:], y=400)),
        (np.arange(40, 46), 15, walker(1500, 0, np.arange(40, 46), y=700)),
        (np.arange(15), 16, walker(1200, 1, np.arange(15), y=600)),
        (f, 17, walker(900, 0, f, y=50)),
    ]
    return Tracks.from_columns(
        frame=np.concatenate([r[0] for r in rows]),
        track_id=np.concatenate([np.full(len(r[0]), r[1]) for r in rows]),
        xyxy=np.concatenate([r[2] for r in rows]), labels=("pedestrian",),
    )
