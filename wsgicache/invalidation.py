"""Invalidations that a backend did not acknowledge: kept, honoured and re-applied.

An invalidation writes new tag generations. When the backend cannot take
them (down, failing over, circuit open), the invalidation is not dropped:

- it is kept in the process (:class:`PendingInvalidations`), bounded: past
  ``max_keys`` generation keys a backend's pending invalidations collapse
  into one pending ``clear()`` of its namespace, which covers them all;
- while it is pending, this process serves no entry that depends on it
  (such requests bypass the cache), so it never serves a page from before
  its own invalidation;
- it is re-applied, with a backoff growing from ``first_delay`` to
  ``max_delay`` seconds, until the backend acknowledges it.

Fill locks whose release failed (the backend went away while a request
filled an entry) are kept the same way and deleted once the backend
answers, so that a lock replicated to a promoted replica does not make
other processes wait for it until it expires.

::

    pending = PendingInvalidations(clock=time.monotonic)
    pending.add("default", ["t:..."], "tags=['posts']")
    if pending.active and pending.due():
        for alias, keys, clear in pending.batches():
            ...                       # write them; then
            pending.done(alias, keys, clear)   # or pending.failed()
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass


@dataclass(frozen=True)
class InvalidationResult:
    """What became of an ``invalidate()`` or ``clear()``; true when acknowledged.

    :ivar acknowledged: every backend took the write.
    :ivar replicated: whether a replica acknowledged it too, on backends that
        wait for replicas (Redis ``WAIT``); ``None`` where none does.
    :ivar pending: invalidations of this process still waiting to be
        re-applied (including this one when it was not acknowledged).
    """

    acknowledged: bool
    replicated: bool | None
    pending: int

    def __bool__(self) -> bool:
        return self.acknowledged


class PendingInvalidations:
    """Unacknowledged invalidations, per backend alias, with a retry schedule."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        max_keys: int = 10_000,
        first_delay: float = 0.1,
        max_delay: float = 1.0,
    ) -> None:
        self._clock = clock
        self.max_keys = max_keys
        self.first_delay = first_delay
        self.max_delay = max_delay
        # alias -> generation key -> (what it invalidates, version when kept)
        self._keys: dict[str, dict[str, tuple[str, int]]] = {}
        self._clears: dict[str, tuple[str, int]] = {}  # alias -> (why, version) of a pending clear()
        self._locks: dict[str, set[str]] = {}  # alias -> fill lock keys still to delete
        self._version = 0  # grows with every add: a retry only settles what it snapshotted
        self._delay = first_delay
        self._next_try = 0.0
        self._lock = threading.Lock()
        self._retrying = threading.Lock()
        #: True while anything is pending: the one check on the hit path.
        self.active = False

    def __len__(self) -> int:
        with self._lock:
            return sum(len(keys) for keys in self._keys.values()) + len(self._clears)

    def add(self, alias: str, keys: Iterable[str], what: str) -> None:
        """Keep the generation keys of an invalidation that was not acknowledged."""
        with self._lock:
            self._version += 1
            if alias in self._clears:
                self._clears[alias] = (self._clears[alias][0], self._version)
            else:
                pending = self._keys.setdefault(alias, {})
                for key in keys:
                    pending[key] = (what, self._version)
                if sum(len(keys) for keys in self._keys.values()) > self.max_keys:
                    self._clears[alias] = (f"more than {self.max_keys} pending invalidations", self._version)
                    self._keys.pop(alias, None)
            self._schedule_soon()

    def add_clear(self, alias: str, why: str) -> None:
        """Keep a ``clear()`` that was not acknowledged (it covers the alias's keys)."""
        with self._lock:
            self._version += 1
            self._clears[alias] = (why, self._version)
            self._keys.pop(alias, None)
            self._schedule_soon()

    def _schedule_soon(self) -> None:
        if not self.active:
            self._delay = self.first_delay
            self._next_try = self._clock() + self._delay
        self.active = True

    def add_lock(self, alias: str, key: str) -> None:
        """Keep a fill lock whose release failed, to delete it when the backend answers.

        At most ``max_keys`` are kept per backend: past that, a lock is left
        to expire by itself (``lock_timeout``).
        """
        with self._lock:
            locks = self._locks.setdefault(alias, set())
            if len(locks) < self.max_keys:
                locks.add(key)
                self._schedule_soon()

    def take_lock(self, alias: str, key: str) -> bool:
        """Whether ``key`` is a lock this process failed to release (it is then forgotten)."""
        locks = self._locks.get(alias)
        if not locks or key not in locks:
            return False
        with self._lock:
            locks.discard(key)
            self._update_active()
        return True

    def lock_batches(self) -> list[tuple[str, list[str]]]:
        """``(alias, lock keys)`` for each backend with locks left to delete."""
        with self._lock:
            return [(alias, sorted(keys)) for alias, keys in self._locks.items() if keys]

    def locks_released(self, alias: str, keys: Iterable[str]) -> None:
        with self._lock:
            locks = self._locks.get(alias, set())
            locks.difference_update(keys)
            self._update_active()

    def _update_active(self) -> None:
        self.active = bool(self._clears or self._keys or any(self._locks.values()))

    def blocks(self, alias: str, keys: Iterable[str]) -> bool:
        """Whether an entry depending on ``keys`` may be stale because of a pending invalidation."""
        if alias in self._clears:
            return True
        pending = self._keys.get(alias)
        return pending is not None and any(key in pending for key in keys)

    def due(self) -> bool:
        return self.active and self._clock() >= self._next_try

    def retrying(self) -> threading.Lock:
        """Held by the one caller re-applying now (acquire without blocking)."""
        return self._retrying

    def batches(self) -> Iterator[tuple[str, list[str], bool, int]]:
        """``(alias, generation keys, clear, version)`` for each backend with something pending.

        Hand ``version`` back to :meth:`done`: what was kept again after
        this snapshot (a new failure of the same keys) stays pending.
        """
        with self._lock:
            version = self._version
            snapshot: list[tuple[str, list[str], bool, int]] = [
                (alias, [], True, version) for alias in self._clears
            ]
            snapshot += [(alias, list(keys), False, version) for alias, keys in self._keys.items() if keys]
        yield from snapshot

    def describe(self, alias: str, keys: Iterable[str]) -> str:
        with self._lock:
            pending = self._keys.get(alias, {})
            described = ", ".join(sorted({pending[key][0] for key in keys if key in pending}))
            clear = self._clears.get(alias)
        return described or (clear[0] if clear else "")

    def done(self, alias: str, keys: Iterable[str], clear: bool, version: int) -> None:
        """A backend acknowledged what :meth:`batches` gave for ``alias`` at ``version``."""
        with self._lock:
            if clear:
                pending_clear = self._clears.get(alias)
                if pending_clear is not None and pending_clear[1] <= version:
                    del self._clears[alias]
            pending = self._keys.get(alias, {})
            for key in list(pending) if clear else keys:
                kept = pending.get(key)
                if kept is not None and kept[1] <= version:
                    del pending[key]
            if not pending:
                self._keys.pop(alias, None)
            self._update_active()
            if self.active:
                self._next_try = self._clock()  # the rest at once

    def failed(self) -> None:
        """A retry failed: wait twice as long (up to ``max_delay``) before the next."""
        with self._lock:
            self._delay = min(self._delay * 2, self.max_delay)
            self._next_try = self._clock() + self._delay
