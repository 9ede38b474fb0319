"""stale-if-error and stale-while-revalidate."""

from __future__ import annotations

import threading
from typing import Any

from helpers import FakeClock, RecordingApp, cached, make_environ

from wsgicache import CacheMiddleware, Rule


class SwitchableApp(RecordingApp):
    def __init__(self) -> None:
        super().__init__()
        self.mode = "ok"
        self.version = 1

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.mode == "raise":
            self.calls.append(environ)
            raise RuntimeError("database down")
        if self.mode == "500":
            self.calls.append(environ)
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")])
            return [b"error"]
        self.body = f"version {self.version}".encode()
        return super().__call__(environ, start_response)


def test_stale_if_error_serves_the_old_entry_when_the_app_raises() -> None:
    app, clock = SwitchableApp(), FakeClock()
    client, cache = cached(app, [Rule("/p", timeout=10, stale_if_error=60)], clock=clock)
    client.get("/p")
    clock.advance(11)
    app.mode = "raise"
    response = client.get("/p")
    assert response.headers["X-Cache"] == "STALE"
    assert response.body == b"version 1"
    app.mode = "500"
    response = client.get("/p")
    assert response.headers["X-Cache"] == "STALE" and response.status_int == 200
    app.mode = "ok"
    app.version = 2
    assert client.get("/p").body == b"version 2"
    assert cache.stats()["stale"] == 2


def test_without_stale_if_error_the_error_propagates() -> None:
    app, clock = SwitchableApp(), FakeClock()
    client, _ = cached(app, [Rule("/p", timeout=10)], clock=clock)
    client.get("/p")
    clock.advance(11)
    app.mode = "500"
    assert client.get("/p", status=500).headers["X-Cache"] == "MISS"


def test_stale_if_error_window_ends() -> None:
    app, clock = SwitchableApp(), FakeClock()
    client, _ = cached(app, [Rule("/p", timeout=10, stale_if_error=10)], clock=clock)
    client.get("/p")
    clock.advance(20.5)
    app.mode = "500"
    assert client.get("/p", status=500).headers["X-Cache"] == "MISS"


def test_stale_while_revalidate_serves_stale_and_refreshes_in_the_background() -> None:
    release = threading.Event()
    entered = threading.Event()
    state = {"version": 1, "block": False}
    clock = FakeClock()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if state["block"]:
            entered.set()
            release.wait(5)
        body = f"version {state['version']}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=10, stale_while_revalidate=60)], clock=clock)

    def get() -> tuple[str, bytes]:
        seen: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.update(headers)
            return lambda data: None

        body = b"".join(middleware(make_environ("/p"), start_response))
        return seen["X-Cache"], body

    assert get() == ("MISS", b"version 1")
    clock.advance(11)
    state["version"], state["block"] = 2, True
    # The first request after expiry is answered at once, and starts one refresh.
    assert get() == ("STALE", b"version 1")
    assert entered.wait(5)
    # While it refreshes, the others are answered from the stale entry too, without a second refresh.
    assert [get() for _ in range(3)] == [("STALE", b"version 1")] * 3
    release.set()
    for _ in range(500):
        if len(middleware._coalescer) == 0:
            break
        threading.Event().wait(0.01)
    state["block"] = False
    assert get() == ("HIT", b"version 2")
    stats = middleware.stats()
    assert stats["stale"] == 4 and stats["stores"] == 2


def test_stale_while_revalidate_window_ends() -> None:
    app, clock = SwitchableApp(), FakeClock()
    client, _ = cached(app, [Rule("/p", timeout=10, stale_while_revalidate=5)], clock=clock)
    client.get("/p")
    clock.advance(16)
    app.version = 2
    response = client.get("/p")
    assert response.headers["X-Cache"] == "MISS" and response.body == b"version 2"
