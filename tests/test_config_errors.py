"""Configuration that cannot work raises ConfigurationError at construction.

Each message says what to write instead. Host patterns are compared the way
request hosts are (lower case, without a trailing dot or the port), so a
pattern in another spelling is normalized, and one that could never match is
refused.
"""

from __future__ import annotations

from typing import Any

import pytest
from helpers import RecordingApp, cached

from wsgicache import CacheMiddleware, ConfigurationError, Rule
from wsgicache.backends import get_backend

NAN = float("nan")
INF = float("inf")


def _raises(message: str) -> Any:
    return pytest.raises(ConfigurationError, match=message)


# -- numbers of seconds ---------------------------------------------------------------


@pytest.mark.parametrize("value", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
@pytest.mark.parametrize("option", ["timeout", "stale_while_revalidate", "stale_if_error"])
def test_rule_windows_must_be_finite(option: str, value: float) -> None:
    with _raises(rf"Rule\('/p'\): {option} must be .*positive number of seconds .*not NaN or infinity"):
        Rule("/p", **{option: value})


@pytest.mark.parametrize("value", [NAN, INF], ids=["nan", "inf"])
@pytest.mark.parametrize("option", ["retry_after", "lock_timeout", "lock_wait"])
def test_middleware_seconds_must_be_finite(option: str, value: float) -> None:
    with _raises(
        rf"{option} must be .*positive number of seconds \(not NaN or infinity\), such as {option}="
    ):
        CacheMiddleware(RecordingApp(), rules=[Rule("/p")], **{option: value})


def test_lock_wait_may_still_be_zero() -> None:
    _, cache = cached(RecordingApp(), [Rule("/p")], lock_wait=0)
    assert cache.lock_wait == 0


@pytest.mark.parametrize("value", [NAN, INF, "300", 0], ids=["nan", "inf", "str", "zero"])
def test_backend_timeout_must_be_a_finite_number(value: Any) -> None:
    with _raises("default_timeout \\(TIMEOUT\\) must be a positive number of seconds .*such as 300"):
        get_backend({"BACKEND": "memory", "TIMEOUT": value})
    with _raises("default_timeout"):
        CacheMiddleware.from_config(
            RecordingApp(), {"BACKENDS": {"default": {"BACKEND": "memory", "TIMEOUT": value}}, "RULES": []}
        )


@pytest.mark.parametrize(
    "url",
    [
        "memory://?default_timeout=nan",
        "memory://?default_timeout=inf",
        "redis://127.0.0.1:6379/0?socket_timeout=nan",
        "redis://127.0.0.1:6379/0?socket_connect_timeout=inf",
        "redis://127.0.0.1:6379/0?health_check_interval=nan",
        "redis://127.0.0.1:6379/0?health_check_interval=-1",
        "redis+cluster://127.0.0.1:7000?node_retry_after=inf",
        "memcached://127.0.0.1:11211?timeout=nan",
        "memcached://127.0.0.1:11211?pool_idle_timeout=inf",
        "memcached://127.0.0.1:11211,127.0.0.1:11212?dead_timeout=nan",
        "file:///tmp/wsgicache-never-created?sweep_interval=inf",
    ],
)
def test_backend_seconds_options_must_be_finite(url: str) -> None:
    with _raises("number of seconds"):
        get_backend(url)


# -- the cache header ----------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "X Cache",
        "X-Cache\r\nSet-Cookie: a=b",
        "X-Cache\n",
        "X-Cache:",
        "X-C\u00e4che",
        "",
        " ",
        "X-Cache ",
        "(x)",
        "x.cache",  # an RFC 9110 token, but wsgiref.validate (PEP 3333) refuses it
        "1-Cache",
    ],
)
def test_cache_header_must_be_a_token(name: str) -> None:
    with _raises("cache_header must be a header name: .*RFC 9110 token.*such as 'X-Cache'"):
        CacheMiddleware(RecordingApp(), rules=[Rule("/p")], cache_header=name)
    with _raises("cache_header"):
        CacheMiddleware.from_config(RecordingApp(), {"RULES": [Rule("/p")], "CACHE_HEADER": name})


@pytest.mark.parametrize("name", ["Age", "content-length", "Set-Cookie", "Vary", "Cache-Control"])
def test_cache_header_must_not_be_a_standard_header(name: str) -> None:
    with _raises(f"cache_header '{name}' is a standard HTTP header .*such as 'X-Cache'"):
        CacheMiddleware(RecordingApp(), rules=[Rule("/p")], cache_header=name)


@pytest.mark.parametrize("name", ["X-Cache", "X-Edge-Cache_1", "cache"])
def test_valid_cache_header_names_are_used(name: str) -> None:
    client, _ = cached(RecordingApp(), [Rule("/p")], cache_header=name)
    assert client.get("/p").headers[name] == "MISS"


# -- the Redis database --------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:6379/abc",
        "redis://127.0.0.1:6379/0abc",
        "redis://127.0.0.1:6379/1.5",
        "redis://127.0.0.1:6379/-1",
        "redis://127.0.0.1:6379/0/1",
        "redis://127.0.0.1:6379/%201",
        "rediss://127.0.0.1:6379/db0",
        "redis+sentinel://127.0.0.1:26379/mymaster/abc",
        "redis+sentinel://127.0.0.1:26379/mymaster/\u00b2",  # a digit to str.isdigit(), not to int()
    ],
)
def test_redis_database_must_be_a_number(url: str) -> None:
    with _raises(r"the Redis database in .* must be a number, such as 0 .*KEY_PREFIX"):
        get_backend(url)


def test_redis_database_options_must_be_numbers() -> None:
    from wsgicache.backends.redis import RedisBackend

    with _raises("the Redis database .* must be a number"):
        RedisBackend("redis://127.0.0.1:6379?db=abc")
    with _raises("db must be a whole number"):
        get_backend("redis://127.0.0.1:6379?db=abc")
    with _raises("db must be a whole number"):
        get_backend({"BACKEND": "redis", "LOCATION": "127.0.0.1:6379", "OPTIONS": {"db": "abc"}})
    with _raises("db must be a whole number"):
        get_backend("redis+sentinel://127.0.0.1:26379/mymaster?db=x")


@pytest.mark.parametrize(
    ("url", "db"),
    [
        ("redis://127.0.0.1:6379/3", 3),
        ("redis://127.0.0.1:6379/%33", 3),
        ("redis://127.0.0.1:6379/3/", 3),
        ("redis://127.0.0.1:6379/", None),
        ("redis://127.0.0.1:6379", None),
        ("unix:///run/redis.sock?db=2", 2),
        ("redis+sentinel://127.0.0.1:26379/mymaster/4", 4),
    ],
)
def test_valid_redis_databases_are_accepted(url: str, db: int | None) -> None:
    from redis.connection import parse_url

    backend: Any = get_backend(url)
    found = backend._options.get("db")
    if found is None and not url.startswith("redis+sentinel"):
        found = parse_url(backend.url).get("db")  # what redis-py will select
    assert found == db


# -- URL variables ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "host", "message"),
    [
        ("/<a>/<a>", None, "'a' appears twice in the pattern"),
        ("/<int:a>/<path:a>", None, "'a' appears twice in the pattern"),
        ("/<a>", "<a>.example.com", "'a' appears in both the pattern and the host pattern"),
        ("/p", "<a>.<a>.example.com", "'a' appears twice in the host pattern"),
    ],
)
def test_a_url_variable_named_twice_is_refused(pattern: str, host: str | None, message: str) -> None:
    with _raises(f"{message}; a variable holds one value, so give each its own name"):
        Rule(pattern, host=host)


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("/<int(min=5,max=1):n>", "min=5 is above max=1"),
        ("/<int(max='a'):n>", "max must be a finite number"),
        ("/<float(min=nan):n>", "min must be a finite number"),
        ("/<string(minlength=5,maxlength=2):s>", "invalid pattern"),
        ("/search?q=<q>", "never a query string.*query=\\['name'"),
        ("/page#top", "never a fragment"),
        ("/caf%C3%A9", "decoded path.*write the character itself"),
        ("/a%20b", "decoded path"),
    ],
)
def test_patterns_that_can_never_match_or_always_fail_are_refused(pattern: str, message: str) -> None:
    with _raises(message):
        Rule(pattern)


def test_a_bad_converter_range_would_otherwise_fail_every_request() -> None:
    # Accepted before: werkzeug compared the number with 'a' on every request.
    with _raises("max must be a finite number"):
        Rule("/<int(max='a'):n>", timeout=60)


# -- host patterns -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "normalized"),
    [
        ("Example.COM", "example.com"),
        ("example.com.", "example.com"),
        ("<Tenant>.Example.com", "<Tenant>.example.com"),  # variable names keep their case
        ("<any(www, api):sub>.EXAMPLE.com", "<any(www, api):sub>.example.com"),
        ("[::1]", "[::1]"),
        ("[::ABCD]", "[::abcd]"),
    ],
)
def test_host_patterns_are_normalized_like_request_hosts(pattern: str, normalized: str) -> None:
    assert Rule("/p", host=pattern).host == normalized


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("example.com:80", "without its port .*write host='example.com'"),
        ("example.com:8080", "without its port"),
        ("example.com:<int:port>", "without its port"),
        ("[::1]:80", "without its port .*write host='\\[::1\\]'"),
        ("*.example.com", "'\\*' is not a wildcard.*<subdomain>.example.com"),
        (".example.com", "never starts with '.'.*<subdomain>.example.com"),
        ("exa mple.com", "never contains ' '"),
        ("example.com/", "never contains '/'"),
        ("user@example.com", "never contains '@'"),
        ("<any(WWW, api):sub>.example.com", "lower case.*any\\(www, api\\)"),
    ],
)
def test_host_patterns_that_can_never_match_are_refused(pattern: str, message: str) -> None:
    with _raises(message):
        Rule("/p", host=pattern)


@pytest.mark.parametrize(
    "request_host",
    ["example.com", "EXAMPLE.com", "example.com:80", "example.com.", "Example.Com:80"],
)
def test_a_mixed_case_host_pattern_matches_every_spelling(request_host: str) -> None:
    app = RecordingApp()
    client, _ = cached(app, [Rule("/p", host="Example.COM", timeout=60)])
    response = client.get("/p", extra_environ={"HTTP_HOST": request_host})
    assert response.headers["X-Cache"] == "MISS"  # matched: the rule decided
    assert client.get("/p", extra_environ={"HTTP_HOST": "other.example"}).headers.get("X-Cache") is None


def test_a_host_variable_gets_the_lower_case_host() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", host="<Tenant>.Example.com", timeout=60, tags=["t:{Tenant}"])])
    environ = {"HTTP_HOST": "ACME.example.com"}
    assert client.get("/p", extra_environ=environ).headers["X-Cache"] == "MISS"
    assert client.get("/p", extra_environ=environ).headers["X-Cache"] == "HIT"
    cache.invalidate(tags=["t:acme"])
    assert client.get("/p", extra_environ=environ).headers["X-Cache"] == "MISS"


@pytest.mark.parametrize("request_host", ["[::1]", "[::1]:80", "[::1]:8080"])
def test_an_ipv6_host_pattern_matches_on_every_port(request_host: str) -> None:
    client, _ = cached(RecordingApp(), [Rule("/p", host="[::1]", timeout=60)])
    assert client.get("/p", extra_environ={"HTTP_HOST": request_host}).headers["X-Cache"] == "MISS"
