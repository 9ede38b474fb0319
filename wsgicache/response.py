"""WSGI plumbing: capturing an application's response and streaming it on.

:class:`CapturedResponse` stands in for the server's ``start_response``
while the middleware decides whether a response can be stored.
:class:`StreamingBody` hands a response the middleware has decided not to
hold whole to the server, chunk by chunk, and always closes the
application's iterable.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import Any

ExcInfo = tuple[type[BaseException], BaseException, TracebackType]
OptExcInfo = ExcInfo | tuple[None, None, None]
StartResponse = Callable[..., Callable[[bytes], object]]


class CapturedResponse:
    """Records ``start_response`` and ``write()`` until the headers are sent.

    Once :meth:`send_headers` has passed the response to the server,
    further ``start_response`` calls with ``exc_info`` go to the server
    (which re-raises, as PEP 3333 requires) and ``write()`` data is queued
    for :class:`StreamingBody` so it keeps its place in the body.
    """

    __slots__ = ("_start_response", "chunks", "failed", "headers", "sent", "size", "status")

    def __init__(self) -> None:
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.chunks: deque[bytes] = deque()
        self.size = 0
        self.failed = False
        self.sent = False
        self._start_response: StartResponse | None = None

    def start_response(
        self,
        status: str,
        headers: list[tuple[str, str]],
        exc_info: OptExcInfo | None = None,
    ) -> Callable[[bytes], None]:
        if exc_info is not None and exc_info[0] is not None:
            if self.sent and self._start_response is not None:
                self._start_response(status, headers, exc_info)
            self.failed = True
        elif self.status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def write(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)

    def send_headers(self, start_response: StartResponse, extra: list[tuple[str, str]]) -> None:
        """Pass the captured status and headers (plus ``extra``) to the server."""
        assert self.status is not None
        self._start_response = start_response
        start_response(self.status, self.headers + extra)
        self.sent = True


class StreamingBody:
    """The rest of a response that is not being stored, streamed to the server.

    Yields what was already read, then the application's remaining chunks,
    and closes the application's iterable when the server closes this one
    (also on a client disconnect). With ``send_body=False`` (a ``HEAD``
    turned into ``GET``) nothing is yielded.
    """

    def __init__(
        self,
        captured: CapturedResponse,
        iterator: Iterator[bytes],
        app_iter: Iterable[bytes],
        *,
        send_body: bool = True,
    ) -> None:
        self.captured = captured
        self.iterator = iterator
        self.app_iter = app_iter
        self.send_body = send_body
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if not self.send_body:
            raise StopIteration
        chunks = self.captured.chunks
        while not chunks:
            chunks.append(next(self.iterator))
        return chunks.popleft()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        close_iterable(self.app_iter)


def close_iterable(app_iter: Any) -> None:
    """Call ``close()`` on an application's iterable if it has one."""
    close = getattr(app_iter, "close", None)
    if close is not None:
        close()
