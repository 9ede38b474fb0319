"""A failing backend, corrupt values or failing user callables never fail a request."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import pytest
from helpers import RecordingApp, cached, make_environ, plan_of

from wsgicache import Rule
from wsgicache.backends.memory import MemoryBackend
from wsgicache.guard import shard_of


class FlakyBackend(MemoryBackend):
    """A real memory store that can be switched to raise, like a server going down."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.calls = 0

    def _check(self) -> None:
        self.calls += 1
        if self.down:
            raise ConnectionError("backend is down")

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self._check()
        return super().get_many(keys)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._check()
        super().set(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        self._check()
        return super().add(key, value, ttl)

    def delete(self, key: str) -> None:
        self._check()
        super().delete(key)

    def clear(self) -> None:
        self._check()
        super().clear()


def test_dead_backend_serves_from_the_app_logs_and_counts(caplog: pytest.LogCaptureFixture) -> None:
    backend = FlakyBackend()
    backend.down = True
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60, tags=["t"])], backend=backend)
    for _ in range(3):
        response = client.get("/p")
        assert response.status_int == 200
        assert response.body == b"GET localhost/p?"
        assert response.headers["X-Cache"] == "BYPASS"
    assert app.count == 3
    assert cache.stats()["errors"] == 3
    assert "backend is down" in caplog.text
    assert all(record.name == "wsgicache" for record in caplog.records)


def test_backend_failing_on_store_only() -> None:
    class NoWrites(MemoryBackend):
        def set(self, key: str, value: bytes, ttl: float) -> None:
            raise TimeoutError("write timed out")

    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60)], backend=NoWrites())
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert cache.stats()["errors"] == 2 and cache.stats()["stores"] == 0


def test_circuit_breaker_stops_calling_a_dead_backend_then_recovers() -> None:
    backend = FlakyBackend()
    app = RecordingApp()
    now = [1000.0]
    client, cache = cached(
        app,
        [Rule("/p", timeout=60)],
        backend=backend,
        failure_threshold=3,
        probe_interval=0.2,
        clock=lambda: now[0],  # time moves only when the test says
    )
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "HIT"
    backend.down = True
    for _ in range(10):
        assert client.get("/p").status_int == 200
    assert backend.calls == 4 + 3  # miss (get, add, set) and hit, 3 failures, then nothing
    stats = cache.stats()
    assert stats["errors"] == 3 and stats["skipped"] == 7
    backend.down = False
    now[0] = 1000.0 + 0.19
    assert client.get("/p").headers["X-Cache"] == "BYPASS"  # no probe before probe_interval
    now[0] = 1000.0 + 0.2
    assert client.get("/p").headers["X-Cache"] == "HIT"  # the probe closes the circuit
    assert client.get("/p").headers["X-Cache"] == "HIT"
    # (tests/test_breaker.py covers the growing intervals between failed probes)


def test_invalidate_on_a_dead_backend_reports_failure_without_raising() -> None:
    backend = FlakyBackend()
    _, cache = cached(RecordingApp(), [Rule("/p")], backend=backend)
    backend.down = True
    assert not cache.invalidate(tags=["x"])
    assert not cache.invalidate("/p")
    assert not cache.clear()


@pytest.mark.parametrize(
    "garbage",
    [b"", b"garbage", b"WC\x01" + b"\x00" * 100, "a str, not bytes", 12345],
    ids=["empty", "garbage", "zeros", "str", "int"],
)
def test_corrupt_stored_value_is_a_miss_and_is_deleted(garbage: Any) -> None:
    backend = MemoryBackend()
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60)], backend=backend)
    client.get("/p")
    entry_keys = [key for key in backend._data if key.startswith("e:")]
    assert len(entry_keys) == 1
    backend._data[entry_keys[0]] = (garbage, time.monotonic() + 60, 10)  # type: ignore[assignment]
    response = client.get("/p")
    assert response.headers["X-Cache"] == "MISS"
    assert response.body == b"GET localhost/p?"
    assert cache.stats()["corrupt"] == 1
    assert client.get("/p").headers["X-Cache"] == "HIT"  # replaced by a good entry


def test_failing_user_callables_pass_the_request_to_the_app(caplog: pytest.LogCaptureFixture) -> None:
    def broken(*args: Any) -> Any:
        raise KeyError("bug in user code")

    app = RecordingApp()
    client, cache = cached(
        app,
        [Rule("/u", unless=broken), Rule("/k", key=broken), Rule("/t", tags=[broken])],
    )
    for path in ["/u", "/k", "/t"]:
        response = client.get(path)
        assert response.status_int == 200
        assert "X-Cache" not in response.headers
    assert cache.stats()["errors"] == 3
    assert "bug in user code" in caplog.text


def test_slow_backend_is_cut_off_by_the_breaker() -> None:
    class SlowBackend(MemoryBackend):
        def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
            time.sleep(0.05)
            raise TimeoutError("read timed out")

        def get(self, key: str) -> bytes | None:
            return self.get_many([key]).get(key)

    client, _ = cached(
        RecordingApp(), [Rule("/p")], backend=SlowBackend(), failure_threshold=2, retry_after=30
    )
    started = time.monotonic()
    for _ in range(20):
        client.get("/p")
    assert time.monotonic() - started < 0.05 * 2 + 0.5


def test_logs_use_the_wsgicache_logger(caplog: pytest.LogCaptureFixture) -> None:
    backend = FlakyBackend()
    backend.down = True
    client, _ = cached(RecordingApp(), [Rule("/p")], backend=backend)
    with caplog.at_level(logging.WARNING, logger="wsgicache"):
        client.get("/p")
    assert any(r.name == "wsgicache" and r.levelno == logging.WARNING for r in caplog.records)


@pytest.mark.parametrize(
    ("key", "shard"),
    [("e:{s3}:abc", "{s3}"), ("t:{s12}:abc", "{s12}"), ("e:abc", ""), ("l:{broken", ""), ("", "")],
)
def test_shard_of(key: str, shard: str) -> None:
    assert shard_of(key) == shard


def test_a_failing_shard_opens_only_its_own_circuit() -> None:
    """Like one dead node of a cluster: the other shards keep hitting."""

    class HalfDead(MemoryBackend):
        key_shards = 4

        def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
            if keys[0].startswith("e:{s1}"):
                raise ConnectionError("the node holding shard 1 is down")
            return super().get_many(keys)

    backend = HalfDead()
    client, cache = cached(RecordingApp(), [Rule("/p/<int:n>")], backend=backend, failure_threshold=2)
    pages = range(40)
    for n in pages:
        client.get(f"/p/{n}")
    shard_of_page = {}
    for n in pages:
        lookup = plan_of(cache, make_environ(f"/p/{n}"))
        assert lookup and not isinstance(lookup, bool)
        shard_of_page[n] = shard_of(lookup.entry_key)
    dead = [n for n in pages if shard_of_page[n] == "{s1}"]
    alive = [n for n in pages if shard_of_page[n] != "{s1}"]
    assert dead and alive
    for _ in range(3):
        for n in dead:
            assert client.get(f"/p/{n}").headers["X-Cache"] == "BYPASS"
        for n in alive:
            assert client.get(f"/p/{n}").headers["X-Cache"] == "HIT"
    stats = cache.stats()
    assert stats["skipped"] >= len(dead) * 3 - 2 * 2  # after 2 failures that shard is skipped
