"""Bounded memos for work that repeats across requests (matching, hashing, decoding).

They hold results that depend only on their key, so a lost or stale slot
costs a recomputation, never a wrong answer. Operations are single C-level
dict calls, safe under threads without a lock; a race at most evicts one
entry more than needed.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class FifoMemo(Generic[K, V]):
    """At most ``size`` results; the oldest goes first when full."""

    __slots__ = ("_data", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        return self._data.get(key)

    def put(self, key: K, value: V) -> None:
        data = self._data
        data[key] = value
        while len(data) > self.size:
            try:
                data.popitem(last=False)
            except KeyError:  # emptied by another thread
                break

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data


class ByteBudgetLru(Generic[K, V]):
    """Least-recently-used results whose summed ``cost`` stays under ``budget``."""

    __slots__ = ("_data", "budget", "used")

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.used = 0
        self._data: OrderedDict[K, tuple[V, int]] = OrderedDict()

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
        old = data.pop(key, None)
        if old is not None:
            self.used -= old[1]
        data[key] = (value, cost)
        self.used += cost
        while self.used > self.budget and data:
            try:
                _, (_, evicted_cost) = data.popitem(last=False)
            except KeyError:
                break
            self.used -= evicted_cost
