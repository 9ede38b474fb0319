from __future__ import annotations

import threading
import time

import pytest

from wsgicache.backends.memory import MemoryBackend


def test_basic_operations() -> None:
    backend = MemoryBackend()
    assert backend.get("a") is None
    backend.set("a", b"1", 10)
    assert backend.get("a") == b"1"
    assert backend.get_many(["a", "b"]) == {"a": b"1"}
    assert backend.add("a", b"2", 10) is False
    assert backend.add("b", b"2", 10) is True
    assert backend.get_many(["a", "b"]) == {"a": b"1", "b": b"2"}
    backend.delete("a")
    backend.delete("missing")
    assert backend.get("a") is None
    backend.clear()
    assert len(backend) == 0 and backend.current_bytes == 0


def test_ttl_expiry_including_sub_second() -> None:
    backend = MemoryBackend()
    backend.set("short", b"x", 0.05)
    backend.set("long", b"y", 10)
    assert backend.get("short") == b"x"
    time.sleep(0.08)
    assert backend.get("short") is None
    assert backend.get_many(["short", "long"]) == {"long": b"y"}
    assert backend.add("short", b"z", 10) is True


def test_non_positive_ttl_stores_nothing() -> None:
    backend = MemoryBackend()
    backend.set("a", b"x", 0)
    assert backend.get("a") is None


def test_max_entries_is_exact_and_lru() -> None:
    backend = MemoryBackend(max_entries=3)
    for key in "abc":
        backend.set(key, b"v", 10)
    assert backend.get("a") == b"v"  # a becomes most recently used
    backend.set("d", b"v", 10)  # evicts b, the least recently used
    assert len(backend) == 3
    assert backend.get("b") is None
    assert {k for k in "acd" if backend.get(k)} == {"a", "c", "d"}


def test_max_bytes_is_exact() -> None:
    # Each entry costs len(key) + len(value) = 1 + 9 = 10 bytes.
    backend = MemoryBackend(max_bytes=30)
    for key in "abc":
        backend.set(key, b"123456789", 10)
    assert backend.current_bytes == 30
    backend.set("d", b"123456789", 10)
    assert backend.current_bytes == 30
    assert backend.get("a") is None
    backend.set("e", b"1" * 19, 10)  # 20 bytes: two entries must go
    assert backend.current_bytes <= 30
    assert backend.get("e") is not None
    backend.set("huge", b"x" * 100, 10)  # larger than max_bytes alone: not stored
    assert backend.get("huge") is None
    assert backend.current_bytes <= 30


def test_replacing_a_key_updates_size() -> None:
    backend = MemoryBackend()
    backend.set("k", b"x" * 100, 10)
    backend.set("k", b"x" * 10, 10)
    assert backend.current_bytes == 11
    assert len(backend) == 1


def test_returns_the_stored_object() -> None:
    backend = MemoryBackend()
    value = b"some value"
    backend.set("k", value, 10)
    assert backend.get("k") is value
    assert MemoryBackend.returns_stored_object is True


@pytest.mark.parametrize("workers", [8])
def test_threads_hammering_many_keys_keep_limits_and_values(workers: int) -> None:
    backend = MemoryBackend(max_entries=200, max_bytes=50_000)
    errors: list[str] = []

    def work(worker: int) -> None:
        for n in range(3000):
            key = f"k{(n * 7 + worker) % 500}"
            value = key.encode() * 3
            if n % 3 == 0:
                backend.set(key, value, 10)
            elif n % 3 == 1:
                got = backend.get(key)
                if got is not None and got != value:
                    errors.append(f"{key} -> {got!r}")
            else:
                found = backend.get_many([key, "k1"])
                for k, v in found.items():
                    if v != k.encode() * 3:
                        errors.append(f"{k} -> {v!r}")
            if n % 500 == 0:
                backend.add(f"lock{n}", b"1", 1)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(backend) <= 200
    assert backend.current_bytes <= 50_000
    assert backend.current_bytes == sum(len(k) + len(v[0]) for k, v in backend._data.items())


def test_add_is_atomic_across_threads() -> None:
    backend = MemoryBackend()
    winners: list[int] = []
    barrier = threading.Barrier(8)

    def contend(n: int) -> None:
        barrier.wait()
        if backend.add("lock", str(n).encode(), 10):
            winners.append(n)

    threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(winners) == 1
