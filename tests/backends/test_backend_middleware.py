"""The middleware on every built-in backend: hit, miss, tags, invalidation, clear.

Each backend is a real one (real redis-server and memcached processes); two
middleware instances on one shared backend stand for two worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from secrets import token_hex
from typing import Any

import pytest
from helpers import RecordingApp, cached, make_environ, plan_of
from servers import BACKEND_KINDS

from wsgicache import Rule

RULES = [
    Rule("/user/<int:user_id>", timeout=60, tags=["user:{user_id}", "users"]),
    Rule("/posts", timeout=60, tags=["posts"], query=["page"]),
    Rule("/doc/<name>", timeout=60, key="{name}"),
    Rule("/short", timeout=0.6),
    Rule("/big", timeout=60),
]


@pytest.fixture(params=BACKEND_KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def site(kind: str, make_backend: Callable[..., Any]) -> Callable[..., Any]:
    """``site(prefix=None)``: (test client, middleware, app) on a backend of ``kind``."""
    default_prefix = f"mw-{token_hex(3)}"

    def build(prefix: str | None = None, app: Any = None) -> Any:
        app = app or RecordingApp()
        backend = make_backend(kind, key_prefix=prefix or default_prefix)
        client, cache = cached(app, RULES, backend=backend)
        return client, cache, app

    return build


def test_miss_then_hit_and_head(site: Callable[..., Any]) -> None:
    client, cache, app = site()
    first = client.get("/user/1")
    assert first.headers["X-Cache"] == "MISS"
    second = client.get("/user/1")
    assert second.headers["X-Cache"] == "HIT"
    assert second.body == first.body == b"GET localhost/user/1?"
    assert "Age" in second.headers
    head = client.head("/user/1")
    assert head.headers["X-Cache"] == "HIT"
    assert head.body == b""
    assert app.count == 1
    assert client.get("/user/2").headers["X-Cache"] == "MISS"
    assert app.count == 2
    stats = cache.stats()
    assert stats["hits"] == 2 and stats["stores"] == 2 and stats["errors"] == 0


def test_tags_invalidate_only_their_entries(site: Callable[..., Any]) -> None:
    client, cache, _ = site()
    for path in ("/user/1", "/user/2", "/posts"):
        client.get(path)
    assert cache.invalidate(tags=["user:1"])
    assert client.get("/user/1").headers["X-Cache"] == "MISS"
    assert client.get("/user/2").headers["X-Cache"] == "HIT"
    assert client.get("/posts").headers["X-Cache"] == "HIT"
    assert client.get("/user/1").headers["X-Cache"] == "HIT"
    cache.invalidate(tags=["users"])
    assert client.get("/user/1").headers["X-Cache"] == "MISS"
    assert client.get("/user/2").headers["X-Cache"] == "MISS"
    assert client.get("/posts").headers["X-Cache"] == "HIT"
    assert cache.stats()["errors"] == 0


def test_invalidate_url_and_key(site: Callable[..., Any]) -> None:
    client, cache, _ = site()
    for path in ("/posts", "/posts?page=2", "/doc/a", "/doc/b"):
        assert client.get(path).headers["X-Cache"] == "MISS"
    cache.invalidate("/posts")
    assert client.get("/posts").headers["X-Cache"] == "MISS"
    assert client.get("/posts?page=2").headers["X-Cache"] == "MISS"
    assert client.get("/doc/a").headers["X-Cache"] == "HIT"
    cache.invalidate(key="a")
    assert client.get("/doc/a").headers["X-Cache"] == "MISS"
    assert client.get("/doc/b").headers["X-Cache"] == "HIT"


def test_clear(site: Callable[..., Any]) -> None:
    client, cache, _ = site()
    for path in ("/user/1", "/posts", "/doc/a"):
        client.get(path)
    assert cache.clear()
    for path in ("/user/1", "/posts", "/doc/a"):
        assert client.get(path).headers["X-Cache"] == "MISS"
        assert client.get(path).headers["X-Cache"] == "HIT"


def test_clear_leaves_another_site_alone(site: Callable[..., Any]) -> None:
    client_a, cache_a, _ = site(prefix=f"a-{token_hex(3)}")
    client_b, _, _ = site(prefix=f"b-{token_hex(3)}")
    client_a.get("/posts")
    client_b.get("/posts")
    cache_a.clear()
    assert client_a.get("/posts").headers["X-Cache"] == "MISS"
    assert client_b.get("/posts").headers["X-Cache"] == "HIT"


def test_entries_expire(site: Callable[..., Any]) -> None:
    client, _, app = site()
    client.get("/short")
    assert client.get("/short").headers["X-Cache"] == "HIT"
    time.sleep(0.7)
    assert client.get("/short").headers["X-Cache"] == "MISS"
    assert app.count == 2


def test_large_body(site: Callable[..., Any]) -> None:
    body = bytes(range(256)) * 800  # 200 KiB, every byte value
    client, _, _ = site(app=RecordingApp(body=body))
    assert client.get("/big").headers["X-Cache"] == "MISS"
    hit = client.get("/big")
    assert hit.headers["X-Cache"] == "HIT"
    assert hit.body == body


def test_workers_sharing_a_backend_see_each_others_entries_and_invalidations(
    site: Callable[..., Any], kind: str
) -> None:
    if kind == "memory":
        pytest.skip("the memory backend is private to each process")
    prefix = f"shared-{token_hex(3)}"
    worker_a, cache_a, app_a = site(prefix=prefix)
    worker_b, cache_b, app_b = site(prefix=prefix)
    assert worker_a.get("/user/7").headers["X-Cache"] == "MISS"
    assert worker_b.get("/user/7").headers["X-Cache"] == "HIT"
    cache_b.invalidate(tags=["user:7"])
    assert worker_a.get("/user/7").headers["X-Cache"] == "MISS"
    assert worker_b.get("/user/7").headers["X-Cache"] == "HIT"
    cache_a.clear()
    assert worker_b.get("/user/7").headers["X-Cache"] == "MISS"
    assert app_a.count + app_b.count == 3


def test_bytes_changed_in_the_store_are_a_miss_not_served(site: Callable[..., Any]) -> None:
    """The stored body is covered by a checksum: a value changed in Redis or memcached is a miss."""
    client, cache, app = site()
    first = client.get("/big")
    lookup = plan_of(cache, make_environ("/big"))
    backend = cache.backends[lookup.alias]
    value = backend.get(lookup.entry_key)
    assert value is not None and value.endswith(first.body)
    tampered = value[: -len(first.body)] + first.body.replace(b"GET", b"PUT")
    assert len(tampered) == len(value)
    backend.set(lookup.entry_key, tampered, 60)
    response = client.get("/big")
    assert response.headers["X-Cache"] == "MISS"
    assert response.body == first.body
    assert cache.stats()["corrupt"] == 1
    assert app.count == 2
