"""Small WSGI applications and environ builders shared by the tests."""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

from webtest import TestApp

from wsgicache import CacheMiddleware, Rule

StartResponse = Callable[..., Any]


class FakeClock:
    """The cache's clock in tests: Unix seconds that move only when told to (no ``sleep()``)."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def make_environ(path: str = "/", method: str = "GET", query: str = "", **extra: Any) -> dict[str, Any]:
    """A complete WSGI environ for a request to http://localhost/."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "HTTP_HOST": "localhost",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    environ.update(extra)
    return environ


class ClosingList:
    """A response iterable that records whether the server closed it."""

    def __init__(self, chunks: Iterable[bytes], owner: RecordingApp) -> None:
        self._chunks = list(chunks)
        self._owner = owner

    def __iter__(self) -> Iterator[bytes]:
        return iter(self._chunks)

    def close(self) -> None:
        self._owner.closed += 1


class RecordingApp:
    """A WSGI app that answers from a table and counts calls and close()s.

    The body names the method, path and query, so a response served for the
    wrong request is detectable.
    """

    def __init__(
        self,
        status: str = "200 OK",
        headers: list[tuple[str, str]] | None = None,
        body: bytes | None = None,
    ) -> None:
        self.status = status
        self.headers = headers if headers is not None else [("Content-Type", "text/plain")]
        self.body = body
        self.calls: list[dict[str, Any]] = []
        self.closed = 0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.calls)

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.calls.append(dict(environ))
        body = self.body
        if body is None:
            body = (
                f"{environ['REQUEST_METHOD']} {environ.get('HTTP_HOST', '')}"
                f"{environ.get('SCRIPT_NAME', '')}{environ['PATH_INFO']}?{environ.get('QUERY_STRING', '')}"
            ).encode("utf-8", "surrogateescape")
        headers = [*self.headers, ("Content-Length", str(len(body)))]
        start_response(self.status, headers)
        return ClosingList([body], self)


def cached(
    app: Any, rules: list[Rule], backend: Any = "memory://", **options: Any
) -> tuple[TestApp, CacheMiddleware]:
    """The app behind the cache, both wrapped in wsgiref's validator."""
    middleware = CacheMiddleware(validator(app), backend=backend, rules=rules, **options)
    return TestApp(validator(middleware), extra_environ={"HTTP_HOST": "localhost"}), middleware


def call(middleware: Any, environ: dict[str, Any]) -> tuple[str, dict[str, str], bytes]:
    """One request straight through the middleware (for environs webtest will not build)."""
    seen: list[Any] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append((status, dict(headers)))
        return lambda data: None

    result = middleware(environ, start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return seen[-1][0], seen[-1][1], body


def plan_of(middleware: Any, environ: dict[str, Any]) -> Any:
    """The lookup plan the middleware makes for ``environ`` (entry key, tag keys, rule)."""
    from wsgicache.middleware import WSGIRequest

    return middleware._planner.plan(WSGIRequest(environ))
