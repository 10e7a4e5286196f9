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
