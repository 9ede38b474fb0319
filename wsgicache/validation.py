"""Storing, revalidating and freshening responses: RFC 9111 sections 3.1, 3.2 and 4.3.

Pure decisions over header lists; no I/O, no WSGI, no state. Header parsing
and dates are werkzeug's.

- :func:`storable_headers`: which response fields a cache keeps (3.1).
- :func:`conditional_headers`: the validators of a revalidation request (4.3.1).
- :func:`select_for_update`: whether a ``304`` (4.3.4) or a ``HEAD`` response
  (4.3.5) applies to a stored response.
- :func:`updated_headers`: the stored fields after such an update (3.2).

Usage::

    directives = response_directives(app_headers)     # wsgicache.freshness
    stored = storable_headers(app_headers, private_fields=directives.private_fields)
    request_headers = conditional_headers(stored)       # [("If-None-Match", '"v1"')]
    # ... the application answers 304 with headers ``new`` ...
    if select_for_update(stored, new) is Freshening.UPDATE:
        merged = updated_headers(stored, new)             # then judged as a new response
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from typing import TypeAlias

from werkzeug.http import parse_date, parse_set_header, quote_etag, unquote_etag

from .http import header_value, parse_count

#: Response headers as WSGI gives them: names in any case, repeats allowed.
Headers: TypeAlias = Sequence[tuple[str, str]]

#: Fields never stored (RFC 9111, 3.1): connection-specific (RFC 9110, 7.6.1; ``Proxy-Connection``
#: is its obsolete twin), proxy-specific (``Proxy-Authenticate``, ``Proxy-Authentication-Info``,
#: ``Proxy-Authorization``) and ``Age``, which a cache generates itself (RFC 9111, 4).
UNSTORED_FIELDS: frozenset[str] = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "transfer-encoding",
        "upgrade",
        "trailer",
        "proxy-authenticate",
        "proxy-authentication-info",
        "proxy-authorization",
        "age",
    }
)

#: Fields a ``304`` or ``HEAD`` response never updates (RFC 9111, 3.2): ``Content-Length`` (the
#: stored body keeps its length) and ``Content-Range`` (describes one transfer; 3.2 allows
#: omitting it, and on a stored complete response it would mislabel the body as a part).
NOT_UPDATED_FIELDS: frozenset[str] = frozenset({"content-length", "content-range"})


class Freshening(enum.Enum):
    """Whether a ``304`` or ``HEAD`` response applies to a stored response (RFC 9111, 4.3.4/4.3.5)."""

    UPDATE = "update"  # update the stored headers with updated_headers() and reuse the stored body
    NO_MATCH = "no_match"  # leave it: for a 304 fetch a full response, for HEAD treat it as stale


def _first(headers: Iterable[tuple[str, str]], name: str) -> str | None:
    """The first field line named ``name`` (case-insensitive), stripped; ``None`` if absent or empty."""
    for key, value in headers:
        if key.lower() == name:
            value = value.strip()
            return value or None
    return None


def _names(value: str | None) -> frozenset[str]:
    return frozenset(name.lower() for name in parse_set_header(value)) if value else frozenset()


def storable_headers(
    headers: Headers,
    *,
    private_fields: frozenset[str] = frozenset(),
    no_cache_fields: frozenset[str] = frozenset(),
) -> list[tuple[str, str]]:
    """The fields of a response a cache stores (RFC 9111, 3.1), in order and spelling as given.

    Drops :data:`UNSTORED_FIELDS`, the fields that ``Connection`` names and
    the (lower-case) ``private_fields`` and ``no_cache_fields`` (the fields
    ``private="..."`` and ``no-cache="..."`` name, from
    :func:`wsgicache.freshness.response_directives`).
    """
    dropped = UNSTORED_FIELDS | _names(header_value(headers, "connection")) | private_fields | no_cache_fields
    return [(name, value) for name, value in headers if name.lower() not in dropped]


def _etag(headers: Headers) -> str | None:
    return _first(headers, "etag")


def _last_modified(headers: Headers) -> tuple[str, int] | None:
    """The first ``Last-Modified`` line and its Unix time, if it parses as an HTTP-date."""
    value = _first(headers, "last-modified")
    parsed = parse_date(value) if value else None
    return None if value is None or parsed is None else (value, int(parsed.timestamp()))


def has_validator(headers: Headers) -> bool:
    """Whether a response has a usable validator: an ``ETag``, or a ``Last-Modified`` that parses.

    Exactly when :func:`conditional_headers` is not empty.
    """
    return _etag(headers) is not None or _last_modified(headers) is not None


def conditional_headers(stored: Headers) -> list[tuple[str, str]]:
    """The precondition fields of a request revalidating ``stored`` (RFC 9111, 4.3.1).

    ``If-None-Match`` from the ``ETag`` (sent as stored; a bare token such
    as ``abc`` is quoted: ``"abc"``) and ``If-Modified-Since`` from a
    ``Last-Modified`` that parses as a date (sent as stored). Both when both
    are present, as RFC 9110 13.1.3 recommends.
    """
    result: list[tuple[str, str]] = []
    etag = _etag(stored)
    if etag is not None:
        if '"' not in etag:
            etag = quote_etag(etag)  # an unquoted tag, as some applications send
        result.append(("If-None-Match", etag))
    last_modified = _last_modified(stored)
    if last_modified is not None:
        result.append(("If-Modified-Since", last_modified[0]))
    return result


def _content_length(headers: Headers) -> int | None:
    value = _first(headers, "content-length")
    return None if value is None else parse_count(value)


def select_for_update(
    stored: Headers,
    new: Headers,
    *,
    head: bool = False,
    stored_length: int | None = None,
    answers_revalidation: bool = False,
) -> Freshening:
    """Whether the response with fields ``new`` updates the single stored response ``stored``.

    For a ``304`` (RFC 9111, 4.3.4), the first rule that applies decides:

    1. ``new`` has a strong ``ETag``: it must equal the stored ``ETag``,
       which must be strong as well (strong comparison, RFC 9110 8.8.3.2).
    2. ``new`` has a weak ``ETag`` and/or a ``Last-Modified``: each must
       match the stored one (weak comparison; the same instant).
    3. ``new`` has no validator: only when ``stored`` has none either, or
       with ``answers_revalidation``: the ``304`` answers the conditional
       request the cache built from this stored response's own validators
       (the client's were not forwarded), so it can only be about this one.
       RFC 9110 15.4.5 asks servers to send the ``ETag`` again; many do not.

    With ``head=True`` (a ``200`` to ``HEAD``, RFC 9111 4.3.5) the same
    rules apply, and a ``Content-Length`` in ``new`` must equal the stored
    one (the stored ``Content-Length``, else ``stored_length``, the stored
    body's length; neither known: no match). ``NO_MATCH`` then means the
    stored response is to be treated as stale.
    """
    if head:
        new_length = _first(new, "content-length")
        if new_length is not None:
            length = _content_length(stored)
            if length is None:
                length = stored_length
            if length is None or parse_count(new_length) != length:
                return Freshening.NO_MATCH
    if answers_revalidation and _etag(new) is None and _last_modified(new) is None:
        return Freshening.UPDATE
    return Freshening.UPDATE if _validators_match(stored, new) else Freshening.NO_MATCH


def _validators_match(stored: Headers, new: Headers) -> bool:
    stored_etag, new_etag = unquote_etag(_etag(stored)), unquote_etag(_etag(new))
    if new_etag[0] is not None and not new_etag[1]:
        return stored_etag == new_etag  # both strong, same opaque-tag
    new_last_modified = _last_modified(new)
    if new_etag[0] is None and new_last_modified is None:
        return not has_validator(stored)
    if new_etag[0] is not None and stored_etag[0] != new_etag[0]:
        return False
    if new_last_modified is not None:
        stored_last_modified = _last_modified(stored)
        if stored_last_modified is None or stored_last_modified[1] != new_last_modified[1]:
            return False
    return True


def updated_headers(stored: Headers, new: Headers) -> list[tuple[str, str]]:
    """The stored fields updated with those of a ``304``, ``HEAD`` or ``206`` response (RFC 9111, 3.2).

    Every field of ``new`` replaces all stored fields of the same name,
    except the fields :func:`storable_headers` drops from ``new`` (hop-by-hop,
    named by its ``Connection``, proxy-specific, ``Age``) and
    :data:`NOT_UPDATED_FIELDS`. All other fields are updated, ``Content-Type``,
    ``Content-Encoding``, ``ETag``, ``Vary`` and ``Date`` included: RFC 9111
    3.2 notes that the ``Content-`` prefix is no reason to keep a stored field,
    and this cache stores the body as received, not decoded or parsed.

    Stored fields that ``new`` lacks are kept. Order: the stored order, a
    replaced field's new lines where its first stored line was; fields new to
    the response at the end, in their order in ``new``. The result is then
    judged as a new response: its (possibly new) ``Cache-Control`` applies.
    """
    replacements: dict[str, list[tuple[str, str]]] = {}
    for name, value in storable_headers(new):
        lowered = name.lower()
        if lowered not in NOT_UPDATED_FIELDS:
            replacements.setdefault(lowered, []).append((name, value))
    result: list[tuple[str, str]] = []
    placed: set[str] = set()
    for name, value in stored:
        lowered = name.lower()
        if lowered not in replacements:
            result.append((name, value))
        elif lowered not in placed:
            result.extend(replacements[lowered])
            placed.add(lowered)
    for lowered, lines in replacements.items():
        if lowered not in placed:
            result.extend(lines)
    return result
