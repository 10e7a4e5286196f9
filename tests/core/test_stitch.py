"""Job-boundary pieces (cvat-interfaces.md §3.3, §6): split like CVAT, stitch back."""

from __future__ import annotations

import numpy as np

from cvat_extension.core.keyframes import expand_keyframes
from cvat_extension.core.stitch import split_at_job_boundaries, stitch_job_pieces
from cvat_extension.core.tracks import Tracks

KF = Tracks.from_columns(
    frame=[2, 20, 40, 45, 5, 30],
    track_id=[1, 1, 1, 1, 2, 2],
    xyxy=[[0, 0, 10, 10], [20, 0, 30, 10], [40, 0, 50, 10], [0, 0, 1, 1], [5, 5, 20, 20], [5, 5, 20, 20]],
    outside=[0, 0, 0, 1, 0, 1],
    labels=("car",),
)
STARTS = [0, 10, 25, 35]


def test_split_matches_cvat_task_level_read_3_3():
    pieces = split_at_job_boundaries(KF, STARTS, stop_frame=59)
    first = pieces.track(1)
    # piece in job 0 ends with an outside keyframe at the next job's first frame
    assert first.frame.tolist() == [2, 9, 10] and first.outside.tolist() == [False, False, True]
    # the piece in job 1 starts there with a keyframe holding the interpolated box
    nxt = [t for _, t in pieces.iter_tracks() if t.data["split_from"][0] == 1 and t.frame[0] == 10][0]
    assert nxt.xyxy[0, 0] == 8 * 10 / 9 * 1.0 or np.isclose(nxt.xyxy[0, 0], 80 / 9)
    assert len(pieces.ids) == 7  # 2 tracks -> 7 pieces, like 14 -> 26 on a real CVAT (§6)


def test_stitch_restores_one_track_per_object():
    pieces = split_at_job_boundaries(KF, STARTS, stop_frame=59)
    stitched, mapping = stitch_job_pieces(pieces, STARTS)
    assert sorted(set(mapping.values())) == [1, 2]
    a = expand_keyframes(KF, stop_frame=59)
    b = expand_keyframes(stitched, stop_frame=59)
    assert a.frame.tolist() == b.frame.tolist() and a.track_id.tolist() == b.track_id.tolist()
    assert np.allclose(a.xyxy, b.xyxy, atol=1e-9) and a.outside.tolist() == b.outside.tolist()


def test_stitch_job_level_pieces_without_outside():
    a = Tracks.from_columns(frame=[0, 9], track_id=[1, 1], xyxy=[[0, 0, 10, 10], [9, 0, 19, 10]])
    b = Tracks.from_columns(frame=[10, 15], track_id=[7, 7], xyxy=[[10, 0, 20, 10], [15, 0, 25, 10]])
    stitched, mapping = stitch_job_pieces(Tracks.concat([a, b]), [0, 10])
    assert mapping == {1: 1, 7: 1} and stitched.frame.tolist() == [0, 9, 10, 15]


def test_no_stitch_for_other_label_low_iou_or_user_split_inside_job():
    a = Tracks.from_columns(frame=[0, 10], track_id=[1, 1], xyxy=[[0, 0, 10, 10]] * 2, outside=[0, 1], label=[0, 0], labels=("a", "b"))
    b = Tracks.from_columns(frame=[10], track_id=[2], xyxy=[[0, 0, 10, 10]], label=[1], labels=("a", "b"))
    c = Tracks.from_columns(frame=[10], track_id=[3], xyxy=[[300, 0, 310, 10]], label=[0], labels=("a", "b"))
    _, mapping = stitch_job_pieces(Tracks.concat([a, b, c]), [0, 10])
    assert mapping == {1: 1, 2: 2, 3: 3}
    # a user split at frame 5 (not a job start) is kept
    _, mapping = stitch_job_pieces(
        Tracks.from_columns(frame=[0, 5, 5], track_id=[1, 1, 2], xyxy=[[0, 0, 1, 1]] * 3, outside=[0, 1, 0]), [0, 10]
    )
    assert mapping == {1: 1, 2: 2}


def test_empty_and_single_job():
    s, m = stitch_job_pieces(Tracks.empty(), [0, 10])
    assert len(s) == 0 and m == {}
    s, m = stitch_job_pieces(KF, [0])
    assert m == {1: 1, 2: 2}
