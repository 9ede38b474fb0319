"""Shared plumbing of the examples: serve a WSGI app with waitress and time it.

Every example ends with ``sys.exit(run(app, demo=[...]))``. :func:`run`

1. wraps the app in :class:`TimingMiddleware`, placed *outside* the cache,
   so that the time it reports for a cache hit is the cost of the cache
   (plus the framework's few lines in front of it), not of the network;
2. serves it with waitress on ``127.0.0.1`` (never on other interfaces);
3. sends the demo requests over real HTTP and prints one line for each:
   method, path, status, the ``X-Cache`` header, the time spent in the
   application stack, and the round trip seen by the client;
4. with ``--once``, exits (status 1 if a response was not what the demo
   expected); otherwise keeps serving and prints a line per request until
   Ctrl-C.

``--port 0`` lets the operating system pick a free port (the tests use it). A
port that is taken (or needs privileges) gives a one-line hint on stderr and
exit status 2, not a traceback.
"""

from __future__ import annotations

import argparse
import errno
import http.client
import os
import queue
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from waitress.server import create_server

StartResponse = Callable[..., Callable[[bytes], object]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Timing:
    """One request as the timing middleware saw it."""

    method: str
    path: str
    status: str
    cache: str
    seconds: float

    def __str__(self) -> str:
        return f"{self.method:<4} {self.path:<18} {self.status[:3]}  {self.cache:<6} {duration(self.seconds)}"


@dataclass(frozen=True)
class DemoRequest:
    """A request :func:`run` sends, and the ``X-Cache`` value it expects back."""

    method: str
    path: str
    expect: str | None = None
    form: dict[str, str] | None = None


def duration(seconds: float) -> str:
    """``'153.2 ms'`` or, under a millisecond, ``'61 µs'``."""
    if seconds < 0.001:
        return f"{seconds * 1e6:6.0f} µs"
    return f"{seconds * 1e3:6.1f} ms"


class TimingMiddleware:
    """Measure the time spent inside ``app`` for each request.

    Counts the call, the iteration of the response body and its
    ``close()``, but not the time the server spends between them (writing to
    the socket). Each finished request is handed to ``report``.
    """

    def __init__(self, app: WSGIApp, report: Callable[[Timing], object]) -> None:
        self.app = app
        self.report = report

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        seen: dict[str, str] = {"status": "???", "cache": "-"}

        def timed_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            seen["status"] = status
            seen["cache"] = next((v for k, v in headers if k.lower() == "x-cache"), "-")
            return start_response(status, headers, exc_info)

        def finished(seconds: float) -> None:
            path = environ.get("PATH_INFO", "")
            self.report(Timing(environ["REQUEST_METHOD"], path, seen["status"], seen["cache"], seconds))

        started = time.perf_counter()
        try:
            body = self.app(environ, timed_start_response)
        except BaseException:
            finished(time.perf_counter() - started)
            raise
        return _TimedBody(body, time.perf_counter() - started, finished)


class _TimedBody:
    """The response body, timed while it is iterated and closed."""

    def __init__(self, body: Iterable[bytes], spent: float, finished: Callable[[float], None]) -> None:
        self._body = body
        self._iterator: Iterator[bytes] | None = None
        self._spent = spent
        self._finished = finished

    def __iter__(self) -> _TimedBody:
        started = time.perf_counter()
        self._iterator = iter(self._body)
        self._spent += time.perf_counter() - started
        return self

    def __next__(self) -> bytes:
        assert self._iterator is not None
        started = time.perf_counter()
        try:
            return next(self._iterator)
        finally:
            self._spent += time.perf_counter() - started

    def close(self) -> None:
        started = time.perf_counter()
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._finished(self._spent + time.perf_counter() - started)


def make_parser(description: str | None) -> argparse.ArgumentParser:
    """The command line every example accepts: ``--port`` and ``--once``."""
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=8000, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--once", action="store_true", help="send the demo requests, then exit")
    return parser


def run(app: WSGIApp, demo: Sequence[DemoRequest], *, port: int = 8000, once: bool = False) -> int:
    """Serve ``app`` on 127.0.0.1, send the ``demo`` requests, then serve on (see the module doc)."""
    timings: queue.Queue[Timing] = queue.Queue()
    try:
        server = create_server(TimingMiddleware(app, timings.put), host=HOST, port=port, threads=4)
    except OSError as error:
        if error.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        problem = "is in use" if error.errno == errno.EADDRINUSE else "needs privileges"
        print(f"{os.path.basename(sys.argv[0])}: port {port} {problem}; pass --port N", file=sys.stderr)
        return 2
    port = server.effective_port
    threading.Thread(target=server.run, name="waitress", daemon=True).start()
    print(f"Serving on http://{HOST}:{port}/", flush=True)

    failures = 0
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    for request in demo:
        body = None if request.form is None else urllib.parse.urlencode(request.form)
        headers = {} if body is None else {"Content-Type": "application/x-www-form-urlencoded"}
        started = time.perf_counter()
        connection.request(request.method, request.path, body=body, headers=headers)
        response = connection.getresponse()
        response.read()
        round_trip = time.perf_counter() - started
        # The server reports the request once it has closed the response body,
        # which may be a moment after the client got it: wait for that report.
        timing = timings.get(timeout=30)
        line = f"{timing}   (round trip {duration(round_trip).strip()})"
        cache = response.getheader("X-Cache", "-")
        if request.expect is not None and cache != request.expect:
            failures += 1
            line += f"   <-- expected {request.expect}"
        print(line, flush=True)
    connection.close()
    if failures:
        print(f"{failures} response(s) were not what the demo expected", file=sys.stderr)
        return 1
    if once:
        return 0

    print("Serving until Ctrl-C; one line per request.", flush=True)
    try:
        while True:
            print(timings.get(), flush=True)
    except KeyboardInterrupt:
        print()
    return 0


#: The demo of the three small framework examples, which serve the same site.
SITE_DEMO = [
    DemoRequest("GET", "/primes/2000000", expect="MISS"),
    DemoRequest("GET", "/primes/2000000", expect="HIT"),
    DemoRequest("GET", "/hello/world", expect="MISS"),
    DemoRequest("GET", "/hello/world", expect="HIT"),
    DemoRequest("GET", "/admin/users", expect="BYPASS"),
]


def main(app: WSGIApp, demo: Sequence[DemoRequest], description: str | None) -> None:
    """Parse the command line, run the demo (and serve unless ``--once``), exit."""
    args = make_parser(description).parse_args()
    sys.exit(run(app, demo, port=args.port, once=args.once))
