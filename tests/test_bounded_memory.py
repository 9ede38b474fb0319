"""Memory stays bounded against hostile traffic.

The middleware's memos hold a bounded number of bytes, not only of entries,
so huge URLs or Host headers do not pin their text; the memory backend's
``max_entries`` and ``max_bytes`` count stored responses only, and the
middleware's tag generations neither halve its capacity nor evict responses.
"""

from __future__ import annotations

import tracemalloc
from typing import Any
from urllib.parse import urlsplit

from helpers import RecordingApp, StartResponse, cached

from wsgicache import Rule
from wsgicache import keys as keys_module
from wsgicache.backends.memory import MemoryBackend
from wsgicache.memo import FifoMemo, text_size

# -- the memos -------------------------------------------------------------------


def test_fifo_memo_keeps_within_its_byte_budget() -> None:
    memo: FifoMemo[str, str] = FifoMemo(1000, max_bytes=1000, max_item_bytes=200)
    for n in range(50):
        memo.put(f"{n:03d}" + "x" * 97, "v")  # 101 characters each
    assert len(memo) == 9 and memo.used == 9 * 101
    assert memo.get("049" + "x" * 97) == "v"
    assert memo.get("040" + "x" * 97) is None  # the oldest went first
    memo.put("big" + "x" * 300, "v")  # over max_item_bytes: not kept, nothing evicted
    assert len(memo) == 9 and memo.get("big" + "x" * 300) is None


def test_fifo_memo_counts_tuples_dicts_and_values() -> None:
    assert text_size(("ab", None, ("cd", 3), {"k": "efg"})) == 7
    memo: FifoMemo[tuple[str, str], tuple[str, str]] = FifoMemo(10, max_bytes=100, max_item_bytes=50)
    memo.put(("a" * 10, "b" * 10), ("c" * 5, "d"))
    assert memo.used == 26
    memo.put(("a" * 10, "b" * 10), ("c", "d"))  # replacing adjusts the cost
    assert memo.used == 22 and len(memo) == 1


def test_fifo_memo_still_bounds_entries() -> None:
    memo: FifoMemo[int, str] = FifoMemo(3)
    for n in range(10):
        memo.put(n, "v")
    assert len(memo) == 3 and [n for n in range(10) if n in memo] == [7, 8, 9]


def _memos(cache: object) -> list[FifoMemo[object, object]]:
    ruleset = cache._planner.ruleset  # type: ignore[attr-defined]
    keyspaces = cache.cache.keyspaces.values()  # type: ignore[attr-defined]
    found = [ruleset._memo, keys_module._host_memo]
    for keyspace in keyspaces:
        found.extend([keyspace._memo, keyspace._entry_memo])
    return found


def small_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
    """Answers every URL with the same few bytes (and, unlike RecordingApp, keeps no environ)."""
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"small"]


def test_huge_urls_do_not_pin_their_text() -> None:
    client, cache = cached(
        small_app,
        [Rule("/<path:rest>", timeout=60, tags=["t:{rest}"], query="all")],
        backend=MemoryBackend(max_entries=1000),
    )
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for n in range(200):  # 200 URLs of 100 KB: 20 MB of text
            response = client.get(f"/{n}/" + "a" * 100_000, {"q": "b" * 1000})
            assert response.headers["X-Cache"] == "MISS"
        # The standard library memoizes the last 128 URLs webtest split (3.11+).
        getattr(urlsplit, "cache_clear", lambda: None)()
        held = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert held < 4 * 1024 * 1024, f"{held} bytes held after 20 MB of URLs"
    for memo in _memos(cache):
        assert memo.used <= memo.max_bytes
        assert all(text_size(key) <= memo.max_item_bytes for key in memo._data)
    # Ordinary URLs are still memoized and served.
    assert client.get("/ordinary").headers["X-Cache"] == "MISS"
    assert client.get("/ordinary").headers["X-Cache"] == "HIT"


def test_many_huge_host_headers_do_not_pin_their_text() -> None:
    client, _ = cached(small_app, [Rule("/p", timeout=60)])
    memo = keys_module._host_memo
    for n in range(200):
        # Invalid hosts (too long) are remembered as invalid, under the raw header.
        response = client.get("/p", extra_environ={"HTTP_HOST": f"h{n}" + "a" * 8000 + ".example"})
        assert response.headers["X-Cache"] == "BYPASS"
    assert memo.used <= memo.max_bytes
    assert all(text_size(key) <= memo.max_item_bytes for key in memo._data)


# -- the memory backend: responses only -----------------------------------------------


def test_max_entries_counts_responses_not_tag_generations() -> None:
    backend = MemoryBackend(max_entries=5)
    app = RecordingApp()
    client, _ = cached(
        app,
        [Rule("/user/<int:user_id>", timeout=60, tags=["users", "user:{user_id}"], key="{user_id}")],
        backend=backend,
    )
    for n in range(5):
        assert client.get(f"/user/{n}").headers["X-Cache"] == "MISS"
    for n in range(5):
        assert client.get(f"/user/{n}").headers["X-Cache"] == "HIT"
    assert app.count == 5
    assert len(backend) == 5  # five responses, each with three generations of its own
    assert backend.internal_keys == 1 + 5 * 3  # "users", then path, key and user:N per entry


def test_many_distinct_tags_do_not_evict_responses() -> None:
    backend = MemoryBackend(max_entries=10, max_internal_keys=100)
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p/<int:n>", timeout=60, tags=["p:{n}"])], backend=backend)
    for n in range(3):
        client.get(f"/p/{n}")
    # Hostile or just busy: a thousand tags invalidated (one generation key each).
    for batch in range(20):
        cache.invalidate(tags=[f"other:{batch}:{n}" for n in range(50)])
        for n in range(3):  # the generations in use stay (LRU), the others go first
            assert client.get(f"/p/{n}").headers["X-Cache"] == "HIT"
    assert len(backend) == 3
    assert backend.internal_keys <= 100
    assert app.count == 3


def test_an_evicted_generation_makes_its_entries_misses() -> None:
    backend = MemoryBackend(max_entries=10, max_internal_keys=1)
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p/<int:n>", timeout=60)], backend=backend)
    client.get("/p/1")
    client.get("/p/2")  # its path generation pushes out /p/1's
    assert len(backend) == 2  # the response itself is still held ...
    assert client.get("/p/1").headers["X-Cache"] == "MISS"  # ... but never served without it
    assert client.get("/p/1").headers["X-Cache"] == "HIT"


def test_max_bytes_is_exact_lru_for_responses_alone() -> None:
    # Each response costs len(key) + len(value) = 34 + 66 = 100 bytes.
    backend = MemoryBackend(max_bytes=300)
    entry = [f"e:{n:032x}" for n in range(5)]
    for key in entry[:3]:
        backend.set(key, b"v" * 66, 60)
    assert backend.current_bytes == 300
    for n in range(500):  # generations and locks are not counted and evict nothing
        backend.set(f"t:{n:032x}", b"g" * 16, 60)
        assert backend.add(f"l:{n:032x}", b"1", 60) is True
    assert backend.current_bytes == 300 and len(backend) == 3
    assert backend.get(entry[0]) is not None  # entry[0] becomes the most recently used
    backend.set(entry[3], b"v" * 66, 60)  # evicts entry[1], the least recently used
    assert backend.get(entry[1]) is None
    assert [backend.get(key) is not None for key in (entry[0], entry[2], entry[3])] == [True] * 3
    assert backend.current_bytes == 300
    backend.set(entry[4], b"v" * 166, 60)  # 200 bytes: two responses must go
    assert backend.current_bytes <= 300 and backend.get(entry[4]) is not None
    assert backend.get(f"t:{499:032x}") == b"g" * 16


def test_internal_keys_have_their_own_bound() -> None:
    backend = MemoryBackend(max_entries=3)
    assert backend.max_internal_keys == 2 * 3 + 1024
    small = MemoryBackend(max_internal_keys=10)
    for n in range(50):
        small.set(f"t:{n}", b"g", 60)
    assert small.internal_keys == 10 and len(small) == 0
    assert small.get("t:49") == b"g" and small.get("t:39") is None
    small.clear()
    assert small.internal_keys == 0


def test_memory_backend_from_url_takes_max_internal_keys() -> None:
    from wsgicache.backends import get_backend

    backend = get_backend("memory://?max_entries=10&max_internal_keys=50")
    assert isinstance(backend, MemoryBackend)
    assert (backend.max_entries, backend.max_internal_keys) == (10, 50)
