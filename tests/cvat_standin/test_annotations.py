"""Annotations through cvat-sdk: job-level writes, and CVAT's job-boundary behaviour at task level
(``../shared/cvat-interfaces.md`` sections 3.3 and 6)."""

from __future__ import annotations

import pytest
from cvat_sdk import models
from cvat_sdk.api_client import exceptions
from cvat_sdk.core.proxies.annotations import AnnotationUpdateAction

from cvat_standin import CvatStandin
from cvat_standin.annotations import interpolated_shapes, slice_track


def _box(frame: int, x: float, *, outside: bool = False, y: float = 10.0,
         w: float = 20.0) -> models.TrackedShapeRequest:
    return models.TrackedShapeRequest(type="rectangle", frame=frame, points=[x, y, x + w, y + w],
                                      outside=outside)


def _track(label_id: int, *shapes: models.TrackedShapeRequest) -> models.LabeledTrackRequest:
    return models.LabeledTrackRequest(label_id=label_id, frame=shapes[0].frame, shapes=list(shapes))


@pytest.fixture
def two_jobs(cvat_standin: CvatStandin, cvat_client):
    task_id = cvat_standin.seed_task("t", [{"name": "car"}, {"name": "person"}], (50, 200, 100),
                                     segment_size=25)
    return cvat_client.tasks.retrieve(task_id), cvat_standin.label_id(task_id, "car")


def test_job_put_patch_create_update_delete(two_jobs, cvat_standin: CvatStandin) -> None:
    task, car = two_jobs
    job1, job2 = task.get_jobs()
    job1.set_annotations(models.LabeledDataRequest(
        shapes=[models.LabeledShapeRequest(type="rectangle", frame=3, label_id=car,
                                           points=[1.0, 2.0, 3.0, 4.0])],
        tracks=[_track(car, _box(0, 0.0), _box(10, 50.0), _box(11, 50.0, outside=True))]))
    data = job1.get_annotations()
    assert data.version == 0  # CVAT always reads version 0 (_init_version_from_db)
    (track,) = data.tracks
    assert [s.frame for s in track.shapes] == [0, 10, 11]
    assert all(s.id is not None for s in track.shapes) and track.id is not None
    assert data.shapes[0].score == 1.0 and data.shapes[0].source == "manual"
    assert job2.get_annotations().tracks == []  # a job write touches only that job
    before = cvat_standin.store.jobs[job1.id].updated_date

    job1.update_annotations(models.PatchedLabeledDataRequest(
        tracks=[_track(car, _box(15, 5.0), _box(20, 5.0, outside=True))]),
        action=AnnotationUpdateAction.CREATE)
    assert len(job1.get_annotations().tracks) == 2
    assert cvat_standin.store.jobs[job1.id].updated_date > before

    # update replaces the whole track, keeping its id (and shape ids that are sent back)
    keep = job1.get_annotations().tracks[0]
    new_shapes = [models.TrackedShapeRequest(**{k: v for k, v in s.to_dict().items()})
                  for s in keep.shapes[:2]] + [_box(12, 60.0, outside=True)]
    job1.update_annotations(models.PatchedLabeledDataRequest(
        tracks=[models.LabeledTrackRequest(id=keep.id, label_id=car, frame=0, shapes=new_shapes)]),
        action=AnnotationUpdateAction.UPDATE)
    updated = next(t for t in job1.get_annotations().tracks if t.id == keep.id)
    assert [s.frame for s in updated.shapes] == [0, 10, 12]
    assert [s.id for s in updated.shapes[:2]] == [s.id for s in keep.shapes[:2]]

    job1.remove_annotations(ids=[keep.id])
    assert [t.id for t in job1.get_annotations().tracks] != [keep.id]
    assert len(job1.get_annotations().tracks) == 1
    job1.remove_annotations()
    after = job1.get_annotations()
    assert (after.tracks, after.shapes, after.tags) == ([], [], [])


def test_bad_label_is_400_and_nothing_written(two_jobs) -> None:
    task, car = two_jobs
    job1 = task.get_jobs()[0]
    with pytest.raises(exceptions.ApiException) as info:
        job1.set_annotations(models.LabeledDataRequest(
            tracks=[_track(car, _box(0, 0.0))],
            shapes=[models.LabeledShapeRequest(type="rectangle", frame=1, label_id=9999,
                                               points=[0.0, 0.0, 1.0, 1.0])]))
    assert info.value.status == 400 and "label_id `9999` is invalid" in str(info.value.body)
    assert job1.get_annotations().tracks == []


def test_task_write_cuts_track_at_job_boundary(two_jobs, cvat_standin: CvatStandin) -> None:
    """Without overlap a task-level track comes back as two pieces (section 6)."""
    task, car = two_jobs
    job1, job2 = task.get_jobs()
    task.set_annotations(models.LabeledDataRequest(
        tracks=[_track(car, _box(10, 0.0), _box(40, 60.0), _box(41, 60.0, outside=True))]))
    pieces = sorted(task.get_annotations().tracks, key=lambda t: t.frame)
    assert len(pieces) == 2 and pieces[0].id != pieces[1].id
    first, second = pieces
    # Piece in job 1: keyframe 10, the interpolated box on the job's last frame (24), then
    # an outside keyframe at the next segment's first frame (25).
    assert [(s.frame, s.outside) for s in first.shapes] == [(10, False), (24, False), (25, True)]
    assert first.shapes[1].points == pytest.approx([28.0, 10.0, 48.0, 30.0])
    # Piece in job 2 starts at 25 with the interpolated box.
    assert [(s.frame, s.outside) for s in second.shapes] == [(25, False), (40, False),
                                                            (41, True)]
    assert second.shapes[0].points == pytest.approx([30.0, 10.0, 50.0, 30.0])
    # Job-level reads return only that job's piece; job 1's piece is open (it runs to the
    # end of its job) because the closing outside keyframe exists only in the task merge.
    (in_job1,) = job1.get_annotations().tracks
    assert in_job1.id == first.id and [s.frame for s in in_job1.shapes] == [10, 24]
    (in_job2,) = job2.get_annotations().tracks
    assert in_job2.id == second.id


def test_task_write_with_overlap_rejoins_pieces(cvat_standin: CvatStandin, cvat_client) -> None:
    task = cvat_client.tasks.retrieve(cvat_standin.seed_task(
        "o", [{"name": "car"}], (50, 200, 100), segment_size=25, overlap=5))
    car = cvat_standin.label_id(task.id, "car")
    task.set_annotations(models.LabeledDataRequest(
        tracks=[_track(car, _box(10, 0.0), _box(40, 60.0), _box(41, 60.0, outside=True))]))
    # jobs [0, 24], [20, 44], [40, 49]: the track (10..41) is stored in all three
    assert [len(j.get_annotations().tracks) for j in task.get_jobs()] == [1, 1, 1]
    (track,) = task.get_annotations().tracks
    frames = [s.frame for s in track.shapes]
    assert frames[0] == 10 and frames[-1] == 41 and track.shapes[-1].outside


def _fourteen_tracks(car: int, person: int) -> list[models.LabeledTrackRequest]:
    """14 tracks over 60 frames: 12 cross one job boundary of a 25-frame segmentation
    (6 at frame 25, 6 at frame 50) and 2 stay inside job 1."""
    tracks = []
    for k in range(6):  # 20 -> 30 across the 24|25 boundary
        tracks.append(_track(car if k % 2 else person, _box(18 + k, 10.0 + 20 * k, y=5.0),
                             _box(30 + k, 15.0 + 20 * k, y=5.0),
                             _box(31 + k, 15.0 + 20 * k, y=5.0, outside=True)))
    for k in range(6):  # 44 -> 56 across the 49|50 boundary
        tracks.append(_track(car, _box(44 + k, 10.0 + 20 * k, y=60.0),
                             _box(56, 20.0 + 20 * k, y=60.0),
                             _box(57, 20.0 + 20 * k, y=60.0, outside=True)))
    tracks.append(_track(person, _box(2, 5.0, y=120.0), _box(9, 5.0, y=120.0, outside=True)))
    tracks.append(_track(car, _box(3, 40.0, y=120.0), _box(12, 40.0, y=120.0, outside=True)))
    return tracks


@pytest.mark.parametrize(("overlap", "expected"), [(0, 26), (5, 14)])
def test_section6_fourteen_tracks(cvat_standin: CvatStandin, cvat_client, overlap: int,
                                  expected: int) -> None:
    """Section 6: 60 frames, segment size 25, 14 tracks -> 26 pieces; overlap 5 -> 14."""
    task = cvat_client.tasks.retrieve(cvat_standin.seed_task(
        "s6", [{"name": "car"}, {"name": "person"}], (60, 300, 200), segment_size=25,
        overlap=overlap))
    car, person = (cvat_standin.label_id(task.id, n) for n in ("car", "person"))
    task.set_annotations(models.LabeledDataRequest(tracks=_fourteen_tracks(car, person)))
    assert len(task.get_annotations().tracks) == expected


def test_task_update_of_a_cut_track_collides_like_cvat(two_jobs) -> None:
    """A merged (overlap) or re-sent track id lands in two jobs: CVAT's insert collides."""
    task, car = two_jobs
    task.set_annotations(models.LabeledDataRequest(
        tracks=[_track(car, _box(10, 0.0), _box(40, 60.0), _box(41, 60.0, outside=True))]))
    first = min(task.get_annotations().tracks, key=lambda t: t.frame)
    with pytest.raises(exceptions.ApiException) as info:
        task.update_annotations(models.PatchedLabeledDataRequest(tracks=[
            models.LabeledTrackRequest(id=first.id, label_id=car, frame=10,
                                       shapes=[_box(10, 0.0), _box(45, 0.0, outside=True)])]),
            action=AnnotationUpdateAction.UPDATE)
    assert info.value.status == 500
    assert len(task.get_annotations().tracks) == 2  # nothing applied


def test_task_patch_create_and_delete_span_jobs(two_jobs) -> None:
    task, car = two_jobs
    task.update_annotations(models.PatchedLabeledDataRequest(
        tracks=[_track(car, _box(20, 0.0), _box(30, 10.0), _box(31, 10.0, outside=True))],
        shapes=[models.LabeledShapeRequest(type="rectangle", frame=f, label_id=car,
                                           points=[0.0, 0.0, 5.0, 5.0]) for f in (1, 30)]),
        action=AnnotationUpdateAction.CREATE)
    data = task.get_annotations()
    assert len(data.tracks) == 2 and len(data.shapes) == 2
    # Tracks and shapes have separate id sequences (as in CVAT's PostgreSQL tables), so
    # ``remove_annotations(ids=...)``, which matches one id set against every kind, would
    # also delete shape 1 together with track 1: send the delete per kind instead.
    first_shape = next(s for s in data.shapes if s.frame == 1)
    task.update_annotations(models.PatchedLabeledDataRequest(
        tracks=[models.LabeledTrackRequest(**t.to_dict()) for t in data.tracks],
        shapes=[models.LabeledShapeRequest(**first_shape.to_dict())]),
        action=AnnotationUpdateAction.DELETE)
    data = task.get_annotations()
    assert data.tracks == [] and [s.frame for s in data.shapes] == [30]


def test_edit_as_user_moves_updated_date(two_jobs, cvat_standin: CvatStandin, cvat_client) -> None:
    task, car = two_jobs
    job1 = task.get_jobs()[0]
    job1.set_annotations(models.LabeledDataRequest(tracks=[_track(car, _box(0, 0.0))]))
    seen = cvat_client.jobs.retrieve(job1.id).updated_date
    track = cvat_standin.job_annotations(job1.id)["tracks"][0]
    track["shapes"][0]["points"] = [1.0, 10.0, 21.0, 30.0]
    cvat_standin.edit_as_user(job1.id, {"tracks": [track]}, action="update")
    assert cvat_client.jobs.retrieve(job1.id).updated_date > seen
    assert job1.get_annotations().tracks[0].shapes[0].points[0] == 1.0


def test_interpolation_matches_cvat_rules() -> None:
    track = {"frame": 0, "label_id": 1, "shapes": [
        {"type": "rectangle", "frame": 0, "points": [0, 0, 10, 10], "outside": False,
         "rotation": 350.0, "attributes": []},
        {"type": "rectangle", "frame": 4, "points": [40, 0, 50, 10], "outside": False,
         "rotation": 10.0, "attributes": []},
    ]}
    shapes = interpolated_shapes(track, 0, 8)
    assert [s["frame"] for s in shapes] == list(range(8))
    assert shapes[2]["points"] == [20.0, 0.0, 30.0, 10.0]
    assert shapes[2]["rotation"] == pytest.approx(0.0)  # shortest way round through 0
    assert shapes[7]["points"] == [40, 0, 50, 10] and not shapes[7]["keyframe"]
    # A track that ends with outside before the segment is not in it.
    closed = {**track, "shapes": track["shapes"] + [
        {"type": "rectangle", "frame": 5, "points": [40, 0, 50, 10], "outside": True,
         "attributes": []}]}
    assert slice_track(closed, 6, 9)["shapes"] == []


@pytest.mark.parametrize("overlap", [0, 5])
def test_pieces_agree_with_core_split_and_stitch(cvat_standin: CvatStandin, cvat_client,
                                                 overlap: int) -> None:
    """Cross-check: the stand-in (CVAT's server rules) and ``cvat_extension.core.stitch``
    (our client-side model of them) must agree, or one of them is wrong about CVAT."""
    import json

    import numpy as np

    from cvat_extension.core.stitch import split_at_job_boundaries, stitch_job_pieces
    from cvat_extension.io.cvat_json import parse_labeled_data

    task = cvat_client.tasks.retrieve(cvat_standin.seed_task(
        "x", [{"name": "car"}, {"name": "person"}], (60, 300, 200), segment_size=25,
        overlap=overlap))
    car, person = (cvat_standin.label_id(task.id, n) for n in ("car", "person"))
    uploaded = _fourteen_tracks(car, person)
    task.set_annotations(models.LabeledDataRequest(tracks=uploaded))
    _, response = cvat_client.api_client.tasks_api.retrieve_annotations(
        task.id, _parse_response=False)
    labels = [{"id": car, "name": "car"}, {"id": person, "name": "person"}]
    pieces = parse_labeled_data(json.loads(response.data), labels=labels).tracks
    job_starts = [j.start_frame for j in task.get_jobs()]
    stitched, _ = stitch_job_pieces(pieces, job_starts)
    assert len(stitched.ids) == 14
    if overlap == 0:
        sent = {"tracks": [dict(t.to_dict(), id=i + 1) for i, t in enumerate(uploaded)]}
        ours = split_at_job_boundaries(parse_labeled_data(sent, labels=labels).tracks,
                                       job_starts, stop_frame=59)
        assert len(ours.ids) == len(pieces.ids) == 26

        def signature(t):
            return sorted((int(f), bool(o), tuple(np.round(b, 3)))
                          for f, o, b in zip(t.frame, t.outside, t.xyxy))

        assert sorted(signature(ours.track(i)) for i in ours.ids) == \
            sorted(signature(pieces.track(i)) for i in pieces.ids)
