"""Request coalescing: one request fills a missing entry, the others wait for it.

Within a process, the first request to miss an entry *claims* it and calls
the application; requests for the same entry that arrive meanwhile wait on
an event until the claim ends, then look the entry up again. Across
processes sharing a network backend, the claimant also takes a lock key
(``Backend.add``); a process that finds the lock taken polls the backend for
the entry instead of calling the application.

A claim is a context manager, so nothing can be left claimed::

    with coalescer.claim_or_wait(plan, guard) as fill:
        if fill.entry is not None:
            ...                # another request filled it meanwhile: serve it
        else:
            ...                # this request fills it: call the application, store

    with coalescer.try_claim(plan, guard) as fill:
        if fill.owned: ...     # refresh a stale entry; others keep serving it meanwhile
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import NamedTuple

from .guard import GuardedBackend
from .invalidation import PendingInvalidations
from .plan import Plan
from .storage import Entry

#: Seconds after a failure of a shard during which requests do not wait for
#: another process's fill lock on it (it may be left over from the outage).
SETTLING_TIME = 10.0

#: Seconds between looks at the backend while another process fills an entry.
POLL_INTERVAL = 0.02


class Read(NamedTuple):
    """One look at the backend: whether it answered, the usable entry, and every value it returned."""

    answered: bool
    entry: Entry | None
    fetched: dict[str, bytes]


Reader = Callable[[Plan, "str | None"], Read]


class Fill:
    """One request's claim on filling an entry; releasing it is idempotent."""

    __slots__ = ("_coalescer", "_guard", "_lock_key", "_process_claim", "entry", "key")

    def __init__(self, coalescer: Coalescer, key: str, guard: GuardedBackend) -> None:
        self._coalescer = coalescer
        self._guard = guard
        self.key = key
        self._process_claim = False  # holds this process's claim
        self._lock_key: str | None = None  # holds this lock key in the backend
        self.entry: Entry | None = None  # filled by another request while this one waited

    @property
    def owned(self) -> bool:
        """Whether this request fills the entry."""
        return self._process_claim

    def __enter__(self) -> Fill:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()

    def release(self) -> None:
        lock_key, self._lock_key = self._lock_key, None
        if lock_key is not None and not self._guard.delete(lock_key):
            # Left behind, the lock (perhaps replicated to the next master)
            # would make other processes wait for it: delete it later.
            self._coalescer.pending.add_lock(self._guard.alias, lock_key)
        if self._process_claim:
            self._process_claim = False
            self._coalescer.release(self.key)


class Coalescer:
    """The entries requests of this process are filling, and the backend locks across processes.

    :param read: looks an entry up (and one extra key) in the backend.
    :param pending: where a lock whose release failed is kept for deletion.
    :param lock_timeout: seconds a backend fill lock is held at most.
    :param lock_wait: seconds a request waits for another one filling the
        same entry; ``0`` turns coalescing off.
    :param clock: Unix time, to tell whether an entry found is fresh.
    """

    def __init__(
        self,
        read: Reader,
        pending: PendingInvalidations,
        *,
        lock_timeout: float,
        lock_wait: float,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._read = read
        self.pending = pending
        self.lock_timeout = lock_timeout
        self.lock_wait = lock_wait
        self._clock = clock
        self._sleep = sleep
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        """How many entries requests of this process are filling now."""
        return len(self._events)

    def _claim(self, key: str) -> threading.Event | None:
        """``None`` if the caller now holds the claim on ``key``, else the holder's event."""
        with self._lock:
            event = self._events.get(key)
            if event is not None:
                return event
            self._events[key] = threading.Event()
            return None

    def release(self, key: str) -> None:
        """End the claim on ``key`` and wake the requests waiting for it."""
        with self._lock:
            event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def try_claim(self, plan: Plan, guard: GuardedBackend) -> Fill:
        """Claim the entry if no other request is filling it; never waits."""
        fill = Fill(self, plan.entry_key, guard)
        if self._claim(plan.entry_key) is not None:
            return fill
        fill._process_claim = True
        if guard.backend.shared_between_processes:
            lock_key = plan.lock_key
            added = guard.add(lock_key, b"1", self.lock_timeout)
            if added is False:
                fill.release()
                return fill
            # Taken, or unknown (the add may have reached the server before the
            # error): either way this request releases it.
            fill._lock_key = lock_key
        return fill

    def claim_or_wait(self, plan: Plan, guard: GuardedBackend) -> Fill:
        """Claim the entry, or wait for the request filling it (``fill.entry``, fresh, or nothing).

        A request of this process at it: wait for it to finish, then look
        again (once: if it could not store the response, the waiters all go
        to the application at once rather than one after the other). A
        request of another process at it (the backend lock is taken): poll
        the backend until ``lock_wait`` runs out. Either way, without a
        fresh entry the caller then fills it itself (``fill.owned`` tells
        whether it holds the claim).
        """
        fill = Fill(self, plan.entry_key, guard)
        waiting_for = self._claim(plan.entry_key)
        if waiting_for is not None:
            waiting_for.wait(self.lock_wait)
            fill.entry = self._fresh(self._read(plan, None).entry)
            return fill
        fill._process_claim = True
        if not guard.backend.shared_between_processes:
            return fill
        lock_key = plan.lock_key
        added = guard.add(lock_key, b"1", self.lock_timeout)
        if added is not False:
            fill._lock_key = lock_key  # taken, or unknown: this request releases it
            return fill
        if self.pending.take_lock(guard.alias, lock_key):
            fill._lock_key = lock_key  # this process's own lock, left behind by a failed release
            return fill
        if guard.failed_within(lock_key, SETTLING_TIME):
            # Soon after the shard failed, a lock may be left over from the outage
            # (its release lost, or replicated to the promoted replica): do not
            # wait on it; at worst a few processes fill the entry at once.
            return fill
        deadline = time.monotonic() + self.lock_wait
        while time.monotonic() < deadline:
            self._sleep(POLL_INTERVAL)
            read = self._read(plan, lock_key)
            if not read.answered:
                break  # the backend stopped answering: do not wait on it
            fresh = self._fresh(read.entry)
            if fresh is not None:
                fill.release()
                fill.entry = fresh
                return fill
            if lock_key not in read.fetched:
                break  # the other process is done and stored nothing (or its lock expired)
        return fill

    def _fresh(self, entry: Entry | None) -> Entry | None:
        if entry is None or self._clock() >= entry.fresh_until:
            return None
        return entry
