"""Smoothed sparse tracks through CVAT: few keyframes uploaded, read back exactly as computed.

``annotate_task`` runs a fake detector with detector-like jitter over a stand-in task (two
jobs), uploads smoothed, thinned tracks, and the task read back through cvat-sdk must expand
(CVAT's interpolation) to the same boxes we computed from the same tracker output, to 0.5 px.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

pytest.importorskip("boxmot")
pytest.importorskip("cvat_sdk")

from cvat_extension.core.keyframes import expand_keyframes  # noqa: E402
from cvat_extension.core.smooth import SparseTrackConfig  # noqa: E402
from cvat_extension.core.tracks import Tracks  # noqa: E402
from cvat_extension.cvat.annotate import annotate_task, detect_and_track  # noqa: E402
from cvat_extension.cvat.config import CvatConfig  # noqa: E402
from cvat_extension.cvat.connection import connect  # noqa: E402
from cvat_extension.io.cvat_json import parse_labeled_data  # noqa: E402
from cvat_extension.models.mot_tracker import MotTracker  # noqa: E402
from cvat_extension.models.tracker_config import TrackerConfig  # noqa: E402

N_FRAMES, SEGMENT = 80, 40


def frame_of(image: np.ndarray) -> int:
    """The stand-in paints generated frame ``n`` with red ``(n * 37) % 256``; 173 = 37^-1 mod 256."""
    return int(image[0, 0, 0]) * 173 % 256


class JitterDetector:
    """Two people walking (one along a curve) with ±3 px detector jitter, fixed per frame."""

    labels = ("person",)

    def detect(self, image: np.ndarray) -> SimpleNamespace:
        f = frame_of(image)
        rng = np.random.default_rng(f)
        true = np.array([[40 + 4 * f, 100, 100 + 4 * f, 260],
                         [700 - 3 * f, 80 + 40 * np.sin(f / 15), 760 - 3 * f, 240 + 40 * np.sin(f / 15)]])
        boxes = true + rng.normal(0, 1.5, true.shape).clip(-3, 3)
        return SimpleNamespace(xyxy=boxes.astype(np.float32), score=np.array([0.9, 0.85], np.float32),
                               class_id=np.array([0, 0]))


def _frames() -> Any:
    for f in range(N_FRAMES):
        yield f, np.full((540, 960, 3), (f * 37) % 256, np.uint8)


@pytest.fixture()
def api(cvat_standin: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("CVAT_ACCESS_TOKEN", cvat_standin.admin_token)
    return connect(CvatConfig(url=f"http://127.0.0.1:{cvat_standin.port}"))


@pytest.mark.parametrize("mode", ["smooth", "exact"])
def test_uploaded_tracks_read_back_as_computed(cvat_standin: Any, cvat_client: Any, api: Any, mode: str) -> None:
    config = SparseTrackConfig(exact=mode == "exact")
    task_id = cvat_standin.seed_task("walk", [{"name": "person"}], (N_FRAMES, 960, 540), segment_size=SEGMENT)
    result = annotate_task(api, task_id, JitterDetector(), MotTracker(TrackerConfig()), keyframes=config)

    # What we computed: the same tracker output, prepared whole, thinned per job, expanded.
    dense = detect_and_track(_frames(), JitterDetector(), MotTracker(TrackerConfig()))
    prepared = config.prepare(dense)
    expected = []
    for start in range(0, N_FRAMES, SEGMENT):
        stop = start + SEGMENT - 1
        piece = prepared[(prepared.frame >= start) & (prepared.frame <= stop)]
        expected.append(expand_keyframes(config.keyframes(piece, stop_frame=stop), stop_frame=stop).visible())
    want = Tracks.concat(expected)

    labels = [{"id": cvat_standin.label_id(task_id, "person"), "name": "person"}]
    back, stored = [], 0
    jobs = sorted(cvat_client.tasks.retrieve(task_id).get_jobs(), key=lambda j: j.start_frame)
    assert [j.start_frame for j in jobs] == list(range(0, N_FRAMES, SEGMENT))
    for job in jobs:  # job-level reads: each piece as stored in its job
        raw = job.get_annotations().to_dict()
        stored += sum(len(t["shapes"]) for t in raw["tracks"])
        doc = parse_labeled_data(raw, labels=labels, path=f"job {job.id}")
        back.append(expand_keyframes(doc.tracks, stop_frame=job.stop_frame).visible())
    assert stored == result["keyframes"]
    got = Tracks.concat(back)

    key = lambda t: np.lexsort((t.xyxy[:, 0], t.frame))  # noqa: E731 - ids differ, boxes and frames do not
    assert len(got) == len(want) and got.frame[key(got)].tolist() == want.frame[key(want)].tolist()
    assert np.abs(got.xyxy[key(got)] - want.xyxy[key(want)]).max() <= 0.5
    visible = len(want)
    if mode == "smooth":
        assert stored / visible <= 0.3, (stored, visible)
    else:
        assert stored / visible > 0.5  # jitter defeats exact thinning: that is why smoothing exists
