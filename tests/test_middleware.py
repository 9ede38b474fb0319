"""Request-level behaviour of CacheMiddleware (memory backend)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any
from wsgiref.validate import validator

import pytest
from helpers import RecordingApp, StartResponse, cached, make_environ
from webtest import TestApp
from werkzeug.http import http_date

from wsgicache import CacheMiddleware, ConfigurationError, Rule
from wsgicache.backends.memory import MemoryBackend


def test_miss_then_hit_with_age_and_header() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60)])
    first = client.get("/p")
    assert first.headers["X-Cache"] == "MISS"
    assert "Age" not in first.headers
    second = client.get("/p")
    assert second.headers["X-Cache"] == "HIT"
    assert second.headers["Age"] == "0"
    assert second.body == first.body == b"GET localhost/p?"
    assert second.headers["Content-Type"] == "text/plain"
    assert app.count == 1
    stats = cache.stats()
    assert (stats["hits"], stats["misses"], stats["stores"], stats["errors"]) == (1, 1, 1, 0)
    assert stats["hit_ratio"] == 0.5


def test_unmatched_requests_never_touch_the_backend() -> None:
    class ExplodingBackend(MemoryBackend):
        def get(self, key: str) -> bytes | None:
            raise AssertionError("backend used")

        def get_many(self, keys: Any) -> dict[str, bytes]:
            raise AssertionError("backend used")

    app = RecordingApp()
    client, cache = cached(app, [Rule("/cached", timeout=60)], backend=ExplodingBackend())
    response = client.get("/other")
    assert "X-Cache" not in response.headers
    assert response.body == b"GET localhost/other?"
    assert cache.stats()["errors"] == 0


def test_unmatched_response_is_byte_for_byte_the_apps() -> None:
    body = b"\x00\x01 raw"

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("201 Created", [("X-A", "1"), ("Content-Length", str(len(body)))])
        return [body]

    middleware = CacheMiddleware(app, rules=[Rule("/cached")])
    seen: list[Any] = []
    result = middleware(make_environ("/elsewhere"), lambda s, h, e=None: seen.append((s, h)))
    assert seen == [("201 Created", [("X-A", "1"), ("Content-Length", "6")])]
    assert b"".join(result) == body


def test_exclusion_rule_passes_through_every_time() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/admin/<path:rest>", cache=False), Rule("/<path:rest>", timeout=60)])
    for _ in range(3):
        assert client.get("/admin/users").headers["X-Cache"] == "BYPASS"
    assert app.count == 3
    assert client.get("/blog").headers["X-Cache"] == "MISS"
    assert client.get("/blog").headers["X-Cache"] == "HIT"


def test_cache_header_can_be_renamed_or_disabled() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p")], cache_header="X-Edge")
    client.get("/p")
    assert client.get("/p").headers["X-Edge"] == "HIT"
    client, _ = cached(app, [Rule("/p")], cache_header=None)
    client.get("/p")
    hit = client.get("/p")
    assert "X-Cache" not in hit.headers and "Age" in hit.headers


def test_head_is_answered_from_the_get_entry() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    get = client.get("/p")
    head = client.head("/p")
    assert head.headers["X-Cache"] == "HIT"
    assert head.body == b""
    assert head.headers["Content-Length"] == get.headers["Content-Length"]
    assert app.count == 1


def test_head_miss_fills_the_cache_for_get() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    head = client.head("/p")
    assert head.headers["X-Cache"] == "MISS" and head.body == b""
    assert app.calls[0]["REQUEST_METHOD"] == "GET"
    get = client.get("/p")
    assert get.headers["X-Cache"] == "HIT"
    assert get.body == b"GET localhost/p?"


def test_expiry_after_timeout() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=0.2)])
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "HIT"
    time.sleep(0.25)
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert app.count == 2


@pytest.mark.parametrize(
    ("status", "headers", "rule_options"),
    [
        ("200 OK", [("Set-Cookie", "session=abc")], {}),
        ("200 OK", [("Cache-Control", "private, max-age=60")], {}),
        ("200 OK", [("Cache-Control", "no-store")], {}),
        ("200 OK", [("Vary", "*")], {}),
        ("404 Not Found", [], {}),
        ("500 Internal Server Error", [], {}),
        ("302 Found", [("Location", "/elsewhere")], {}),
    ],
)
def test_unstorable_responses_are_not_stored(
    status: str, headers: list[tuple[str, str]], rule_options: dict[str, Any]
) -> None:
    app = RecordingApp(status=status, headers=[("Content-Type", "text/plain"), *headers])
    client, cache = cached(app, [Rule("/p", timeout=60, **rule_options)])
    for _ in range(2):
        response = client.get("/p", status="*")
        assert response.headers["X-Cache"] == "MISS"
    assert app.count == 2
    assert cache.stats()["stores"] == 0
    assert cache.stats()["not_stored"] == 2


@pytest.mark.parametrize(
    ("status", "headers", "rule_options"),
    [
        ("200 OK", [("Set-Cookie", "theme=dark")], {"allow_set_cookie": True}),
        ("404 Not Found", [], {"statuses": [200, 404]}),
        ("200 OK", [("Vary", "Accept-Language")], {"vary": ["Accept-Language"]}),
        ("200 OK", [("Vary", "Cookie")], {"vary_cookies": ["session"]}),
    ],
)
def test_rules_can_opt_in(status: str, headers: list[tuple[str, str]], rule_options: dict[str, Any]) -> None:
    app = RecordingApp(status=status, headers=[("Content-Type", "text/plain"), *headers])
    client, _ = cached(app, [Rule("/p", timeout=60, **rule_options)])
    client.get("/p", status="*")
    assert client.get("/p", status="*").headers["X-Cache"] == "HIT"
    assert app.count == 1


def test_authorization_requests_bypass_unless_allowed() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    client.get("/p")  # stored by an anonymous request
    response = client.get("/p", headers={"Authorization": "Bearer secret"})
    assert response.headers["X-Cache"] == "BYPASS"
    assert app.count == 2
    client, _ = cached(app, [Rule("/p", timeout=60, allow_authorization=True, vary=["Authorization"])])
    client.get("/p", headers={"Authorization": "Bearer a"})
    assert client.get("/p", headers={"Authorization": "Bearer a"}).headers["X-Cache"] == "HIT"
    assert client.get("/p", headers={"Authorization": "Bearer b"}).headers["X-Cache"] == "MISS"


def test_unless_bypasses() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60, unless=lambda environ: "HTTP_X_PREVIEW" in environ)])
    client.get("/p")
    assert client.get("/p", headers={"X-Preview": "1"}).headers["X-Cache"] == "BYPASS"
    assert client.get("/p").headers["X-Cache"] == "HIT"
    assert cache.stats()["bypasses"] == 1


def test_query_modes() -> None:
    app = RecordingApp()
    client, _ = cached(
        app,
        [
            Rule("/all", timeout=60),
            Rule("/none", timeout=60, query="none"),
            Rule("/some", timeout=60, query=["q", "page"]),
            Rule("/ignore", timeout=60, ignore_query=["utm_*", "fbclid"]),
        ],
    )
    client.get("/all?b=2&a=1")
    assert client.get("/all?a=1&b=2").headers["X-Cache"] == "HIT"
    assert client.get("/all?a=1&b=3").headers["X-Cache"] == "MISS"
    client.get("/none?x=1")
    assert client.get("/none?y=2").headers["X-Cache"] == "HIT"
    client.get("/some?q=a&page=1&session=1")
    assert client.get("/some?page=1&q=a&session=2").headers["X-Cache"] == "HIT"
    assert client.get("/some?q=b&page=1").headers["X-Cache"] == "MISS"
    client.get("/ignore?q=a&utm_source=x")
    hit = client.get("/ignore?q=a&utm_medium=y&fbclid=z")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.body == b"GET localhost/ignore?q=a&utm_source=x"
    assert client.get("/ignore?q=b").headers["X-Cache"] == "MISS"


def test_vary_headers_and_cookies_are_in_the_key() -> None:
    app = RecordingApp(headers=[("Content-Type", "text/plain"), ("Vary", "Accept-Language, Cookie")])
    client, _ = cached(app, [Rule("/p", timeout=60, vary=["Accept-Language"], vary_cookies=["session"])])
    client.get("/p", headers={"Accept-Language": "en", "Cookie": "session=1; other=x"})
    same = client.get("/p", headers={"Accept-Language": "en", "Cookie": "other=y; session=1"})
    assert same.headers["X-Cache"] == "HIT"
    assert (
        client.get("/p", headers={"Accept-Language": "fr", "Cookie": "session=1"}).headers["X-Cache"]
        == "MISS"
    )
    assert (
        client.get("/p", headers={"Accept-Language": "en", "Cookie": "session=2"}).headers["X-Cache"]
        == "MISS"
    )
    assert client.get("/p", headers={"Accept-Language": "en"}).headers["X-Cache"] == "MISS"
    assert (
        client.get("/p", headers={"Accept-Language": "en", "Cookie": "session="}).headers["X-Cache"] == "MISS"
    )


def test_custom_key_template_and_callable_add_to_the_key() -> None:
    app = RecordingApp()
    client, _ = cached(
        app,
        [
            Rule("/t/<lang>/x", timeout=60, key="{lang}"),
            Rule("/f", timeout=60, key=lambda environ, values: environ.get("HTTP_X_TENANT", "none")),
        ],
    )
    client.get("/t/en/x")
    assert client.get("/t/en/x").headers["X-Cache"] == "HIT"
    client.get("/f", headers={"X-Tenant": "a"})
    assert client.get("/f", headers={"X-Tenant": "a"}).headers["X-Cache"] == "HIT"
    b = client.get("/f", headers={"X-Tenant": "b"})
    assert b.headers["X-Cache"] == "MISS"


def test_scheme_host_and_path_are_in_the_key() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/<path:rest>", timeout=60)])
    client.get("/a", extra_environ={"HTTP_HOST": "one.example"})
    assert client.get("/a", extra_environ={"HTTP_HOST": "one.example"}).headers["X-Cache"] == "HIT"
    # Another spelling of the same host: the application sees it apart (absolute URLs).
    assert client.get("/a", extra_environ={"HTTP_HOST": "ONE.example:80"}).headers["X-Cache"] == "MISS"
    assert client.get("/a", extra_environ={"HTTP_HOST": "two.example"}).headers["X-Cache"] == "MISS"
    assert client.get("/a", extra_environ={"HTTP_HOST": "one.example:8080"}).headers["X-Cache"] == "MISS"
    https = client.get("/a", extra_environ={"HTTP_HOST": "one.example", "wsgi.url_scheme": "https"})
    assert https.headers["X-Cache"] == "MISS"
    assert client.get("/b", extra_environ={"HTTP_HOST": "one.example"}).headers["X-Cache"] == "MISS"
    mounted = client.get("/a", extra_environ={"HTTP_HOST": "one.example", "SCRIPT_NAME": "/blog"})
    assert mounted.headers["X-Cache"] == "MISS"


def test_invalid_host_is_never_cached() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    client.get("/p")
    for host in ["evil.com/x", "a b", ""]:
        response = client.get("/p", extra_environ={"HTTP_HOST": host})
        assert response.headers["X-Cache"] == "BYPASS"
        assert response.body.startswith(f"GET {host}/p".encode())


def test_override_headers_never_poison_the_cache() -> None:
    """An app that trusts X-Forwarded-Host (ProxyFix inside the cache) must not leak it."""
    from werkzeug.middleware.proxy_fix import ProxyFix

    app = ProxyFix(RecordingApp(), x_host=1, x_proto=1)
    client, _ = cached(app, [Rule("/p", timeout=60)])
    poisoned = client.get("/p", headers={"X-Forwarded-Host": "evil.example"})
    assert poisoned.body == b"GET evil.example/p?"
    clean = client.get("/p")
    assert clean.body == b"GET localhost/p?"
    assert clean.headers["X-Cache"] == "MISS"
    assert client.get("/p").body == b"GET localhost/p?"
    again = client.get("/p", headers={"X-Forwarded-Host": "evil.example"})
    assert again.headers["X-Cache"] == "HIT" and again.body == b"GET evil.example/p?"
    assert client.get("/p", headers={"X-Forwarded-Proto": "https"}).headers["X-Cache"] == "MISS"


def test_unkeyed_headers_do_not_change_what_is_served() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    first = client.get("/p", headers={"User-Agent": "a", "Accept-Language": "de", "X-Anything": "1"})
    second = client.get("/p", headers={"User-Agent": "b", "Accept-Language": "fr"})
    assert second.headers["X-Cache"] == "HIT"
    assert second.body == first.body


def test_tags_and_invalidation() -> None:
    app = RecordingApp()
    client, cache = cached(
        app,
        [
            Rule("/user/<int:user_id>", timeout=60, tags=["user:{user_id}", "users"]),
            Rule("/posts", timeout=60, tags=["posts"]),
        ],
    )
    for path in ["/user/1", "/user/2", "/posts"]:
        client.get(path)
        assert client.get(path).headers["X-Cache"] == "HIT"
    assert cache.invalidate(tags=["user:1"])
    assert client.get("/user/1").headers["X-Cache"] == "MISS"
    assert client.get("/user/2").headers["X-Cache"] == "HIT"
    assert client.get("/posts").headers["X-Cache"] == "HIT"
    cache.invalidate(tags=["users"])
    assert client.get("/user/1").headers["X-Cache"] == "MISS"
    assert client.get("/user/2").headers["X-Cache"] == "MISS"
    assert client.get("/posts").headers["X-Cache"] == "HIT"
    assert client.get("/user/1").headers["X-Cache"] == "HIT"


def test_invalidate_url_drops_every_variant_of_the_path() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/<path:rest>", timeout=60, vary=["Accept-Language"])])
    for query in ["", "?a=1"]:
        for lang in ["en", "fr"]:
            client.get(f"/page{query}", headers={"Accept-Language": lang})
    client.get("/other")
    cache.invalidate("/page")
    for query in ["", "?a=1"]:
        for lang in ["en", "fr"]:
            assert client.get(f"/page{query}", headers={"Accept-Language": lang}).headers["X-Cache"] == "MISS"
    assert client.get("/other").headers["X-Cache"] == "HIT"
    client.get("/caf%C3%A9")
    cache.invalidate("https://example.com/caf%C3%A9?x=1")
    assert client.get("/caf%C3%A9").headers["X-Cache"] == "MISS"


def test_invalidate_key() -> None:
    app = RecordingApp()
    client, cache = cached(
        app, [Rule("/a/<int:n>", timeout=60, key="post:{n}"), Rule("/b/<int:n>", key="post:{n}")]
    )
    client.get("/a/1")
    client.get("/b/1")
    client.get("/a/2")
    cache.invalidate(key="post:1")
    assert client.get("/a/1").headers["X-Cache"] == "MISS"
    assert client.get("/b/1").headers["X-Cache"] == "MISS"
    assert client.get("/a/2").headers["X-Cache"] == "HIT"


def test_invalidate_needs_an_argument_and_a_list_of_tags() -> None:
    cache = CacheMiddleware(RecordingApp(), rules=[Rule("/p")])
    with pytest.raises(TypeError):
        cache.invalidate()
    with pytest.raises(TypeError, match="list of tag names"):
        cache.invalidate(tags="posts")


def test_clear() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/<path:rest>", timeout=60)])
    client.get("/a")
    client.get("/b")
    assert cache.clear()
    assert client.get("/a").headers["X-Cache"] == "MISS"
    assert client.get("/b").headers["X-Cache"] == "MISS"


def test_evicted_tag_generation_invalidates_its_entries() -> None:
    """A tag generation lost by the backend (evicted) must never revive an old entry."""
    backend = MemoryBackend()
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", timeout=60, tags=["posts"])], backend=backend)
    client.get("/p")
    for key in [k for k in backend._internal.data if k.startswith("t:")]:
        backend.delete(key)
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert client.get("/p").headers["X-Cache"] == "HIT"


def test_conditional_requests_get_304_from_the_cache() -> None:
    modified = http_date(1_700_000_000)
    app = RecordingApp(
        headers=[("Content-Type", "text/plain"), ("ETag", '"v1"'), ("Last-Modified", modified)]
    )
    client, _ = cached(app, [Rule("/p", timeout=60)])
    miss = client.get("/p", headers={"If-None-Match": '"v1"'}, status=304)
    assert miss.headers["X-Cache"] == "MISS"
    assert "HTTP_IF_NONE_MATCH" not in app.calls[0]  # the app was asked for the full response
    hit = client.get("/p", headers={"If-None-Match": '"v1"'}, status=304)
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.headers["ETag"] == '"v1"'
    assert "Content-Type" not in hit.headers
    assert client.get("/p", headers={"If-Modified-Since": modified}, status=304).headers["X-Cache"] == "HIT"
    full = client.get("/p", headers={"If-None-Match": '"v0"'}, status=200)
    assert full.headers["X-Cache"] == "HIT" and full.body == b"GET localhost/p?"
    assert app.count == 1


def test_policy_http_follows_the_apps_freshness() -> None:
    app = RecordingApp(headers=[("Content-Type", "text/plain"), ("Cache-Control", "public, max-age=0")])
    client, _ = cached(app, [Rule("/p", policy="http", timeout=60)])
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "MISS"
    app.headers = [("Content-Type", "text/plain"), ("Cache-Control", "public, s-maxage=100, max-age=0")]
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "HIT"
    force_app = RecordingApp(headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=0")])
    force_client, _ = cached(force_app, [Rule("/p", timeout=60)])
    force_client.get("/p")
    assert force_client.get("/p").headers["X-Cache"] == "HIT"


def test_policy_http_age_counts_the_apps_age() -> None:
    app = RecordingApp(
        headers=[("Content-Type", "text/plain"), ("Cache-Control", "max-age=100"), ("Age", "40")]
    )
    client, _ = cached(app, [Rule("/p", policy="http")])
    client.get("/p")
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT"
    assert int(hit.headers["Age"]) >= 40
    assert hit.headers.getall("Age") == [hit.headers["Age"]]


def test_max_entry_bytes_streams_large_bodies_without_storing() -> None:
    chunks_served: list[int] = []

    class Large:
        def __init__(self) -> None:
            self.closed = False

        def __iter__(self) -> Any:
            for n in range(100):
                chunks_served.append(n)
                yield b"x" * 1000

        def close(self) -> None:
            self.closed = True

    bodies: list[Large] = []

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        bodies.append(Large())
        return bodies[-1]

    middleware = CacheMiddleware(validator(app), rules=[Rule("/big", timeout=60)], max_entry_bytes=10_000)
    sent: list[str] = []
    result = middleware(make_environ("/big"), lambda status, headers, exc_info=None: sent.append(status))
    # Headers were sent after only a little more than max_entry_bytes was read.
    assert sent == ["200 OK"]
    assert len(chunks_served) <= 12
    total = sum(len(chunk) for chunk in result)
    result.close()  # type: ignore[attr-defined]
    assert total == 100_000
    assert bodies[0].closed
    assert middleware.stats()["too_large"] == 1
    assert middleware.stats()["stores"] == 0


def test_declared_content_length_over_the_limit_streams_at_once() -> None:
    app = RecordingApp(body=b"y" * 5000)
    client, cache = cached(app, [Rule("/p", timeout=60)], max_entry_bytes=1000)
    assert len(client.get("/p").body) == 5000
    assert client.get("/p").headers["X-Cache"] == "MISS"
    assert cache.stats()["too_large"] == 2


def test_write_callable_is_supported() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        return [b"and ", b"returned"]

    client, _ = cached(app, [Rule("/p", timeout=60)])
    assert client.get("/p").body == b"written and returned"
    hit = client.get("/p")
    assert hit.headers["X-Cache"] == "HIT" and hit.body == b"written and returned"


def test_write_callable_while_streaming_keeps_order() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")])
        write(b"1")
        return [b"2", b"3"]

    client, _ = cached(app, [Rule("/p", timeout=60)])
    assert client.get("/p").body == b"123"


def test_lazy_start_response_in_a_generator() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"lazy "
        yield b"body"

    client, _ = cached(app, [Rule("/p", timeout=60)])
    assert client.get("/p").body == b"lazy body"
    assert client.get("/p").headers["X-Cache"] == "HIT"


def test_exc_info_error_response_is_not_stored() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            raise ValueError("boom")
        except ValueError:
            import sys

            start_response("200 OK", [("Content-Type", "text/plain")])
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        return [b"error page"]

    client, cache = cached(app, [Rule("/p", timeout=60, statuses=[200, 500])])
    response = client.get("/p", status=500)
    assert response.body == b"error page"
    assert cache.stats()["stores"] == 0


def test_exc_info_after_headers_were_sent_reraises() -> None:
    import sys

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Set-Cookie", "a=1")])  # not storable: streamed at once
        yield b"partial"
        try:
            raise ValueError("late failure")
        except ValueError:
            start_response("500 Internal Server Error", [], sys.exc_info())

    middleware = CacheMiddleware(app, rules=[Rule("/p")])
    calls: list[Any] = []

    def start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        calls.append(status)
        if exc_info is not None:
            raise exc_info[1].with_traceback(exc_info[2])
        return lambda data: None

    result = middleware(make_environ("/p"), start_response)
    iterator = iter(result)
    assert next(iterator) == b"partial"
    with pytest.raises(ValueError, match="late failure"):
        next(iterator)
    result.close()  # type: ignore[attr-defined]
    assert calls == ["200 OK", "500 Internal Server Error"]


class TrackedApp:
    """Counts close() calls of its iterables; can fail at several points."""

    def __init__(self, fail: str = "", headers: list[tuple[str, str]] | None = None) -> None:
        self.fail = fail
        self.headers = headers or [("Content-Type", "text/plain")]
        self.opened = 0
        self.closed = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if self.fail == "call":
            raise RuntimeError("app failed")
        start_response("200 OK", list(self.headers))
        self.opened += 1
        return self.Body(self)

    class Body:
        def __init__(self, owner: TrackedApp) -> None:
            self.owner = owner

        def __iter__(self) -> Any:
            yield b"one "
            if self.owner.fail == "iterate":
                raise RuntimeError("iteration failed")
            yield b"two"

        def close(self) -> None:
            self.owner.closed += 1


@pytest.mark.parametrize(
    ("fail", "headers", "path"),
    [
        ("", None, "/p"),  # miss, stored
        ("", [("Content-Type", "text/plain"), ("Set-Cookie", "a=1")], "/p"),  # miss, streamed
        ("", None, "/excluded"),  # exclusion rule
        ("", None, "/unmatched"),  # no rule
        ("iterate", None, "/p"),  # error while reading
    ],
)
def test_app_iterable_is_always_closed(fail: str, headers: Any, path: str) -> None:
    app = TrackedApp(fail=fail, headers=headers)
    middleware = CacheMiddleware(
        validator(app), rules=[Rule("/excluded", cache=False), Rule("/p", timeout=60)]
    )
    client = TestApp(validator(middleware))
    if fail:
        with pytest.raises(RuntimeError):
            client.get(path)
    else:
        client.get(path)
        client.get(path)
    assert app.closed == app.opened


def test_client_disconnect_closes_the_streaming_app_iterable() -> None:
    app = TrackedApp(headers=[("Set-Cookie", "a=1")])
    middleware = CacheMiddleware(app, rules=[Rule("/p")])
    result = middleware(make_environ("/p"), lambda s, h, e=None: None)
    iterator = iter(result)
    next(iterator)
    result.close()  # type: ignore[attr-defined]  # the server stops early
    assert app.closed == 1


def test_app_exceptions_propagate_and_nothing_is_stored() -> None:
    app = TrackedApp(fail="call")
    client, cache = cached(app, [Rule("/p", timeout=60)])
    with pytest.raises(RuntimeError, match="app failed"):
        client.get("/p")
    assert cache.stats()["stores"] == 0


def test_non_get_methods_can_be_cached_per_method() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/q", methods=["GET", "POST"], timeout=60)])
    client.post("/q")
    assert client.post("/q").headers["X-Cache"] == "HIT"
    assert client.get("/q").headers["X-Cache"] == "MISS"
    assert client.get("/q").body == b"GET localhost/q?"
    assert client.put("/q").headers.get("X-Cache") is None


def test_key_prefix_separates_sites_on_one_backend() -> None:
    backend = MemoryBackend()
    app = RecordingApp()
    one, _ = cached(app, [Rule("/p")], backend=backend, key_prefix="one")
    two, _ = cached(app, [Rule("/p")], backend=backend, key_prefix="two")
    one.get("/p")
    assert two.get("/p").headers["X-Cache"] == "MISS"
    assert one.get("/p").headers["X-Cache"] == "HIT"


def test_several_backends_by_alias() -> None:
    fast, slow = MemoryBackend(), MemoryBackend()
    app = RecordingApp()
    client, cache = cached(
        app,
        [Rule("/a", backend="fast"), Rule("/b")],
        backend={"default": slow, "fast": fast},
    )
    client.get("/a")
    client.get("/b")
    assert len(fast) >= 1 and any(k.startswith("e:") for k in fast._data)
    assert sum(k.startswith("e:") for k in slow._data) == 1
    cache.invalidate("/a")
    assert client.get("/a").headers["X-Cache"] == "MISS"
    assert client.get("/b").headers["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"rules": [Rule("/p", backend="other")]},
            "uses backend 'other', but the configured backends are: default",
        ),
        ({"rules": Rule("/p")}, "rules must be a list"),
        ({"rules": ["/p"]}, "rules must contain Rule objects"),
        ({"key_prefix": "has space"}, "key_prefix must be at most 64"),
        ({"cache_header": ""}, "cache_header must be a header name"),
        ({"max_entry_bytes": 0}, "max_entry_bytes must be a positive whole number"),
        ({"failure_threshold": -1}, "failure_threshold must be"),
        ({"retry_after": 0}, "retry_after must be a positive number"),
        ({"backend": "nosuch://"}, "unknown backend 'nosuch'"),
        ({"backend": {"fast": "memory://"}}, "needs a 'default' alias"),
    ],
)
def test_bad_middleware_configuration(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CacheMiddleware(RecordingApp(), **kwargs)
    assert message in str(info.value)


def test_app_must_be_callable() -> None:
    with pytest.raises(ConfigurationError, match="WSGI application"):
        CacheMiddleware("not an app")  # type: ignore[arg-type]


def test_file_wrapper_responses_are_stored_and_passed_through() -> None:
    import io

    def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
        private = environ["PATH_INFO"] == "/private"
        headers = [("Content-Type", "text/plain")]
        if private:
            headers.append(("Cache-Control", "private"))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"file contents"), 4)

    from wsgiref.util import FileWrapper

    client, _ = cached(app, [Rule("/<path:rest>", timeout=60)])
    client.extra_environ["wsgi.file_wrapper"] = FileWrapper
    assert client.get("/public").body == b"file contents"
    assert client.get("/public").headers["X-Cache"] == "HIT"
    assert client.get("/private").body == b"file contents"

    middleware = CacheMiddleware(app, rules=[Rule("/<path:rest>")])
    environ = make_environ("/private", **{"wsgi.file_wrapper": FileWrapper})
    result = middleware(environ, lambda status, headers, exc_info=None: None)
    assert isinstance(result, FileWrapper)  # the server can still use sendfile
    result.close()


def test_a_value_the_backend_declines_counts_as_not_stored() -> None:
    app = RecordingApp(body=b"z" * 5000)
    client, cache = cached(app, [Rule("/p")], backend="memory://?max_bytes=4096")
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "MISS"
    stats = cache.stats()
    assert stats["stores"] == 0 and stats["not_stored"] == 2 and stats["errors"] == 0
