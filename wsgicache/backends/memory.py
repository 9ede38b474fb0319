"""An in-process, thread-safe LRU store with per-key time to live.

The fastest backend and the right one for a single process. Each process of
a multi-process server (gunicorn workers) has its own copy, so invalidation
in one worker does not reach the others: use Redis or Memcached for that.

::

    CacheMiddleware(app, backend="memory://?max_entries=5000&max_bytes=67108864", rules=...)

``max_entries`` and ``max_bytes`` are hard limits on stored responses: the
least recently used are evicted as soon as either would be exceeded. The size
of an entry is the length of its value plus the length of its key. A value
that alone exceeds ``max_bytes`` is not stored.

The middleware's own bookkeeping keys (tag generations, ``t:...``, and fill
locks, ``l:...``; see :data:`INTERNAL_PREFIXES`) are tiny and are kept apart,
in a second LRU of at most ``max_internal_keys`` keys (default: twice
``max_entries`` plus 1,024) and ``max_internal_keys * 256`` bytes. They
neither count against ``max_entries`` / ``max_bytes`` nor evict responses.
Evicting one is safe: the entries that depend on it become misses.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from time import monotonic

from ..errors import ConfigurationError
from .base import Backend

#: Key prefixes of the middleware's bookkeeping: tag generations and fill locks.
INTERNAL_PREFIXES = frozenset({"t:", "l:"})

#: Bytes (key plus value) budgeted per internal key; a generation takes about 50.
INTERNAL_KEY_BYTES = 256


class _Lru:
    """Values under keys with a time to live, within exact count and byte limits."""

    __slots__ = ("data", "max_bytes", "max_entries", "size")

    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # key -> (value, expires_at on the monotonic clock, size)
        self.data: OrderedDict[str, tuple[bytes, float, int]] = OrderedDict()
        self.size = 0

    def store(self, key: str, value: bytes, ttl: float) -> bool:
        if key in self.data:
            self.remove(key)
        size = len(value) + len(key)
        if ttl <= 0 or size > self.max_bytes:
            return False
        data = self.data
        while data and (len(data) >= self.max_entries or self.size + size > self.max_bytes):
            _, (_, _, evicted_size) = data.popitem(last=False)
            self.size -= evicted_size
        data[key] = (bytes(value), monotonic() + ttl, size)
        self.size += size
        return True

    def remove(self, key: str) -> None:
        _, _, size = self.data.pop(key)
        self.size -= size

    def clear(self) -> None:
        self.data.clear()
        self.size = 0


class MemoryBackend(Backend):
    """In-process LRU cache.

    :param max_entries: most responses held at once (default 10,000).
    :param max_bytes: most bytes of responses held at once, values plus keys
        (default 64 MiB).
    :param max_internal_keys: most tag generations and locks held at once,
        apart from the responses (default ``2 * max_entries + 1024``).
    """

    returns_stored_object = True
    shared_between_processes = False

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        max_internal_keys: int | None = None,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
        if max_internal_keys is None and isinstance(max_entries, int) and not isinstance(max_entries, bool):
            max_internal_keys = 2 * max_entries + 1024
        for name, value in (
            ("max_entries", max_entries),
            ("max_bytes", max_bytes),
            ("max_internal_keys", max_internal_keys),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"MemoryBackend {name} must be a positive whole number, got {value!r}"
                )
        assert max_internal_keys is not None
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.max_internal_keys = max_internal_keys
        self._entries = _Lru(max_entries, max_bytes)
        self._internal = _Lru(max_internal_keys, max_internal_keys * INTERNAL_KEY_BYTES)
        #: The stored responses: key -> (value, expires_at, size).
        self._data = self._entries.data
        self._lock = threading.Lock()

    def _lru(self, key: str) -> _Lru:
        return self._internal if key[:2] in INTERNAL_PREFIXES else self._entries

    @property
    def current_bytes(self) -> int:
        """Bytes of responses held now (values plus keys)."""
        return self._entries.size

    @property
    def internal_keys(self) -> int:
        """Tag generations and locks held now."""
        return len(self._internal.data)

    def __len__(self) -> int:
        """Responses held now."""
        return len(self._entries.data)

    def get(self, key: str) -> bytes | None:
        lru = self._lru(key)
        with self._lock:
            item = lru.data.get(key)
            if item is None:
                return None
            if item[1] <= monotonic():
                lru.remove(key)
                return None
            lru.data.move_to_end(key)
            return item[0]

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        now = monotonic()
        entries = self._entries.data
        internal = self._internal.data
        with self._lock:
            for key in keys:
                # A key lives in one of the two (set() routes it by prefix):
                # two dict lookups cost less than looking at the prefix.
                data = entries
                item = data.get(key)
                if item is None:
                    data = internal
                    item = data.get(key)
                    if item is None:
                        continue
                if item[1] <= now:
                    (self._entries if data is entries else self._internal).remove(key)
                    continue
                data.move_to_end(key)
                found[key] = item[0]
        return found

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        lru = self._lru(key)
        with self._lock:
            return lru.store(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        lru = self._lru(key)
        with self._lock:
            item = lru.data.get(key)
            if item is not None and item[1] > monotonic():
                return False
            return lru.store(key, value, ttl)

    def delete(self, key: str) -> None:
        lru = self._lru(key)
        with self._lock:
            if key in lru.data:
                lru.remove(key)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._internal.clear()
