"""Pure HTTP decisions: what may be stored, for how long, and what to answer.

Nothing here does I/O or keeps state; every function takes plain values and
is table-tested. Header parsing and dates are werkzeug's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from werkzeug.datastructures import ResponseCacheControl
from werkzeug.http import (
    is_resource_modified,
    parse_cache_control_header,
    parse_date,
    parse_set_header,
)

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


def status_code(status: str) -> int:
    """The integer code of a WSGI status line such as ``"200 OK"`` (0 if malformed)."""
    code = status[:3]
    return int(code) if code.isdigit() and len(status) >= 3 else 0


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
) -> str | None:
    """Why a response may not be stored, or ``None`` if it may.

    ``vary`` holds the lower-cased request headers that are part of the
    key; a ``Vary`` response header naming any other header (or ``*``) makes
    the response unstorable, since serving it to requests that differ in
    that header could hand one client's variant to another.
    """
    if status_code(status) not in statuses:
        return "status"
    headers = list(headers)
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
    first = raw.split(",", 1)[0].strip()
    return float(first) if first.isdigit() else 0.0


def storable_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The response headers worth storing (drops ``Age`` and hop-by-hop headers)."""
    return [(name, value) for name, value in headers if name.lower() not in UNSTORED_HEADERS]


def is_conditional(environ: Mapping[str, Any]) -> bool:
    """Whether the request is a conditional ``GET``/``HEAD`` the cache may answer ``304``."""
    return ("HTTP_IF_NONE_MATCH" in environ or "HTTP_IF_MODIFIED_SINCE" in environ) and environ.get(
        "REQUEST_METHOD"
    ) in ("GET", "HEAD")


def not_modified(environ: Mapping[str, Any], headers: Iterable[tuple[str, str]]) -> bool:
    """Whether a conditional GET/HEAD can be answered ``304`` from these stored headers."""
    headers = list(headers)
    etag = header_value(headers, "etag")
    last_modified = header_value(headers, "last-modified")
    if etag is None and last_modified is None:
        return False
    return not is_resource_modified(
        dict(environ), etag=etag, last_modified=last_modified, ignore_if_range=True
    )


def not_modified_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return [(name, value) for name, value in headers if name.lower() in NOT_MODIFIED_HEADERS]
