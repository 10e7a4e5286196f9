"""A 60-frame, two-job CVAT task with one of each problem the loop must handle.

Jobs: frames 0-29 and 30-59 (segment size 30, no overlap), 640x480 frames.

- track "cross" (car): moves right through both jobs; CVAT cuts it at frame 30, and it must
  be reported neither as a fragment nor as an ID switch;
- tracks "p" and "q" (person), job 1: walk towards each other and swap identities at frame
  17 (where they cross);
- track "ghost" (car), job 1: moves for 9 frames, then its box stays frozen for 20 frames
  after the object left;
- tracks "frag_a" and "frag_b" (car), job 2: one object, lost for frames 41-45.

Written at task level through cvat-sdk, so the stand-in cuts tracks at the job boundary as
CVAT does.
"""

from __future__ import annotations

from typing import Any

NUM_FRAMES = 60
SEGMENT = 30
SIZE = (640, 480)
SWAP_FRAME = 17


def rect(frame: int, x: float, y: float, w: float, h: float, *, outside: bool = False) -> dict[str, Any]:
    return {"type": "rectangle", "frame": frame, "points": [x, y, x + w, y + h],
            "outside": outside, "occluded": False, "z_order": 0, "rotation": 0.0, "attributes": []}


def track(label_id: int, shapes: list[dict[str, Any]]) -> dict[str, Any]:
    return {"frame": shapes[0]["frame"], "label_id": label_id, "group": 0, "source": "manual",
            "attributes": [], "shapes": shapes, "elements": []}


def p_x(f: int) -> float:
    return 60.0 + 6 * f


def q_x(f: int) -> float:
    return 260.0 - 6 * f


def tracks(car: int, person: int) -> dict[str, list[dict[str, Any]]]:
    """Named tracks (task-level LabeledTrackRequest dicts)."""
    cross = track(car, [rect(f, 20 + 4 * f, 40, 40, 80) for f in (0, 20, 45, 59)])
    p = track(person, [rect(f, p_x(f) if f < SWAP_FRAME else q_x(f), 200, 40, 80) for f in range(29)]
              + [rect(29, q_x(28), 200, 40, 80, outside=True)])
    q = track(person, [rect(f, q_x(f) if f < SWAP_FRAME else p_x(f), 200, 40, 80) for f in range(29)]
              + [rect(29, p_x(28), 200, 40, 80, outside=True)])
    ghost_shapes = [rect(f, 560 - 4 * f, 300, 50, 50) for f in range(9)]
    ghost_shapes += [rect(28, 560 - 4 * 8, 300, 50, 50), rect(29, 560 - 4 * 8, 300, 50, 50, outside=True)]
    ghost = track(car, ghost_shapes)
    frag_a = track(car, [rect(f, 100 + 3 * f, 380, 50, 60) for f in range(32, 41)]
                   + [rect(41, 100 + 3 * 40, 380, 50, 60, outside=True)])
    frag_b = track(car, [rect(f, 100 + 3 * f, 380, 50, 60) for f in range(46, 57)]
                   + [rect(57, 100 + 3 * 56, 380, 50, 60, outside=True)])
    return {"cross": cross, "p": p, "q": q, "ghost": ghost, "frag_a": frag_a, "frag_b": frag_b}


def seed(standin: Any, client: Any, *, name: str = "scenario") -> tuple[int, list[int]]:
    """Create the task, upload the tracks at task level, mark both jobs completed."""
    from cvat_sdk import models

    task_id = standin.seed_task(name, [{"name": "car"}, {"name": "person"}],
                                (NUM_FRAMES, *SIZE), segment_size=SEGMENT)
    car = standin.label_id(task_id, "car")
    person = standin.label_id(task_id, "person")
    named = tracks(car, person)
    client.tasks.retrieve(task_id).set_annotations(models.LabeledDataRequest(
        version=0, tags=[], shapes=[],
        tracks=[models.LabeledTrackRequest(**t) for t in named.values()]))
    jobs = standin.job_ids(task_id)
    for j in jobs:
        standin.set_job(j, stage="annotation", state="completed")
    return task_id, jobs


WRITE_METHODS = ("POST", "PATCH", "PUT", "DELETE")


def writes(standin: Any, since: int = 0) -> list[Any]:
    """Logged write requests (login excluded) after index ``since`` of the request log."""
    return [r for r in standin.request_log[since:]
            if r.method in WRITE_METHODS and "/auth/" not in r.path]


def visible_boxes(doc: dict[str, Any]) -> set[tuple[int, tuple[float, ...]]]:
    """Every visible keyframe (frame, points) in an annotation document."""
    return {(int(s["frame"]), tuple(round(float(v), 3) for v in s["points"]))
            for t in doc.get("tracks", []) for s in t["shapes"] if not s["outside"]}



OVERLAP_SEGMENT = 30
OVERLAP = 5


def overlap_tracks(car: int, person: int, variant: str = "scenario") -> dict[str, dict[str, Any]]:
    """The scenario's tracks for a task with ``segment_size=30, overlap=5`` (jobs 0-29,
    25-54, 50-59); ``variant="merge_in_overlap"`` moves the fragment's gap (frames 51-53)
    inside the overlap of jobs 2 and 3, so both jobs store both pieces."""
    named = tracks(car, person)
    if variant == "merge_in_overlap":
        named["frag_a"] = track(car, [rect(f, 100 + 3 * f, 380, 50, 60) for f in range(40, 51)]
                                + [rect(51, 100 + 3 * 50, 380, 50, 60, outside=True)])
        named["frag_b"] = track(car, [rect(f, 100 + 3 * f, 380, 50, 60) for f in range(54, 59)]
                                + [rect(59, 100 + 3 * 58, 380, 50, 60, outside=True)])
    if variant == "late_ghost":
        # a car that starts in job 1, stops moving at frame 31 and whose box stays frozen
        # in job 2 (frames 32-50) after the object left: a ghost first seen in job 2
        named["late_ghost"] = track(car, [rect(f, 400 + 4 * (f - 10), 130, 40, 50) for f in range(10, 32)]
                                    + [rect(50, 400 + 4 * 21, 130, 40, 50),
                                       rect(51, 400 + 4 * 21, 130, 40, 50, outside=True)])
    return named


def seed_overlap(standin: Any, client: Any, variant: str = "scenario") -> tuple[int, list[int]]:
    """Create the overlap-5 task (:func:`overlap_tracks`), written at task level as CVAT
    does, every job completed."""
    from cvat_sdk import models

    task_id = standin.seed_task("overlap", [{"name": "car"}, {"name": "person"}],
                                (NUM_FRAMES, *SIZE), segment_size=OVERLAP_SEGMENT, overlap=OVERLAP)
    named = overlap_tracks(standin.label_id(task_id, "car"), standin.label_id(task_id, "person"), variant)
    client.tasks.retrieve(task_id).set_annotations(models.LabeledDataRequest(
        version=0, tags=[], shapes=[],
        tracks=[models.LabeledTrackRequest(**t) for t in named.values()]))
    jobs = standin.job_ids(task_id)
    for j in jobs:
        standin.set_job(j, stage="annotation", state="completed")
    return task_id, jobs


def task_views(standin: Any, task_id: int) -> tuple[list[Any], list[Any]]:
    """CVAT's task-level read and its "CVAT for video 1.1" export, without ids.

    The read: each task-level track's keyframes ``(frame, points, outside)``. The export
    lists every frame of every track of that read, interpolated as CVAT does; here each
    track's visible ``(frame, points)``. Both as sorted lists, so two tasks compare equal
    when a reviewer would see the same objects.
    """
    from cvat_standin.annotations import interpolated_shapes

    with standin.store.lock:
        doc = standin.store.read_task(task_id)
        size = len(standin.store.tasks[task_id].frames)

    def pts(s: dict[str, Any]) -> tuple[float, ...]:
        return tuple(round(float(v), 3) for v in s["points"])

    read = sorted(tuple(sorted((int(s["frame"]), pts(s), bool(s["outside"])) for s in t["shapes"]))
                  for t in doc["tracks"])
    export = sorted(tuple(sorted((int(s["frame"]), pts(s)) for s in interpolated_shapes(t, 0, size)
                                 if not s.get("outside")))
                    for t in doc["tracks"])
    return read, export
