"""Counters of what the middleware did, shared by all threads of a process."""

from __future__ import annotations

import threading

#: Every counter :meth:`Stats.snapshot` reports, in a stable order.
COUNTERS = (
    "hits",  # answered from a fresh entry (including 304s)
    "misses",  # looked up, not found (or not usable): the application answered
    "stores",  # entries written
    "stale",  # answered from an expired entry (stale-while-revalidate / -if-error / max-stale)
    "revalidated",  # stale entries the application confirmed with a 304 (policy "http")
    "coalesced",  # hits that waited for another request filling the entry
    "bypasses",  # matched a rule but the cache was not consulted
    "not_stored",  # responses a rule matched that could not be stored
    "too_large",  # responses over max_entry_bytes, streamed through
    "corrupt",  # stored values that did not decode (deleted)
    "errors",  # backend calls that raised, timed out or answered with the wrong type
    "skipped",  # backend calls not made because the circuit breaker was open
    "invalidations",  # invalidate() / clear() calls
    "invalidation_failures",  # invalidations a backend did not acknowledge (kept, re-applied)
)


class Stats:
    """Thread-safe counters; ``snapshot()`` adds ``hit_ratio`` and ``served_from_cache_ratio``.

    ``hit_ratio`` is the share of cache lookups answered from the cache:
    (hits + stale) / (hits + stale + misses). It measures how well the rules
    and lifetimes work while the backend answers; requests that never
    reached the backend (bypasses) are not in it, so it does not move
    during an outage.

    ``served_from_cache_ratio`` is the share of all requests a rule matched
    that the cache answered: (hits + stale) / (hits + stale + misses +
    bypasses). While a backend is down every request is a bypass, so an
    outage shows as a drop in it.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts = dict.fromkeys(COUNTERS, 0)

    def incr(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            counts: dict[str, float] = dict(self._counts)
        from_cache = counts["hits"] + counts["stale"]
        looked_up = from_cache + counts["misses"]
        matched = looked_up + counts["bypasses"]
        counts["hit_ratio"] = from_cache / looked_up if looked_up else 0.0
        counts["served_from_cache_ratio"] = from_cache / matched if matched else 0.0
        return counts

    def reset(self) -> None:
        with self._lock:
            self._counts = dict.fromkeys(COUNTERS, 0)
