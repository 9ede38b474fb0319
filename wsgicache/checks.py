"""Checks of the middleware's configuration values.

Each returns the checked value or raises :class:`~wsgicache.ConfigurationError`
with a message that says what to write instead.
"""

from __future__ import annotations

import math
import re
from typing import TypeGuard

from .errors import ConfigurationError

#: The header names ``wsgiref.validate`` lets an application send (PEP 3333
#: servers may be as strict): a letter, then letters, digits, ``-`` and ``_``.
#: Every such name is an RFC 9110 token.
WSGI_HEADER_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")

#: Response headers with a meaning in HTTP: naming the cache header after one
#: would duplicate or change it (``Age`` is added on every hit, for instance).
RESERVED_RESPONSE_HEADERS = frozenset(
    {
        "accept-ranges",
        "age",
        "cache-control",
        "cdn-cache-control",
        "connection",
        "content-disposition",
        "content-encoding",
        "content-language",
        "content-length",
        "content-location",
        "content-range",
        "content-security-policy",
        "content-type",
        "date",
        "etag",
        "expires",
        "keep-alive",
        "last-modified",
        "location",
        "pragma",
        "proxy-authenticate",
        "retry-after",
        "server",
        "set-cookie",
        "strict-transport-security",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "vary",
        "www-authenticate",
    }
)


def is_number(value: object) -> TypeGuard[int | float]:
    """A real ``int`` or ``float`` (``bool`` is not a number here), finite or not."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def is_positive_seconds(value: object) -> TypeGuard[int | float]:
    """A positive, finite number (of seconds): not a ``bool``, NaN, infinity, 0 or less."""
    return is_number(value) and math.isfinite(value) and value > 0


def seconds(name: str, value: object, *, zero: str | None = None, example: str = "60") -> float:
    """``value`` as a positive, finite number of seconds.

    ``zero`` allows 0 and says what it means (``"no coalescing"``). NaN and
    infinity are refused: no comparison with NaN is ever true, so a NaN
    window would silently never apply (or always), and an infinite one
    overflows the stores' expiry times.
    """
    if not (is_number(value) and math.isfinite(value) and (value >= 0 if zero else value > 0)):
        allowed = f"0 ({zero}) or a positive" if zero else "a positive"
        raise ConfigurationError(
            f"{name} must be {allowed} number of seconds (not NaN or infinity), such as "
            f"{name}={example}; got {value!r}"
        )
    return float(value)


def header_name(option: str, value: object) -> str:
    """``value`` as a response header name of the middleware's own (``X-Cache``)."""
    if not isinstance(value, str) or not WSGI_HEADER_NAME_RE.fullmatch(value):
        raise ConfigurationError(
            f"{option} must be a header name: a letter, then letters, digits, '-' or '_' (an RFC "
            "9110 token that WSGI servers accept; no spaces, colons or line breaks), such as "
            f"'X-Cache', or None for no header; got {value!r}"
        )
    if value.lower() in RESERVED_RESPONSE_HEADERS:
        raise ConfigurationError(
            f"{option} {value!r} is a standard HTTP header the middleware must not overwrite or "
            "duplicate; choose a name of its own, such as 'X-Cache'"
        )
    return value
