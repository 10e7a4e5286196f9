"""CVAT keyframe expansion (cvat-interfaces.md §3.11, §6) and thinning round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cvat_extension.core.keyframes import cvat_angle_diff, expand_keyframes, thin_keyframes
from cvat_extension.core.tracks import Tracks
from cvat_extension.errors import AnnotationFormatError


def kf(frames, boxes, *, tid=1, outside=None, occluded=None, rotation=None, z=None):
    n = len(frames)
    return Tracks.from_columns(
        frame=frames, track_id=[tid] * n, xyxy=boxes, outside=outside, occluded=occluded,
        rotation=rotation, data={"z_order": z if z is not None else [0] * n},
    )


def test_empty():
    assert len(expand_keyframes(Tracks.empty(), stop_frame=10)) == 0
    assert len(thin_keyframes(Tracks.empty())) == 0


def test_linear_interpolation_of_points_311():
    # §3.11: offset = (f - k0) / (k1 - k0), points linear, same arithmetic as CVAT.
    d = expand_keyframes(kf([0, 3], [[0, 0, 10, 10], [3, 6, 16, 22]]), stop_frame=3)
    p0, p1 = np.array([0, 0, 10, 10.0]), np.array([3, 6, 16, 22.0])
    for f in range(4):
        assert d.xyxy[f].tolist() == (p0 + (p1 - p0) * ((f - 0) / 3)).tolist()
    assert d.keyframe.tolist() == [True, False, False, True]


def test_rotation_shortest_arc_311_and_6():
    # §3.11 / §6: rotation interpolates along the shortest arc (350 -> 10 passes 0).
    d = expand_keyframes(kf([0, 4], [[0, 0, 1, 1]] * 2, rotation=[350, 10]), stop_frame=4)
    assert np.allclose(d.rotation, [350, 355, 0, 5, 10])


def test_rotation_cvat_minus_180_quirk():
    # CVAT's find_angle_diff turns a difference of exactly -180 into +1 degree.
    assert cvat_angle_diff(np.array([0.0]), np.array([180.0])).tolist() == [1.0]
    d = expand_keyframes(kf([0, 2], [[0, 0, 1, 1]] * 2, rotation=[180, 0]), stop_frame=2)
    assert d.rotation[1] == pytest.approx(180.5)


def test_outside_keyframe_ends_visibility_and_is_returned_311():
    # §3.11: nothing is generated after an outside keyframe until the next keyframe;
    # the outside keyframe itself is returned, flagged.
    d = expand_keyframes(
        kf([0, 2, 5], [[0, 0, 1, 1], [2, 0, 3, 1], [5, 0, 6, 1]], outside=[0, 1, 0]), stop_frame=6
    )
    assert d.frame.tolist() == [0, 1, 2, 5, 6]
    assert d.outside.tolist() == [False, False, True, False, False]
    assert d.keyframe.tolist() == [True, False, True, True, False]
    # frame 1 interpolates towards the outside keyframe's box (CVAT interpolates k0 -> k1)
    assert d.xyxy[1, 0] == 1.0


def test_last_visible_keyframe_copied_to_stop_frame_6():
    # §6: a track whose last shape is not outside runs to the end of the task.
    d = expand_keyframes(kf([3], [[1, 2, 3, 4]]), stop_frame=7)
    assert d.frame.tolist() == [3, 4, 5, 6, 7]
    assert (d.xyxy == [1, 2, 3, 4]).all()


def test_copy_forward_to_end_of_job_6():
    # §6: the last visible keyframe of a piece is copied forward to the end of its job.
    d = expand_keyframes(kf([3], [[1, 2, 3, 4]]), stop_frame=20, job_stops=[4, 9, 20])
    assert d.frame.tolist() == [3, 4]


def test_copy_forward_to_end_of_the_job_storing_the_track_in_overlap_frames():
    # Jobs 0-29, 25-54, 50-59 (overlap 5): frame 27 lies in two jobs; job_stops alone
    # gives the earlier job's end, track_stops names the job that stores each track.
    a = kf([27], [[1, 2, 3, 4]])
    b = kf([52], [[5, 6, 7, 8]], tid=2)
    both = Tracks.concat([a, b])
    plain = expand_keyframes(both, stop_frame=59, job_stops=[29, 54, 59])
    assert plain.track(1).frame.max() == 29 and plain.track(2).frame.max() == 54
    named = expand_keyframes(both, stop_frame=59, job_stops=[29, 54, 59], track_stops={1: 54, 2: 59})
    assert named.track(1).frame.tolist() == list(range(27, 55))
    assert named.track(2).frame.tolist() == list(range(52, 60))
    # tracks not named keep the job_stops rule; nothing goes past stop_frame
    one = expand_keyframes(both, stop_frame=57, job_stops=[29, 54, 59], track_stops={2: 59})
    assert one.track(1).frame.max() == 29 and one.track(2).frame.max() == 57


def test_occluded_and_z_order_copied_from_previous_keyframe_311_6():
    d = expand_keyframes(
        kf([0, 3], [[0, 0, 1, 1], [3, 0, 4, 1]], occluded=[1, 0], z=[5, 7]), stop_frame=4
    )
    assert d.occluded.tolist() == [True, True, True, False, False]
    assert d.data["z_order"].tolist() == [5, 5, 5, 7, 7]


def test_keyframe_beyond_stop_frame_steers_but_is_cut():
    d = expand_keyframes(kf([0, 10], [[0, 0, 1, 1], [10, 0, 11, 1]]), stop_frame=4)
    assert d.frame.tolist() == [0, 1, 2, 3, 4]
    assert d.xyxy[4, 0] == 4.0


def test_duplicate_keyframe_frame_is_an_error():
    with pytest.raises(AnnotationFormatError, match="track 1.*same frame"):
        expand_keyframes(kf([2, 2], [[0, 0, 1, 1]] * 2), stop_frame=5)


def test_several_tracks_stay_sorted():
    a = kf([0, 2], [[0, 0, 1, 1], [2, 2, 3, 3]], tid=1)
    b = kf([1], [[5, 5, 6, 6]], tid=2, outside=None)
    d = expand_keyframes(Tracks.concat([a, b]), stop_frame=3)
    assert d.track_id.tolist() == [1, 1, 1, 1, 2, 2, 2]
    assert d.frame.tolist() == [0, 1, 2, 3, 1, 2, 3]


# ------------------------------------------------------------------------------ thinning
def test_thin_linear_motion_needs_two_keyframes_and_outside():
    frames = np.arange(10, 30)
    boxes = np.c_[frames * 2.0, frames * 1.0, frames * 2.0 + 20, frames * 1.0 + 30]
    dense = Tracks.from_columns(frame=frames, track_id=np.ones(20), xyxy=boxes)
    k = thin_keyframes(dense, stop_frame=99)
    assert k.frame.tolist() == [10, 30]  # start + outside after the run (last frame interpolated)
    assert k.outside.tolist() == [False, True]
    back = expand_keyframes(k, stop_frame=99).visible()
    assert np.allclose(back.xyxy, boxes) and back.frame.tolist() == frames.tolist()


def test_thin_forces_keyframe_on_occluded_change():
    frames = np.arange(6)
    dense = Tracks.from_columns(
        frame=frames, track_id=np.ones(6), xyxy=np.tile([0, 0, 1, 1.0], (6, 1)), occluded=[0, 0, 0, 1, 1, 1]
    )
    k = thin_keyframes(dense, stop_frame=5)
    assert k.frame.tolist() == [0, 3]
    assert expand_keyframes(k, stop_frame=5).occluded.tolist() == dense.occluded.tolist()


@st.composite
def keyframe_tracks(draw):
    """Random CVAT-like keyframe tracks (integer boxes, gaps closed by outside keyframes)."""
    stop = draw(st.integers(5, 60))
    parts = []
    for tid in range(draw(st.integers(1, 3))):
        frames = sorted(draw(st.sets(st.integers(0, stop), min_size=1, max_size=8)))
        n = len(frames)
        xy = draw(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 500)), min_size=n, max_size=n))
        wh = draw(st.lists(st.tuples(st.integers(1, 80), st.integers(1, 80)), min_size=n, max_size=n))
        outside = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        occl = draw(st.lists(st.booleans(), min_size=n, max_size=n))
        boxes = [[x, y, x + w, y + h] for (x, y), (w, h) in zip(xy, wh)]
        for i in range(1, n):  # CVAT's outside keyframes hold a copy of the last box
            if outside[i]:
                boxes[i] = boxes[i - 1]
        outside[0] = False
        parts.append(kf(frames, boxes, tid=tid, outside=outside, occluded=occl))
    return Tracks.concat(parts), stop


@settings(max_examples=150, deadline=None)
@given(keyframe_tracks(), st.sampled_from([0.0, 0.5, 1.0, 3.0]))
def test_property_expand_thin_round_trip(data, tol):
    tracks, stop = data
    dense = expand_keyframes(tracks, stop_frame=stop)
    thinned = thin_keyframes(dense, tolerance_px=tol, stop_frame=stop)
    back = expand_keyframes(thinned, stop_frame=stop).visible()
    vis = dense.visible()
    assert back.track_id.tolist() == vis.track_id.tolist()
    assert back.frame.tolist() == vis.frame.tolist()
    assert np.abs(back.xyxy - vis.xyxy).max(initial=0) <= tol + 1e-6
    assert back.occluded.tolist() == vis.occluded.tolist()
    # never more keyframes than the track was made of
    for tid, t in tracks.iter_tracks():
        assert len(thinned.track(tid)) <= len(t)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-3, 3), st.floats(-3, 3), st.floats(-1, 1)), min_size=2, max_size=80),
    st.sampled_from([0.5, 1.0, 2.0]),
)
def test_property_random_walk_within_tolerance(steps, tol):
    pos = np.cumsum(np.array(steps), axis=0)
    n = len(pos)
    boxes = np.c_[pos[:, 0], pos[:, 1], pos[:, 0] + 40 + pos[:, 2], pos[:, 1] + 80 + pos[:, 2]]
    dense = Tracks.from_columns(frame=np.arange(n), track_id=np.zeros(n), xyxy=boxes)
    thinned = thin_keyframes(dense, tolerance_px=tol, stop_frame=n + 5)
    back = expand_keyframes(thinned, stop_frame=n + 5).visible()
    assert back.frame.tolist() == list(range(n))
    assert np.abs(back.xyxy - boxes).max() <= tol + 1e-6


def test_thin_real_mot17_gt(shared_data):
    from cvat_extension.io.mot import read_mot

    gt = shared_data / "motgt" / "MOT17-04" / "gt.txt"
    if not gt.is_file():
        pytest.skip("MOT17-04 ground truth not present")
    dense, info = read_mot(gt)
    k = thin_keyframes(dense, stop_frame=info.num_frames - 1)
    back = expand_keyframes(k, stop_frame=info.num_frames - 1).visible()
    assert back.frame.tolist() == dense.frame.tolist()
    assert np.abs(back.xyxy - dense.xyxy).max() <= 1.0 + 1e-9
    assert len(dense) / len(k) > 10  # measured 31.5x on this sequence
