"""Pure HTTP decisions: what may be stored, for how long, and what to answer.

Nothing here does I/O or keeps state; every function takes plain values and
is table-tested. Header parsing and dates are werkzeug's.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from werkzeug.datastructures import ResponseCacheControl
from werkzeug.http import (
    parse_cache_control_header,
    parse_date,
    parse_etags,
    parse_set_header,
    unquote_etag,
)

#: Why a response was not stored (see :func:`why_not_storable` and the middleware).
NotStoredReason = Literal[
    "status",  # not in the rule's statuses
    "partial",  # 206, 304 or Content-Range: never a whole representation
    "set-cookie",
    "no-store",
    "private",
    "vary-star",
    "vary",  # Vary names a header the key does not hold
    "error",  # the application reported an error through exc_info
    "too_large",  # over max_entry_bytes
    "length",  # body shorter or longer than its Content-Length
]

#: Statuses that never describe a whole, reusable representation.
_NEVER_STORED_STATUSES = frozenset({206, 304})

#: Headers kept on a ``304 Not Modified`` answered from the cache (RFC 9110, 15.4.5).
NOT_MODIFIED_HEADERS = frozenset(
    {"cache-control", "content-location", "date", "etag", "expires", "last-modified", "vary"}
)

#: Response headers never stored: they describe one transfer, not the resource.
UNSTORED_HEADERS = frozenset(
    {
        "age",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
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


def response_cache_control(headers: Iterable[tuple[str, str]]) -> ResponseCacheControl:
    """The parsed ``Cache-Control`` of a response; directive names are case-insensitive."""
    value = header_value(headers, "cache-control")
    return parse_cache_control_header(value.lower() if value else value, cls=ResponseCacheControl)


def why_not_storable(
    status: str,
    headers: Iterable[tuple[str, str]],
    *,
    statuses: frozenset[int],
    vary: frozenset[str],
    varies_on_cookies: bool,
    allow_set_cookie: bool = False,
) -> NotStoredReason | None:
    """Why a response may not be stored, or ``None`` if it may.

    ``vary`` holds the lower-cased request headers that are part of the
    key; a ``Vary`` response header naming any other header (or ``*``) makes
    the response unstorable, since serving it to requests that differ in
    that header could hand one client's variant to another.
    """
    code = status_code(status)
    headers = list(headers)
    if code in _NEVER_STORED_STATUSES or header_value(headers, "content-range") is not None:
        return "partial"
    if code not in statuses:
        return "status"
    if not allow_set_cookie and header_value(headers, "set-cookie") is not None:
        return "set-cookie"
    cache_control = response_cache_control(headers)
    if cache_control.no_store:
        return "no-store"
    if cache_control.private:
        return "private"
    vary_header = header_value(headers, "vary")
    if vary_header:
        for name in parse_set_header(vary_header):
            lowered = name.lower()
            if lowered == "*":
                return "vary-star"
            if lowered in vary or (lowered == "cookie" and varies_on_cookies):
                continue
            return "vary"
    return None


def http_lifetime(headers: Iterable[tuple[str, str]], default: float) -> float:
    """Freshness lifetime in seconds for a shared cache (RFC 9111, 4.2.1).

    ``s-maxage`` wins over ``max-age``, which wins over ``Expires`` minus
    ``Date``. With none of them, ``default``. ``no-cache`` and an invalid
    ``Expires`` give 0 (stale at once: not stored).
    """
    headers = list(headers)
    cache_control = response_cache_control(headers)
    if cache_control.no_cache:
        return 0.0
    for seconds in (cache_control.s_maxage, cache_control.max_age):
        if seconds is not None:
            return float(max(int(seconds), 0))
    if "max-age" in cache_control or "s-maxage" in cache_control:
        return 0.0  # present but not a number: treat as stale (RFC 9111, 4.2.1)
    expires = header_value(headers, "expires")
    if expires is not None:
        expires_at = parse_date(expires)
        if expires_at is None:
            return 0.0
        date = parse_date(header_value(headers, "date") or "")
        base = date.timestamp() if date is not None else None
        if base is None:
            return 0.0
        return max(expires_at.timestamp() - base, 0.0)
    return default


def initial_age(headers: Iterable[tuple[str, str]]) -> float:
    """The ``Age`` the application (or a cache behind it) reported, in seconds."""
    raw = header_value(headers, "age")
    if raw is None:
        return 0.0
    return float(parse_count(raw.split(",", 1)[0]) or 0)


def storable_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers worth storing (drops ``Age`` and hop-by-hop headers)."""
    return [(name, value) for name, value in headers if name.lower() not in UNSTORED_HEADERS]


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
