"""Tracker state stores: fair quotas (full → StoreFullError, never eviction) and signed values."""

from __future__ import annotations

import pytest

from cvat_extension.adapters.nuclio.signed_store import SignedStateStore, TamperedStateError, key_from_env
from cvat_extension.adapters.nuclio.tracker_state import LruStateStore, RedisStateStore, StoreFullError, store_from_env
from cvat_extension.errors import ConfigError

KEY = b"0123456789abcdef-test"


def test_full_lru_store_refuses_new_sessions_and_keeps_running_ones() -> None:
    now = [0.0]
    store = LruStateStore(max_entries=2, ttl_s=100, clock=lambda: now[0])
    store.put("a", b"1")
    store.put("b", b"2")
    with pytest.raises(StoreFullError, match="full") as err:
        store.put("c", b"3")
    assert 1 <= err.value.retry_after_s <= 60 and err.value.status_code == 503
    store.put("a", b"11")  # a running session may always advance
    assert store.get("a") == b"11" and store.get("b") == b"2"
    now[0] += 101  # both expire: room again
    store.put("c", b"3")
    assert store.get("c") == b"3" and len(store) == 1


def test_lru_byte_budget_refuses_rather_than_evicts() -> None:
    store = LruStateStore(max_bytes=10)
    store.put("a", b"x" * 8)
    with pytest.raises(StoreFullError):
        store.put("b", b"y" * 5)
    assert store.get("a") == b"x" * 8


def test_redis_store_counts_live_sessions() -> None:
    fakeredis = pytest.importorskip("fakeredis")
    now = [1000.0]
    store = RedisStateStore(fakeredis.FakeRedis(), max_entries=2, ttl_s=100, clock=lambda: now[0])
    store.put("a", b"1")
    store.put("b", b"2")
    with pytest.raises(StoreFullError):
        store.put("c", b"3")
    store.put("a", b"4")
    store.delete("b")
    store.put("c", b"3")
    assert store.get("a") == b"4" and store.get("c") == b"3"


def test_signed_store_refuses_altered_planted_and_moved_values() -> None:
    inner = LruStateStore()
    store = SignedStateStore(inner, KEY)
    store.put("one", b"payload")
    assert store.get("one") == b"payload" and store.get("nope") is None
    raw = inner.get("one")
    assert raw is not None and raw.endswith(b"payload") and len(raw) == 32 + 7
    inner.put("two", raw)  # a valid value moved under another key
    with pytest.raises(TamperedStateError):
        store.get("two")
    inner.put("one", raw[:-1] + b"X")  # altered
    with pytest.raises(TamperedStateError):
        store.get("one")
    inner.put("three", b"\x80\x04\x95 a pickle")  # planted
    with pytest.raises(TamperedStateError, match="failed authentication"):
        store.get("three")
    other = SignedStateStore(inner, b"another-key-0123456789")
    inner.put("one", raw)
    with pytest.raises(TamperedStateError):
        other.get("one")


def test_state_key_rules() -> None:
    assert len(key_from_env({}, shared=False)) == 32  # in-process: random
    with pytest.raises(ConfigError, match="TRACKER_STATE_KEY is not set"):
        key_from_env({}, shared=True)
    with pytest.raises(ConfigError, match="at least 16"):
        key_from_env({"TRACKER_STATE_KEY": "short"}, shared=True)
    with pytest.raises(ConfigError, match="TRACKER_STATE_KEY is not set"):
        store_from_env({"REDIS_URL": "redis://127.0.0.1:1/0"})
    store = store_from_env({"TRACKER_STATE_MAX_ENTRIES": "3"})
    assert isinstance(store, SignedStateStore) and store.inner.max_entries == 3  # type: ignore[attr-defined]
