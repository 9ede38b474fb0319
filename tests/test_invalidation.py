"""No invalidation is lost: one a backend does not acknowledge is logged, kept, honoured and re-applied."""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
from helpers import FakeClock, RecordingApp, StartResponse, cached, make_environ, plan_of

from wsgicache import InvalidationError, InvalidationResult, Rule
from wsgicache.backends.memory import MemoryBackend
from wsgicache.invalidation import PendingInvalidations


class WriteFailingBackend(MemoryBackend):
    """The memory backend, whose writes fail while ``failing`` (reads still answer)."""

    def __init__(self) -> None:
        super().__init__()
        self.failing = False
        self.cleared = 0

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        if self.failing:
            raise ConnectionError("READONLY You can't write against a read only replica.")
        return super().set(key, value, ttl)

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int | None:
        if self.failing:
            raise ConnectionError("READONLY You can't write against a read only replica.")
        return super().set_many(items, ttl)

    def clear(self) -> None:
        if self.failing:
            raise ConnectionError("connection refused")
        self.cleared += 1
        super().clear()


class Versioned:
    """An app whose pages carry a version the test bumps (a write to its data)."""

    def __init__(self) -> None:
        self.version = 1

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{environ['PATH_INFO']} v{self.version}".encode()]


def settle(cache: Any) -> None:
    """Wait for the background retry a request may have started."""
    thread = cache.cache._retry_thread
    if thread is not None:
        thread.join(10)
        assert not thread.is_alive()


def site(**options: Any) -> tuple[Any, Any, Versioned, WriteFailingBackend, FakeClock]:
    app, backend, clock = Versioned(), WriteFailingBackend(), FakeClock()
    rules = [Rule("/<path:p>", timeout=600, tags=["pages"])]
    client, cache = cached(app, rules, backend=backend, clock=clock, **options)
    return client, cache, app, backend, clock


def test_acknowledged_invalidation_is_a_true_result() -> None:
    client, cache, *_ = site()
    client.get("/a")
    result = cache.invalidate(tags=["pages"])
    assert result and result == InvalidationResult(acknowledged=True, replicated=None, pending=0)
    assert client.get("/a").headers["X-Cache"] == "MISS"


def test_unacknowledged_invalidation_is_logged_counted_honoured_and_reapplied(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client, cache, app, backend, clock = site()
    assert client.get("/a").text == "/a v1"
    assert client.get("/a").headers["X-Cache"] == "HIT"

    backend.failing = True
    app.version = 2
    with caplog.at_level(logging.ERROR, logger="wsgicache"):
        result = cache.invalidate(tags=["pages"])
    assert not result and result.pending == 1
    assert "tags=['pages']" in caplog.text and "not acknowledged" in caplog.text
    assert cache.stats()["invalidation_failures"] == 1

    # Meanwhile this process never serves the page from before its invalidation.
    pending = client.get("/a")
    assert pending.headers["X-Cache"] == "BYPASS" and pending.text == "/a v2"

    # The backend comes back; the next request after the backoff re-applies it.
    backend.failing = False
    assert client.get("/a").headers["X-Cache"] == "BYPASS"  # not due yet: no write tried
    clock.now += 0.2
    client.get("/a")  # starts the retry, in the background: this request does not wait for it
    settle(cache)
    assert cache.cache.pending.active is False
    again = client.get("/a")  # a MISS, or a HIT stored by the request that started the retry
    assert again.headers["X-Cache"] in ("MISS", "HIT") and again.text == "/a v2"
    assert client.get("/a").headers["X-Cache"] == "HIT"


def test_retries_back_off_while_the_backend_refuses() -> None:
    client, cache, _, backend, clock = site()
    client.get("/a")
    backend.failing = True
    cache.invalidate(tags=["pages"])
    attempts = []
    original = backend.set_many

    def counting(items: Mapping[str, bytes], ttl: float) -> int | None:
        attempts.append(clock.now)
        return original(items, ttl)

    backend.set_many = counting  # type: ignore[method-assign]
    for _ in range(40):
        clock.now += 0.1
        client.get("/a")
        settle(cache)
    gaps = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    assert gaps == sorted(gaps) and gaps[-1] > gaps[0]
    backend.failing = False
    clock.now += 10
    client.get("/a")
    settle(cache)
    assert not cache.cache.pending.active


def test_strict_invalidation_raises_and_still_keeps_it() -> None:
    _client, cache, _, backend, _ = site()
    backend.failing = True
    with pytest.raises(InvalidationError) as raised:
        cache.invalidate("/a", strict=True)
    assert isinstance(raised.value.result, InvalidationResult)
    assert not raised.value.result and raised.value.result.pending == 1


def test_failed_clear_bypasses_everything_until_reapplied() -> None:
    client, cache, _, backend, clock = site()
    client.get("/a")
    client.get("/b")
    backend.failing = True
    assert not cache.clear()
    assert client.get("/b").headers["X-Cache"] == "BYPASS"
    backend.failing = False
    clock.now += 1
    client.get("/a")
    settle(cache)
    assert backend.cleared == 1
    assert client.get("/b").headers["X-Cache"] == "MISS"  # its entry went with the clear


def test_write_invalidation_that_fails_is_kept_too() -> None:
    client, cache, app, backend, clock = site()
    client.get("/post/1")
    backend.failing = True
    app.version = 2
    assert client.post("/post/1", params=b"x=1").status_int == 200
    assert client.get("/post/1").text == "/post/1 v2"
    backend.failing = False
    clock.now += 1
    client.get("/post/1")
    settle(cache)
    assert not cache.cache.pending.active
    assert client.get("/post/1").text == "/post/1 v2"
    assert client.get("/post/1").headers["X-Cache"] == "HIT"


def test_pending_invalidations_are_bounded() -> None:
    clock = FakeClock()
    pending = PendingInvalidations(clock, max_keys=5)
    pending.add("default", ["t:1", "t:2"], "tags=['a']")
    assert pending.blocks("default", ["t:1"]) and not pending.blocks("default", ["t:9"])
    pending.add("default", [f"t:{n}" for n in range(3, 10)], "tags=['b']")
    # Past the bound, one pending clear() of the namespace covers them all.
    assert len(pending) == 1 and pending.blocks("default", ["t:9"])
    assert [batch[:3] for batch in pending.batches()] == [("default", [], True)]
    assert not pending.blocks("other", ["t:1"])


def test_pending_retry_schedule() -> None:
    clock = FakeClock()
    pending = PendingInvalidations(clock, first_delay=0.1, max_delay=0.4)
    assert not pending.active and not pending.due()
    pending.add("default", ["t:1"], "x")
    assert pending.active and not pending.due()
    for delay in (0.1, 0.2, 0.4, 0.4):  # doubling, up to max_delay
        start = clock.now
        clock.now = start + delay - 0.001
        assert not pending.due()
        clock.now = start + delay + 0.001
        assert pending.due()
        pending.failed()
    (batch,) = pending.batches()
    pending.done(*batch)
    assert not pending.active and len(pending) == 0


def test_a_failure_during_a_retry_stays_pending() -> None:
    pending = PendingInvalidations(FakeClock())
    pending.add("default", ["t:1", "t:2"], "tags=['a']")
    (snapshot,) = pending.batches()  # a retry takes its snapshot and writes...
    pending.add("default", ["t:2"], "tags=['b']")  # ...while a new invalidation of t:2 fails
    pending.done(*snapshot)
    assert pending.blocks("default", ["t:2"]) and not pending.blocks("default", ["t:1"])
    pending.add_clear("default", "clear()")
    (snapshot,) = pending.batches()
    pending.add("default", ["t:3"], "tags=['c']")  # kept after the snapshot: the clear stays pending
    pending.done(*snapshot)
    assert pending.blocks("default", ["t:9"])


def test_pending_invalidations_are_thread_safe() -> None:
    pending = PendingInvalidations(FakeClock())
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(3000):
                pending.add("default", [f"t:{n}:{i % 50}"], "x")
                len(pending)
                pending.describe("default", [f"t:{n}:{i % 50}"])
                for batch in pending.batches():
                    pending.done(*batch)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


class SharedFlakyBackend(WriteFailingBackend):
    """Stands for a store shared by several processes (two middlewares on one instance)."""

    shared_between_processes = True

    def __init__(self) -> None:
        super().__init__()
        self.deletes_fail = False
        self.reads_fail = False

    def delete(self, key: str) -> None:
        if self.deletes_fail:
            raise ConnectionError("connection refused")
        super().delete(key)

    def get_many(self, keys: Any) -> dict[str, bytes]:
        if self.reads_fail:
            raise ConnectionError("connection refused")
        return super().get_many(keys)


def test_a_fill_lock_whose_release_failed_is_deleted_when_the_backend_returns() -> None:
    backend, clock = SharedFlakyBackend(), FakeClock()
    state = {"fail": True}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if state["fail"]:
            backend.deletes_fail = True  # the backend goes away while the page is built
            raise RuntimeError("the page failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]

    client, _ = cached(app, [Rule("/p", timeout=60)], backend=backend, clock=clock, lock_wait=30)
    with pytest.raises(RuntimeError):
        client.get("/p")
    locks = [key for key in backend._internal.data if key.startswith("l:")]
    assert len(locks) == 1  # left behind

    # This process knows the lock is its own: the next request does not wait 30 s for it.
    state["fail"] = False
    backend.deletes_fail = False
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert not [key for key in backend._internal.data if key.startswith("l:")]


def test_the_left_lock_is_retried_for_other_processes() -> None:
    backend, clock = SharedFlakyBackend(), FakeClock()
    rules = [Rule("/p", timeout=60), Rule("/other", timeout=60)]
    state = {"fail": True}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if state["fail"] and environ["PATH_INFO"] == "/p":
            backend.deletes_fail = True
            raise RuntimeError("the page failed")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"page"]

    first, first_cache = cached(app, rules, backend=backend, clock=clock)
    with pytest.raises(RuntimeError):
        first.get("/p")
    backend.deletes_fail = False
    clock.now += 0.2
    first.get("/other")  # any request of the process retries what it left behind
    settle(first_cache)
    assert not [key for key in backend._internal.data if key.startswith("l:")]
    assert not first_cache.cache.pending.active


def test_a_waiter_stops_polling_when_the_backend_stops_answering() -> None:
    backend = SharedFlakyBackend()
    app = RecordingApp()
    _, holder = cached(app, [Rule("/p", timeout=60)], backend=backend)
    client, _ = cached(app, [Rule("/p", timeout=60)], backend=backend, lock_wait=30)
    # Another process holds the fill lock...
    lookup = plan_of(holder, make_environ("/p"))
    assert backend.add(lookup.rule.keyspace.lock_key(lookup.entry_key), b"1", 60)
    # ...and the backend stops answering reads while this one waits: it goes to the app.
    original = backend.get_many
    calls = {"n": 0}

    def failing_after_first(keys: Any) -> dict[str, bytes]:
        calls["n"] += 1
        if calls["n"] > 1:
            raise ConnectionError("connection refused")
        return original(keys)

    backend.get_many = failing_after_first  # type: ignore[method-assign]
    response = client.get("/p")
    assert response.status_int == 200 and calls["n"] == 2


def test_no_waiting_on_a_fill_lock_soon_after_the_shard_failed() -> None:
    backend, clock = SharedFlakyBackend(), FakeClock()
    app = RecordingApp()
    _, holder = cached(app, [Rule("/p", timeout=600)], backend=backend)
    client, cache = cached(app, [Rule("/p", timeout=600)], backend=backend, lock_wait=30, clock=clock)
    lookup = plan_of(holder, make_environ("/p"))
    assert backend.add(lookup.rule.keyspace.lock_key(lookup.entry_key), b"1", 60)  # a leftover lock
    backend.reads_fail = True
    client.get("/p")  # the shard fails once
    backend.reads_fail = False
    clock.now += 1
    reads = []
    original = backend.get_many

    def counting(keys: Any) -> dict[str, bytes]:
        reads.append(keys)
        return original(keys)

    backend.get_many = counting  # type: ignore[method-assign]
    response = client.get("/p")  # does not poll for the leftover lock (lock_wait is 30 s)
    assert response.headers["X-Cache"] == "MISS"
    assert len(reads) == 1 and cache.stats()["coalesced"] == 0
    # Once the shard has been healthy for a while, waiting for another process resumes.
    clock.now += 60
    backend.get_many = original  # type: ignore[method-assign]
    assert client.get("/p").headers["X-Cache"] == "HIT"


def test_a_cache_without_an_application_invalidates_what_the_middleware_stored(tmp_path: Path) -> None:
    """A deploy hook or a worker builds a Cache on the same backend and key_prefix."""
    from wsgicache.cache import Cache

    app = RecordingApp()
    url = f"file://{tmp_path}"
    rules = [Rule("/post/<int:n>", timeout=600, tags=["posts"])]
    client, _ = cached(app, rules, backend=url, key_prefix="s1")
    client.get("/post/1")
    client.get("/post/2")
    assert client.get("/post/1").headers["X-Cache"] == "HIT"
    worker = Cache(url, key_prefix="s1")
    assert worker.invalidate(tags=["posts"])
    assert client.get("/post/1").headers["X-Cache"] == "MISS"
    assert client.get("/post/2").headers["X-Cache"] == "MISS"
    assert Cache(url, key_prefix="other").invalidate("/post/1")  # another site's prefix: nothing of ours
    assert client.get("/post/1").headers["X-Cache"] == "HIT"
    worker.close()
