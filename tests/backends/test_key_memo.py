"""What the network backends remember per list of keys (wsgicache.backends._net.KeyListMemo):
bounded, never stale, and the same reads as without it."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from wsgicache.backends._net import KeyListMemo


def test_memo_keeps_results_within_its_bounds() -> None:
    memo: KeyListMemo[int] = KeyListMemo(size=3, max_chars=640)
    for n in range(3):
        memo.put((f"k{n}",), n, 2)
    assert [memo.get((f"k{n}",)) for n in range(3)] == [0, 1, 2]
    # Full (3 results): it starts afresh rather than growing.
    memo.put(("k3",), 3, 2)
    assert len(memo) == 1 and memo.get(("k3",)) == 3 and memo.get(("k0",)) is None
    # Bounded in characters too: 640 at most, and no result over a 64th of that.
    memo.put(("big",), 4, 11)
    assert memo.get(("big",)) is None
    for n in range(2):
        memo.put((f"c{n}",), n, 10)
    assert memo.chars <= 640 and len(memo) <= 3


def test_memo_under_threads_stays_bounded() -> None:
    memo: KeyListMemo[int] = KeyListMemo(size=50, max_chars=64 * 1024)

    def fill(offset: int) -> None:
        for n in range(2000):
            key = (f"{offset}:{n}",)
            memo.put(key, n, 10)
            found = memo.get(key)
            assert found is None or found == n

    threads = [threading.Thread(target=fill, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(memo) <= 50 and memo.chars <= 64 * 1024


@pytest.mark.parametrize("kind", ["memcached", "memcached-3"])
def test_memcached_lookups_are_remembered_and_read_the_same(
    make_backend: Callable[..., Any], kind: str
) -> None:
    backend = make_backend(kind)
    shard = "{s3}:" if backend.key_shards > 1 else ""
    keys = [f"e:{shard}entry", f"t:{shard}one", f"t:{shard}two", "no shard", "x" * 400]
    for key in keys[:3] + keys[4:]:
        backend.set(key, key.encode()[:50], 60)
    expected = {key: key.encode()[:50] for key in keys if key != "no shard"}
    assert backend.get_many(keys) == expected
    lookup = backend._lookups.get(tuple(keys))
    assert lookup is not None
    storage_keys = [backend._storage_key(key) for key in keys]
    generation_keys = {backend._generation_key(backend._shard_of(k)) for k in storage_keys}
    assert set(lookup.server_keys) == set(storage_keys) | generation_keys
    assert len(lookup.server_keys) == len(storage_keys) + len(generation_keys)
    # Remembered: the same answer, and a clear() (new generations) still hides old values.
    assert backend.get_many(list(keys)) == expected
    backend.clear()
    assert backend.get_many(keys) == {}
    backend.set(keys[0], b"after clear", 60)
    assert backend.get_many(keys) == {keys[0]: b"after clear"}


def test_redis_cluster_remembers_whether_keys_share_a_slot(make_backend: Callable[..., Any]) -> None:
    backend = make_backend("redis-cluster")
    same = ["e:{s2}:entry", "t:{s2}:one", "t:{s2}:two"]
    spread = ["a", "b", "c", "d", "e"]
    for key in same + spread:
        backend.set(key, key.encode(), 60)
    for _ in range(2):  # worked out, then remembered
        assert backend.get_many(same) == {key: key.encode() for key in same}
        assert backend.get_many(spread) == {key: key.encode() for key in spread}
    prefix = backend._prefix
    assert backend._single_slot.get(tuple(prefix + key for key in same)) is True
    assert backend._single_slot.get(tuple(prefix + key for key in spread)) is False
