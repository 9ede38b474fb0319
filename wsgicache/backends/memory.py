"""An in-process, thread-safe LRU store with per-key time to live.

The fastest backend and the right one for a single process. Each process of
a multi-process server (gunicorn workers) has its own copy, so invalidation
in one worker does not reach the others: use Redis or Memcached for that.

::

    CacheMiddleware(app, backend="memory://?max_entries=5000&max_bytes=67108864", rules=...)

``max_entries`` and ``max_bytes`` are hard limits: the least recently used
entries are evicted as soon as either would be exceeded. The size of an
entry is the length of its value plus the length of its key. A value that
alone exceeds ``max_bytes`` is not stored.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from time import monotonic

from ..errors import ConfigurationError
from .base import Backend


class MemoryBackend(Backend):
    """In-process LRU cache.

    :param max_entries: most keys held at once (default 10,000).
    :param max_bytes: most bytes held at once, values plus keys (default 64 MiB).
    """

    returns_stored_object = True
    shared_between_processes = False

    def __init__(
        self,
        *,
        max_entries: int = 10_000,
        max_bytes: int = 64 * 1024 * 1024,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(
                    f"MemoryBackend {name} must be a positive whole number, got {value!r}"
                )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        # key -> (value, expires_at on the monotonic clock, size)
        self._data: OrderedDict[str, tuple[bytes, float, int]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()

    @property
    def current_bytes(self) -> int:
        """Bytes held now (values plus keys)."""
        return self._size

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> bytes | None:
        with self._lock:
            item = self._data.get(key)
            if item is None:
                return None
            if item[1] <= monotonic():
                self._remove(key)
                return None
            self._data.move_to_end(key)
            return item[0]

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        found: dict[str, bytes] = {}
        now = monotonic()
        data = self._data
        with self._lock:
            for key in keys:
                item = data.get(key)
                if item is None:
                    continue
                if item[1] <= now:
                    self._remove(key)
                    continue
                data.move_to_end(key)
                found[key] = item[0]
        return found

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            return self._store(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        with self._lock:
            item = self._data.get(key)
            if item is not None and item[1] > monotonic():
                return False
            return self._store(key, value, ttl)

    def delete(self, key: str) -> None:
        with self._lock:
            if key in self._data:
                self._remove(key)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._size = 0

    def _store(self, key: str, value: bytes, ttl: float) -> bool:
        if key in self._data:
            self._remove(key)
        size = len(value) + len(key)
        if ttl <= 0 or size > self.max_bytes:
            return False
        data = self._data
        while data and (len(data) >= self.max_entries or self._size + size > self.max_bytes):
            _, (_, _, evicted_size) = data.popitem(last=False)
            self._size -= evicted_size
        data[key] = (bytes(value), monotonic() + ttl, size)
        self._size += size
        return True

    def _remove(self, key: str) -> None:
        _, _, size = self._data.pop(key)
        self._size -= size
