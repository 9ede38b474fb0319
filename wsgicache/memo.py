"""Bounded memos for work that repeats across requests (matching, hashing, decoding).

They hold results that depend only on their key, so a lost or stale slot
costs a recomputation, never a wrong answer. Reads are single C-level dict
calls, safe under threads without a lock. Both memos are bounded in bytes as
well as in entries, so hostile traffic (100 KB URLs) cannot make them pin
more than their budget.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FifoMemo(Generic[K, V]):
    """At most ``size`` results holding at most ``max_bytes`` of text; the oldest go first.

    The cost of a result is the number of characters of the strings in its
    key and value (tuples, named tuples and dict values are looked into):
    WSGI text is latin-1, one byte a character. A result costing more than
    ``max_item_bytes`` (default: a 1024th of ``max_bytes``, 4 KiB of 4 MiB)
    is not kept, so requests with huge URLs or headers (most servers refuse
    request lines over 4 to 8 KiB anyway) neither pin their text nor push
    out the results of ordinary ones. :meth:`put` takes a lock (it runs when a
    result was computed anyway); :meth:`get` is one dict lookup.
    """

    __slots__ = ("_costs", "_data", "_lock", "max_bytes", "max_item_bytes", "size", "used")

    def __init__(
        self, size: int, max_bytes: int = 4 * 1024 * 1024, max_item_bytes: int | None = None
    ) -> None:
        self.size = size
        self.max_bytes = max_bytes
        self.max_item_bytes = max(max_bytes // 1024, 1) if max_item_bytes is None else max_item_bytes
        self.used = 0
        self._data: OrderedDict[K, V] = OrderedDict()
        self._costs: dict[K, int] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        cost = text_size(key) + text_size(value)
        if cost > self.max_item_bytes:
            return
        data = self._data
        costs = self._costs
        with self._lock:
            self.used += cost - costs.get(key, 0)
            data[key] = value
            costs[key] = cost
            while len(data) > self.size or self.used > self.max_bytes:
                evicted, _ = data.popitem(last=False)
                self.used -= costs.pop(evicted)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


def text_size(item: object) -> int:
    """Characters of the strings in ``item``, a string, tuple or dict (values), else 0."""
    if isinstance(item, str):
        return len(item)
    if isinstance(item, tuple):
        return sum(text_size(part) for part in item)
    if isinstance(item, dict):
        return sum(text_size(part) for part in item.values())
    return 0


class ByteBudgetLru(Generic[K, V]):
    """Least-recently-used results whose summed ``cost`` stays under ``budget``.

    :meth:`put` takes a lock so the byte count stays exact under threads;
    :meth:`get` is lock-free.
    """

    __slots__ = ("_data", "_lock", "budget", "used")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        item = self._data.get(key)
        if item is None:
            return None
        try:  # noqa: SIM105 - contextlib.suppress() costs more on this hot path
            self._data.move_to_end(key)
        except KeyError:  # evicted by another thread meanwhile
            pass
        return item[0]

    def put(self, key: K, value: V, cost: int) -> None:
        if cost > self.budget:
            return
        data = self._data
        with self._lock:
            old = data.pop(key, None)
            if old is not None:
                self.used -= old[1]
            data[key] = (value, cost)
            self.used += cost
            while self.used > self.budget and data:
                _, (_, evicted_cost) = data.popitem(last=False)
                self.used -= evicted_cost
