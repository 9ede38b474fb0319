"""Many threads, many keys: never a response for the wrong request."""

from __future__ import annotations

import http.client
import random
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from wsgiref.validate import validator

import pytest
from helpers import RecordingApp, make_environ

from wsgicache import CacheMiddleware, Rule


def call(
    middleware: CacheMiddleware, path: str, query: str = "", cookie: str = ""
) -> tuple[str, dict[str, str], bytes]:
    environ = make_environ(path, query=query)
    if cookie:
        environ["HTTP_COOKIE"] = cookie
    seen: dict[str, object] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: object = None) -> object:
        seen["status"], seen["headers"] = status, dict(headers)
        return lambda data: None

    result = middleware(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    return seen["status"], seen["headers"], body  # type: ignore[return-value]


def test_threads_hammering_many_keys_on_a_small_memory_backend() -> None:
    app = RecordingApp(headers=[("Content-Type", "text/plain"), ("Vary", "Cookie")])
    middleware = CacheMiddleware(
        validator(app),
        backend="memory://?max_entries=150&max_bytes=20000",
        rules=[Rule("/item/<int:n>", timeout=60, tags=["item:{n}", "items"], vary_cookies=["user"])],
    )
    failures: list[str] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(400):
            n = rng.randrange(300)
            user = rng.choice(["", "alice", "bob"])
            query = rng.choice(["", "a=1", "b=2&a=1"])
            cookie = f"user={user}" if user else ""
            _, headers, body = call(middleware, f"/item/{n}", query, cookie)
            expected_query = query
            if headers.get("X-Cache") == "HIT" and query == "b=2&a=1":
                # The normalized query makes "b=2&a=1" and "a=1&b=2" one entry; the body
                # records whichever order was stored first, both are this URL.
                expected_query = body.decode().split("?", 1)[1]
                if sorted(expected_query.split("&")) != ["a=1", "b=2"]:
                    failures.append(f"{n} {query}: {body!r}")
                    continue
            if body != f"GET localhost/item/{n}?{expected_query}".encode():
                failures.append(f"/item/{n}?{query} got {body!r}")
            if rng.random() < 0.02:
                middleware.invalidate(tags=[f"item:{rng.randrange(300)}"])

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(worker, range(8)))
    assert failures == []
    stats = middleware.stats()
    assert stats["hits"] > 0 and stats["errors"] == 0 and stats["corrupt"] == 0


def test_vary_cookie_values_never_cross_users_under_threads() -> None:
    def app(environ: dict[str, object], start_response: object) -> list[bytes]:
        cookie = str(environ.get("HTTP_COOKIE", ""))
        body = f"private page of {cookie}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])  # type: ignore[operator]
        return [body]

    middleware = CacheMiddleware(app, rules=[Rule("/me", timeout=60, vary_cookies=["session"])])
    failures: list[str] = []

    def worker(user: int) -> None:
        for _ in range(300):
            _, _, body = call(middleware, "/me", cookie=f"session=user{user}")
            if body != f"private page of session=user{user}".encode():
                failures.append(f"user{user} got {body!r}")

    threads = [threading.Thread(target=worker, args=(u,)) for u in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


@pytest.fixture
def waitress_server() -> Iterator[tuple[int, CacheMiddleware, RecordingApp]]:
    waitress = pytest.importorskip("waitress.server")
    app = RecordingApp()
    middleware = CacheMiddleware(validator(app), rules=[Rule("/page/<int:n>", timeout=60)])
    server = waitress.create_server(validator(middleware), host="127.0.0.1", port=0, threads=8)
    port = server.socket.getsockname()[1]  # type: ignore[union-attr]
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        yield port, middleware, app
    finally:
        server.close()
        thread.join(timeout=5)


def test_real_threaded_server(waitress_server: tuple[int, CacheMiddleware, RecordingApp]) -> None:
    port, middleware, app = waitress_server
    failures: list[str] = []

    def client(seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(60):
            n = rng.randrange(20)
            method = rng.choice(["GET", "GET", "HEAD"])
            connection.request(method, f"/page/{n}", headers={"Host": "localhost"})
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                failures.append(f"{method} /page/{n}: {response.status}")
            elif method == "GET" and body != f"GET localhost/page/{n}?".encode():
                failures.append(f"/page/{n} got {body!r}")
            elif method == "HEAD" and body:
                failures.append("HEAD with a body")
        connection.close()

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(client, range(8)))
    assert failures == []
    stats = middleware.stats()
    assert stats["hits"] >= 400
    assert stats["stores"] <= 20 * 2  # concurrent first requests may each store once
    assert app.closed == app.count
