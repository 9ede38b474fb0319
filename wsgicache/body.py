"""Request bodies: whether a request has one, and reading it for the key.

A request body can change what an application answers (Flask reads JSON
bodies on ``GET``), so the middleware must know whether there is one, and
a rule caching ``POST`` keys on a digest of it. Whatever is read here is
handed back to the application through ``wsgi.input``, byte for byte::

    body = read_body(environ, limit=65536)
    if body is None:           # too large, or cut short: bypass
        ...
    digest = blake2b(body).hexdigest()   # the application still reads ``body``

A request without ``Content-Length`` or ``Transfer-Encoding`` has no body
on the HTTP/1.1 wire, but a server may pass one without either (HTTP/2 and
HTTP/3 front ends, servers that de-chunk and drop the header) and says so
with ``wsgi.input_terminated``, which also makes reading to the end safe:
then the stream is peeked at (one byte, handed back). gunicorn sets the
flag on every request; the peek costs about a microsecond there.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from io import BytesIO
from typing import Any

from .http import parse_count


def content_length(environ: MutableMapping[str, Any]) -> int | None:
    """The request's ``Content-Length`` (0 when absent or empty), ``None`` when malformed."""
    raw = environ.get("CONTENT_LENGTH")
    if not raw:
        return 0
    return parse_count(raw)


def _length_unknown(environ: MutableMapping[str, Any]) -> bool:
    """Whether a body may follow although ``Content-Length`` does not announce one."""
    return not environ.get("CONTENT_LENGTH") and bool(environ.get("wsgi.input_terminated"))


def has_body(environ: MutableMapping[str, Any]) -> bool:
    """Whether the request carries a body (or announces one, even malformed).

    Where the stream must be peeked at, the byte read is put back.
    """
    if "HTTP_TRANSFER_ENCODING" in environ or content_length(environ) != 0:
        return True
    if not _length_unknown(environ):
        return False
    stream = environ["wsgi.input"]
    first = stream.read(1)
    if not first:
        return False
    environ["wsgi.input"] = ReplayInput(first, stream)
    return True


def read_body(environ: MutableMapping[str, Any], limit: int) -> bytes | None:
    """The whole request body, if it is at most ``limit`` bytes, else ``None``.

    ``None`` too when it is announced with ``Transfer-Encoding`` (its
    length is unknown until read whole), malformed, or shorter than its
    ``Content-Length``. Whatever was read is put back in ``wsgi.input``.
    """
    if "HTTP_TRANSFER_ENCODING" in environ:
        return None
    length = content_length(environ)
    if length is None or length > limit:
        return None
    stream = environ["wsgi.input"]
    if length == 0 and _length_unknown(environ):
        read = stream.read(limit + 1)
        chunks = [read]
        size = len(read)
        while read and size <= limit:
            read = stream.read(limit + 1 - size)
            chunks.append(read)
            size += len(read)
        body = b"".join(chunks)
        if size > limit:
            environ["wsgi.input"] = ReplayInput(body, stream)
            return None
        environ["wsgi.input"] = BytesIO(body)
        return body
    chunks = []
    size = 0
    while size < length:
        read = stream.read(length - size)
        if not read:
            break
        chunks.append(read)
        size += len(read)
    body = b"".join(chunks)
    if size < length:
        # Cut short (or a stream that ends early): give back what was read, then the rest.
        environ["wsgi.input"] = ReplayInput(body, stream)
        return None
    environ["wsgi.input"] = BytesIO(body)
    return body


class ReplayInput:
    """A ``wsgi.input`` that first gives back bytes already read, then the rest of the stream."""

    def __init__(self, prefix: bytes, stream: Any) -> None:
        self._prefix = BytesIO(prefix)
        self._left = len(prefix)
        self._stream = stream

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            data = self._prefix.read() if self._left else b""
            self._left = 0
            return data + bytes(self._stream.read())
        if self._left:
            data = self._prefix.read(size)
            self._left -= len(data)
            if len(data) < size:
                data += self._stream.read(size - len(data))
            return data
        return bytes(self._stream.read(size))

    def readline(self, size: int | None = -1) -> bytes:
        if not self._left:
            return bytes(self._stream.readline() if size is None or size < 0 else self._stream.readline(size))
        line = self._prefix.readline() if size is None or size < 0 else self._prefix.readline(size)
        self._left -= len(line)
        if not line.endswith(b"\n") and (size is None or size < 0 or len(line) < size):
            rest = size - len(line) if size is not None and size >= 0 else -1
            line += self._stream.readline() if rest < 0 else self._stream.readline(rest)
        return bytes(line)

    def readlines(self, hint: int | None = None) -> list[bytes]:
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if hint is not None and 0 < hint <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        while True:
            line = self.readline()
            if not line:
                return
            yield line
