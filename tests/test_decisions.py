"""The rule-aware decisions of wsgicache.decisions: plain values in, values out, no clock."""

from __future__ import annotations

from typing import Any

import pytest
from werkzeug.http import http_date

from wsgicache import Rule, decisions
from wsgicache.freshness import NO_REQUEST_DIRECTIVES, RequestDirectives, Reuse
from wsgicache.keys import KeySpace
from wsgicache.rules import CompiledRule
from wsgicache.storage import FLAG_MUST_REVALIDATE, FLAG_NO_CACHE, Entry

NOW = 1_700_000_000.0
H = list[tuple[str, str]]


def compiled(**options: Any) -> CompiledRule:
    return Rule("/p", **options).compile(KeySpace(""), 300.0)


HTTP = compiled(policy="http")
FORCE = compiled(timeout=60)


def entry_for(rule: CompiledRule, headers: H, *, status: str = "200 OK", age: float = 0.0) -> Entry:
    made = decisions.new_entry(
        rule, status, headers, b"body", request_time=NOW - age, response_time=NOW - age, tags=()
    )
    assert isinstance(made, Entry), made
    return made


# RFC 9111 section 3 (storing responses), with the rule's options: what the status line and
# headers alone decide, before the body is read.
@pytest.mark.parametrize(
    ("rule", "status", "headers", "authorization", "expected"),
    [
        (HTTP, "200 OK", [("Cache-Control", "max-age=60")], False, None),
        (HTTP, "404 Not Found", [("Cache-Control", "max-age=60")], False, None),  # statuses=None under http
        (FORCE, "404 Not Found", [], False, "status"),  # 200 only under force by default
        (compiled(timeout=60, statuses=[200, 404]), "404 Not Found", [], False, None),
        (HTTP, "206 Partial Content", [("Cache-Control", "max-age=60")], False, "partial"),
        (HTTP, "200 OK", [("Cache-Control", "private, max-age=60")], False, "private"),
        (FORCE, "200 OK", [("Cache-Control", "no-store")], False, "no-store"),
        (HTTP, "200 OK", [("Cache-Control", "max-age=60"), ("Vary", "*")], False, "vary-star"),
        (HTTP, "200 OK", [("Cache-Control", "max-age=60"), ("Set-Cookie", "a=1")], False, "set-cookie"),
        (compiled(policy="http", allow_set_cookie=True), "200 OK", [("Set-Cookie", "a=1")], False, None),
        # 3.5: a request with Authorization, only with public, s-maxage or must-revalidate
        (HTTP, "200 OK", [("Cache-Control", "max-age=60")], True, "authorization"),
        (HTTP, "200 OK", [("Cache-Control", "public, max-age=60")], True, None),
        (HTTP, "200 OK", [("Cache-Control", "s-maxage=60")], True, None),
        (HTTP, "200 OK", [("Cache-Control", "must-revalidate, max-age=60")], True, None),
        # RFC 9213: the targeted field is obeyed instead of Cache-Control
        (HTTP, "200 OK", [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")], False, None),
        (
            compiled(policy="http", targeted_fields=()),
            "200 OK",
            [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")],
            False,
            "no-store",
        ),
    ],
)
def test_not_storable_reason(
    rule: CompiledRule, status: str, headers: H, authorization: bool, expected: str | None
) -> None:
    reason = decisions.not_storable_reason(
        rule, status, headers, method="GET", request_authorization=authorization, request_no_store=False
    )
    assert reason == expected


def test_request_no_store_is_not_stored() -> None:
    reason = decisions.not_storable_reason(
        HTTP,
        "200 OK",
        [("Cache-Control", "max-age=60")],
        method="GET",
        request_authorization=False,
        request_no_store=True,
    )
    assert reason == "request-no-store"


# RFC 9111 4.2.1 (freshness lifetime), 4.2.2 (heuristics), 4.2.3 (age), and the rule's timeout:
# (fresh_until - response_time, stale_until - response_time), or why nothing is stored.
@pytest.mark.parametrize(
    ("rule", "headers", "expected"),
    [
        (HTTP, [], "no-freshness"),  # no explicit freshness: not stored
        (compiled(policy="http", timeout=30), [], (30.0, 30.0)),  # the rule's lifetime for those
        (HTTP, [("Cache-Control", "max-age=60")], (60.0, 60.0)),
        (HTTP, [("Cache-Control", "max-age=60, s-maxage=10")], (10.0, 10.0)),
        (HTTP, [("Cache-Control", "max-age=60"), ("Age", "50")], (10.0, 10.0)),
        (HTTP, [("Expires", http_date(NOW + 120)), ("Date", http_date(NOW))], (120.0, 120.0)),
        (HTTP, [("Cache-Control", "max-age=0")], "no-freshness"),  # stale at once, no validator
        # a validator keeps an expired entry for revalidation (keep=, 3600 s by default)
        (HTTP, [("Cache-Control", "max-age=0"), ("ETag", '"a"')], (0.0, 3600.0)),
        (compiled(policy="http", keep=10), [("Cache-Control", "max-age=5"), ("ETag", '"a"')], (5.0, 15.0)),
        (HTTP, [("Cache-Control", "no-cache")], "no-freshness"),  # revalidate each time, and no validator
        (HTTP, [("Cache-Control", "max-age=10, stale-while-revalidate=30")], (10.0, 40.0)),
        (HTTP, [("Cache-Control", "max-age=10, stale-if-error=50")], (10.0, 60.0)),
        (HTTP, [("Cache-Control", "max-age=10, must-revalidate, stale-if-error=50")], (10.0, 10.0)),
        (compiled(policy="http", stale_if_error=20), [("Cache-Control", "max-age=10")], (10.0, 30.0)),
        # heuristic freshness from Last-Modified, only when the rule allows it, capped at a day
        (HTTP, [("Last-Modified", http_date(NOW - 1000))], "no-freshness"),
        (compiled(policy="http", heuristic=0.1), [("Last-Modified", http_date(NOW - 1000))], (100.0, 3700.0)),
        (
            compiled(policy="http", heuristic=0.5),
            [("Last-Modified", http_date(NOW - 10 * 86400)), ("Cache-Control", "public")],
            (86400.0, 90000.0),
        ),
        # policy force: the rule's timeout, whatever the response says
        (FORCE, [("Cache-Control", "max-age=5")], (60.0, 60.0)),
        (compiled(timeout=60, stale_while_revalidate=10), [], (60.0, 70.0)),
    ],
)
def test_new_entry_lifetimes(rule: CompiledRule, headers: H, expected: Any) -> None:
    made = decisions.new_entry(rule, "200 OK", headers, b"x", request_time=NOW, response_time=NOW, tags=())
    if isinstance(expected, str):
        assert made == expected
    else:
        assert isinstance(made, Entry)
        assert (made.fresh_until - NOW, made.stale_until - NOW) == pytest.approx(expected)


# RFC 9111 5.2.2.2, 5.2.2.4, 5.2.2.8, 5.2.2.10: directives kept as entry flags for the hit path.
@pytest.mark.parametrize(
    ("headers", "flags"),
    [
        ([("Cache-Control", "max-age=60")], 0),
        ([("Cache-Control", "max-age=60, no-cache"), ("ETag", '"a"')], FLAG_NO_CACHE),
        ([("Cache-Control", "max-age=60, must-revalidate")], FLAG_MUST_REVALIDATE),
        ([("Cache-Control", "max-age=60, proxy-revalidate")], FLAG_MUST_REVALIDATE),
        ([("Cache-Control", "s-maxage=60")], FLAG_MUST_REVALIDATE),
    ],
)
def test_new_entry_flags(headers: H, flags: int) -> None:
    assert entry_for(HTTP, headers).flags == flags


# RFC 9111 3.1: fields never stored; those named by private="..." stay out of a shared cache.
def test_new_entry_stores_only_storable_fields() -> None:
    made = entry_for(
        HTTP,
        [
            ("Cache-Control", 'max-age=60, private="X-User"'),
            ("X-User", "alice"),
            ("Connection", "x-hop"),
            ("X-Hop", "1"),
            ("Age", "3"),
            ("Content-Type", "text/plain"),
        ],
    )
    assert [name for name, _ in made.headers] == ["Cache-Control", "Content-Type"]


# RFC 9111 4.2 and 5.2.1 (request directives), RFC 5861 3: whether a stored entry answers.
@pytest.mark.parametrize(
    ("rule", "headers", "age", "directives", "expected"),
    [
        (HTTP, [("Cache-Control", "max-age=60")], 10, NO_REQUEST_DIRECTIVES, Reuse.FRESH),
        (HTTP, [("Cache-Control", "max-age=60")], 70, NO_REQUEST_DIRECTIVES, Reuse.REFILL),
        (
            HTTP,
            [("Cache-Control", "max-age=60"), ("ETag", '"a"')],
            70,
            NO_REQUEST_DIRECTIVES,
            Reuse.REVALIDATE,
        ),
        (
            HTTP,
            [("Cache-Control", "max-age=60, no-cache"), ("ETag", '"a"')],
            1,
            NO_REQUEST_DIRECTIVES,
            Reuse.REVALIDATE,
        ),
        (HTTP, [("Cache-Control", "max-age=60")], 10, RequestDirectives(max_age=5), Reuse.REFILL),
        (HTTP, [("Cache-Control", "max-age=60")], 10, RequestDirectives(min_fresh=55), Reuse.REFILL),
        (HTTP, [("Cache-Control", "max-age=60")], 70, RequestDirectives(max_stale=20), Reuse.STALE_ALLOWED),
        (
            HTTP,
            [("Cache-Control", "max-age=60, must-revalidate")],
            70,
            RequestDirectives(max_stale=20),
            Reuse.REFILL,
        ),
        (HTTP, [("Cache-Control", "max-age=60")], 10, RequestDirectives(no_cache=True), Reuse.REFILL),
        (
            HTTP,
            [("Cache-Control", "max-age=60")],
            70,
            RequestDirectives(only_if_cached=True),
            Reuse.UNSATISFIABLE,
        ),
        (
            HTTP,
            [("Cache-Control", "max-age=60, stale-while-revalidate=30")],
            70,
            NO_REQUEST_DIRECTIVES,
            Reuse.STALE_WHILE_REVALIDATE,
        ),
        (
            HTTP,
            [("Cache-Control", "max-age=60, stale-while-revalidate=30")],
            95,
            NO_REQUEST_DIRECTIVES,
            Reuse.REFILL,
        ),
        # under force: the rule's window; never a revalidation (no conditional request is made)
        (
            compiled(timeout=60, stale_while_revalidate=30),
            [("ETag", '"a"')],
            70,
            NO_REQUEST_DIRECTIVES,
            Reuse.STALE_WHILE_REVALIDATE,
        ),
        (FORCE, [("ETag", '"a"')], 70, NO_REQUEST_DIRECTIVES, Reuse.REFILL),
    ],
)
def test_reuse(
    rule: CompiledRule, headers: H, age: float, directives: RequestDirectives, expected: Reuse
) -> None:
    made = entry_for(rule, headers)
    assert decisions.reuse(rule, made, NOW + age, directives) is expected


# Request directives count only under policy "http"; the rule may ignore no-cache (5.2.1.4).
@pytest.mark.parametrize(
    ("rule", "cache_control", "pragma", "expected"),
    [
        (FORCE, "no-cache", None, NO_REQUEST_DIRECTIVES),
        (HTTP, None, None, NO_REQUEST_DIRECTIVES),
        (HTTP, "no-cache", None, RequestDirectives(no_cache=True)),
        (HTTP, None, "no-cache", RequestDirectives(no_cache=True)),
        (compiled(policy="http", ignore_request_no_cache=True), "no-cache", None, RequestDirectives()),
        (
            compiled(policy="http", ignore_request_no_cache=True),
            "no-cache, max-age=5",
            None,
            RequestDirectives(max_age=5),
        ),
    ],
)
def test_request_directives_for(
    rule: CompiledRule, cache_control: str | None, pragma: str | None, expected: RequestDirectives
) -> None:
    assert decisions.request_directives_for(rule, cache_control, pragma) == expected


# RFC 5861 4 and RFC 9111 4.2.4: a stale entry for an application that fails.
@pytest.mark.parametrize(
    ("rule", "headers", "age", "expected"),
    [
        (HTTP, [("Cache-Control", "max-age=60")], 70, False),
        (HTTP, [("Cache-Control", "max-age=60, stale-if-error=30")], 70, True),
        (HTTP, [("Cache-Control", "max-age=60, stale-if-error=30")], 95, False),
        (compiled(policy="http", stale_if_error=30), [("Cache-Control", "max-age=60")], 70, True),
        (
            compiled(policy="http", stale_if_error=30),
            [("Cache-Control", "max-age=60, must-revalidate")],
            70,
            False,
        ),
        (
            compiled(policy="http", stale_if_error=30),
            [("Cache-Control", "max-age=60, no-cache"), ("ETag", "x")],
            70,
            False,
        ),
        (compiled(timeout=60, stale_if_error=30), [], 70, True),
    ],
)
def test_stale_on_error(rule: CompiledRule, headers: H, age: float, expected: bool) -> None:
    made = entry_for(rule, headers)
    assert decisions.stale_on_error(rule, made, NOW + age, NO_REQUEST_DIRECTIVES) is expected


# RFC 9111 4.3.4: a 304 freshens the stored entry: its headers are updated, its lifetime restarts.
def test_refreshed_entry_updates_headers_and_freshness() -> None:
    stored = entry_for(HTTP, [("Cache-Control", "max-age=10"), ("ETag", '"a"'), ("X-V", "1")], age=100)
    later = NOW + 5
    refreshed = decisions.refreshed_entry(
        HTTP,
        stored,
        [("Cache-Control", "max-age=3600"), ("X-V", "2"), ("Content-Length", "999")],
        request_time=later,
        response_time=later,
        tags=(("t:x", b"1"),),
    )
    assert isinstance(refreshed, Entry)
    assert refreshed.body == b"body" and refreshed.status == "200 OK"
    assert ("X-V", "2") in refreshed.headers and ("X-V", "1") not in refreshed.headers
    assert all(name != "Content-Length" for name, _ in refreshed.headers)  # never updated from a 304
    assert refreshed.fresh_until == pytest.approx(later + 3600)
    assert refreshed.tags == (("t:x", b"1"),)


def test_refreshed_entry_rejects_a_304_for_another_validator() -> None:
    stored = entry_for(HTTP, [("Cache-Control", "max-age=10"), ("ETag", '"a"')])
    refreshed = decisions.refreshed_entry(
        HTTP, stored, [("ETag", '"b"')], request_time=NOW, response_time=NOW, tags=()
    )
    assert refreshed is None


# Django's patch_response_headers, for what the cache has left (emit_max_age=True under force).
def test_downstream_headers_carry_the_remaining_lifetime() -> None:
    rule = compiled(timeout=60, emit_max_age=True)
    made = entry_for(rule, [("Cache-Control", "max-age=5"), ("Content-Type", "text/plain")])
    headers = dict(decisions.downstream_headers(rule, made, NOW + 20))
    assert headers["Cache-Control"] == "max-age=40"
    assert headers["Expires"] == http_date(NOW + 60)
    assert headers["Content-Type"] == "text/plain"
