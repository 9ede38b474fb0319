"""The cache's decisions for one rule: what to store, for how long, and whether to reuse it.

These functions apply a compiled rule's options to the RFC 9111 functions of
:mod:`wsgicache.freshness`, :mod:`wsgicache.validation` and
:mod:`wsgicache.variants`. They take plain values and return values, do no
I/O and read no clock: the caller passes the times. Under ``policy="force"``
the rule's ``timeout`` is the lifetime and requests' own directives do not
count; under ``policy="http"`` the cache behaves as a shared cache::

    reason = not_storable_reason(rule, "200 OK", headers, method="GET",
                                 request_authorization=False, request_no_store=False)
    entry = new_entry(rule, "200 OK", headers, body, request_time=t0, response_time=t1, tags=())
    reuse(rule, entry, now, request_directives_for(rule, cache_control, pragma))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from email.utils import formatdate

from . import http
from .freshness import (
    NO_REQUEST_DIRECTIVES,
    NotStoredReason,
    RequestDirectives,
    Reuse,
    classify,
    corrected_initial_age,
    freshness_lifetime,
    may_serve_stale_on_error,
    request_directives,
    response_directives,
    why_not_storable,
)
from .rules import CompiledRule
from .storage import FLAG_MUST_REVALIDATE, FLAG_NO_CACHE, Entry
from .validation import Freshening, has_validator, select_for_update, storable_headers, updated_headers
from .variants import vary_names

#: The most seconds a heuristic freshness lifetime lasts (RFC 9111 4.2.2).
HEURISTIC_CAP = 86400.0

Headers = Sequence[tuple[str, str]]


def request_directives_for(
    rule: CompiledRule, cache_control: str | None, pragma: str | None
) -> RequestDirectives:
    """The request's cache directives as the rule honours them (none under ``"force"``)."""
    if not rule.honours_request or (cache_control is None and pragma is None):
        return NO_REQUEST_DIRECTIVES
    directives = request_directives(cache_control, pragma)
    if rule.ignore_request_no_cache and directives.no_cache:
        directives = dataclasses.replace(directives, no_cache=False)
    return directives


def not_storable_reason(
    rule: CompiledRule,
    status: str,
    headers: Headers,
    *,
    method: str,
    request_authorization: bool,
    request_no_store: bool,
) -> NotStoredReason | None:
    """Why the response must not be stored (RFC 9111 section 3 and the rule), or ``None``.

    The lifetime is decided later (:func:`new_entry`); this is what the
    status line and headers alone tell, so it is known before the body is read.
    """
    # Targeted fields (RFC 9213) speak to a cache that honours HTTP; under "force"
    # Cache-Control's private and no-store still hold.
    directives = response_directives(headers, rule.targeted_fields if rule.policy == "http" else ())
    reason = why_not_storable(
        http.status_code(status),
        headers,
        directives,
        # Under "force" the rule's methods decide (a POST rule keys on the body).
        method=method if rule.policy == "http" else "GET",
        statuses=rule.statuses,
        request_no_store=request_no_store,
        request_authorization=request_authorization,
        allow_authorization=rule.allow_authorization,
        allow_set_cookie=rule.allow_set_cookie,
    )
    if reason is None and vary_names(headers) == "*":
        return "vary-star"
    return reason


def new_entry(
    rule: CompiledRule,
    status: str,
    headers: Headers,
    body: bytes,
    *,
    request_time: float,
    response_time: float,
    tags: tuple[tuple[str, bytes], ...],
) -> Entry | NotStoredReason:
    """The entry to store for a response, or why it is not worth storing.

    ``request_time`` and ``response_time`` are the Unix times the request
    went to the application and its response came back (RFC 9111 4.2.3).
    """
    directives = response_directives(headers, rule.targeted_fields)
    initial_age = corrected_initial_age(headers, request_time=request_time, response_time=response_time)
    stored_at = response_time - initial_age
    flags = 0
    stale_window = max(rule.stale_while_revalidate, rule.stale_if_error)
    if rule.policy == "http":
        lifetime = freshness_lifetime(
            http.status_code(status),
            headers,
            directives,
            response_time=response_time,
            timeout=rule.http_timeout,
            heuristic=rule.heuristic,
            heuristic_cap=HEURISTIC_CAP,
        )
        if lifetime is None:
            return "no-freshness"
        fresh_until = stored_at + lifetime.seconds
        if directives.no_cache:
            flags |= FLAG_NO_CACHE
        if directives.must_revalidate:
            flags |= FLAG_MUST_REVALIDATE
        else:
            stale_window = max(
                stale_window, directives.stale_while_revalidate or 0, directives.stale_if_error or 0
            )
        if has_validator(headers):
            stale_window = max(stale_window, rule.keep)
        elif flags & FLAG_NO_CACHE:
            return "no-freshness"  # to be revalidated before each use, and no validator to do it with
        stored_headers = storable_headers(
            headers, private_fields=directives.private_fields, no_cache_fields=directives.no_cache_fields
        )
    else:
        fresh_until = response_time + rule.timeout
        stored_headers = storable_headers(
            headers, private_fields=directives.private_fields, no_cache_fields=directives.no_cache_fields
        )
    stale_until = fresh_until + stale_window
    if stale_until <= response_time:
        return "no-freshness"  # already stale, and nothing allows serving or revalidating it
    return Entry(
        status,
        stored_headers,
        body,
        stored_at=stored_at,
        fresh_until=fresh_until,
        stale_until=stale_until,
        tags=tags,
        flags=flags,
    )


def reuse(rule: CompiledRule, entry: Entry, now: float, request: RequestDirectives) -> Reuse:
    """Whether a stored entry answers the request, as it is or after revalidation (RFC 9111 4.2, 4.3)."""
    stale_while_revalidate = rule.stale_while_revalidate
    validator = False
    if rule.policy == "http":
        validator = has_validator(entry.headers)
        if now >= entry.fresh_until and not entry.flags & FLAG_MUST_REVALIDATE:
            directives = response_directives(entry.headers, rule.targeted_fields)
            stale_while_revalidate = max(stale_while_revalidate, directives.stale_while_revalidate or 0)
    return classify(
        age=now - entry.stored_at,
        lifetime=entry.fresh_until - entry.stored_at,
        request=request,
        no_cache=bool(entry.flags & FLAG_NO_CACHE),
        must_revalidate=bool(entry.flags & FLAG_MUST_REVALIDATE),
        stale_while_revalidate=stale_while_revalidate,
        has_validator=validator,
    )


def stale_on_error(rule: CompiledRule, entry: Entry, now: float, request: RequestDirectives) -> bool:
    """Whether a stale entry may answer when the application fails (RFC 5861 4, RFC 9111 4.2.4)."""
    stale_if_error = rule.stale_if_error
    if rule.policy == "http":
        directives = response_directives(entry.headers, rule.targeted_fields)
        stale_if_error = max(stale_if_error, directives.stale_if_error or 0)
    return may_serve_stale_on_error(
        age=now - entry.stored_at,
        lifetime=entry.fresh_until - entry.stored_at,
        stale_if_error=stale_if_error,
        must_revalidate=bool(entry.flags & FLAG_MUST_REVALIDATE),
        no_cache=bool(entry.flags & FLAG_NO_CACHE),
        request=request,
    )


def refreshed_entry(
    rule: CompiledRule,
    stored: Entry,
    headers: Headers,
    *,
    request_time: float,
    response_time: float,
    tags: tuple[tuple[str, bytes], ...],
    head: bool = False,
    request_authorization: bool = False,
    request_no_store: bool = False,
) -> Entry | NotStoredReason | None:
    """The stored entry freshened by a ``304`` or ``HEAD`` response's ``headers`` (RFC 9111 4.3.4, 4.3.5).

    ``None`` when the response does not apply to the stored one (another
    validator): the caller then fetches the full response. The merged
    headers are judged as a new response's: a ``304`` that brings
    ``private``, ``no-store`` or ``Set-Cookie`` gives the reason it is no
    longer stored.
    """
    selected = select_for_update(
        stored.headers, headers, head=head, stored_length=len(stored.body), answers_revalidation=not head
    )
    if selected is not Freshening.UPDATE:
        return None
    if any(name.lower() == "vary" for name, _ in headers) and vary_names(headers) != vary_names(
        stored.headers
    ):
        return None  # the variant the entry is stored as would change: fetch the full response
    merged = updated_headers(stored.headers, headers)
    reason = not_storable_reason(
        rule,
        stored.status,
        merged,
        method="GET",
        request_authorization=request_authorization,
        request_no_store=request_no_store,
    )
    if reason is not None:
        return reason
    return new_entry(
        rule,
        stored.status,
        merged,
        stored.body,
        request_time=request_time,
        response_time=response_time,
        tags=tags,
    )


def downstream_headers(rule: CompiledRule, entry: Entry, now: float) -> list[tuple[str, str]]:
    """The headers a hit sends under ``emit_max_age``: freshness for the remaining lifetime.

    Like Django's ``patch_response_headers``, but for what the cache has left.
    """
    remaining = max(int(entry.fresh_until - now), 0)
    kept = [
        (name, value) for name, value in entry.headers if name.lower() not in ("cache-control", "expires")
    ]
    kept.append(("Cache-Control", f"max-age={remaining}"))
    kept.append(("Expires", formatdate(now + remaining, usegmt=True)))
    return kept
