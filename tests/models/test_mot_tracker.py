"""MotTracker / track_sequence: settings, contract checks, state round trip, and ids identical
to boxmot called directly (on a prefix of the real MOT17-02 public detections)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("boxmot")

from cvat_extension.core.tracks import Tracks  # noqa: E402
from cvat_extension.errors import ConfigError, InputError  # noqa: E402
from cvat_extension.models.mot_tracker import MotTracker, track_sequence  # noqa: E402
from cvat_extension.models.tracker_config import (  # noqa: E402
    BoxSource,
    TrackerConfig,
    TrackerType,
    load_tracker_config,
)


def _walk(n_frames: int = 12) -> Tracks:
    """Two boxes walking right at different speeds, well apart."""
    f = np.repeat(np.arange(n_frames), 2)
    x = np.where(np.arange(2 * n_frames) % 2 == 0, 10 + 5 * f, 300 + 3 * f).astype(float)
    xyxy = np.column_stack([x, np.full_like(x, 20), x + 40, np.full_like(x, 100)])
    return Tracks.from_columns(frame=f, track_id=np.arange(len(f)), xyxy=xyxy,
                               score=np.full(len(f), 0.9), labels=("person",))


# ---------------------------------------------------------------- config
def test_shipped_configs_carry_dataset_guide_defaults() -> None:
    for name in ("bytetrack", "botsort"):
        c = load_tracker_config(name)
        assert (c.track_high_thresh, c.match_thresh, c.track_buffer) == (0.5, 0.8, 30)
        assert c.tracker_type is TrackerType(name)
    assert TrackerConfig() == load_tracker_config("bytetrack")


@pytest.mark.parametrize(
    ("text", "expectation"),
    [
        ("", contextlib.nullcontext()),
        ("track_thresh: 0.3\n", contextlib.nullcontext()),  # the dataset guide's name
        ("tracker_type: botsort\ngmc_method: sparseOptFlow\nfuse_score: true\n", contextlib.nullcontext()),
        ("track_hihg_thresh: 0.3\n", pytest.raises(ConfigError, match="unknown setting 'track_hihg_thresh'")),
        ("match_thresh: 1.5\n", pytest.raises(ConfigError, match="match_thresh: expected a number in 0..1")),
        ("track_buffer: 0\n", pytest.raises(ConfigError, match="track_buffer")),
        ("gmc_method: ecc\n", pytest.raises(ConfigError, match="need tracker_type: botsort")),
        ("tracker_type: botsort\nwith_reid: true\n", pytest.raises(ConfigError, match="ReID weights")),
        ("tracker_type: deepsort\n", pytest.raises(ConfigError, match="bytetrack")),
        ("- a list\n", pytest.raises(ConfigError, match="expected a mapping")),
    ],
)
def test_yaml_config_validation(tmp_path: Path, text: str, expectation: contextlib.AbstractContextManager) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(text)
    with expectation:
        load_tracker_config(path)


def test_missing_config_file_and_missing_reid_weights_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_tracker_config(tmp_path / "nope.yaml")
    cfg = load_tracker_config("botsort", with_reid=True, model=tmp_path / "osnet_x0_25_msmt17.pt")
    with pytest.raises(ConfigError, match="does not exist .*never downloaded"):
        MotTracker(cfg)
    cfg.model.write_bytes(b"not a model")  # a file that is there but is no ReID network
    with pytest.raises(ConfigError, match="cannot load ReID weights"):
        MotTracker(cfg)


# ---------------------------------------------------------------- tracking
def test_track_sequence_keeps_two_walkers_apart() -> None:
    dets = _walk()
    out = track_sequence(dets, None, TrackerConfig())
    assert len(out.ids) == 2
    assert len(out) == len(dets)
    # detection boxes are written by default: exactly the detector's pixels
    np.testing.assert_array_equal(np.sort(out.xyxy[:, 0]), np.sort(dets.xyxy[:, 0]))
    kalman = track_sequence(dets, None, TrackerConfig(box_source=BoxSource.TRACKER))
    assert not np.allclose(np.sort(kalman.xyxy[:, 0]), np.sort(dets.xyxy[:, 0]))


@pytest.mark.parametrize(
    ("dets", "image", "match"),
    [
        (np.zeros((2, 5)), None, r"shape \(n, 6\)"),
        (np.array([[0, 0, 1, 1, 1.5, 0]]), None, "confidences"),
        (np.array([[0, 0, np.nan, 1, 0.5, 0]]), None, "NaN"),
    ],
)
def test_update_rejects_bad_detections(dets: np.ndarray, image: object, match: str) -> None:
    with pytest.raises(InputError, match=match):
        MotTracker().update(dets, image, 0)


def test_cmc_needs_an_image() -> None:
    tracker = MotTracker(load_tracker_config("botsort", gmc_method="sof"))
    with pytest.raises(InputError, match="needs the frame image"):
        tracker.update(np.zeros((0, 6)), None, 0)
    with pytest.raises(InputError, match="uint8 RGB"):
        tracker.update(np.zeros((0, 6)), np.zeros((10, 10), np.uint8), 0)
    out = tracker.update(np.array([[1, 1, 5, 8, 0.9, 0]]), np.zeros((32, 32, 3), np.uint8), 0)
    assert out.shape == (1, 8)


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_state_round_trip_continues_identically(kind: str) -> None:
    dets = _walk(10)
    rows = [np.column_stack([dets.xyxy[dets.frame == f], np.full(2, 0.9), np.zeros(2)]) for f in range(10)]
    a = MotTracker(load_tracker_config(kind))
    for f in range(5):
        a.update(rows[f], None, f)
    b = MotTracker(load_tracker_config(kind))
    b.load_state(a.state_bytes())
    for f in range(5, 10):
        np.testing.assert_array_equal(a.update(rows[f], None, f), b.update(rows[f], None, f))
    with pytest.raises(InputError, match="different tracker settings"):
        MotTracker(TrackerConfig(match_thresh=0.5)).load_state(a.state_bytes())


def test_frame_jump_back_resets_and_assignments_include_tentative_tracks() -> None:
    t = MotTracker()
    d = np.array([[10, 10, 50, 90, 0.9, 0]])
    t.update(d, None, 0)
    t.update(d, None, 1)
    new = np.vstack([d, [[200, 10, 240, 90, 0.9, 0]]])
    out = t.update(new, None, 2)
    assert len(out) == 1  # the newcomer is tentative: not output yet ...
    assert set(t.assignments()) == {0, 1}  # ... but it owns its detection
    t.update(d, None, 0)  # back in time: new sequence
    assert t.last_frame == 0 and t.assignments() == {0: 0}


@pytest.mark.parametrize("kind", ["bytetrack", "botsort"])
def test_ids_identical_to_boxmot_direct_on_mot17_prefix(shared_data: Path, kind: str) -> None:
    import boxmot

    path = shared_data / "MOT17-mini" / "train" / "MOT17-02-FRCNN" / "det" / "det.txt"
    d = np.loadtxt(path, delimiter=",")
    n = 80
    d = d[d[:, 0] <= n]
    xyxy = np.column_stack([d[:, 2], d[:, 3], d[:, 2] + d[:, 4], d[:, 3] + d[:, 5]])
    dets = Tracks.from_columns(frame=d[:, 0] - 1, track_id=np.arange(len(d)), xyxy=xyxy,
                               score=d[:, 6], labels=("pedestrian",))
    cfg = load_tracker_config(kind, box_source="tracker")
    ours = track_sequence(dets, None, cfg, num_frames=n)

    if kind == "bytetrack":
        direct = boxmot.ByteTrack(min_conf=0.1, track_thresh=0.5, match_thresh=0.8, track_buffer=30)
    else:
        direct = boxmot.BotSort(track_high_thresh=0.5, track_low_thresh=0.1, new_track_thresh=0.6,
                                match_thresh=0.8, track_buffer=30, use_cmc=False, use_embeddings=False)
    rows = []
    for f in range(n):
        m = d[:, 0] == f + 1
        out = direct.update(np.column_stack([xyxy[m], d[m, 6], np.zeros(m.sum())]), None)
        rows += [(f, int(r[4]), *r[:4]) for r in out]
    ref = np.array(sorted(rows, key=lambda r: (r[1], r[0])))
    assert len(ours) == len(ref) > 500
    np.testing.assert_array_equal(ours.frame, ref[:, 0])
    np.testing.assert_array_equal(ours.track_id, ref[:, 1])
    np.testing.assert_allclose(ours.xyxy, ref[:, 2:], rtol=0, atol=1e-3)
