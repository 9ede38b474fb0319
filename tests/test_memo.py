from __future__ import annotations

import threading

from helpers import RecordingApp, cached

from wsgicache import Rule
from wsgicache.memo import ByteBudgetLru, FifoMemo


def test_fifo_memo_keeps_the_newest() -> None:
    memo: FifoMemo[int, str] = FifoMemo(3)
    for n in range(5):
        memo.put(n, str(n))
    assert len(memo) == 3
    assert [memo.get(n) for n in range(5)] == [None, None, "2", "3", "4"]
    memo.put(3, "three")
    assert memo.get(3) == "three" and len(memo) == 3


def test_byte_budget_lru_evicts_least_recently_used_within_budget() -> None:
    lru: ByteBudgetLru[str, str] = ByteBudgetLru(10)
    lru.put("a", "A", 4)
    lru.put("b", "B", 4)
    assert lru.get("a") == "A"  # a is now the most recently used
    lru.put("c", "C", 4)  # over budget: b goes
    assert lru.get("b") is None
    assert (lru.get("a"), lru.get("c")) == ("A", "C")
    assert lru.used == 8
    lru.put("a", "A2", 2)  # replacing adjusts the cost
    assert lru.used == 6
    lru.put("huge", "H", 11)  # over the whole budget: not kept
    assert lru.get("huge") is None and lru.used == 6


def test_decoded_cache_can_be_turned_off() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p")], decoded_cache_bytes=0)
    client.get("/p")
    for _ in range(3):
        assert client.get("/p").headers["X-Cache"] == "HIT"
    assert len(cache.cache._decoded._data) == 0


def test_byte_budget_lru_counts_exactly_under_threads() -> None:
    memo: ByteBudgetLru[int, bytes] = ByteBudgetLru(10_000)

    def work(offset: int) -> None:
        for n in range(20_000):
            key = (n * 7 + offset) % 500
            memo.put(key, b"x", 10 + key % 90)
            memo.get((key + 1) % 500)

    threads = [threading.Thread(target=work, args=(offset,)) for offset in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    held = sum(cost for _, cost in memo._data.values())
    assert memo.used == held <= 10_000
