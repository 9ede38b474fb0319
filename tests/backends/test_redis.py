"""The Redis backends: URL forms, millisecond lifetimes, namespaced clear, cluster, sentinel, TLS."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from helpers import RecordingApp, cached
from servers import free_port, start_redis_tls

from wsgicache import ConfigurationError, Rule
from wsgicache.backends import get_backend
from wsgicache.backends.redis import RedisBackend, RedisClusterBackend, RedisSentinelBackend


def _raw(port: int) -> redis.Redis:
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=2)


def test_url_forms(redis_server: Any) -> None:
    plain = get_backend(f"redis://:secret@127.0.0.1:{redis_server.port}/2?socket_timeout=0.2&retries=0")
    assert type(plain) is RedisBackend
    assert plain.socket_timeout == 0.2 and plain.retries == 0
    cluster = get_backend("redis+cluster://user:pw@127.0.0.1:7000,127.0.0.1:7001,[::1]:7002")
    assert isinstance(cluster, RedisClusterBackend)
    assert cluster.startup_nodes == [("127.0.0.1", 7000), ("127.0.0.1", 7001), ("::1", 7002)]
    sentinel = get_backend("redis+sentinel://127.0.0.1:26379,127.0.0.1/mymaster/3?socket_timeout=0.1")
    assert isinstance(sentinel, RedisSentinelBackend)
    assert sentinel.sentinels == [("127.0.0.1", 26379), ("127.0.0.1", 26379)]
    assert sentinel.service_name == "mymaster" and sentinel._options["db"] == 3
    via_dict = get_backend(
        {"BACKEND": "redis", "LOCATION": f"127.0.0.1:{redis_server.port}/1", "KEY_PREFIX": "site1"}
    )
    assert isinstance(via_dict, RedisBackend) and via_dict.namespace == "site1"
    assert "secret" not in repr(plain)
    for bad, message in [
        ("redis+sentinel://127.0.0.1:26379", "service_name"),
        ("redis+sentinel://127.0.0.1:26379/m/x", "number"),
        ("redis+cluster://127.0.0.1:7000/3", "database 0"),
        ("redis://127.0.0.1:6379/0?socket_timeout=-1", "socket_timeout"),
        ("redis://127.0.0.1:6379/0?nonsense=1", "nonsense"),
    ]:
        with pytest.raises(ConfigurationError, match=message):
            get_backend(bad)
    with pytest.raises(ConfigurationError, match="must not contain"):
        get_backend("redis://127.0.0.1:6379/0", key_prefix="a{b}")


def test_unix_socket(redis_server: Any, make_backend: Callable[..., Any]) -> None:
    backend = get_backend(f"unix://{redis_server.unix_socket}?db=3", key_prefix="sock")
    try:
        backend.set("k", b"over the socket", 60)
        assert _raw(redis_server.port).execute_command("SELECT", 3) in (True, b"OK")
        raw = redis.Redis(unix_socket_path=str(redis_server.unix_socket), db=3)
        assert raw.get("sock:k") == b"over the socket"
        raw.close()
    finally:
        backend.clear()
        backend.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[Any]:
    server = start_redis_tls(tmp_path / "tls")
    yield server
    server.stop()


def test_rediss_tls(tls_server: Any) -> None:
    backend = get_backend(tls_server.url, key_prefix="tls")
    backend.set("k", b"encrypted", 60)
    assert backend.get_many(["k", "absent"]) == {"k": b"encrypted"}
    backend.clear()
    backend.close()


def test_millisecond_lifetimes(redis_server: Any, make_backend: Callable[..., Any]) -> None:
    backend = make_backend("redis", key_prefix="ttl")
    backend.set("k", b"v", 0.25)
    backend.add("lock", b"v", 0.0004)  # rounds up to 1 ms, never 0
    remaining = _raw(redis_server.port).pttl("ttl:k")
    assert 0 < remaining <= 250
    time.sleep(0.3)
    assert backend.get_many(["k", "lock"]) == {}


@pytest.mark.parametrize("kind", ["redis", "redis-cluster"])
def test_clear_scans_its_namespace_only_and_never_flushes(
    kind: str, request: pytest.FixtureRequest, make_backend: Callable[..., Any]
) -> None:
    if kind == "redis":
        ports = [request.getfixturevalue("redis_server").port]
    else:
        ports = [node.port for node in request.getfixturevalue("redis_cluster").nodes]
    backend = make_backend(kind, key_prefix="site1", scan_count=10)
    neighbours = [make_backend(kind, key_prefix=p) for p in ("site1x", "site10", "site")]
    keys = [f"e:{{s{n % 16}}}:{n:032x}" for n in range(300)] + ["plain*", "with?glob[chars]"]
    for key in keys:
        backend.set(key, b"v", 60)
    for neighbour in neighbours:
        neighbour.set("e:{s1}:x", b"n", 60)
    # The app's own keys in the same database.
    app_keys = ["site1", "site1-not-ours", "users:1"]
    owner = _raw(ports[0]) if kind == "redis" else redis.RedisCluster(host="127.0.0.1", port=ports[0])
    for key in app_keys:
        owner.set(key, b"app")
    flushes_before = _flush_calls(ports)
    backend.clear()
    assert _flush_calls(ports) == flushes_before
    assert backend.get_many(keys) == {}
    assert sum(_raw(port).dbsize() for port in ports) >= len(app_keys) + len(neighbours)
    for neighbour in neighbours:
        assert neighbour.get("e:{s1}:x") == b"n"
    assert [owner.get(key) for key in app_keys] == [b"app"] * len(app_keys)
    owner.delete(*app_keys) if kind == "redis" else [owner.delete(key) for key in app_keys]
    owner.close()


def _flush_calls(ports: list[int]) -> int:
    total = 0
    for port in ports:
        stats = _raw(port).info("commandstats")
        total += sum(
            int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("flushdb", "flushall")
        )
    return total


def test_cluster_places_a_hash_tag_in_one_slot_and_reads_other_keys_too(
    redis_cluster: Any, make_backend: Callable[..., Any]
) -> None:
    backend = make_backend("redis-cluster", key_prefix="slots")
    assert backend.key_shards == 16
    client = backend.client
    tagged = [f"slots:{kind}:{{s5}}:{n:032x}" for kind in "etl" for n in range(4)]
    assert len({client.keyslot(key) for key in tagged}) == 1
    slots = {client.keyslot(f"slots:e:{{s{n}}}:0") for n in range(16)}
    nodes = {client.get_node_from_key(f"slots:e:{{s{n}}}:0").name for n in range(16)}
    assert len(slots) == 16 and len(nodes) == 3  # the shards spread over all masters
    # Keys without a common hash tag (not the middleware's) still work, slot by slot.
    scattered = [f"k{n}" for n in range(30)]
    for key in scattered:
        backend.set(key, key.encode(), 60)
    assert backend.get_many(scattered) == {key: key.encode() for key in scattered}


def test_sentinel_finds_the_master(redis_sentinel: Any, make_backend: Callable[..., Any]) -> None:
    backend = make_backend("redis-sentinel", key_prefix="sent")
    backend.set("k", b"through the sentinel", 60)
    assert _raw(redis_sentinel.master.port).get("sent:k") == b"through the sentinel"


@pytest.mark.parametrize(
    "url",
    [
        "redis://127.0.0.1:{port}/0",
        "redis+cluster://127.0.0.1:{port}",
        "redis+sentinel://127.0.0.1:{port}/mymaster",
    ],
)
def test_an_unreachable_redis_never_stops_the_app_from_starting_or_answering(url: str) -> None:
    backend = get_backend(url.format(port=free_port()), socket_timeout=0.2, socket_connect_timeout=0.2)
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60)], backend=backend)
    started = time.monotonic()
    for _ in range(3):
        response = client.get("/p")
        assert response.status_int == 200 and response.headers["X-Cache"] == "BYPASS"
    assert time.monotonic() - started < 3 * 0.2 + 1.0
    assert app.count == 3 and cache.stats()["errors"] >= 1
    backend.close()
