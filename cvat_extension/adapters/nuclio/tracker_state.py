"""Where stateful Nuclio trackers keep per-object memory between CVAT calls.

CVAT round-trips a tracker's ``states`` through the browser, signed, on every frame. A
SAM2 memory is megabytes per object, far too big for that, so the function hands CVAT a
small token and keeps the memory here, keyed by the token's random id:

- :class:`LruStateStore`: in-process, bounded by bytes; enough for one replica.
- :class:`RedisStateStore`: shared by every replica behind one ``REDIS_URL``, so a call
  may land on any of them (and a restarted replica keeps the states).

Both expire an entry ``ttl_s`` after its last use; the default is CVAT's own 8 h
``TRACKER_STATE_MAX_AGE``, after which CVAT refuses the signed state anyway.

Fair use: a tracking session (one SAM2 object, one reid task's chain of frame pairs) holds
exactly one entry, replaced in place as it advances, and an entry's size is bounded by the
function's work limits. A store at capacity (``max_entries``, and ``max_bytes`` in memory)
never evicts a live entry to make room — that would turn someone else's next call into a
410 — it refuses the *new* session with :class:`StoreFullError` (HTTP 503 with
``Retry-After``: the time until the oldest entry expires, at most a minute). Entries of
running sessions can always be updated.

Every value is authenticated: :func:`store_from_env` wraps the store in a
:class:`~cvat_extension.adapters.nuclio.signed_store.SignedStateStore`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cvat_extension._deps import require
from cvat_extension.errors import ConfigError, CvatTrackError

logger = logging.getLogger(__name__)

__all__ = [
    "CVAT_STATE_MAX_AGE_S",
    "LruStateStore",
    "RedisStateStore",
    "StateStore",
    "StoreFullError",
    "store_from_env",
]

#: CVAT's ``TRACKER_STATE_MAX_AGE``: signed tracker states are refused after 8 hours.
CVAT_STATE_MAX_AGE_S = 8 * 3600
#: Default number of live sessions (SAM2 objects, reid task chains) per store.
DEFAULT_MAX_ENTRIES = 4096


class StoreFullError(CvatTrackError):
    """The store is at capacity: a new session must wait (HTTP 503 + ``Retry-After``)."""

    status_code = 503

    def __init__(self, message: str, retry_after_s: float) -> None:
        super().__init__(message)
        self.retry_after_s = max(1, min(60, int(retry_after_s + 0.999)))


class StateStore(Protocol):
    """Bytes by key with expiry since last use.

    - ``get`` returns None for a missing or expired key and refreshes the expiry of a hit;
    - ``put`` replaces any previous value; for a *new* key in a full store it raises
      :class:`StoreFullError` instead of evicting another entry;
    - implementations are safe to call from several threads.
    """

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class LruStateStore:
    """In-process store bounded by total bytes and entries; full → new keys refused.

    Args:
        ttl_s: seconds after last use an entry expires.
        max_bytes: total size kept; raising it keeps more objects tracked at once at the
            cost of RAM (a SAM2 tiny memory is ~0.6 MB at 256 px and ~6 MB at 1024 px).
        max_entries: live sessions kept.
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        ttl_s: float = CVAT_STATE_MAX_AGE_S,
        max_bytes: int = 2 << 30,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0 or max_entries <= 0:
            raise ConfigError(
                f"LruStateStore: ttl_s, max_bytes and max_entries must be > 0, got {ttl_s}, {max_bytes}, {max_entries}"
            )
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size_bytes(self) -> int:
        return self._size

    def get(self, key: str) -> bytes | None:
        now = self._clock()
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            expires, value = item
            if expires <= now:
                self._drop(key)
                return None
            self._items[key] = (now + self.ttl_s, value)
            self._items.move_to_end(key)
            return value

    def put(self, key: str, value: bytes) -> None:
        now = self._clock()
        with self._lock:
            old = self._items.get(key)
            if old is None:
                self._purge_expired(now)
                if len(self._items) >= self.max_entries or self._size + len(value) > self.max_bytes:
                    soonest = min((e for e, _ in self._items.values()), default=now + 1)
                    raise StoreFullError(
                        f"tracker state store is full ({len(self._items)} sessions, {self._size} bytes); "
                        "retry when a session ends or expires",
                        retry_after_s=soonest - now,
                    )
            else:
                self._drop(key)
            self._items[key] = (now + self.ttl_s, value)
            self._size += len(value)

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._items:
                self._drop(key)

    def _purge_expired(self, now: float) -> None:
        for key in [k for k, (e, _) in self._items.items() if e <= now]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        _, value = self._items.pop(key)
        self._size -= len(value)


class RedisStateStore:
    """Redis-backed store shared by function replicas (``SET ... EX``, ``GETEX ... EX``).

    Live keys are counted in a sorted set (score = expiry time) so that a full store refuses
    new sessions instead of relying on Redis eviction, which would drop live states. The
    count is checked and the key written in two steps: concurrent new sessions may overshoot
    ``max_entries`` by the number of replicas writing at that instant.

    Args:
        client: a ``redis.Redis`` (or compatible, e.g. fakeredis) client.
        ttl_s: seconds after last use an entry expires.
        prefix: key namespace, so that several functions can share one Redis.
        max_entries: live sessions kept.
        clock: wall-clock seconds (shared by replicas; injectable for tests).
    """

    def __init__(
        self,
        client: Any,
        *,
        ttl_s: float = CVAT_STATE_MAX_AGE_S,
        prefix: str = "cvat-extension:tracker:",
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ttl_s <= 0 or max_entries <= 0:
            raise ConfigError(f"RedisStateStore: ttl_s and max_entries must be > 0, got {ttl_s}, {max_entries}")
        self.client = client
        self.ttl_s = int(max(1, round(ttl_s)))
        self.prefix = prefix
        self.max_entries = max_entries
        self._clock = clock
        self._index = prefix + "__live__"

    @classmethod
    def from_url(cls, url: str, **kw: Any) -> RedisStateStore:
        """Connect to ``redis://[:password@]host:port/db``.

        Raises:
            MissingDependencyError: the redis client is not installed.
        """
        redis = require("redis", extra="sam2")
        return cls(redis.Redis.from_url(url), **kw)

    def get(self, key: str) -> bytes | None:
        value = self.client.getex(self.prefix + key, ex=self.ttl_s)
        if value is None:
            return None
        self.client.zadd(self._index, {key: self._clock() + self.ttl_s})
        return bytes(value)

    def put(self, key: str, value: bytes) -> None:
        now = self._clock()
        if self.client.zscore(self._index, key) is None:
            self.client.zremrangebyscore(self._index, "-inf", now)
            if int(self.client.zcard(self._index)) >= self.max_entries:
                oldest = self.client.zrange(self._index, 0, 0, withscores=True)
                soonest = float(oldest[0][1]) if oldest else now + 1
                raise StoreFullError(
                    f"tracker state store is full ({self.max_entries} sessions); retry when a session "
                    "ends or expires",
                    retry_after_s=soonest - now,
                )
        pipe = self.client.pipeline()
        pipe.set(self.prefix + key, value, ex=self.ttl_s)
        pipe.zadd(self._index, {key: now + self.ttl_s})
        pipe.execute()

    def delete(self, key: str) -> None:
        pipe = self.client.pipeline()
        pipe.delete(self.prefix + key)
        pipe.zrem(self._index, key)
        pipe.execute()


def store_from_env(env: Mapping[str, str], *, namespace: str = "") -> StateStore:
    """The signed store a function uses, configured by its environment.

    Redis when ``REDIS_URL`` (or CVAT's ``CVAT_FUNCTIONS_REDIS_HOST``/``_PORT``/``_PASSWORD``)
    is set, else an in-process LRU; ``TRACKER_STATE_TTL_S``, ``TRACKER_STATE_MAX_BYTES``
    (in-process) and ``TRACKER_STATE_MAX_ENTRIES`` override the defaults. Values are
    authenticated with ``TRACKER_STATE_KEY`` (required with Redis: every replica must share
    it; in-process, a random per-process key is used when it is unset).

    Raises:
        ConfigError: a number that does not parse, or Redis without a key.
    """
    from cvat_extension.adapters.nuclio.signed_store import SignedStateStore, key_from_env

    try:
        ttl = float(env.get("TRACKER_STATE_TTL_S") or CVAT_STATE_MAX_AGE_S)
        max_bytes = int(env.get("TRACKER_STATE_MAX_BYTES") or (2 << 30))
        max_entries = int(env.get("TRACKER_STATE_MAX_ENTRIES") or DEFAULT_MAX_ENTRIES)
    except ValueError as exc:
        raise ConfigError(
            f"TRACKER_STATE_TTL_S / TRACKER_STATE_MAX_BYTES / TRACKER_STATE_MAX_ENTRIES: {exc}"
        ) from exc
    url = env.get("REDIS_URL")
    if not url and env.get("CVAT_FUNCTIONS_REDIS_HOST"):
        password = env.get("CVAT_FUNCTIONS_REDIS_PASSWORD")
        auth = f":{password}@" if password else ""
        url = f"redis://{auth}{env['CVAT_FUNCTIONS_REDIS_HOST']}:{env.get('CVAT_FUNCTIONS_REDIS_PORT') or 6379}/0"
    key = key_from_env(env, shared=bool(url))  # before connecting: refuse unsigned sharing early
    inner: StateStore
    if url:
        inner = RedisStateStore.from_url(
            url, ttl_s=ttl, max_entries=max_entries, prefix=f"cvat-extension:tracker:{namespace}:"
        )
    else:
        inner = LruStateStore(ttl_s=ttl, max_bytes=max_bytes, max_entries=max_entries)
    return SignedStateStore(inner, key)
