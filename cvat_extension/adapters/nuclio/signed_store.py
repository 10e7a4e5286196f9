"""Authenticated values in a tracker state store: a planted or altered value is refused.

Why: the state store may be a Redis shared by replicas — and by whoever else can reach it.
Each value is stored as ``HMAC-SHA256(key, store key ‖ value) ‖ value``; :meth:`get` checks the
tag in constant time before anything parses the value, and binds it to its store key, so a
valid value moved under another key (another task's chain, another object) is refused too.
What is stored is never pickle anyway (:mod:`~cvat_extension.models.state_codec`, SAM2
memories through ``torch.load(weights_only=True)``); the signature keeps even those parsers
away from data we did not write.

The key comes from ``TRACKER_STATE_KEY`` (at least 16 characters; every replica sharing a
Redis needs the same one). An in-process store, which nobody else can write, uses a random
key per process when none is set.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Mapping

from cvat_extension.adapters.nuclio.tracker_state import StateStore
from cvat_extension.errors import ConfigError, InputError

__all__ = ["SignedStateStore", "TamperedStateError", "key_from_env"]

logger = logging.getLogger(__name__)

_TAG = hashlib.sha256().digest_size
MIN_KEY_CHARS = 16


class TamperedStateError(InputError):
    """A stored value whose signature does not match: altered, planted or from another key."""

    status_code = 410


def key_from_env(env: Mapping[str, str], *, shared: bool) -> bytes:
    """``TRACKER_STATE_KEY`` as bytes (random per process when unset and not ``shared``).

    Raises:
        ConfigError: unset (or too short) while the store is shared between processes.
    """
    raw = env.get("TRACKER_STATE_KEY") or ""
    if raw and len(raw) < MIN_KEY_CHARS:
        raise ConfigError(f"TRACKER_STATE_KEY: use at least {MIN_KEY_CHARS} characters (e.g. `openssl rand -hex 32`)")
    if raw:
        return raw.encode("utf-8")
    if shared:
        raise ConfigError(
            "TRACKER_STATE_KEY is not set: tracker states shared through Redis must be signed with "
            "a key every replica knows (e.g. `openssl rand -hex 32`)"
        )
    return secrets.token_bytes(32)


class SignedStateStore:
    """A :class:`StateStore` whose values carry an HMAC bound to their key."""

    def __init__(self, inner: StateStore, key: bytes) -> None:
        if len(key) < MIN_KEY_CHARS:
            raise ConfigError(f"SignedStateStore: key must have at least {MIN_KEY_CHARS} bytes")
        self.inner = inner
        self._key = key

    def _tag(self, key: str, value: bytes | memoryview) -> bytes:
        mac = hmac.new(self._key, key.encode("utf-8") + b"\0", hashlib.sha256)
        mac.update(value)
        return mac.digest()

    def get(self, key: str) -> bytes | None:
        """The value, or None when missing.

        Raises:
            TamperedStateError: the value was not written by us under this key.
        """
        raw = self.inner.get(key)
        if raw is None:
            return None
        view = memoryview(raw)
        if len(raw) < _TAG or not hmac.compare_digest(bytes(view[:_TAG]), self._tag(key, view[_TAG:])):
            logger.warning("tracker state %s failed authentication; refusing it", key[:16])
            raise TamperedStateError(
                "tracker state failed authentication (altered or not written by this function); "
                "start tracking again"
            )
        return bytes(view[_TAG:])

    def put(self, key: str, value: bytes) -> None:
        self.inner.put(key, self._tag(key, value) + value)

    def delete(self, key: str) -> None:
        self.inner.delete(key)
