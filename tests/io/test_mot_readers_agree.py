"""Arrow's fast reader and the numpy fallback give the same Tracks (issue 13's fast ingest)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cvat_extension.io.mot import read_mot


def _rows(n_frames: int, n_ids: int, columns: int) -> str:
    rng = np.random.default_rng(0)
    lines = []
    for f in range(1, n_frames + 1):
        for i in rng.permutation(n_ids) + 1:  # frame-major and shuffled ids: the reader sorts
            x, y = rng.uniform(0, 1000, 2)
            vals = [f, i, round(x, 6), round(y, 6), 30.25, 70.5, 1, 1 + i % 3, round(rng.uniform(), 3)]
            lines.append(",".join(str(v) for v in vals[:columns]))
    return "\n".join(lines) + "\n"


def _same(a, b) -> None:  # type: ignore[no-untyped-def]
    for name in ("frame", "track_id", "xyxy", "label", "visibility", "score"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert a.labels == b.labels
    np.testing.assert_array_equal(a.data["mot_class"], b.data["mot_class"])


def test_arrow_and_numpy_paths_read_the_same_boxes(tmp_path: Path) -> None:
    """~2 MiB: Arrow splits it into several blocks (chunks per column), which the reader
    joins; a ``#`` comment line sends the same rows through ``numpy.loadtxt``."""
    text = _rows(700, 60, 9)
    fast, slow = tmp_path / "fast.txt", tmp_path / "slow.txt"
    fast.write_text(text)
    slow.write_text("# written by a tool that comments its files\n" + text)
    assert fast.stat().st_size > 1 << 20  # more than one of Arrow's 1 MiB blocks
    a, _ = read_mot(fast)
    b, _ = read_mot(slow)
    assert len(a) == 700 * 60
    _same(a, b)


def test_six_columns_get_the_defaults(tmp_path: Path) -> None:
    p = tmp_path / "six.txt"
    p.write_text(_rows(5, 3, 6))
    t, _ = read_mot(p)
    assert (t.score == 1).all() and (t.visibility == 1).all()
    assert set(t.data["mot_class"].tolist()) == {-1}
    np.testing.assert_allclose(t.xyxy[:, 2] - t.xyxy[:, 0], 30.25)
