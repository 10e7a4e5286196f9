"""Webhook receiver: 401 without a valid CVAT signature, one sync per accepted event."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from cvat_extension.cvat.webhook import WebhookServer, job_to_sync, signature_for, verify_signature

SECRET = b"shared-secret"


def post(port: int, body: bytes, signature: str | None) -> int:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    if signature is not None:
        req.add_header("X-Signature-256", signature)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def event(job_id: int = 4, before: dict | None = None, name: str = "update:job") -> bytes:
    return json.dumps({"event": name, "job": {"id": job_id, "state": "completed"},
                       "before_update": before if before is not None else {"state": "in progress"},
                       "sender": {"username": "anna"}, "webhook_id": 1}).encode()


def test_signature_matches_cvat_format() -> None:
    body = b'{"a": 1}'
    sig = signature_for(SECRET, body)
    assert sig.startswith("sha256=") and len(sig) == 7 + 64
    assert verify_signature(SECRET, body, sig)
    assert not verify_signature(SECRET, body + b" ", sig)
    assert not verify_signature(SECRET, body, None)
    assert not verify_signature(b"other", body, sig)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, None),
        (json.loads(event()), 4),
        (json.loads(event(before={"stage": "annotation"})), 4),
        (json.loads(event(before={"updated_date": "x"})), None),
        (json.loads(event(name="update:task")), None),
    ],
)
def test_only_state_or_stage_changes_trigger(payload: dict, expected: int | None) -> None:
    assert job_to_sync(payload) == expected


def test_bad_signature_is_401_and_good_one_syncs_once() -> None:
    synced: list[int] = []
    server = WebhookServer(SECRET, synced.append, port=0)
    server.start()
    try:
        body = event(job_id=12)
        assert post(server.port, body, None) == 401
        assert post(server.port, body, "sha256=" + "0" * 64) == 401
        assert post(server.port, body, signature_for(b"wrong", body)) == 401
        server.drain()
        assert synced == []
        assert post(server.port, body, signature_for(SECRET, body)) == 202
        ignored = event(job_id=12, before={"updated_date": "x"})
        assert post(server.port, ignored, signature_for(SECRET, ignored)) == 200
        server.drain()
        assert synced == [12]
        assert server.rejected == 3 and server.accepted == 1
    finally:
        server.stop()


def raw(port: int, data: bytes) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(data)
        out = b""
        while chunk := sock.recv(65536):
            out += chunk
        return out


def request(port: int, path: str, body: bytes, *, method: str = "POST", signature: str | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=body if method == "POST" else None,
                                 method=method, headers={"Content-Type": "application/json"})
    if signature is not None:
        req.add_header("X-Signature-256", signature)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_replayed_delivery_syncs_once_and_only_the_configured_path_answers(tmp_path) -> None:
    from cvat_extension.cvat.webhook_queue import WebhookQueue

    synced: list[int] = []
    server = WebhookServer(SECRET, synced.append, path="/cvat/hook", queue=WebhookQueue(tmp_path / "q.sqlite"))
    server.start()
    try:
        body = event(job_id=7)
        sig = signature_for(SECRET, body)
        assert request(server.port, "/cvat/hook", body, signature=sig)[0] == 202
        status, answer = request(server.port, "/cvat/hook", body, signature=sig)  # CVAT "redeliver"
        assert status == 200 and answer["detail"] == "duplicate delivery"
        assert request(server.port, "/", body, signature=sig)[0] == 404
        assert request(server.port, "/cvat/hook/x", body, signature=sig)[0] == 404
        status, answer = request(server.port, "/cvat/hook", b"", method="GET")
        assert status == 405 and "error" in answer
        server.drain()
        assert synced == [7]
    finally:
        server.stop()


@pytest.mark.parametrize("job_id", [-5, 0, 10**30, "3", True, None, 1.5])
def test_invalid_job_ids_are_400_and_queue_nothing(job_id: object) -> None:
    synced: list[int] = []
    server = WebhookServer(SECRET, synced.append)
    server.start()
    try:
        body = json.dumps({"event": "update:job", "job": {"id": job_id},
                           "before_update": {"state": "in progress"}}).encode()
        status, answer = request(server.port, "/", body, signature=signature_for(SECRET, body))
        assert status == 400 and "job.id" in answer["error"]
        server.drain()
        assert synced == [] and server.queue.pending() == 0
    finally:
        server.stop()


def test_any_signature_bytes_get_401_not_a_dropped_connection() -> None:
    server = WebhookServer(SECRET, lambda job: None)
    server.start()
    try:
        body = event()
        for header in (b"sha256=\xff\xfe\xc3\xa9", "sha256=é".encode(), b"x" * 5000, b""):
            reply = raw(server.port, b"POST / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: %d\r\n"
                        b"X-Signature-256: %s\r\n\r\n%s" % (len(body), header, body))
            assert reply.startswith(b"HTTP/1.1 401") or reply.startswith(b"HTTP/1.1 400"), reply[:60]
        assert server.rejected >= 3
    finally:
        server.stop()


def test_full_queue_is_503_and_queued_jobs_survive_a_restart(tmp_path) -> None:
    import threading

    from cvat_extension.cvat.webhook_queue import WebhookQueue

    gate = threading.Event()
    synced: list[int] = []

    def slow_sync(job: int) -> None:
        gate.wait(10)
        synced.append(job)

    path = tmp_path / "q.sqlite"
    server = WebhookServer(SECRET, slow_sync, queue=WebhookQueue(path, max_pending=2))
    server.start()
    try:
        statuses = []
        for job in (1, 2, 3, 4):
            body = event(job_id=job)
            statuses.append(request(server.port, "/", body, signature=signature_for(SECRET, body))[0])
        # job 1 is being synced (still queued until done), 2 waits, 3 and 4 find the queue full
        assert statuses[:2] == [202, 202] and 503 in statuses[2:]
    finally:
        server._stopping.set()  # simulate a kill: stop the worker before it syncs the rest
        gate.set()
        server.stop()
    left = WebhookQueue(path).pending()
    assert left >= 1  # durably queued: still there after the receiver died
    synced.clear()
    again = WebhookServer(SECRET, synced.append, queue=WebhookQueue(path))
    again.start()
    try:
        again.drain()
        assert len(synced) == left and again.queue.pending() == 0
    finally:
        again.stop()
