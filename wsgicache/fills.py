"""Request coalescing: one request fills a missing entry, the others wait.

Within a process, the first request to miss an entry *claims* it and calls
the application; requests for the same entry that arrive meanwhile wait on
an event until the claim is released, then look the entry up again. Across
processes sharing a network backend, the claimant also takes a lock key
(``Backend.add``); a process that finds the lock taken polls the backend
for the entry instead of calling the application.

::

    fills = Fills()
    event = fills.claim(key)
    if event is None:          # this request fills the entry
        try:
            ...                # call the application, store the response
        finally:
            fills.release(key)
    else:
        event.wait(timeout)    # another request of this process fills it
"""

from __future__ import annotations

import threading


class Fills:
    """The entries that requests of this process are filling now."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def claim(self, key: str) -> threading.Event | None:
        """``None`` if this caller now holds the claim on ``key``, else the holder's event."""
        with self._lock:
            event = self._events.get(key)
            if event is not None:
                return event
            self._events[key] = threading.Event()
            return None

    def release(self, key: str) -> None:
        """Give up the claim on ``key`` and wake the requests waiting for it."""
        with self._lock:
            event = self._events.pop(key, None)
        if event is not None:
            event.set()

    def __contains__(self, key: str) -> bool:
        return key in self._events

    def __len__(self) -> int:
        return len(self._events)
