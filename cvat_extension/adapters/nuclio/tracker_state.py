"""Where stateful Nuclio trackers keep per-object memory between CVAT calls.

CVAT round-trips a tracker's ``states`` through the browser, signed, on every frame. A
SAM2 memory is megabytes per object, far too big for that, so the function hands CVAT a
small token and keeps the memory here, keyed by the token's random id:

- :class:`LruStateStore`: in-process, bounded by bytes; enough for one replica.
- :class:`RedisStateStore`: shared by every replica behind one ``REDIS_URL``, so a call
  may land on any of them (and a restarted replica keeps the states).

Both expire an entry ``ttl_s`` after its last use; the default is CVAT's own 8 h
``TRACKER_STATE_MAX_AGE``, after which CVAT refuses the signed state anyway.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from cvat_extension._deps import require
from cvat_extension.errors import ConfigError

logger = logging.getLogger(__name__)

__all__ = ["CVAT_STATE_MAX_AGE_S", "LruStateStore", "RedisStateStore", "StateStore", "store_from_env"]

#: CVAT's ``TRACKER_STATE_MAX_AGE``: signed tracker states are refused after 8 hours.
CVAT_STATE_MAX_AGE_S = 8 * 3600


class StateStore(Protocol):
    """Bytes by key with expiry since last use.

    - ``get`` returns None for a missing or expired key and refreshes the expiry of a hit;
    - ``put`` replaces any previous value;
    - implementations are safe to call from several threads.
    """

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes) -> None: ...

    def delete(self, key: str) -> None: ...


class LruStateStore:
    """In-process store bounded by total bytes, least recently used evicted first.

    Args:
        ttl_s: seconds after last use an entry expires.
        max_bytes: total size kept; raising it keeps more objects tracked at once at the
            cost of RAM (a SAM2 tiny memory is ~0.6 MB at 256 px and ~6 MB at 1024 px).
        clock: monotonic seconds (injectable for tests).
    """

    def __init__(
        self,
        *,
        ttl_s: float = CVAT_STATE_MAX_AGE_S,
        max_bytes: int = 2 << 30,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl_s <= 0 or max_bytes <= 0:
            raise ConfigError(f"LruStateStore: ttl_s and max_bytes must be > 0, got {ttl_s}, {max_bytes}")
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
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
            if key in self._items:
                self._drop(key)
            self._items[key] = (now + self.ttl_s, value)
            self._size += len(value)
            while self._size > self.max_bytes and len(self._items) > 1:
                old, _ = next(iter(self._items.items()))
                logger.warning("tracker state %s evicted: store over %d bytes", old, self.max_bytes)
                self._drop(old)

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._items:
                self._drop(key)

    def _drop(self, key: str) -> None:
        _, value = self._items.pop(key)
        self._size -= len(value)


class RedisStateStore:
    """Redis-backed store shared by function replicas (``SET ... EX``, ``GETEX ... EX``).

    Args:
        client: a ``redis.Redis`` (or compatible, e.g. fakeredis) client.
        ttl_s: seconds after last use an entry expires.
        prefix: key namespace, so that several functions can share one Redis.
    """

    def __init__(self, client: Any, *, ttl_s: float = CVAT_STATE_MAX_AGE_S, prefix: str = "cvat-extension:tracker:") -> None:
        if ttl_s <= 0:
            raise ConfigError(f"RedisStateStore: ttl_s must be > 0, got {ttl_s}")
        self.client = client
        self.ttl_s = int(max(1, round(ttl_s)))
        self.prefix = prefix

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
        return None if value is None else bytes(value)

    def put(self, key: str, value: bytes) -> None:
        self.client.set(self.prefix + key, value, ex=self.ttl_s)

    def delete(self, key: str) -> None:
        self.client.delete(self.prefix + key)


def store_from_env(env: Mapping[str, str]) -> StateStore:
    """Redis when ``REDIS_URL`` (or CVAT's ``CVAT_FUNCTIONS_REDIS_HOST``/``_PORT``/``_PASSWORD``)
    is set, else an in-process LRU; ``TRACKER_STATE_TTL_S`` and ``TRACKER_STATE_MAX_BYTES``
    override the defaults.

    Raises:
        ConfigError: a number that does not parse.
    """
    try:
        ttl = float(env.get("TRACKER_STATE_TTL_S") or CVAT_STATE_MAX_AGE_S)
        max_bytes = int(env.get("TRACKER_STATE_MAX_BYTES") or (2 << 30))
    except ValueError as exc:
        raise ConfigError(f"TRACKER_STATE_TTL_S / TRACKER_STATE_MAX_BYTES: {exc}") from exc
    url = env.get("REDIS_URL")
    if not url and env.get("CVAT_FUNCTIONS_REDIS_HOST"):
        password = env.get("CVAT_FUNCTIONS_REDIS_PASSWORD")
        auth = f":{password}@" if password else ""
        url = f"redis://{auth}{env['CVAT_FUNCTIONS_REDIS_HOST']}:{env.get('CVAT_FUNCTIONS_REDIS_PORT') or 6379}/0"
    if url:
        return RedisStateStore.from_url(url, ttl_s=ttl)
    return LruStateStore(ttl_s=ttl, max_bytes=max_bytes)
