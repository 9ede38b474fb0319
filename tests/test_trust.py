"""Trust: no response for one request is served to another, nothing incomplete is kept.

Each test names the class of input it closes: every input that can change
what the application answers is in the key or makes the request a BYPASS;
identity the cache cannot see is not shared; incomplete or failed responses
are not stored; invalidation is never lost; preconditions follow RFC 9110.
"""

from __future__ import annotations

import io
import sys
from collections.abc import Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

import pytest
from helpers import RecordingApp, StartResponse, cached, call, make_environ
from webtest import TestApp
from werkzeug.http import http_date

from wsgicache import CacheMiddleware, ConfigurationError, Rule
from wsgicache.backends.memory import MemoryBackend
from wsgicache.keys import METHOD_OVERRIDE_HEADERS, OVERRIDE_HEADERS


class EchoApp:
    """Answers with everything a framework could read that the cache might miss."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self.count += 1
        length = environ.get("CONTENT_LENGTH") or "0"
        body = environ["wsgi.input"].read(int(length)) if length.isdigit() else b""
        overrides = ",".join(f"{k}={environ[k]}" for k in sorted(environ) if k in OVERRIDE_HEADERS)
        text = (
            f"{environ['REQUEST_METHOD']} {environ.get('wsgi.url_scheme')}://{environ.get('HTTP_HOST')}"
            f" [{environ.get('SCRIPT_NAME', '')}][{environ.get('PATH_INFO', '')}]"
            f"?{environ.get('QUERY_STRING', '')} body={body!r} cookie={environ.get('HTTP_COOKIE')}"
            f" user={environ.get('REMOTE_USER')} {overrides} #{self.count}"
        ).encode("latin-1", "replace")
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
        return [text]


# -- 1. every input that changes the answer is in the key, or bypasses ---------


def test_get_with_a_body_never_shares_an_entry_with_bodiless_gets() -> None:
    app = EchoApp()
    client, cache = cached(app, [Rule("/api", timeout=60)])
    plain = client.get("/api")
    assert plain.headers["X-Cache"] == "MISS"
    with_body = client.request(
        "/api", method="GET", body=b'{"q": 1}', headers={"Content-Type": "application/json"}
    )
    assert with_body.headers["X-Cache"] == "BYPASS"
    assert b"body=b'{\"q\": 1}'" in with_body.body
    assert client.get("/api").body == plain.body  # the entry still holds the bodiless answer
    # A body announced by Transfer-Encoding, or a malformed length, bypasses too
    # (no validator: wsgiref's rejects a malformed CONTENT_LENGTH).
    middleware = CacheMiddleware(app, rules=[Rule("/api", timeout=60)])
    for extra in ({"HTTP_TRANSFER_ENCODING": "chunked"}, {"CONTENT_LENGTH": "abc"}):
        _status, headers, _ = call(middleware, make_environ("/api", **extra))
        assert headers["X-Cache"] == "BYPASS"
    assert cache.stats()["bypasses"] == 1


def test_post_rule_keys_on_the_body_and_the_app_still_reads_it() -> None:
    app = EchoApp()
    client, cache = cached(app, [Rule("/search", methods=["POST"], timeout=60)], max_body_bytes=100)
    first = client.post("/search", params=b"q=cats", content_type="application/x-www-form-urlencoded")
    assert first.headers["X-Cache"] == "MISS"
    assert b"body=b'q=cats'" in first.body
    again = client.post("/search", params=b"q=cats", content_type="application/x-www-form-urlencoded")
    assert again.headers["X-Cache"] == "HIT" and again.body == first.body
    dogs = client.post("/search", params=b"q=dogs", content_type="application/x-www-form-urlencoded")
    assert dogs.headers["X-Cache"] == "MISS" and b"q=dogs" in dogs.body
    as_json = client.post("/search", params=b"q=cats", content_type="application/json")
    assert as_json.headers["X-Cache"] == "MISS"  # the same bytes parse differently
    large = b"q=" + b"x" * 200
    over = client.post("/search", params=large, content_type="application/x-www-form-urlencoded")
    assert over.headers["X-Cache"] == "BYPASS"
    assert repr(large).encode() in over.body  # read intact by the application
    assert app.count == 4
    assert cache.stats()["hits"] == 1


def test_successful_cached_post_does_not_invalidate_its_own_entries() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/search", methods=["GET", "POST"], timeout=60)])
    client.get("/search")
    client.post("/search", params=b"q=1")
    assert client.get("/search").headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("header", [h for h in OVERRIDE_HEADERS if h != "HTTP_X_FORWARDED_HOST"])
def test_proxy_override_headers_are_in_the_key(header: str) -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    plain = client.get("/p")
    name = header[5:].replace("_", "-").title()
    forged = client.get("/p", headers={name: "https"})
    assert forged.headers["X-Cache"] == "MISS"
    assert f"{header}=https".encode() in forged.body
    after = client.get("/p")
    assert after.headers["X-Cache"] == "HIT" and after.body == plain.body
    assert client.get("/p", headers={name: "https"}).body == forged.body


@pytest.mark.parametrize("header", METHOD_OVERRIDE_HEADERS)
def test_method_override_bypasses_and_invalidates(header: str) -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/post/<int:n>", timeout=60)])
    client.get("/post/1")
    assert client.get("/post/1").headers["X-Cache"] == "HIT"
    name = header[5:].replace("_", "-").title()
    overridden = client.get("/post/1", headers={name: "DELETE"})
    assert overridden.headers["X-Cache"] == "BYPASS"
    assert client.get("/post/1").headers["X-Cache"] == "MISS"
    assert client.get("/post/1?_method=DELETE").headers["X-Cache"] == "BYPASS"


def test_host_spellings_the_application_sees_apart_never_share() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/p", timeout=60)])
    bodies = {}
    for host in ["example.com", "example.com.", "example.com:080", "example.com:80", "EXAMPLE.com"]:
        response = client.get("/p", extra_environ={"HTTP_HOST": host})
        assert response.headers["X-Cache"] == "MISS", host
        assert f"://{host} ".encode() in response.body
        bodies[host] = response.body
    for host, body in bodies.items():
        hit = client.get("/p", extra_environ={"HTTP_HOST": host})
        assert hit.headers["X-Cache"] == "HIT" and hit.body == body


def test_script_name_path_info_split_is_in_the_key() -> None:
    app = EchoApp()
    middleware = CacheMiddleware(validator(app), rules=[Rule("/<path:rest>", timeout=60)])
    _, first, body_a = call(middleware, make_environ("/b/c", SCRIPT_NAME="/a"))
    _, second, body_b = call(middleware, make_environ("/c", SCRIPT_NAME="/a/b"))
    assert (first["X-Cache"], second["X-Cache"]) == ("MISS", "MISS")
    assert body_a != body_b
    assert call(middleware, make_environ("/b/c", SCRIPT_NAME="/a"))[2] == body_a


def test_encoded_slash_in_the_raw_target_is_in_the_key() -> None:
    app = EchoApp()
    middleware = CacheMiddleware(validator(app), rules=[Rule("/<path:rest>", timeout=60)])
    call(middleware, make_environ("/a/b", RAW_URI="/a/b"))
    _, headers, _ = call(middleware, make_environ("/a/b", RAW_URI="/a%2Fb"))
    assert headers["X-Cache"] == "MISS"


@pytest.mark.parametrize("method", ["get", "Get", "gEt", "head"])
def test_odd_case_methods_are_never_served_the_get_entry(method: str) -> None:
    app = EchoApp()  # no validator: wsgiref's warns about lower-case methods
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    call(middleware, make_environ("/p"))
    _status, headers, body = call(middleware, make_environ("/p", method=method))
    assert headers.get("X-Cache") != "HIT"
    assert body.startswith(method.encode())
    assert call(middleware, make_environ("/p"))[1]["X-Cache"] == "HIT"


def test_query_values_that_are_not_utf8_never_share_an_entry() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/q", timeout=60)])
    seen = set()
    for raw in ["%FF", "%FE", "%EF%BF%BD", "%C3%28"]:
        response = client.get(f"/q?v={raw}")
        assert response.headers["X-Cache"] == "MISS", raw
        seen.add(response.body)
    assert len(seen) == 4


@pytest.mark.parametrize(
    "cookie",
    [
        "session=alice; session=bob",
        "session=alice, session=bob",
        "theme=dark,session=bob",
        "session=alice;session=alice",
    ],
)
def test_ambiguous_vary_cookies_bypass(cookie: str) -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/me", timeout=60, vary_cookies=["session"])])
    client.get("/me", headers={"Cookie": "session=alice"})
    response = client.get("/me", headers={"Cookie": cookie})
    assert response.headers["X-Cache"] == "BYPASS"
    assert client.get("/me", headers={"Cookie": "session=alice"}).headers["X-Cache"] == "HIT"


def test_quoted_and_bare_cookie_values_do_not_share() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/me", timeout=60, vary_cookies=["session"])])
    client.get("/me", headers={"Cookie": "session=alice"})
    assert client.get("/me", headers={"Cookie": 'session="alice"'}).headers["X-Cache"] == "MISS"


# -- 2. identity the cache cannot see is not shared ---------------------------------


def test_allow_authorization_needs_authorization_in_vary() -> None:
    with pytest.raises(ConfigurationError, match=r"vary=\['Authorization'\]"):
        Rule("/api", allow_authorization=True)
    Rule("/api", allow_authorization=True, vary=["authorization"])


def test_authorization_with_vary_gives_each_user_an_entry() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/api", timeout=60, allow_authorization=True, vary=["Authorization"])])
    alice = client.get("/api", headers={"Authorization": "Bearer alice"})
    bob = client.get("/api", headers={"Authorization": "Bearer bob"})
    assert bob.headers["X-Cache"] == "MISS" and bob.body != alice.body
    assert client.get("/api", headers={"Authorization": "Bearer alice"}).body == alice.body


def test_remote_user_bypasses_unless_the_rule_opts_in() -> None:
    app = EchoApp()
    client, cache = cached(app, [Rule("/home", timeout=60)])
    client.get("/home")
    logged_in = client.get("/home", extra_environ={"REMOTE_USER": "alice"})
    assert logged_in.headers["X-Cache"] == "BYPASS"
    assert b"user=alice" in logged_in.body
    assert cache.stats()["bypasses"] == 1

    client, _ = cached(app, [Rule("/home", timeout=60, allow_remote_user=True)])
    alice = client.get("/home", extra_environ={"REMOTE_USER": "alice"})
    bob = client.get("/home", extra_environ={"REMOTE_USER": "bob"})
    assert (alice.headers["X-Cache"], bob.headers["X-Cache"]) == ("MISS", "MISS")
    assert b"user=bob" in bob.body
    again = client.get("/home", extra_environ={"REMOTE_USER": "alice"})
    assert again.headers["X-Cache"] == "HIT" and again.body == alice.body
    assert client.get("/home").headers["X-Cache"] == "MISS"


# -- 3. nothing incomplete or wrong is stored --------------------------------------------


def test_error_reported_with_exc_info_after_the_body_started_is_not_stored() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"partial "
        try:
            raise RuntimeError("database went away")
        except RuntimeError:
            start_response("500 Internal Server Error", [("Content-Type", "text/plain")], sys.exc_info())
        yield b"error page"

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    for _ in range(2):
        status, headers, _ = call(middleware, make_environ("/p"))
        assert status.startswith("500") and headers["X-Cache"] == "MISS"
    assert middleware.stats()["stores"] == 0


@pytest.mark.parametrize("declared", ["5", "50", "x"])
def test_body_that_disagrees_with_its_content_length_is_not_stored(declared: str) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", declared)])
        return [b"twelve bytes"]

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    call(middleware, make_environ("/p"))
    assert call(middleware, make_environ("/p"))[1]["X-Cache"] == "MISS"
    assert middleware.stats()["stores"] == 0


def test_head_only_rule_never_fills_the_get_entry() -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", methods=["HEAD"], timeout=60), Rule("/p", timeout=60)])
    head = client.head("/p")
    assert head.headers["X-Cache"] == "MISS"
    assert client.head("/p").headers["X-Cache"] == "HIT"
    get = client.get("/p")
    assert get.headers["X-Cache"] == "MISS" and get.body == b"GET localhost/p?"


class Interrupt(BaseException):
    pass


@pytest.mark.parametrize("where", ["call", "iterate", "close"])
def test_base_exceptions_and_failing_close_never_leave_a_fill_claimed(where: str) -> None:
    class FailingBody:
        def __iter__(self) -> Iterator[bytes]:
            if where == "iterate":
                raise Interrupt
            yield b"body"

        def close(self) -> None:
            if where == "close":
                raise RuntimeError("close failed")

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if where == "call":
            raise Interrupt
        start_response("200 OK", [("Content-Type", "text/plain")])
        return FailingBody()

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)], lock_wait=30)
    with pytest.raises((Interrupt, RuntimeError)):
        call(middleware, make_environ("/p"))
    assert len(middleware._coalescer) == 0
    assert middleware.stats()["stores"] == 0


def test_bytes_changed_in_the_store_are_a_miss() -> None:
    backend = MemoryBackend()
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60)], backend=backend, decoded_cache_bytes=0)
    client.get("/p")
    (key,) = [k for k in backend._data if k.startswith("e:")]
    value = backend.get(key)
    assert value is not None
    backend.set(key, value[:-1] + bytes([value[-1] ^ 1]), 60)
    response = client.get("/p")
    assert response.headers["X-Cache"] == "MISS"
    assert response.body == b"GET localhost/p?"
    assert cache.stats()["corrupt"] == 1


# -- 4. invalidation is never lost ------------------------------------------------------


@pytest.mark.parametrize("action", ["tag", "url", "key", "clear"])
@pytest.mark.parametrize("generation_existed", [False, True])
def test_invalidation_during_a_miss_is_not_lost(action: str, generation_existed: bool) -> None:
    holder: dict[str, CacheMiddleware] = {}
    version = {"n": 1}

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        body = f"version {version['n']}".encode()
        if environ.get("QUERY_STRING") == "write":
            # The write lands and is invalidated while this response is built.
            version["n"] += 1
            cache = holder["cache"]
            if action == "tag":
                cache.invalidate(tags=["posts"])
            elif action == "url":
                cache.invalidate("/posts")
            elif action == "key":
                cache.invalidate(key="k")
            else:
                cache.clear()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [body]

    client, cache = cached(app, [Rule("/posts", timeout=60, tags=["posts"], key="k", query="none")])
    holder["cache"] = cache
    if generation_existed:
        cache.invalidate(tags=["posts"])
        cache.invalidate("/posts")
        cache.invalidate(key="k")
    stale = client.get("/posts?write")
    assert stale.body == b"version 1"
    fresh = client.get("/posts")
    assert fresh.headers["X-Cache"] == "MISS"
    assert fresh.body == b"version 2"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "post", "delete"])
def test_successful_unsafe_request_invalidates_its_url(method: str) -> None:
    app = EchoApp()  # no validator: wsgiref's warns about lower-case methods
    middleware = CacheMiddleware(app, rules=[Rule("/post/<int:n>", timeout=60)])
    call(middleware, make_environ("/post/1"))
    call(middleware, make_environ("/post/1", query="page=2"))
    call(middleware, make_environ("/post/2"))
    _status, headers, _ = call(middleware, make_environ("/post/1", method=method))
    assert "X-Cache" not in headers  # no rule caches this method: passed on untouched
    assert call(middleware, make_environ("/post/1"))[1]["X-Cache"] == "MISS"
    assert call(middleware, make_environ("/post/1", query="page=2"))[1]["X-Cache"] == "MISS"
    assert call(middleware, make_environ("/post/2"))[1]["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    ("status", "invalidates"),
    [("204 No Content", True), ("303 See Other", True), ("404 Not Found", False), ("500 Error", False)],
)
def test_only_successful_unsafe_requests_invalidate(status: str, invalidates: bool) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "GET":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"page"]
        location = [("Location", "/elsewhere")] if status.startswith("3") else []
        content_type = [] if status.startswith("204") else [("Content-Type", "text/plain")]
        start_response(status, [*content_type, *location])
        return []

    client, _ = cached(app, [Rule("/p", timeout=60)])
    client.get("/p")
    client.delete("/p", status="*")
    assert client.get("/p").headers["X-Cache"] == ("MISS" if invalidates else "HIT")


def test_unsafe_request_invalidates_same_host_location_and_content_location() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "POST":
            start_response(
                "201 Created",
                [
                    ("Content-Type", "text/plain"),
                    ("Location", "http://localhost/posts/7"),
                    ("Content-Location", "/feed"),
                    ("Content-Length", "0"),
                ],
            )
            return []
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    client, _ = cached(app, [Rule("/<path:p>", timeout=60)])
    for path in ["/posts", "/posts/7", "/feed", "/other"]:
        client.get(path)
    client.post("/posts", params=b"title=x")
    results = {
        path: client.get(path).headers["X-Cache"] for path in ["/posts", "/posts/7", "/feed", "/other"]
    }
    assert results == {"/posts": "MISS", "/posts/7": "MISS", "/feed": "MISS", "/other": "HIT"}


def test_unsafe_request_on_an_excluded_url_still_invalidates_entries_another_rule_made() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/p", methods=["POST"], cache=False), Rule("/p", timeout=60)])
    client.get("/p")
    assert client.post("/p").headers["X-Cache"] == "BYPASS"
    assert client.get("/p").headers["X-Cache"] == "MISS"


# -- 5. preconditions: RFC 9110 section 13.2.2, one decision for hits and misses -------


@pytest.mark.parametrize("first", ["miss", "hit"])
@pytest.mark.parametrize(
    ("status", "request_headers", "expected"),
    [
        ("200 OK", {"If-None-Match": '"v1"'}, 304),
        ("200 OK", {"If-None-Match": '"v2"'}, 200),
        ("200 OK", {"If-Match": '"v2"'}, 412),
        ("200 OK", {"If-Match": '"v2"', "If-None-Match": '"v1"'}, 412),
        ("200 OK", {"If-Unmodified-Since": http_date(1_000_000)}, 412),
        ("200 OK", {"If-None-Match": '"v2"', "If-Modified-Since": http_date(2_000_000_000)}, 200),
        ("404 Not Found", {"If-None-Match": '"v1"'}, 404),
        ("404 Not Found", {"If-Match": '"nope"'}, 404),
    ],
)
def test_preconditions_are_answered_alike_on_hit_and_miss(
    first: str, status: str, request_headers: dict[str, str], expected: int
) -> None:
    app = RecordingApp(
        status=status,
        headers=[
            ("Content-Type", "text/plain"),
            ("ETag", '"v1"'),
            ("Last-Modified", http_date(1_500_000_000)),
        ],
    )
    client, _ = cached(app, [Rule("/p", timeout=60, statuses=[200, 404])])
    if first == "hit":
        client.get("/p", status="*")
    response = client.get("/p", headers=request_headers, status="*")
    assert response.status_int == expected
    assert response.headers["X-Cache"] == ("HIT" if first == "hit" else "MISS")
    if expected in (304, 412):
        assert response.body == b""
    # The application always answered the full response, never a 304 or 412.
    assert all("HTTP_IF_MATCH" not in call and "HTTP_IF_NONE_MATCH" not in call for call in app.calls)


def test_preconditions_on_a_cached_post_bypass() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/search", methods=["POST"], timeout=60)])
    response = client.post("/search", params=b"q=1", headers={"If-Match": '"x"'})
    assert response.headers["X-Cache"] == "BYPASS"


def test_wsgi_input_is_replaced_only_with_the_same_bytes() -> None:
    app = EchoApp()
    middleware = CacheMiddleware(validator(app), rules=[Rule("/s", methods=["POST"], timeout=60)])
    body = bytes(range(256))
    environ = make_environ("/s", method="POST", CONTENT_LENGTH=str(len(body)), CONTENT_TYPE="x/y")
    environ["wsgi.input"] = io.BytesIO(body + b"trailing bytes never read")
    _, headers, echoed = call(middleware, environ)
    assert headers["X-Cache"] == "MISS"
    assert repr(body).encode("latin-1") in echoed


def test_webtest_client_still_validates() -> None:
    # The whole file relies on cached(): keep one explicit validator round trip.
    app = EchoApp()
    client = TestApp(validator(CacheMiddleware(validator(app), rules=[Rule("/x", timeout=60)])))
    assert client.get("/x").headers["X-Cache"] == "MISS"


# -- found by review against real applications (Falcon, Radicale, pypiserver) --------


@pytest.mark.parametrize(
    ("exclusion", "path"),
    [("/account/", "/account"), ("/account", "/account/"), ("/account", "//account")],
)
def test_exclusions_cover_the_spellings_an_application_folds_together(exclusion: str, path: str) -> None:
    # Falcon (strip_url_path_trailing_slash) and others serve both spellings.
    app = EchoApp()
    middleware = CacheMiddleware(app, rules=[Rule(exclusion, cache=False), Rule("/<path:p>", timeout=60)])
    for _ in range(2):
        assert call(middleware, make_environ(path))[1]["X-Cache"] == "BYPASS"
    assert app.count == 2


def test_caching_rule_covers_its_other_trailing_slash_spelling() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/docs/<name>/", timeout=60, tags=["doc:{name}"])])
    client.get("/docs/intro")
    assert client.get("/docs/intro").headers["X-Cache"] == "HIT"
    assert client.get("/docs/intro/").headers["X-Cache"] == "MISS"  # its own entry


def http2_environ(path: str, body: bytes, method: str = "GET", **extra: Any) -> dict[str, Any]:
    """A request as servers translating HTTP/2 pass it: a body without Content-Length."""
    environ = make_environ(path, method=method, **{"SERVER_PROTOCOL": "HTTP/2", **extra})
    environ["wsgi.input"] = io.BytesIO(body)
    environ["wsgi.input_terminated"] = True
    return environ


class TerminatedEchoApp(EchoApp):
    """Reads the body to its end, as werkzeug does when wsgi.input_terminated is set."""

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        self.count += 1
        body = environ["wsgi.input"].read()
        text = f"{environ['REQUEST_METHOD']} body={body!r} #{self.count}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(text)))])
        return [text]


def test_body_without_content_length_on_a_terminated_stream() -> None:
    app = TerminatedEchoApp()
    middleware = CacheMiddleware(app, rules=[Rule("/item", timeout=60)])
    call(middleware, http2_environ("/item", b""))
    assert call(middleware, http2_environ("/item", b""))[1]["X-Cache"] == "HIT"
    _, headers, body = call(middleware, http2_environ("/item", b"bob"))
    assert headers["X-Cache"] == "BYPASS"
    assert b"body=b'bob'" in body
    # A server that de-chunks and drops Transfer-Encoding on HTTP/1.1 says so the same way.
    http1 = http2_environ("/item", b"bob", SERVER_PROTOCOL="HTTP/1.1")
    assert call(middleware, http1)[1]["X-Cache"] == "BYPASS"
    assert call(middleware, http2_environ("/item", b"", SERVER_PROTOCOL="HTTP/1.1"))[1]["X-Cache"] == "HIT"


def test_post_rule_reads_an_unannounced_body_whole_and_hands_it_back() -> None:
    app = TerminatedEchoApp()
    rules = [Rule("/search", methods=["POST"], timeout=60)]
    middleware = CacheMiddleware(app, rules=rules, max_body_bytes=10)
    _, first, body = call(middleware, http2_environ("/search", b"q=alice", method="POST"))
    assert first["X-Cache"] == "MISS" and b"body=b'q=alice'" in body
    assert call(middleware, http2_environ("/search", b"q=alice", method="POST"))[1]["X-Cache"] == "HIT"
    assert call(middleware, http2_environ("/search", b"q=bob", method="POST"))[1]["X-Cache"] == "MISS"
    large = b"q=" + b"x" * 50
    _, headers, body = call(middleware, http2_environ("/search", large, method="POST"))
    assert headers["X-Cache"] == "BYPASS"
    assert repr(large).encode() in body


def test_move_and_copy_invalidate_their_destination() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] in ("MOVE", "COPY"):
            start_response("204 No Content", [])
            return []
        start_response("200 OK", [("Content-Type", "text/calendar")])
        return [environ["PATH_INFO"].encode()]

    middleware = CacheMiddleware(app, rules=[Rule("/<path:p>", timeout=60)])
    for method in ("MOVE", "COPY"):
        for path in ("/c1/ev.ics", "/c2/ev.ics"):
            call(middleware, make_environ(path))
        environ = make_environ("/c1/ev.ics", method=method, HTTP_DESTINATION="http://localhost/c2/ev.ics")
        call(middleware, environ)
        assert call(middleware, make_environ("/c2/ev.ics"))[1]["X-Cache"] == "MISS"


@pytest.mark.parametrize(
    ("location", "invalidated"),
    [
        ("items/5", "/items/5"),  # relative to the request URL
        ("/items/5", "/items/5"),
        ("http://localhost:80/items/5", "/items/5"),  # the default port spelled out
        ("http://LOCALHOST./items/5", "/items/5"),
        ("https://localhost/items/5", "/items/5"),
        ("http://other.example/items/5", None),
        ("http://[::1/next", None),  # unparsable: skipped, never an error
        ("http://[vlan1]/x", None),
        ("mailto:someone@example.com", None),
    ],
)
def test_location_of_a_write_is_resolved_and_compared_by_host(location: str, invalidated: str | None) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ["REQUEST_METHOD"] == "PUT":
            start_response("201 Created", [("Content-Type", "text/plain"), ("Location", location)])
            return [b""]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    middleware = CacheMiddleware(app, rules=[Rule("/<path:p>", timeout=60)])
    for path in ("/items", "/items/5"):
        call(middleware, make_environ(path))
    status, _, _ = call(middleware, make_environ("/items", method="PUT"))
    assert status.startswith("201")
    assert call(middleware, make_environ("/items"))[1]["X-Cache"] == "MISS"
    expected = "MISS" if invalidated else "HIT"
    assert call(middleware, make_environ("/items/5"))[1]["X-Cache"] == expected


@pytest.mark.parametrize("method", ["PROPFIND", "REPORT", "OPTIONS", "SEARCH"])
def test_safe_webdav_methods_invalidate_nothing(method: str) -> None:
    app = EchoApp()
    middleware = CacheMiddleware(app, rules=[Rule("/cal/<path:p>", timeout=60)])
    call(middleware, make_environ("/cal/a.ics"))
    call(middleware, make_environ("/cal/a.ics", method=method))
    assert call(middleware, make_environ("/cal/a.ics"))[1]["X-Cache"] == "HIT"


def test_range_request_that_misses_is_answered_by_the_application() -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if "HTTP_RANGE" in environ:
            start_response(
                "206 Partial Content", [("Content-Type", "text/plain"), ("Content-Range", "bytes 0-1/10")]
            )
            return [b"01"]
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "10")])
        return [b"0123456789"]

    client, cache = cached(app, [Rule("/file", timeout=60)])
    partial = client.get("/file", headers={"Range": "bytes=0-1"}, status=206)
    assert partial.headers["X-Cache"] == "BYPASS" and partial.body == b"01"
    assert client.get("/file").headers["X-Cache"] == "MISS"
    ranged = client.get("/file", headers={"Range": "bytes=0-1"}, status=206)  # a hit answers the range itself
    assert ranged.headers["X-Cache"] == "HIT" and ranged.body == b"01"
    assert ranged.headers["Content-Range"] == "bytes 0-1/10" and ranged.headers["Content-Length"] == "2"
    assert cache.stats()["stores"] == 1


def test_quoted_cookie_values_holding_semicolons_stay_apart() -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/me", timeout=60, vary_cookies=["session"])])
    first = client.get("/me", headers={"Cookie": 'session="a;b"'})
    second = client.get("/me", headers={"Cookie": 'session="a;c"'})
    assert second.headers["X-Cache"] == "MISS" and second.body != first.body


# -- found by code review ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "headers", "bypass", "invalidates"),
    [
        ("utm_method=x", {}, False, False),  # not a method override at all
        ("_method=GET", {}, True, False),  # an override to a safe method
        ("", {"X-HTTP-Method-Override": "GET"}, True, False),
        ("_method=DELETE", {}, True, True),
        ("", {"X-HTTP-Method-Override": "delete"}, True, True),
    ],
)
def test_only_unsafe_method_overrides_invalidate(
    query: str, headers: dict[str, str], bypass: bool, invalidates: bool
) -> None:
    app = EchoApp()
    client, _ = cached(app, [Rule("/posts", timeout=60, query="none")])
    client.get("/posts")
    response = client.get(f"/posts?{query}", headers=headers)
    assert response.headers["X-Cache"] == ("BYPASS" if bypass else "HIT")
    assert client.get("/posts").headers["X-Cache"] == ("MISS" if invalidates else "HIT")


class CountingBackend(MemoryBackend):
    """The memory backend, counting the calls that reach it (and failing while ``dead``)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0
        self.dead = False

    def _called(self) -> None:
        self.calls += 1
        if self.dead:
            raise ConnectionError("backend down")

    def get_many(self, keys: Any) -> dict[str, bytes]:
        self._called()
        return super().get_many(keys)

    def get(self, key: str) -> bytes | None:
        self._called()
        return super().get(key)

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        self._called()
        return super().set(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        self._called()
        return super().add(key, value, ttl)


def test_writes_do_not_wait_on_a_backend_whose_circuit_is_open() -> None:
    backend = CountingBackend()
    client, cache = cached(EchoApp(), [Rule("/<path:p>", timeout=60)], backend=backend, failure_threshold=1)
    backend.dead = True
    assert client.get("/a").headers["X-Cache"] == "BYPASS"  # opens the circuit
    calls = backend.calls
    for _ in range(3):
        assert client.post("/a", params=b"x=1").status_int == 200
    assert backend.calls == calls
    assert cache.stats()["skipped"] >= 3


def test_writes_to_urls_no_rule_can_store_touch_no_backend() -> None:
    backend = CountingBackend()
    rules = [Rule("/admin/<path:rest>", cache=False), Rule("/<path:rest>", timeout=60)]
    client, _ = cached(EchoApp(), rules, backend=backend)
    client.post("/admin/users/1", params=b"x=1")
    client.delete("/admin/x")
    client.post("/", params=b"x=1")  # "/<path:rest>" does not match "/"
    assert backend.calls == 0
    client.post("/blog/1", params=b"x=1")
    assert backend.calls > 0


class TrickleInput(io.BytesIO):
    """A stream that returns at most three bytes a read, as some servers' sockets do."""

    def read(self, size: int | None = -1) -> bytes:
        return super().read(3 if size is None or size < 0 else min(size, 3))


def test_a_body_read_in_small_pieces_reaches_the_application_whole() -> None:
    app = EchoApp()
    middleware = CacheMiddleware(app, rules=[Rule("/s", methods=["POST"], timeout=60)])
    body = b'{"q": "a longer query"}'
    for _ in range(2):
        environ = make_environ("/s", method="POST", CONTENT_LENGTH=str(len(body)), CONTENT_TYPE="x/y")
        environ["wsgi.input"] = TrickleInput(body)
        _, headers, echoed = call(middleware, environ)
        assert repr(body).encode() in echoed
    assert headers["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    ("method", "status", "headers"),
    [
        ("GET", "200 OK", [("Content-Length", "\u00b2")]),
        ("GET", "200 OK", [("Age", "\u00b2")]),
        ("POST", "\u00b200 OK", []),
        ("GET", "\u00b200 OK", []),
    ],
)
def test_odd_response_headers_never_make_the_middleware_raise(
    method: str, status: str, headers: list[tuple[str, str]]
) -> None:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        start_response(status, [("Content-Type", "text/plain"), *headers])
        return [b"x"]

    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    for _ in range(2):
        returned, _, body = call(middleware, make_environ("/p", method=method))
        assert returned == status and body == b"x"


# -- the plan memo: a request planned from memory must be one the URL alone decides -------------


def test_a_remembered_plan_is_not_reused_when_a_header_changes_the_key() -> None:
    app = EchoApp()
    middleware = CacheMiddleware(app, rules=[Rule("/p", timeout=60)])
    call(middleware, make_environ("/p"))  # the plan for /p is remembered
    _, headers, _ = call(middleware, make_environ("/p", HTTP_X_FORWARDED_HOST="evil.example"))
    assert headers["X-Cache"] == "MISS"  # another key: the override header is in it
    _, headers, _ = call(middleware, make_environ("/p"))
    assert headers["X-Cache"] == "HIT"


@pytest.mark.parametrize(
    "extra",
    [
        {"HTTP_AUTHORIZATION": "Bearer x"},
        {"REMOTE_USER": "alice"},
        {"HTTP_X_HTTP_METHOD_OVERRIDE": "DELETE"},
        {"HTTP_TRANSFER_ENCODING": "chunked"},
        {"CONTENT_LENGTH": "3", "wsgi.input": io.BytesIO(b"abc")},
    ],
)
def test_a_remembered_plan_never_skips_a_bypass(extra: dict[str, Any]) -> None:
    middleware = CacheMiddleware(EchoApp(), rules=[Rule("/p", timeout=60)])
    call(middleware, make_environ("/p"))
    call(middleware, make_environ("/p"))
    _, headers, _ = call(middleware, make_environ("/p", **extra))
    assert headers["X-Cache"] == "BYPASS"


def test_rules_keyed_on_headers_or_callables_are_planned_for_every_request() -> None:
    app = EchoApp()
    rules = [
        Rule("/lang", timeout=60, vary=["Accept-Language"]),
        Rule("/who", timeout=60, vary_cookies=["session"]),
        Rule("/dyn", timeout=60, key=lambda environ, values: environ.get("HTTP_X_TENANT", "")),
    ]
    middleware = CacheMiddleware(app, rules=rules)
    for path, first, second in (
        ("/lang", {"HTTP_ACCEPT_LANGUAGE": "en"}, {"HTTP_ACCEPT_LANGUAGE": "de"}),
        ("/who", {"HTTP_COOKIE": "session=a"}, {"HTTP_COOKIE": "session=b"}),
        ("/dyn", {"HTTP_X_TENANT": "a"}, {"HTTP_X_TENANT": "b"}),
    ):
        call(middleware, make_environ(path, **first))
        assert call(middleware, make_environ(path, **first))[1]["X-Cache"] == "HIT"
        assert call(middleware, make_environ(path, **second))[1]["X-Cache"] == "MISS"


def test_the_plan_memo_holds_no_request() -> None:
    middleware = CacheMiddleware(EchoApp(), rules=[Rule("/p", timeout=60)])
    environ = make_environ("/p")
    call(middleware, environ)
    remembered = list(middleware._planner._plans._data.values())
    assert len(remembered) == 1
    assert not any(part is environ or isinstance(part, dict) for part in remembered[0])
