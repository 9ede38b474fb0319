"""No stampede: concurrent misses for one entry call the application once."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from helpers import RecordingApp, StartResponse, make_environ, plan_of

from wsgicache import CacheMiddleware, Rule


class SlowApp:
    """Takes ``delay`` seconds per call and counts calls (thread-safe)."""

    def __init__(self, delay: float = 0.3, headers: list[tuple[str, str]] | None = None) -> None:
        self.delay = delay
        self.headers = headers or []
        self.calls = 0
        self._lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)
        body = f"page {environ['PATH_INFO']}".encode()
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), *self.headers],
        )
        return [body]


def get(middleware: CacheMiddleware, path: str = "/p") -> tuple[str, bytes]:
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.update(headers)
        return lambda data: None

    result = middleware(make_environ(path), start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen.get("X-Cache", ""), body


def concurrently(count: int, call: Any) -> list[Any]:
    barrier = threading.Barrier(count)

    def one(_: int) -> Any:
        barrier.wait()
        return call()

    with ThreadPoolExecutor(max_workers=count) as pool:
        return list(pool.map(one, range(count)))


def test_concurrent_misses_call_the_app_once() -> None:
    app = SlowApp()
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    results = concurrently(8, lambda: get(middleware))
    assert app.calls == 1
    assert all(body == b"page /p" for _, body in results)
    assert sorted(header for header, _ in results) == ["HIT"] * 7 + ["MISS"]
    stats = middleware.stats()
    assert stats["coalesced"] == 7 and stats["misses"] == 1 and stats["stores"] == 1


def test_different_entries_do_not_wait_for_each_other() -> None:
    app = SlowApp(delay=0.3)
    middleware = CacheMiddleware(app, rules=[Rule("/<name>", timeout=60)])
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda n: get(middleware, f"/p{n}"), range(4)))
    assert time.monotonic() - started < 0.3 * 4 * 0.75
    assert app.calls == 4 and [body for _, body in results] == [f"page /p{n}".encode() for n in range(4)]


def test_an_unstorable_response_does_not_serialize_the_waiters() -> None:
    app = SlowApp(delay=0.3, headers=[("Set-Cookie", "a=1")])
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    started = time.monotonic()
    results = concurrently(5, lambda: get(middleware))
    elapsed = time.monotonic() - started
    assert app.calls == 5
    assert all(header == "MISS" and body == b"page /p" for header, body in results)
    # One filler, then every waiter at once: about two app calls long, not five.
    assert elapsed < 0.3 * 3.5


def test_waiters_give_up_after_lock_wait() -> None:
    app = SlowApp(delay=1.0)
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)], lock_wait=0.2)
    first = threading.Thread(target=get, args=(middleware,))
    first.start()
    time.sleep(0.05)
    started = time.monotonic()
    header, body = get(middleware)
    waited = time.monotonic() - started
    first.join()
    assert header == "MISS" and body == b"page /p"
    assert 0.2 <= waited < 0.2 + 1.0 + 0.5  # gave up waiting, then called the app itself
    assert app.calls == 2


def test_lock_wait_zero_turns_coalescing_off() -> None:
    app = SlowApp(delay=0.2)
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)], lock_wait=0)
    concurrently(4, lambda: get(middleware))
    assert app.calls == 4


def test_processes_sharing_a_backend_coalesce_through_its_lock(tmp_path: Path) -> None:
    """Two middleware instances (as in two workers) on one file-backend directory."""
    app = SlowApp(delay=0.4)
    url = f"file://{tmp_path}"
    workers = [CacheMiddleware(app, backend=url, rules=[Rule("/p", timeout=60)]) for _ in range(2)]
    results: list[tuple[str, bytes]] = []

    def run(worker: CacheMiddleware) -> None:
        results.append(get(worker))

    first = threading.Thread(target=run, args=(workers[0],))
    first.start()
    time.sleep(0.1)  # the first worker holds the fill lock and is calling the app
    second = threading.Thread(target=run, args=(workers[1],))
    second.start()
    first.join()
    second.join()
    assert app.calls == 1
    assert sorted(results) == [("HIT", b"page /p"), ("MISS", b"page /p")]
    assert workers[1].stats()["coalesced"] == 1
    # The fill lock was released, not left to expire.
    lookup = plan_of(workers[0], make_environ("/p"))
    assert lookup and not isinstance(lookup, bool)
    lock_key = lookup.rule.keyspace.lock_key(lookup.entry_key)
    assert workers[0].backends["default"].get(lock_key) is None


def test_a_failing_filler_releases_its_claim() -> None:
    calls = {"n": 0}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("first call fails")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    with pytest.raises(RuntimeError, match="first call fails"):
        get(middleware)
    assert len(middleware._coalescer) == 0
    started = time.monotonic()
    assert get(middleware) == ("MISS", b"ok")
    assert time.monotonic() - started < 1.0


@pytest.mark.parametrize("kind", ["memcached", "redis", "redis-cluster"])
def test_workers_on_a_network_backend_coalesce(kind: str, make_backend: Any) -> None:
    app = SlowApp(delay=0.4)
    prefix = f"co-{kind}"
    workers = [
        CacheMiddleware(app, backend=make_backend(kind, key_prefix=prefix), rules=[Rule("/p", timeout=60)])
        for _ in range(3)
    ]
    with ThreadPoolExecutor(max_workers=3) as pool:
        first = pool.submit(get, workers[0])
        time.sleep(0.1)
        others = [pool.submit(get, worker) for worker in workers[1:]]
        results = [first.result(), *(future.result() for future in others)]
    assert app.calls == 1
    assert sorted(results) == [("HIT", b"page /p")] * 2 + [("MISS", b"page /p")]


def test_a_real_threaded_server_calls_the_app_once_for_a_cold_page() -> None:
    import http.client

    from waitress.server import create_server

    app = SlowApp(delay=0.3)
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    server = create_server(middleware, host="127.0.0.1", port=0, threads=8)
    port = server.socket.getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()

    def fetch() -> tuple[int, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.request("GET", "/p")
        response = connection.getresponse()
        result = (response.status, response.read())
        connection.close()
        return result

    try:
        results = concurrently(6, fetch)
    finally:
        server.close()
        thread.join(timeout=5)
    assert results == [(200, b"page /p")] * 6
    assert app.calls == 1


def test_other_processes_stop_waiting_when_the_filler_stores_nothing(tmp_path: Path) -> None:
    app = SlowApp(delay=0.3, headers=[("Set-Cookie", "a=1")])
    url = f"file://{tmp_path}"
    workers = [CacheMiddleware(app, backend=url, rules=[Rule("/p", timeout=60)]) for _ in range(2)]
    first = threading.Thread(target=get, args=(workers[0],))
    first.start()
    time.sleep(0.1)
    started = time.monotonic()
    assert get(workers[1]) == ("MISS", b"page /p")
    elapsed = time.monotonic() - started
    first.join()
    # Waited for the first worker (about 0.2 s more), then called the app: not lock_wait (5 s).
    assert elapsed < 0.2 + 0.3 + 1.0
    assert app.calls == 2


def test_a_claim_is_released_when_its_block_raises() -> None:
    middleware = CacheMiddleware(RecordingApp(), rules=[Rule("/p", timeout=60)])
    plan = plan_of(middleware, make_environ("/p"))
    guard = middleware.cache.guards["default"]
    coalescer = middleware._coalescer
    with pytest.raises(RuntimeError), coalescer.claim_or_wait(plan, guard) as fill:
        assert fill.owned and len(coalescer) == 1
        # Another request of this process cannot claim it meanwhile.
        with coalescer.try_claim(plan, guard) as other:
            assert not other.owned
        raise RuntimeError("the application failed")
    assert len(coalescer) == 0
    with coalescer.try_claim(plan, guard) as fill:
        assert fill.owned
    assert len(coalescer) == 0


def test_releasing_a_claim_twice_is_harmless(tmp_path: Path) -> None:
    middleware = CacheMiddleware(RecordingApp(), backend=f"file://{tmp_path}", rules=[Rule("/p", timeout=60)])
    plan = plan_of(middleware, make_environ("/p"))
    guard = middleware.cache.guards["default"]
    fill = middleware._coalescer.try_claim(plan, guard)
    assert fill.owned and guard.backend.get(plan.lock_key) is not None  # the lock other processes see
    fill.release()
    fill.release()
    assert guard.backend.get(plan.lock_key) is None and len(middleware._coalescer) == 0
