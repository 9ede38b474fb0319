"""stale-if-error and stale-while-revalidate."""

from __future__ import annotations

import threading
import time
from typing import Any

from helpers import RecordingApp, cached, make_environ

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
    app = SwitchableApp()
    client, cache = cached(app, [Rule("/p", timeout=0.1, stale_if_error=60)])
    client.get("/p")
    time.sleep(0.15)
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
    app = SwitchableApp()
    client, _ = cached(app, [Rule("/p", timeout=0.1)])
    client.get("/p")
    time.sleep(0.15)
    app.mode = "500"
    assert client.get("/p", status=500).headers["X-Cache"] == "MISS"


def test_stale_if_error_window_ends() -> None:
    app = SwitchableApp()
    client, _ = cached(app, [Rule("/p", timeout=0.1, stale_if_error=0.1)])
    client.get("/p")
    time.sleep(0.25)
    app.mode = "500"
    assert client.get("/p", status=500).headers["X-Cache"] == "MISS"


def test_stale_while_revalidate_one_request_refreshes_others_get_stale() -> None:
    release = threading.Event()
    entered = threading.Event()
    state = {"version": 1, "block": False}

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if state["block"]:
            entered.set()
            release.wait(5)
        body = f"version {state['version']}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=0.1, stale_while_revalidate=60)])

    def get() -> tuple[str, bytes]:
        seen: dict[str, str] = {}

        def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            seen.update(headers)
            return lambda data: None

        body = b"".join(middleware(make_environ("/p"), start_response))
        return seen["X-Cache"], body

    assert get() == ("MISS", b"version 1")
    time.sleep(0.15)
    state["version"], state["block"] = 2, True
    refresher_result: list[tuple[str, bytes]] = []
    refresher = threading.Thread(target=lambda: refresher_result.append(get()))
    refresher.start()
    assert entered.wait(5)
    # While one request refreshes, the others are answered at once from the stale entry.
    assert [get() for _ in range(3)] == [("STALE", b"version 1")] * 3
    release.set()
    refresher.join(5)
    assert refresher_result == [("MISS", b"version 2")]
    state["block"] = False
    assert get() == ("HIT", b"version 2")
    assert middleware.stats()["stale"] == 3
