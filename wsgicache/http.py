"""Pure HTTP helpers: header values, status codes, and the answer to a request's preconditions.

Nothing here does I/O or keeps state; every function takes plain values and
is table-tested. Header parsing and dates are werkzeug's. What may be
stored and for how long is :mod:`wsgicache.freshness` (RFC 9111).
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.http import (
    parse_date,
    parse_etags,
    unquote_etag,
)

#: Headers kept on a ``304 Not Modified`` answered from the cache (RFC 9110, 15.4.5).
NOT_MODIFIED_HEADERS = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"}
)


def header_value(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The values of header ``name`` (case-insensitive), comma-joined, or ``None``."""
    name = name.lower()
    values = [value for key, value in headers if key.lower() == name]
    if not values:
        return None
    return ", ".join(values)


def parse_count(text: str) -> int | None:
    """A header value as a non-negative integer, ASCII digits only (``"²"`` is not one), else ``None``."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() else None


def status_code(status: str) -> int:
    """The integer code of a WSGI status line such as ``"200 OK"`` (0 if malformed)."""
    code = status[:3]
    return int(code) if code.isascii() and code.isdigit() and len(status) >= 3 else 0


class Precondition(enum.Enum):
    """What the preconditions of a request make of a stored response."""

    SERVE = "serve"  # no precondition applies, or all hold: send the response
    NOT_MODIFIED = "not_modified"  # 304
    FAILED = "failed"  # 412


#: Environ keys of the precondition headers (RFC 9110, section 13.1).
PRECONDITION_HEADERS = (
    "HTTP_IF_MATCH",
    "HTTP_IF_NONE_MATCH",
    "HTTP_IF_MODIFIED_SINCE",
    "HTTP_IF_UNMODIFIED_SINCE",
)


PRECONDITION_SET = frozenset(PRECONDITION_HEADERS)


def has_preconditions(environ: Mapping[str, Any]) -> bool:
    """Whether the request carries any precondition header."""
    return not environ.keys().isdisjoint(PRECONDITION_SET)


def evaluate_preconditions(
    environ: Mapping[str, Any], status: str, headers: Iterable[tuple[str, str]]
) -> Precondition:
    """Evaluate a request's preconditions against a response, as RFC 9110 section 13.2.2 orders.

    1. ``If-Match`` (strong comparison); false: 412.
    2. Without ``If-Match``, ``If-Unmodified-Since``; false: 412.
    3. ``If-None-Match`` (weak comparison); false: 304 for GET and HEAD, else 412.
    4. For GET and HEAD without ``If-None-Match``, ``If-Modified-Since``; false: 304.
       Compared with ``Last-Modified``, or without one with ``Date`` (RFC 9111 4.3.2).

    Preconditions are ignored when the response is not a 2xx (section
    13.2.1): a stored 404 stays a 404. ``Range`` and ``If-Range`` are not
    evaluated; the full response is sent.
    """
    if not 200 <= status_code(status) < 300 or not has_preconditions(environ):
        return Precondition.SERVE
    headers = list(headers)
    method = environ.get("REQUEST_METHOD", "GET")
    etag = header_value(headers, "etag")
    last_modified = _timestamp(header_value(headers, "last-modified"))

    if_match = environ.get("HTTP_IF_MATCH")
    if if_match is not None:
        if not _etag_matches(if_match, etag, weak=False):
            return Precondition.FAILED
    else:
        since = _timestamp(environ.get("HTTP_IF_UNMODIFIED_SINCE"))
        if since is not None and last_modified is not None and last_modified > since:
            return Precondition.FAILED

    if_none_match = environ.get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        if _etag_matches(if_none_match, etag, weak=True):
            return Precondition.NOT_MODIFIED if method in ("GET", "HEAD") else Precondition.FAILED
    elif method in ("GET", "HEAD"):
        since = _timestamp(environ.get("HTTP_IF_MODIFIED_SINCE"))
        # Without Last-Modified, a cache compares with the response's Date (RFC 9111 4.3.2).
        modified = last_modified if last_modified is not None else _timestamp(header_value(headers, "date"))
        if since is not None and modified is not None and modified <= since:
            return Precondition.NOT_MODIFIED
    return Precondition.SERVE


def _timestamp(value: str | None) -> int | None:
    if value is None:
        return None
    parsed = parse_date(value)
    return None if parsed is None else int(parsed.timestamp())


def _etag_matches(field: str, etag: str | None, *, weak: bool) -> bool:
    """Whether ``field`` is ``*`` or lists ``etag`` (RFC 9110, 8.8.3.2).

    ``weak``: the weak comparison of ``If-None-Match`` (``W/`` ignored);
    else the strong one of ``If-Match`` (a weak ``etag`` never matches).
    """
    etags = parse_etags(field)
    if etags.star_tag:
        return True
    if etag is None:
        return False
    value, is_weak = unquote_etag(etag)
    if weak:
        return etags.contains_weak(value)
    return not is_weak and etags.is_strong(value)


def not_modified_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() in NOT_MODIFIED_HEADERS]
