"""The request as the cache core reads it, independent of the server interface.

The core never sees a WSGI ``start_response``, an iterable or a stream: it
reads a :class:`RequestView`, whose ``environ`` is a mapping with CGI-style
names (RFC 3875 and PEP 3333: ``REQUEST_METHOD``, ``PATH_INFO``,
``QUERY_STRING``, ``HTTP_ACCEPT``...), and asks for the body through a
method an adapter provides. A WSGI adapter passes its environ as it is (no
copy); another adapter (ASGI) builds such a mapping from its scope::

    request = WSGIRequest(environ)
    request.method, request.path, request.header("accept"), request.read_body(65536)

Rule callables (``unless``, ``key``, ``tags``) receive ``environ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .keys import cookie_values


class RequestView:
    """What the core reads of one request.

    :param environ: CGI-style names to values (for WSGI, the environ).

    An adapter whose requests have bodies overrides :meth:`has_body` and
    :meth:`read_body`.
    """

    __slots__ = ("environ", "method", "path", "query", "script_name")

    def __init__(self, environ: Mapping[str, Any]) -> None:
        self.environ = environ
        self.method: str = environ.get("REQUEST_METHOD", "GET")
        self.script_name: str = environ.get("SCRIPT_NAME", "")
        self.path: str = environ.get("PATH_INFO", "")
        self.query: str = environ.get("QUERY_STRING", "")

    def has_body(self) -> bool:
        """Whether the request carries a body (a ``Content-Length`` other than 0)."""
        length = self.environ.get("CONTENT_LENGTH")
        return bool(length and length != "0")

    def read_body(self, limit: int) -> bytes | None:
        """The body (up to ``limit`` bytes), leaving it readable by the application.

        ``None`` when it is longer than ``limit`` or cut short.
        """
        return b""

    def header(self, name: str) -> str | None:
        """The value of request header ``name`` (any case; field lines joined by ``", "``)."""
        upper = name.upper().replace("-", "_")
        key = upper if upper in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + upper
        value = self.environ.get(key)
        return None if value is None else str(value)

    def has(self, cgi_name: str) -> bool:
        return cgi_name in self.environ

    def cookies(self, names: tuple[str, ...]) -> list[str | None] | None:
        """The values of cookies ``names`` as sent, or ``None`` when a name is ambiguous."""
        return cookie_values(self.environ.get("HTTP_COOKIE", ""), names)

    def __repr__(self) -> str:
        return f"<RequestView {self.method} {self.script_name + self.path!r}>"
