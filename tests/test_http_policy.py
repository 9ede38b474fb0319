"""Request-level tests of ``Rule(..., policy="http")``, an RFC 9111 shared cache, through the middleware.

Also the features that apply under every policy (ranges, invalidation by
unsafe methods, Set-Cookie) and ``emit_max_age`` under ``policy="force"``.
Every app is wrapped in ``wsgiref.validate`` (by ``helpers.cached``) and time
moves only with a :class:`~helpers.FakeClock`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from email.utils import formatdate
from typing import Any
from wsgiref.validate import validator

import pytest
from helpers import FakeClock, StartResponse, cached, call, make_environ
from webtest import TestApp

from wsgicache import CacheMiddleware, ConfigurationError, Rule
from wsgicache.backends.memory import MemoryBackend

Headers = list[tuple[str, str]]
Body = bytes | Callable[[dict[str, Any]], bytes]


def http_date(when: float) -> str:
    return formatdate(when, usegmt=True)


def http_rule(**options: Any) -> Rule:
    return Rule("/<path:rest>", policy="http", **options)


def force_rule(**options: Any) -> Rule:
    return Rule("/<path:rest>", **options)


class Origin:
    """A WSGI application answering like an origin server, conditional requests included.

    ``headers`` are its response fields (``ETag`` and ``Last-Modified`` come
    from ``etag`` and ``last_modified``); it answers ``304`` when the request's
    ``If-None-Match`` names its ``etag`` or, without ``If-None-Match``, when
    ``If-Modified-Since`` equals its ``last_modified``. ``script`` holds
    responses answered first, whatever the request. Every environ is recorded.
    """

    def __init__(self, headers: Headers | None = None, body: Body = b"version 1") -> None:
        self.status = "200 OK"
        self.headers: Headers = headers if headers is not None else [("Cache-Control", "max-age=60")]
        self.body: Body = body
        self.etag: str | None = None
        self.last_modified: str | None = None
        #: the fields of a 304 (default: the validators and ``headers`` without Content-Type)
        self.not_modified_headers: Headers | None = None
        self.script: list[tuple[str, Headers, bytes]] = []
        self.calls: list[dict[str, Any]] = []
        self.fail = False
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return len(self.calls)

    @property
    def last(self) -> dict[str, Any]:
        return self.calls[-1]

    def _validators(self) -> Headers:
        found: Headers = []
        if self.etag is not None:
            found.append(("ETag", self.etag))
        if self.last_modified is not None:
            found.append(("Last-Modified", self.last_modified))
        return found

    def _not_modified(self, environ: dict[str, Any]) -> bool:
        if_none_match = environ.get("HTTP_IF_NONE_MATCH")
        if if_none_match is not None:
            return self.etag is not None and self.etag in [t.strip() for t in if_none_match.split(",")]
        since = environ.get("HTTP_IF_MODIFIED_SINCE")
        return since is not None and since == self.last_modified

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.calls.append(dict(environ))
        if self.script:
            status, headers, body = self.script.pop(0)
            if not status.startswith("304"):
                headers = [*headers, ("Content-Length", str(len(body)))]
            start_response(status, headers)
            return [body]
        if self.fail:
            body = b"origin down"
            start_response(
                "500 Internal Server Error",
                [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if self.status.startswith("200") and self._not_modified(environ):
            fields = self.not_modified_headers
            if fields is None:
                fields = [*self._validators(), *self.headers]
            start_response("304 Not Modified", [h for h in fields if h[0].lower() != "content-type"])
            return []
        body = self.body(environ) if callable(self.body) else self.body
        headers = [("Content-Type", "text/plain"), *self._validators(), *self.headers]
        start_response(self.status, [*headers, ("Content-Length", str(len(body)))])
        return [body]


def client_for(
    origin: Any, rules: list[Rule], clock: FakeClock | None = None, **options: Any
) -> tuple[TestApp, CacheMiddleware, FakeClock]:
    clock = clock or FakeClock()
    client, middleware = cached(origin, rules, clock=clock, **options)
    return client, middleware, clock


def x_cache(client: TestApp, path: str = "/p", **kwargs: Any) -> str:
    return str(client.get(path, **kwargs).headers["X-Cache"])


class CountingBackend(MemoryBackend):
    """The memory backend, counting read round trips (``get`` and ``get_many``)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.reads = 0

    def get(self, key: str) -> bytes | None:
        self.reads += 1
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self.reads += 1
        return super().get_many(keys)


def wait_for_refreshes(middleware: CacheMiddleware) -> None:
    for _ in range(500):
        if len(middleware._coalescer) == 0:
            return
        threading.Event().wait(0.01)
    raise AssertionError("the background refresh did not finish")


# --------------------------------------------------------------------------- RFC 9111 3: storing


@pytest.mark.parametrize(
    "headers",
    [[], [("Cache-Control", "public")], [("Expires", "0")], [("Cache-Control", "max-age=0")]],
    ids=["none", "public", "expires-0", "max-age-0"],
)
def test_no_explicit_freshness_is_not_stored(headers: Headers) -> None:
    """RFC 9111 3, 4.2.2, 5.3: without (positive) freshness and no heuristic, nothing is stored."""
    origin = Origin(headers=headers)
    client, middleware, _ = client_for(origin, [http_rule()])
    assert x_cache(client) == "MISS"
    assert x_cache(client) == "MISS"
    assert origin.count == 2
    stats = middleware.stats()
    assert stats["stores"] == 0 and stats["not_stored"] == 2


def test_rule_timeout_is_the_lifetime_of_responses_without_freshness() -> None:
    """RFC 9111 4.2.2: the rule's timeout stands in for the missing freshness (nginx proxy_cache_valid)."""
    origin = Origin(headers=[])
    client, _, clock = client_for(origin, [http_rule(timeout=60)])
    assert x_cache(client) == "MISS"
    clock.advance(59)
    assert x_cache(client) == "HIT"
    clock.advance(2)
    assert x_cache(client) == "MISS"
    assert origin.count == 2


def test_rule_timeout_does_not_override_explicit_freshness() -> None:
    """RFC 9111 4.2.1: an explicit max-age wins over the rule's timeout."""
    origin = Origin(headers=[("Cache-Control", "max-age=10")])
    client, _, clock = client_for(origin, [http_rule(timeout=600)])
    client.get("/p")
    clock.advance(11)
    assert x_cache(client) == "MISS"
    assert origin.count == 2


def test_heuristic_freshness_from_last_modified() -> None:
    """RFC 9111 4.2.2: heuristic=0.1 keeps a response fresh for a tenth of its age since Last-Modified."""
    clock = FakeClock()
    origin = Origin(headers=[])
    origin.last_modified = http_date(clock.now - 1000)
    client, _, _ = client_for(origin, [http_rule(heuristic=0.1)], clock)
    assert x_cache(client) == "MISS"
    clock.advance(99)
    assert x_cache(client) == "HIT"
    clock.advance(2)
    client.get("/p")
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_MODIFIED_SINCE") == origin.last_modified  # revalidated


def test_heuristic_freshness_is_capped_at_one_day() -> None:
    """RFC 9111 4.2.2: a heuristic lifetime is bounded (here: one day), however old Last-Modified is."""
    clock = FakeClock(now=100 * 86400.0)
    origin = Origin(headers=[])
    origin.last_modified = http_date(clock.now - 90 * 86400)  # a tenth of it: 9 days
    client, _, _ = client_for(origin, [http_rule(heuristic=0.1)], clock)
    client.get("/p")
    clock.advance(86399)
    assert x_cache(client) == "HIT"
    clock.advance(2)
    client.get("/p")
    assert origin.count == 2


def test_heuristic_needs_last_modified() -> None:
    """RFC 9111 4.2.2: without Last-Modified there is nothing to base a heuristic on."""
    origin = Origin(headers=[])
    client, _, _ = client_for(origin, [http_rule(heuristic=0.1)])
    assert x_cache(client) == "MISS"
    assert x_cache(client) == "MISS"


@pytest.mark.parametrize(
    "backend",
    [
        "memory://?default_timeout=600",
        {"LOCATION": "memory://", "TIMEOUT": 600},
    ],
)
def test_backend_default_timeout_never_applies_under_http(backend: Any) -> None:
    """The backend's TIMEOUT is force's default lifetime; under "http" it is never one."""
    origin = Origin(headers=[])
    client, _, clock = client_for(
        origin, [Rule("/forced"), Rule("/timed", policy="http", timeout=60), http_rule()], backend=backend
    )
    # policy="force" without timeout: the backend's TIMEOUT (600 s) is the lifetime.
    client.get("/forced")
    clock.advance(599)
    assert x_cache(client, "/forced") == "HIT"
    # policy="http", no freshness, no timeout: not stored at all.
    assert x_cache(client, "/other") == "MISS"
    assert x_cache(client, "/other") == "MISS"
    # policy="http" with timeout=60: 60 s, not 600.
    client.get("/timed")
    clock.advance(61)
    assert x_cache(client, "/timed") == "MISS"


@pytest.mark.parametrize(
    "headers",
    [
        [("Cache-Control", "private, max-age=60")],
        [("Cache-Control", "max-age=60, no-store")],
        [("Cache-Control", "max-age=60"), ("Vary", "*")],
        [("Cache-Control", "max-age=60"), ("Vary", "Accept-Language, *")],
    ],
    ids=["private", "no-store", "vary-star", "vary-list-with-star"],
)
def test_responses_a_shared_cache_must_not_store(headers: Headers) -> None:
    """RFC 9111 3, 4.1, 5.2.2.5 and 5.2.2.7: private, no-store and Vary: * are never stored."""
    origin = Origin(headers=headers)
    client, middleware, _ = client_for(origin, [http_rule(timeout=60)])
    assert x_cache(client) == "MISS"
    assert x_cache(client) == "MISS"
    assert origin.count == 2
    assert middleware.stats()["stores"] == 0


@pytest.mark.parametrize("policy", ["force", "http"])
def test_set_cookie_is_not_stored_unless_allowed(policy: str) -> None:
    """Under every policy a response setting a cookie is not shared, unless the rule opts in."""
    origin = Origin(headers=[("Cache-Control", "max-age=60"), ("Set-Cookie", "session=abc")])
    client, _, _ = client_for(origin, [Rule("/<path:rest>", policy=policy, timeout=60)])
    assert x_cache(client) == "MISS"
    assert x_cache(client) == "MISS"
    assert origin.count == 2

    origin = Origin(headers=[("Cache-Control", "max-age=60"), ("Set-Cookie", "session=abc")])
    client, _, _ = client_for(
        origin, [Rule("/<path:rest>", policy=policy, timeout=60, allow_set_cookie=True)]
    )
    client.get("/p")
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["Set-Cookie"] == "session=abc"
    assert origin.count == 1


@pytest.mark.parametrize(
    "cache_control", ["max-age=60", "public, max-age=60", "s-maxage=60", "max-age=60, must-revalidate"]
)
def test_authorization_request_bypasses_under_http_too(cache_control: str) -> None:
    """SPEC: a request with Authorization is never looked up nor stored by default, under every policy.

    RFC 9111 3.5 would let a shared cache store it with public, s-maxage or
    must-revalidate and serve it to everyone; a per-user API page sent with
    "max-age=60, must-revalidate" would then reach other users.
    """
    origin = Origin(headers=[("Cache-Control", cache_control)])
    client, _, _ = client_for(origin, [http_rule()])
    for who in ("Bearer alice", "Bearer alice", "Bearer bob"):
        assert client.get("/p", headers={"Authorization": who}).headers["X-Cache"] == "BYPASS"
    assert client.get("/p").headers["X-Cache"] == "MISS"  # the anonymous response is stored apart
    assert client.get("/p").headers["X-Cache"] == "HIT"
    assert origin.count == 4


def test_allow_authorization_under_http_keys_entries_per_credential() -> None:
    """Rule(allow_authorization=True, vary=["Authorization"]): each credential gets entries of its own."""
    origin = Origin(headers=[("Cache-Control", "max-age=60")])
    client, _, _ = client_for(origin, [http_rule(allow_authorization=True, vary=["Authorization"])])
    alice, bob = {"Authorization": "Bearer alice"}, {"Authorization": "Bearer bob"}
    assert client.get("/p", headers=alice).headers["X-Cache"] == "MISS"
    assert client.get("/p", headers=alice).headers["X-Cache"] == "HIT"
    assert client.get("/p", headers=bob).headers["X-Cache"] == "MISS"
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert origin.count == 3


@pytest.mark.parametrize(
    ("status", "extra"),
    [
        ("404 Not Found", []),
        ("301 Moved Permanently", [("Location", "http://localhost/elsewhere")]),
        ("500 Internal Server Error", []),
    ],
)
def test_any_final_status_with_freshness_is_stored_under_http(status: str, extra: Headers) -> None:
    """RFC 9111 3: every final status may be stored with explicit freshness (statuses=None)."""
    origin = Origin(headers=[("Cache-Control", "max-age=60"), *extra])
    origin.status = status
    code = int(status[:3])
    client, _, _ = client_for(origin, [http_rule()])
    assert client.get("/p", status=code).headers["X-Cache"] == "MISS"
    hit = client.get("/p", status=code)
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.status == status
    assert origin.count == 1

    # Under policy="force" only 200 is stored by default.
    origin = Origin(headers=[("Cache-Control", "max-age=60"), *extra])
    origin.status = status
    client, _, _ = client_for(origin, [force_rule(timeout=60)])
    client.get("/p", status=code)
    assert client.get("/p", status=code).headers["X-Cache"] == "MISS"
    assert origin.count == 2


def test_statuses_option_restricts_what_http_stores() -> None:
    """A rule's explicit statuses narrow what "http" stores."""
    origin = Origin(headers=[("Cache-Control", "max-age=60")])
    origin.status = "404 Not Found"
    client, _, _ = client_for(origin, [http_rule(statuses=[200])])
    client.get("/p", status=404)
    assert client.get("/p", status=404).headers["X-Cache"] == "MISS"


def test_request_no_store_is_not_stored() -> None:
    """RFC 9111 5.2.1.5: a request's no-store forbids storing the response to it."""
    origin = Origin(headers=[("Cache-Control", "max-age=60")])
    client, _, _ = client_for(origin, [http_rule()])
    assert client.get("/p", headers={"Cache-Control": "no-store"}).headers["X-Cache"] == "MISS"
    assert x_cache(client) == "MISS"
    assert x_cache(client) == "HIT"


# --------------------------------------------------------------------------- RFC 9111 4.2: freshness


@pytest.mark.parametrize(
    "headers",
    [
        [("Cache-Control", "max-age=100, s-maxage=10"), ("Expires", "EXPIRES+1000")],
        [("Cache-Control", "max-age=10"), ("Expires", "EXPIRES+1000")],
        # Expires minus Date, not minus now: a Date 100 s ahead (apparent age 0) leaves 10 s, not 110.
        [("Date", "DATE+100"), ("Expires", "EXPIRES+110")],
    ],
    ids=["s-maxage-over-max-age", "max-age-over-expires", "expires-minus-date"],
)
def test_freshness_lifetime_precedence(headers: Headers) -> None:
    """RFC 9111 4.2.1: s-maxage, then max-age, then Expires minus Date."""
    clock = FakeClock()

    def resolve(value: str) -> str:
        if "+" in value and value.split("+")[0] in ("DATE", "EXPIRES"):
            return http_date(clock.now + int(value.split("+")[1]))
        return value

    origin = Origin(headers=[(name, resolve(value)) for name, value in headers])
    client, _, _ = client_for(origin, [http_rule()], clock)
    assert x_cache(client) == "MISS"
    clock.advance(9)
    assert x_cache(client) == "HIT"
    clock.advance(2)
    assert x_cache(client) == "MISS"
    assert origin.count == 2


def test_age_from_the_application_counts() -> None:
    """RFC 9111 4.2.3: the Age the response arrives with is part of its current age."""
    origin = Origin(headers=[("Cache-Control", "max-age=60"), ("Age", "50")])
    client, _, clock = client_for(origin, [http_rule()])
    first = client.get("/p")
    assert first.headers["X-Cache"] == "MISS"
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT" and hit.headers.getall("Age") == ["50"]
    clock.advance(9)
    assert x_cache(client) == "HIT"
    clock.advance(2)
    assert x_cache(client) == "MISS"
    assert origin.count == 2


def test_age_header_on_a_hit_grows_with_the_clock() -> None:
    """RFC 9111 5.1: a hit carries its current age, replacing any stored Age."""
    origin = Origin(headers=[("Cache-Control", "max-age=100")])
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    ages = []
    for step in (0, 7, 30):
        clock.advance(step)
        response = client.get("/p")
        assert response.headers["X-Cache"] == "HIT"
        assert len(response.headers.getall("Age")) == 1
        ages.append(response.headers["Age"])
    assert ages == ["0", "7", "37"]


# --------------------------------------------------------------------------- RFC 9111 5.2.1: requests


def etag_origin(cache_control: str = "max-age=60") -> Origin:
    origin = Origin(headers=[("Cache-Control", cache_control)])
    origin.etag = '"v1"'
    return origin


@pytest.mark.parametrize(
    "request_headers",
    [{"Cache-Control": "max-age=0"}, {"Cache-Control": "no-cache"}, {"Pragma": "no-cache"}],
    ids=["max-age=0", "no-cache", "pragma"],
)
def test_request_directives_send_a_fresh_entry_to_revalidation(request_headers: dict[str, str]) -> None:
    """RFC 9111 5.2.1.1, 5.2.1.4, 5.4: the client wants the origin asked; with a validator, conditionally."""
    origin = etag_origin()
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(1)  # max-age=0 accepts an age of 0 (RFC 9111 5.2.1.1: "less than or equal")
    response = client.get("/p", headers=request_headers)
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert response.status_int == 200 and response.body == b"version 1"
    assert middleware.stats()["revalidated"] == 1
    assert x_cache(client) == "HIT"


def test_request_no_cache_without_a_validator_fetches_anew() -> None:
    """RFC 9111 5.2.1.4: no validator to revalidate with: a full request, and the new response stored."""
    origin = Origin()
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p")
    origin.body = b"version 2"
    response = client.get("/p", headers={"Cache-Control": "no-cache"})
    assert response.headers["X-Cache"] == "MISS" and response.body == b"version 2"
    assert "HTTP_IF_NONE_MATCH" not in origin.last and "HTTP_IF_MODIFIED_SINCE" not in origin.last
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT" and hit.body == b"version 2"


def test_pragma_is_ignored_when_the_request_has_cache_control() -> None:
    """RFC 9111 5.4: Pragma: no-cache only counts without a Cache-Control field."""
    origin = etag_origin()
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p")
    headers = {"Pragma": "no-cache", "Cache-Control": "max-stale=5"}
    assert client.get("/p", headers=headers).headers["X-Cache"] == "HIT"
    assert origin.count == 1


def test_ignore_request_no_cache_keeps_serving_hits() -> None:
    """A rule can ignore clients' no-cache (reload floods); other request directives still count."""
    origin = etag_origin()
    client, _, clock = client_for(origin, [http_rule(ignore_request_no_cache=True)])
    client.get("/p")
    assert client.get("/p", headers={"Cache-Control": "no-cache"}).headers["X-Cache"] == "HIT"
    assert client.get("/p", headers={"Pragma": "no-cache"}).headers["X-Cache"] == "HIT"
    assert origin.count == 1
    clock.advance(1)
    client.get("/p", headers={"Cache-Control": "max-age=0"})
    assert origin.count == 2


def test_max_stale_serves_a_stale_entry() -> None:
    """RFC 9111 5.2.1.2: max-stale accepts a stale response, within its bound if it has one."""
    origin = etag_origin("max-age=10")
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(15)  # stale by 5 s
    for directive in ("max-stale=10", "max-stale"):
        response = client.get("/p", headers={"Cache-Control": directive})
        assert response.headers["X-Cache"] == "STALE" and response.body == b"version 1"
        assert response.headers["Age"] == "15"
    assert origin.count == 1
    assert middleware.stats()["stale"] == 2
    # Beyond the bound: revalidated with the origin.
    client.get("/p", headers={"Cache-Control": "max-stale=2"})
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'


def test_min_fresh() -> None:
    """RFC 9111 5.2.1.3: min-fresh asks for a response fresh for at least that much longer."""
    origin = etag_origin("max-age=60")
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(50)  # 10 s of freshness left
    assert client.get("/p", headers={"Cache-Control": "min-fresh=5"}).headers["X-Cache"] == "HIT"
    assert origin.count == 1
    client.get("/p", headers={"Cache-Control": "min-fresh=20"})
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'


def test_request_max_age() -> None:
    """RFC 9111 5.2.1.1: max-age=N refuses a stored response older than N seconds."""
    origin = Origin(headers=[("Cache-Control", "max-age=60")])
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(20)
    assert client.get("/p", headers={"Cache-Control": "max-age=30"}).headers["X-Cache"] == "HIT"
    assert client.get("/p", headers={"Cache-Control": "max-age=10"}).headers["X-Cache"] == "MISS"
    assert origin.count == 2


def test_only_if_cached() -> None:
    """RFC 9111 5.2.1.7: only-if-cached answers from the cache or 504, never from the origin."""
    origin = Origin(headers=[("Cache-Control", "max-age=10")])
    client, _, clock = client_for(origin, [http_rule()])
    only = {"Cache-Control": "only-if-cached"}
    response = client.get("/p", headers=only, status=504)
    assert response.headers["X-Cache"] == "MISS"
    assert origin.count == 0
    client.get("/p")
    assert client.get("/p", headers=only).headers["X-Cache"] == "HIT"
    clock.advance(11)
    client.get("/p", headers=only, status=504)
    assert origin.count == 1


@pytest.mark.parametrize(
    "request_headers",
    [
        {"Cache-Control": "no-cache"},
        {"Cache-Control": "max-age=0"},
        {"Pragma": "no-cache"},
        {"Cache-Control": "min-fresh=1000"},
        {"Cache-Control": "no-store"},
    ],
)
def test_request_directives_are_ignored_under_force(request_headers: dict[str, str]) -> None:
    """Under policy="force" the rule alone decides: request directives do not count."""
    origin = etag_origin()
    client, _, _ = client_for(origin, [force_rule(timeout=60)])
    assert client.get("/p", headers=request_headers).headers["X-Cache"] == "MISS"
    assert client.get("/p", headers=request_headers).headers["X-Cache"] == "HIT"
    assert origin.count == 1


def test_only_if_cached_is_ignored_under_force() -> None:
    """Under policy="force" only-if-cached does not turn a miss into a 504."""
    origin = Origin()
    client, _, _ = client_for(origin, [force_rule(timeout=60)])
    response = client.get("/p", headers={"Cache-Control": "only-if-cached"})
    assert response.status_int == 200 and response.headers["X-Cache"] == "MISS"


# --------------------------------------------------------------------------- RFC 9111 4.3: validation


def test_stale_entry_is_revalidated_with_its_etag() -> None:
    """RFC 9111 4.3.1, 4.3.3, 4.3.4: a 304 freshens the stored response and updates its fields."""
    origin = etag_origin("max-age=10")
    origin.headers.append(("X-Version", "a"))
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.headers = [("Cache-Control", "max-age=30"), ("X-Version", "b")]
    origin.body = b"never sent in full"
    response = client.get(
        "/p",
        headers={"If-None-Match": '"client-tag"', "If-Modified-Since": http_date(clock.now - 5)},
    )
    # The cache's own conditional request, not the client's.
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert "HTTP_IF_MODIFIED_SINCE" not in origin.last
    assert response.status_int == 200
    assert response.body == b"version 1"
    assert response.headers["X-Version"] == "b"
    assert response.headers["Cache-Control"] == "max-age=30"
    assert response.headers["ETag"] == '"v1"'
    assert response.headers["Content-Length"] == str(len(b"version 1"))
    assert response.headers["X-Cache"] == "MISS"  # the origin was asked
    assert middleware.stats()["revalidated"] == 1
    # The freshened entry lives by its new max-age.
    clock.advance(29)
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.body == b"version 1" and hit.headers["X-Version"] == "b"
    assert origin.count == 2


def test_stale_entry_is_revalidated_with_its_last_modified() -> None:
    """RFC 9111 4.3.1: a Last-Modified validator is sent as If-Modified-Since."""
    clock = FakeClock()
    origin = Origin(headers=[("Cache-Control", "max-age=10")])
    origin.last_modified = http_date(clock.now - 3600)
    client, middleware, _ = client_for(origin, [http_rule()], clock)
    client.get("/p")
    clock.advance(11)
    response = client.get("/p")
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_MODIFIED_SINCE") == origin.last_modified
    assert "HTTP_IF_NONE_MATCH" not in origin.last
    assert response.body == b"version 1"
    assert middleware.stats()["revalidated"] == 1
    assert x_cache(client) == "HIT"


def test_revalidation_answered_200_replaces_the_entry() -> None:
    """RFC 9111 4.3.3: a full response to the conditional request replaces the stored one."""
    origin = etag_origin("max-age=10")
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.etag, origin.body = '"v2"', b"version 2"
    response = client.get("/p")
    assert response.body == b"version 2" and response.headers["ETag"] == '"v2"'
    assert middleware.stats()["revalidated"] == 0
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT" and hit.body == b"version 2"


def test_304_with_another_strong_etag_fetches_the_full_response() -> None:
    """RFC 9111 4.3.4: a 304 whose strong validator differs from the stored one does not freshen it."""
    origin = etag_origin("max-age=10")
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.script = [("304 Not Modified", [("ETag", '"v2"'), ("Cache-Control", "max-age=60")], b"")]
    origin.etag, origin.body = '"v3"', b"version 3"
    response = client.get("/p")
    assert origin.count == 3
    assert origin.calls[1].get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert "HTTP_IF_NONE_MATCH" not in origin.calls[2]  # the full, unconditional request
    assert response.status_int == 200 and response.body == b"version 3"
    assert response.headers["ETag"] == '"v3"'
    assert middleware.stats()["revalidated"] == 0
    assert client.get("/p").body == b"version 3"
    assert origin.count == 3


def test_response_no_cache_is_stored_and_revalidated_on_every_use() -> None:
    """RFC 9111 5.2.2.4: no-cache may be stored, but never reused without revalidation."""
    origin = etag_origin("no-cache")
    client, middleware, _ = client_for(origin, [http_rule()])
    assert client.get("/p").body == b"version 1"
    for _ in range(3):
        response = client.get("/p")
        assert response.status_int == 200 and response.body == b"version 1"
        assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert origin.count == 4
    assert middleware.stats()["revalidated"] == 3
    # When the origin has a new version, the next use gets it.
    origin.etag, origin.body = '"v2"', b"version 2"
    assert client.get("/p").body == b"version 2"


def test_response_no_cache_without_validator_is_not_stored() -> None:
    """RFC 9111 5.2.2.4: no-cache and no validator: nothing to revalidate with, so nothing is reused."""
    origin = Origin(headers=[("Cache-Control", "no-cache, max-age=60")])
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p")
    client.get("/p")
    assert origin.count == 2
    assert all("HTTP_IF_NONE_MATCH" not in call for call in origin.calls)


@pytest.mark.parametrize("must_revalidate", [True, False])
def test_must_revalidate_is_never_served_stale(must_revalidate: bool) -> None:
    """RFC 9111 5.2.2.2, 4.2.4: must-revalidate forbids stale responses: not for max-stale, not on errors."""
    cache_control = "max-age=10, must-revalidate" if must_revalidate else "max-age=10"
    origin = etag_origin(cache_control)
    client, _, clock = client_for(origin, [http_rule(stale_if_error=600)])
    client.get("/p")
    clock.advance(11)
    # The client accepts a stale response...
    response = client.get("/p", headers={"Cache-Control": "max-stale=600"})
    if must_revalidate:
        assert origin.count == 2 and origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
        assert response.headers["X-Cache"] == "MISS"
    else:
        assert origin.count == 1 and response.headers["X-Cache"] == "STALE"
    # ...and the origin fails on revalidation.
    clock.advance(11)
    origin.fail = True
    response = client.get("/p", expect_errors=True)
    if must_revalidate:
        assert response.status_int == 500 and response.body == b"origin down"
        assert response.headers["X-Cache"] == "MISS"
    else:
        assert response.status_int == 200 and response.headers["X-Cache"] == "STALE"
        assert response.body == b"version 1"


def test_s_maxage_implies_proxy_revalidate() -> None:
    """RFC 9111 5.2.2.10: s-maxage also forbids a shared cache to serve the response stale."""
    origin = etag_origin("s-maxage=10")
    client, _, clock = client_for(origin, [http_rule(stale_if_error=600)])
    client.get("/p")
    clock.advance(11)
    origin.fail = True
    assert client.get("/p", status=500).headers["X-Cache"] == "MISS"


def test_client_if_none_match_gets_304_after_revalidation() -> None:
    """RFC 9110 13.2.2: the client's own precondition is evaluated on the freshened response."""
    origin = etag_origin("max-age=10")
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    response = client.get("/p", headers={"If-None-Match": '"v1"'}, status=304)
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert response.body == b""
    assert response.headers["ETag"] == '"v1"'
    assert origin.count == 2
    # And on the next, fresh, use from the cache.
    response = client.get("/p", headers={"If-None-Match": '"v1"'}, status=304)
    assert response.headers["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    "not_modified",
    [
        [("ETag", '"v1"'), ("Cache-Control", "max-age=60"), ("Set-Cookie", "session=alice")],
        [("ETag", '"v1"'), ("Cache-Control", "private, max-age=60")],
        [("ETag", '"v1"'), ("Cache-Control", "no-store, max-age=60")],
    ],
    ids=["set-cookie", "private", "no-store"],
)
def test_304_that_forbids_storing_is_not_stored(not_modified: Headers) -> None:
    """RFC 9111 3, 3.2: the freshened response is stored only if a shared cache may store it."""
    origin = etag_origin("max-age=10")
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.not_modified_headers = not_modified
    revalidating = client.get("/p")
    assert revalidating.body == b"version 1"
    following = client.get("/p")
    assert origin.count == 3
    assert following.headers["X-Cache"] == "MISS"
    assert "Set-Cookie" not in following.headers


def test_request_no_store_does_not_store_a_revalidation() -> None:
    """RFC 9111 5.2.1.5: no part of a response to a no-store request is stored."""
    origin = etag_origin("max-age=10")
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.headers = [("Cache-Control", "max-age=60")]
    client.get("/p", headers={"Cache-Control": "no-store"})
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert middleware.stats()["stores"] == 1


def test_response_stale_if_error() -> None:
    """RFC 5861 4: the response's stale-if-error lets a stale entry answer for a failing origin."""
    origin = etag_origin("max-age=10, stale-if-error=60")
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.fail = True
    response = client.get("/p")
    assert (response.headers["X-Cache"], response.body) == ("STALE", b"version 1")
    clock.advance(60)
    assert client.get("/p", status=500).headers["X-Cache"] == "MISS"


def test_response_max_age_0_with_validator_is_kept_for_revalidation() -> None:
    """RFC 9111 4.3: an already stale response with a validator is worth keeping to revalidate."""
    origin = etag_origin("max-age=0")
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p")
    client.get("/p")
    assert origin.count == 2
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'


def test_client_preconditions_on_a_miss_are_answered_by_the_cache() -> None:
    """RFC 9111 4.3.2: the cache fetches the whole response, stores it, and answers the client's condition."""
    origin = etag_origin()
    client, _, _ = client_for(origin, [http_rule()])
    response = client.get("/p", headers={"If-None-Match": '"v1"'}, status=304)
    assert response.headers["X-Cache"] == "MISS"
    assert "HTTP_IF_NONE_MATCH" not in origin.last
    hit = client.get("/p")
    assert (hit.headers["X-Cache"], hit.body) == ("HIT", b"version 1")


def test_stale_entry_without_validator_is_fetched_unconditionally() -> None:
    """RFC 9111 4: a stale response without a validator cannot be revalidated; it is replaced."""
    origin = Origin(headers=[("Cache-Control", "max-age=10")])
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)
    origin.body = b"version 2"
    assert client.get("/p").body == b"version 2"
    assert "HTTP_IF_NONE_MATCH" not in origin.last and "HTTP_IF_MODIFIED_SINCE" not in origin.last


# --------------------------------------------------------------------------- RFC 9111 4.1: Vary


def language_body(environ: dict[str, Any]) -> bytes:
    return f"lang={environ.get('HTTP_ACCEPT_LANGUAGE')!r}".encode()


def vary_origin(vary: str = "Accept-Language") -> Origin:
    return Origin(headers=[("Cache-Control", "max-age=60"), ("Vary", vary)], body=language_body)


def test_variants_coexist() -> None:
    """RFC 9111 4.1: each variant answers the requests whose selecting fields match it."""
    origin = vary_origin()
    client, _, _ = client_for(origin, [http_rule()])
    en, de, fr = ({"Accept-Language": lang} for lang in ("en", "de", "fr"))
    assert client.get("/p", headers=en).headers["X-Cache"] == "MISS"
    assert client.get("/p", headers=de).headers["X-Cache"] == "MISS"
    for _ in range(2):
        hit_en = client.get("/p", headers=en)
        hit_de = client.get("/p", headers=de)
        assert (hit_en.headers["X-Cache"], hit_en.body) == ("HIT", b"lang='en'")
        assert (hit_de.headers["X-Cache"], hit_de.body) == ("HIT", b"lang='de'")
    assert origin.count == 2
    response = client.get("/p", headers=fr)
    assert (response.headers["X-Cache"], response.body) == ("MISS", b"lang='fr'")
    assert origin.count == 3


def test_vary_names_are_normalised() -> None:
    """RFC 9110 5.1, 12.5.5: Vary names are case-insensitive; their order and spacing do not matter."""
    origin = vary_origin("Accept-Language, Accept-Encoding")
    client, _, _ = client_for(origin, [http_rule()])
    first = {"Accept-Language": "en", "Accept-Encoding": "gzip"}
    second = {"Accept-Language": "de", "Accept-Encoding": "gzip"}
    client.get("/p", headers=first)
    # The same selecting fields, spelled otherwise, for the second variant.
    origin.headers = [("Cache-Control", "max-age=60"), ("Vary", " accept-encoding ,ACCEPT-LANGUAGE,  ")]
    client.get("/p", headers=second)
    assert client.get("/p", headers=first).headers["X-Cache"] == "HIT"
    assert client.get("/p", headers=second).headers["X-Cache"] == "HIT"
    assert origin.count == 2


def test_vary_values_are_normalised() -> None:
    """RFC 9111 4.1: values differing only in whitespace (and case, for languages) select one variant."""
    origin = vary_origin()
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p", headers={"Accept-Language": "en-US, de;q=0.5"})
    response = client.get("/p", headers={"Accept-Language": "EN-us,de ; q=0.5"})
    assert response.headers["X-Cache"] == "HIT"
    # The order of the members is a preference: another variant.
    assert client.get("/p", headers={"Accept-Language": "de;q=0.5, en-US"}).headers["X-Cache"] == "MISS"


def test_absent_and_empty_selecting_field_are_different_variants() -> None:
    """RFC 9111 4.1: a field absent from one request only matches its absence in another."""
    origin = vary_origin()
    client, _, _ = client_for(origin, [http_rule()])
    assert client.get("/p").body == b"lang=None"
    empty = client.get("/p", headers={"Accept-Language": ""})
    assert (empty.headers["X-Cache"], empty.body) == ("MISS", b"lang=''")
    absent = client.get("/p")
    assert (absent.headers["X-Cache"], absent.body) == ("HIT", b"lang=None")
    empty = client.get("/p", headers={"Accept-Language": ""})
    assert (empty.headers["X-Cache"], empty.body) == ("HIT", b"lang=''")
    assert origin.count == 2


@pytest.mark.parametrize("declared", [True, False])
def test_hit_on_a_variant_costs_one_backend_read(declared: bool) -> None:
    """One round trip per hit: the rule keys on the Vary fields, or the process knows the URL's index."""
    backend = CountingBackend()
    origin = vary_origin()
    rule = http_rule(vary=["Accept-Language"]) if declared else http_rule()
    client, _, _ = client_for(origin, [rule], backend=backend)
    en = {"Accept-Language": "en"}
    client.get("/p", headers=en)
    client.get("/p", headers={"Accept-Language": "de"})
    backend.reads = 0
    hit = client.get("/p", headers=en)
    assert (hit.headers["X-Cache"], hit.body) == ("HIT", b"lang='en'")
    assert backend.reads == 1


def test_another_process_reads_an_unknown_index_then_the_variant_once() -> None:
    """A process that has not seen the URL's index reads it first: two round trips, then one."""
    backend = CountingBackend()
    origin = vary_origin()
    writer, _, _ = client_for(origin, [http_rule()], backend=backend)
    writer.get("/p", headers={"Accept-Language": "en"})
    reader, _, _ = client_for(origin, [http_rule()], backend=backend)
    for reads in (2, 1):
        backend.reads = 0
        hit = reader.get("/p", headers={"Accept-Language": "en"})
        assert (hit.headers["X-Cache"], hit.body, backend.reads) == ("HIT", b"lang='en'", reads)
    assert origin.count == 1


def test_invalidating_a_url_drops_all_its_variants() -> None:
    """RFC 9111 4.4: invalidation concerns the URL, every variant of it."""
    origin = vary_origin()
    client, middleware, _ = client_for(origin, [http_rule()])
    for lang in ("en", "de"):
        client.get("/p", headers={"Accept-Language": lang})
        assert client.get("/p", headers={"Accept-Language": lang}).headers["X-Cache"] == "HIT"
    assert middleware.invalidate("/p")
    for lang in ("en", "de"):
        assert client.get("/p", headers={"Accept-Language": lang}).headers["X-Cache"] == "MISS"
    assert origin.count == 4


# --------------------------------------------------------------------------- RFC 9213: targeted fields


def test_cdn_cache_control_takes_precedence_and_is_passed_on() -> None:
    """RFC 9213 2.2: CDN-Cache-Control is used instead of Cache-Control, and forwarded downstream."""
    origin = Origin(headers=[("CDN-Cache-Control", "max-age=60"), ("Cache-Control", "no-store")])
    client, _, clock = client_for(origin, [http_rule()])
    miss = client.get("/p")
    assert miss.headers["X-Cache"] == "MISS"
    assert miss.headers["CDN-Cache-Control"] == "max-age=60"
    assert miss.headers["Cache-Control"] == "no-store"
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["CDN-Cache-Control"] == "max-age=60"
    assert hit.headers["Cache-Control"] == "no-store"
    clock.advance(61)
    assert x_cache(client) == "MISS"


def test_cdn_cache_control_can_forbid_storing() -> None:
    """RFC 9213 2.2: a CDN-Cache-Control: no-store wins over a permissive Cache-Control."""
    origin = Origin(headers=[("CDN-Cache-Control", "no-store"), ("Cache-Control", "max-age=60")])
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p")
    assert x_cache(client) == "MISS"


def test_custom_targeted_field_takes_precedence_and_is_not_sent_on() -> None:
    """RFC 9213 2.1: a field targeted at this cache alone wins, and is removed from what it sends."""
    headers = [
        ("WSGICache-Control", "max-age=60"),
        ("CDN-Cache-Control", "no-store"),
        ("Cache-Control", "no-store"),
    ]
    origin = Origin(headers=list(headers))
    rule = http_rule(targeted_fields=["WSGICache-Control", "CDN-Cache-Control"])
    client, _, clock = client_for(origin, [rule])
    for expected in ("MISS", "HIT"):
        response = client.get("/p")
        assert response.headers["X-Cache"] == expected
        assert "WSGICache-Control" not in response.headers
        assert response.headers["CDN-Cache-Control"] == "no-store"
        assert response.headers["Cache-Control"] == "no-store"
    clock.advance(61)
    assert x_cache(client) == "MISS"
    assert origin.count == 2

    # Without the declaration the field means nothing to the cache, and is passed on.
    origin = Origin(headers=list(headers))
    client, _, _ = client_for(origin, [http_rule()])
    client.get("/p")
    response = client.get("/p")
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers["WSGICache-Control"] == "max-age=60"


def test_custom_targeted_field_is_removed_from_unstored_and_revalidated_responses() -> None:
    """RFC 9213 2.1: the field stays with this cache whatever happens to the response."""
    rule = http_rule(targeted_fields=["WSGICache-Control"])
    origin = Origin(headers=[("WSGICache-Control", "no-store"), ("Cache-Control", "max-age=60")])
    client, _, _ = client_for(origin, [rule])
    response = client.get("/p")
    assert response.headers["X-Cache"] == "MISS" and "WSGICache-Control" not in response.headers
    assert x_cache(client) == "MISS"

    origin = Origin(headers=[("WSGICache-Control", "max-age=10")])
    origin.etag = '"v1"'
    client, _, clock = client_for(origin, [rule])
    client.get("/p")
    clock.advance(11)
    response = client.get("/p")
    assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
    assert response.body == b"version 1" and "WSGICache-Control" not in response.headers
    response = client.get("/p", headers={"If-None-Match": '"v1"'}, status=304)
    assert response.headers["X-Cache"] == "HIT" and "WSGICache-Control" not in response.headers


# --------------------------------------------------------------------------- RFC 9110 14: ranges

RANGE_BODY = b"hello world"


def range_client(policy: str) -> tuple[TestApp, Origin]:
    origin = Origin(body=RANGE_BODY)
    origin.etag = '"r1"'
    client, _, _ = client_for(origin, [Rule("/<path:rest>", policy=policy, timeout=60)])
    assert client.get("/p").body == RANGE_BODY
    return client, origin


@pytest.mark.parametrize("policy", ["force", "http"])
def test_range_on_a_hit(policy: str) -> None:
    """RFC 9110 14.2, 15.3.7: a single range of a stored 200 is answered 206 from the cache."""
    client, origin = range_client(policy)
    response = client.get("/p", headers={"Range": "bytes=0-1"}, status=206)
    assert response.body == b"he"
    assert response.headers["Content-Range"] == "bytes 0-1/11"
    assert response.headers["Content-Length"] == "2"
    assert response.headers["X-Cache"] == "HIT"
    response = client.get("/p", headers={"Range": "bytes=-5"}, status=206)
    assert response.body == b"world" and response.headers["Content-Range"] == "bytes 6-10/11"
    assert origin.count == 1


@pytest.mark.parametrize("policy", ["force", "http"])
def test_multiple_ranges_get_the_full_response(policy: str) -> None:
    """RFC 9110 14.2: a server may ignore Range; several ranges are answered with the whole 200."""
    client, _ = range_client(policy)
    response = client.get("/p", headers={"Range": "bytes=0-1,4-5"}, status=200)
    assert response.body == RANGE_BODY and "Content-Range" not in response.headers
    assert response.headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("policy", ["force", "http"])
def test_unsatisfiable_range(policy: str) -> None:
    """RFC 9110 15.5.17: a range past the end is 416 with Content-Range: bytes */length."""
    origin = Origin(body=RANGE_BODY)
    middleware = CacheMiddleware(
        validator(origin), rules=[Rule("/<path:rest>", policy=policy, timeout=60)], clock=FakeClock()
    )
    call(middleware, make_environ("/p"))
    status, headers, body = call(middleware, make_environ("/p", HTTP_RANGE="bytes=50-60"))
    assert status == "416 Range Not Satisfiable"
    assert headers["Content-Range"] == "bytes */11"
    assert headers["X-Cache"] == "HIT"
    assert body == b""
    assert origin.count == 1


@pytest.mark.parametrize("policy", ["force", "http"])
def test_unsatisfiable_range_passes_wsgiref_validate(policy: str) -> None:
    """PEP 3333 / wsgiref.validate: every response but 204 and 304 carries a Content-Type."""
    client, _ = range_client(policy)
    response = client.get("/p", headers={"Range": "bytes=50-60"}, status=416)
    assert response.headers["Content-Range"] == "bytes */11"


@pytest.mark.parametrize("policy", ["force", "http"])
def test_if_range(policy: str) -> None:
    """RFC 9110 13.1.5: If-Range with another ETag gets the full 200, with the stored one a 206."""
    client, _ = range_client(policy)
    other = client.get("/p", headers={"Range": "bytes=0-1", "If-Range": '"other"'}, status=200)
    assert other.body == RANGE_BODY and "Content-Range" not in other.headers
    same = client.get("/p", headers={"Range": "bytes=0-1", "If-Range": '"r1"'}, status=206)
    assert same.body == b"he"


@pytest.mark.parametrize("policy", ["force", "http"])
def test_head_with_range_is_answered_whole(policy: str) -> None:
    """RFC 9110 14.2: range handling is defined for GET only; a HEAD's Range is ignored."""
    client, origin = range_client(policy)
    response = client.head("/p", headers={"Range": "bytes=0-1"}, status=200)
    assert response.body == b""
    assert "Content-Range" not in response.headers
    assert response.headers["Content-Length"] == str(len(RANGE_BODY))
    assert response.headers["X-Cache"] == "HIT"
    assert origin.count == 1


@pytest.mark.parametrize("policy", ["force", "http"])
def test_range_request_that_misses_goes_to_the_application(policy: str) -> None:
    """RFC 9111 3.3: a range request on a miss is the application's to answer; nothing is stored."""
    origin = Origin(body=RANGE_BODY)
    client, _, _ = client_for(origin, [Rule("/<path:rest>", policy=policy, timeout=60)])
    response = client.get("/p", headers={"Range": "bytes=0-1"})
    assert response.headers["X-Cache"] == "BYPASS"
    assert origin.last.get("HTTP_RANGE") == "bytes=0-1"
    assert x_cache(client) == "MISS"


@pytest.mark.parametrize("policy", ["force", "http"])
def test_206_from_the_application_is_never_stored(policy: str) -> None:
    """RFC 9111 3.3, 3.4: this cache does not store partial responses."""
    origin = Origin(headers=[("Cache-Control", "max-age=60"), ("Content-Range", "bytes 0-1/11")], body=b"he")
    origin.status = "206 Partial Content"
    rule = Rule("/<path:rest>", policy=policy, timeout=60, statuses=[200, 206])
    client, middleware, _ = client_for(origin, [rule])
    for _ in range(2):
        response = client.get("/p", status=206)
        assert response.headers["X-Cache"] == "MISS"
    assert origin.count == 2
    assert middleware.stats()["stores"] == 0


# --------------------------------------------------------------------------- emit_max_age (force)


def test_emit_max_age_on_hits() -> None:
    """Under "force", emit_max_age tells downstream caches what lifetime the entry has left."""
    origin = Origin(headers=[("Cache-Control", "max-age=3600"), ("Expires", "Thu, 01 Jan 2099 00:00:00 GMT")])
    client, _, clock = client_for(origin, [force_rule(timeout=60, emit_max_age=True)])
    client.get("/p")
    for advance, remaining in ((0, 60), (10, 50), (35, 15)):
        clock.advance(advance)
        response = client.get("/p")
        assert response.headers["X-Cache"] == "HIT"
        assert response.headers.getall("Cache-Control") == [f"max-age={remaining}"]
        assert response.headers.getall("Expires") == [http_date(clock.now + remaining)]


def test_emit_max_age_on_the_miss_that_stores() -> None:
    """The response that fills the entry is kept downstream no longer than the cache keeps it either."""
    origin = Origin(headers=[("Cache-Control", "max-age=3600")])
    client, _, _ = client_for(origin, [force_rule(timeout=60, emit_max_age=True)])
    response = client.get("/p")
    assert response.headers["X-Cache"] == "MISS"
    assert response.headers.getall("Cache-Control") == ["max-age=60"]


def test_emit_max_age_is_refused_under_http() -> None:
    """Under "http" the application's own Cache-Control is passed on: emit_max_age makes no sense."""
    with pytest.raises(ConfigurationError, match="emit_max_age"):
        http_rule(emit_max_age=True)


# --------------------------------------------------------------------------- RFC 5861: stale-while-revalidate


@pytest.mark.parametrize("with_etag", [False, True])
def test_response_stale_while_revalidate(with_etag: bool) -> None:
    """RFC 5861 3: within the window a stale response is served at once while one request refreshes it."""
    origin = Origin(headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")])
    if with_etag:
        origin.etag = '"v1"'
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(2)
    if not with_etag:
        origin.body = b"version 2"
    stale = client.get("/p")
    assert (stale.headers["X-Cache"], stale.body) == ("STALE", b"version 1")
    wait_for_refreshes(middleware)
    assert origin.count == 2
    if with_etag:
        assert origin.last.get("HTTP_IF_NONE_MATCH") == '"v1"'
        assert middleware.stats()["revalidated"] == 1
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.body == (b"version 1" if with_etag else b"version 2")
    assert origin.count == 2


def test_response_stale_while_revalidate_window_ends() -> None:
    """RFC 5861 3: past the window the client waits for the origin."""
    origin = Origin(headers=[("Cache-Control", "max-age=1, stale-while-revalidate=30")])
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(32)
    origin.body = b"version 2"
    response = client.get("/p")
    assert (response.headers["X-Cache"], response.body) == ("MISS", b"version 2")


# --------------------------------------------------------------------------- RFC 9111 4.4: invalidation


class WritingOrigin(Origin):
    """An origin answering POST with a fixed response (201 Created and its Location)."""

    def __init__(self, status: str = "201 Created", headers: Headers | None = None) -> None:
        super().__init__(body=lambda environ: f"{environ['HTTP_HOST']}{environ['PATH_INFO']}".encode())
        self.write_status = status
        self.write_headers = headers or []

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            self.script = [(self.write_status, [("Content-Type", "text/plain"), *self.write_headers], b"ok")]
        return super().__call__(environ, start_response)


def fill(client: TestApp, paths: Sequence[str], host: str = "localhost") -> None:
    for path in paths:
        client.get(path, extra_environ={"HTTP_HOST": host})
        assert client.get(path, extra_environ={"HTTP_HOST": host}).headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("policy", ["force", "http"])
def test_unsafe_request_invalidates_its_url_and_location(policy: str) -> None:
    """RFC 9111 4.4: a successful POST invalidates its target URI, Location and Content-Location."""
    origin = WritingOrigin(
        headers=[("Location", "/items/2"), ("Content-Location", "http://localhost/items/2?v=1")]
    )
    client, _, _ = client_for(origin, [Rule("/<path:rest>", policy=policy, timeout=60)])
    fill(client, ["/items", "/items/2", "/items/3"])
    response = client.post("/items", params=b"name=x", status=201)
    assert "X-Cache" not in response.headers  # no rule covers POST
    assert x_cache(client, "/items") == "MISS"
    assert x_cache(client, "/items/2") == "MISS"
    assert x_cache(client, "/items/3") == "HIT"


def test_content_location_alone_is_invalidated() -> None:
    """RFC 9111 4.4: Content-Location counts even without Location."""
    origin = WritingOrigin(status="200 OK", headers=[("Content-Location", "/items/3")])
    client, _, _ = client_for(origin, [http_rule()])
    fill(client, ["/items/2", "/items/3"])
    client.post("/items", params=b"x")
    assert x_cache(client, "/items/3") == "MISS"
    assert x_cache(client, "/items/2") == "HIT"


def test_location_on_another_host_invalidates_nothing_there() -> None:
    """RFC 9111 4.4: Location and Content-Location on another host must not be invalidated."""
    origin = WritingOrigin(
        headers=[
            ("Location", "http://other.example/items/2"),
            ("Content-Location", "//other.example/items/2"),
        ]
    )
    client, _, _ = client_for(origin, [http_rule()])
    fill(client, ["/items", "/items/2"])
    fill(client, ["/items/2"], host="other.example")
    client.post("/items", params=b"x", status=201)
    assert x_cache(client, "/items") == "MISS"
    assert x_cache(client, "/items/2") == "HIT"
    assert client.get("/items/2", extra_environ={"HTTP_HOST": "other.example"}).headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("status", ["400 Bad Request", "500 Internal Server Error"])
def test_failed_unsafe_request_invalidates_nothing(status: str) -> None:
    """RFC 9111 4.4: only a 2xx or 3xx answer invalidates."""
    origin = WritingOrigin(status=status, headers=[("Location", "/items/2")])
    client, _, _ = client_for(origin, [http_rule()])
    fill(client, ["/items", "/items/2"])
    client.post("/items", params=b"x", status=int(status[:3]))
    assert x_cache(client, "/items") == "HIT"
    assert x_cache(client, "/items/2") == "HIT"


# --------------------------------------------------------------------------- review findings


def test_an_application_changing_its_environ_does_not_change_the_variant_stored() -> None:
    """The variant is keyed on the request as received, not on what the application made of it."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        token = environ.pop("HTTP_X_TOKEN", None)  # an inner auth layer consumes the header
        body = f"data of {token}".encode()
        headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))]
        start_response("200 OK", [*headers, ("Cache-Control", "max-age=60"), ("Vary", "X-Token")])
        return [body]

    client, _, _ = client_for(app, [http_rule()])
    assert client.get("/p", headers={"X-Token": "alice"}).body == b"data of alice"
    anonymous = client.get("/p")
    assert (anonymous.headers["X-Cache"], anonymous.body) == ("MISS", b"data of None")
    again = client.get("/p", headers={"X-Token": "alice"})
    assert (again.headers["X-Cache"], again.body) == ("HIT", b"data of alice")


def test_stale_while_revalidate_on_a_post_rule_refreshes_with_the_request_body() -> None:
    """A rule keyed on the body is refreshed by the request that carries it, not in the background."""
    seen: list[bytes] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        query = environ["wsgi.input"].read(length)
        seen.append(query)
        body = b"results for " + query
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]

    rule = Rule("/search", methods=["POST"], timeout=10, stale_while_revalidate=60)
    client, middleware, clock = client_for(app, [rule])
    assert client.post("/search", b"q=secret").body == b"results for q=secret"
    clock.advance(11)
    refreshed = client.post("/search", b"q=secret")
    assert (refreshed.headers["X-Cache"], refreshed.body) == ("MISS", b"results for q=secret")
    assert seen == [b"q=secret", b"q=secret"]
    hit = client.post("/search", b"q=secret")
    assert (hit.headers["X-Cache"], hit.body) == ("HIT", b"results for q=secret")
    assert len(middleware._coalescer) == 0


def test_a_refresh_that_cannot_start_a_thread_still_serves_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    origin = Origin(headers=[("Cache-Control", "max-age=10, stale-while-revalidate=60")])
    client, middleware, clock = client_for(origin, [http_rule()])
    client.get("/p")
    clock.advance(11)

    def no_threads(self: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", no_threads)
    response = client.get("/p")
    assert (response.headers["X-Cache"], response.body) == ("STALE", b"version 1")
    assert middleware.stats()["errors"] == 1 and len(middleware._coalescer) == 0


def test_background_refreshes_are_bounded() -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("HTTP_X_BLOCK_REFRESH"):
            release.wait(5)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
        return [b"ok"]

    rules = [Rule("/<int:n>", timeout=10, stale_while_revalidate=600)]
    client, middleware, clock = client_for(app, rules)
    for n in range(20):
        client.get(f"/{n}")
    clock.advance(11)
    before = threading.active_count()
    for n in range(20):
        assert client.get(f"/{n}", headers={"X-Block-Refresh": "1"}).headers["X-Cache"] == "STALE"
    assert threading.active_count() - before <= 8  # at most 8 refreshes run at once
    release.set()
    wait_for_refreshes(middleware)


def test_a_304_that_changes_vary_is_not_applied() -> None:
    """The entry is stored as the variant its Vary selects: a 304 may not move it to another."""
    origin = Origin(headers=[("Cache-Control", "max-age=10"), ("Vary", "Accept-Encoding")])
    origin.etag = '"a"'
    client, _, clock = client_for(origin, [http_rule()])
    client.get("/p", headers={"Accept-Encoding": "gzip"})
    clock.advance(11)
    origin.not_modified_headers = [("ETag", '"a"'), ("Cache-Control", "max-age=60"), ("Vary", "Cookie")]
    response = client.get("/p", headers={"Accept-Encoding": "gzip"})
    assert response.status_int == 200
    assert origin.count == 3  # the 304, then the full response asked for unconditionally
    assert "HTTP_IF_NONE_MATCH" not in origin.last


def test_the_body_of_a_304_is_not_read() -> None:
    closed: list[bool] = []

    produced: list[int] = []

    class Endless:
        def __iter__(self) -> Iterable[bytes]:
            for n in range(1000):  # 64 MiB, if it were read
                produced.append(n)
                yield b"x" * 65536

        def close(self) -> None:
            closed.append(True)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        if environ.get("HTTP_IF_NONE_MATCH") == '"a"':
            start_response("304 Not Modified", [("ETag", '"a"'), ("Cache-Control", "max-age=60")])
            return Endless()
        headers = [("Content-Type", "text/plain"), ("Content-Length", "2"), ("ETag", '"a"')]
        start_response("200 OK", [*headers, ("Cache-Control", "max-age=10")])
        return [b"ok"]

    middleware = CacheMiddleware(app, rules=[http_rule()], clock=(clock := FakeClock()))
    call(middleware, make_environ("/p"))
    clock.advance(11)
    status, _, body = call(middleware, make_environ("/p"))
    assert (status, body) == ("200 OK", b"ok") and closed == [True] and produced == []
    assert middleware.stats()["revalidated"] == 1


@pytest.mark.parametrize(
    "options",
    [
        {"heuristic": 0.1},
        {"keep": 10},
        {"ignore_request_no_cache": True},
        {"targeted_fields": ["WSGICache-Control"]},
    ],
)
def test_http_only_options_are_refused_under_force(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError, match="policy='http'"):
        Rule("/p", timeout=60, **options)


@pytest.mark.parametrize("field", ["Cache-Control", "Set-Cookie", "Expires", "X-Whatever"])
def test_targeted_fields_must_be_cache_directive_fields(field: str) -> None:
    with pytest.raises(ConfigurationError, match="targeted_fields"):
        Rule("/p", policy="http", targeted_fields=[field])


def test_only_if_cached_gets_504_when_the_backend_cannot_be_asked() -> None:
    class DeadBackend(MemoryBackend):
        def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
            raise ConnectionError("backend down")

    origin = Origin()
    client, _, _ = client_for(origin, [http_rule()], backend=DeadBackend())
    response = client.get("/p", headers={"Cache-Control": "only-if-cached"}, status=504)
    assert response.headers["X-Cache"] == "MISS" and origin.count == 0
    assert client.get("/p").headers["X-Cache"] == "BYPASS"  # without the directive the app answers


@pytest.mark.parametrize(
    "headers",
    [
        [("Cache-Control", "no-store"), ("CDN-Cache-Control", "max-age=60")],
        [("Cache-Control", "private"), ("CDN-Cache-Control", "max-age=60")],
    ],
)
def test_under_force_targeted_fields_do_not_override_private_or_no_store(headers: Headers) -> None:
    origin = Origin(headers=headers)
    client, _, _ = client_for(origin, [force_rule(timeout=60)])
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "MISS" and origin.count == 2


@pytest.mark.parametrize("policy", ["force", "http"])
def test_fields_named_by_qualified_private_are_not_stored(policy: str) -> None:
    origin = Origin(headers=[("Cache-Control", 'max-age=60, private="X-User"'), ("X-User", "alice")])
    client, _, _ = client_for(origin, [Rule("/<path:rest>", policy=policy, timeout=60)])
    assert client.get("/p").headers["X-User"] == "alice"  # the response it was sent for keeps it
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT" and "X-User" not in hit.headers


def test_entries_never_outlive_their_tag_generations() -> None:
    """A lifetime beyond the tag keys' (29 days) is clamped: memcached reads longer ones as dates."""
    backend = MemoryBackend()
    written: list[float] = []
    original = backend.set

    def recording(key: str, value: bytes, ttl: float) -> bool:
        written.append(ttl)
        return original(key, value, ttl)

    backend.set = recording  # type: ignore[method-assign]
    origin = Origin(headers=[("Cache-Control", "max-age=2147483647")])
    client, _, _ = client_for(origin, [http_rule()], backend=backend)
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "HIT"
    assert written and max(written) <= 29 * 24 * 3600
