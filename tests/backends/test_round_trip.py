"""One round trip per hit, tag checks included, proven by the servers' own counters.

Redis: ``INFO commandstats`` of every node before and after a hit on a page
with three tag generations (its path, ``user:1`` and ``users``): the only
command run is one ``MGET`` of the entry and the three generations, on one
node, in a cluster too.

Memcached: ``stats`` of every server before and after the hit: one server
read exactly the bytes of one ``get`` command line naming the entry, the
three generations and the namespace generation (``cmd_get`` counts keys,
``bytes_read`` proves they came in one command), on a connection already
open (``total_connections`` grows only by the ``stats`` connection itself).
"""

from __future__ import annotations

from collections.abc import Callable
from secrets import token_hex
from typing import Any

import pytest
import redis
from helpers import RecordingApp, cached

from wsgicache import Rule

RULES = [Rule("/user/<int:user_id>", timeout=60, tags=["user:{user_id}", "users"])]

#: Commands a sentinel sends to the master it watches, on its own.
SENTINEL_TRAFFIC = {"ping", "info", "publish", "subscribe", "client", "hello", "role"}

#: Bytes of the ``stats\r\n`` command that reading the counters itself adds.
STATS_COMMAND = len(b"stats\r\n")


def _redis_nodes(kind: str, request: pytest.FixtureRequest) -> list[int]:
    if kind == "redis":
        return [request.getfixturevalue("redis_server").port]
    if kind == "redis-cluster":
        return [node.port for node in request.getfixturevalue("redis_cluster").nodes]
    return [request.getfixturevalue("redis_sentinel").master.port]


def _commandstats(client: redis.Redis) -> dict[str, int]:
    info = client.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(values["calls"]) for name, values in info.items()}


def _hit_twice_then_measure(client: Any) -> None:
    assert client.get("/user/1").headers["X-Cache"] == "MISS"
    # A first hit opens the connection (and, in a cluster, learns the slots).
    assert client.get("/user/1").headers["X-Cache"] == "HIT"


@pytest.mark.parametrize("kind", ["redis", "redis-cluster", "redis-sentinel"])
def test_a_redis_hit_with_tags_is_one_mget(
    kind: str, request: pytest.FixtureRequest, make_backend: Callable[..., Any]
) -> None:
    ports = _redis_nodes(kind, request)
    backend = make_backend(kind, key_prefix=f"rt-{token_hex(3)}")
    client, _ = cached(RecordingApp(), RULES, backend=backend)
    _hit_twice_then_measure(client)

    # Connections for INFO, opened (handshake done) before the first count.
    counters = {port: redis.Redis(host="127.0.0.1", port=port, socket_timeout=2) for port in ports}
    for connection in counters.values():
        connection.ping()
    before = {port: _commandstats(counters[port]) for port in ports}
    response = client.get("/user/1")
    after = {port: _commandstats(counters[port]) for port in ports}
    for connection in counters.values():
        connection.close()

    assert response.headers["X-Cache"] == "HIT"
    ran: dict[int, dict[str, int]] = {}
    for port in ports:
        delta = {
            name: calls - before[port].get(name, 0)
            for name, calls in after[port].items()
            if calls != before[port].get(name, 0)
        }
        delta["info"] = delta.get("info", 0) - 1  # the "before" INFO shows in "after"
        if kind == "redis-sentinel":
            delta = {name: calls for name, calls in delta.items() if name not in SENTINEL_TRAFFIC}
        delta = {name: calls for name, calls in delta.items() if calls}
        if delta:
            ran[port] = delta
    print(f"{kind}: commands run by the hit, per node port: {ran}")
    assert list(ran.values()) == [{"mget": 1}], ran


@pytest.mark.parametrize("kind", ["memcached", "memcached-3"])
def test_a_memcached_hit_with_tags_is_one_get(
    kind: str, request: pytest.FixtureRequest, make_backend: Callable[..., Any]
) -> None:
    servers = (
        [request.getfixturevalue("memcached_server")]
        if kind == "memcached"
        else request.getfixturevalue("memcached_servers")
    )
    backend = make_backend(kind, key_prefix=f"rt-{token_hex(3)}")
    client, _ = cached(RecordingApp(), RULES, backend=backend)
    _hit_twice_then_measure(client)

    # Record which keys the hit asks for (the real get_many still does the work).
    asked: list[list[str]] = []
    real_get_many = backend.get_many

    def recording_get_many(keys: Any) -> dict[str, bytes]:
        asked.append(list(keys))
        return real_get_many(keys)

    backend.get_many = recording_get_many

    before = [server.stats() for server in servers]
    response = client.get("/user/1")
    after = [server.stats() for server in servers]

    assert response.headers["X-Cache"] == "HIT"
    assert len(asked) == 1 and len(asked[0]) == 4  # the entry and 3 tag generations
    storage_keys = [backend._storage_key(key) for key in asked[0]]
    shard = backend._shard_of(storage_keys[0])
    storage_keys.append(backend._generation_key(shard))  # the namespace generation
    one_command_line = len(b"get " + " ".join(storage_keys).encode() + b"\r\n")
    touched = []
    for server, old, new in zip(servers, before, after, strict=True):
        delta = {name: new[name] - old[name] for name in ("cmd_get", "get_hits", "bytes_read", "cmd_set")}
        delta["bytes_read"] -= STATS_COMMAND
        delta["total_connections"] = new["total_connections"] - old["total_connections"] - 1
        if any(delta.values()):
            touched.append((server.port, delta))
    print(f"{kind}: counters moved by the hit, per server: {touched}; get line: {one_command_line} bytes")
    assert len(touched) == 1, touched
    _, delta = touched[0]
    assert delta == {
        "cmd_get": 5,
        "get_hits": 5,
        "bytes_read": one_command_line,
        "cmd_set": 0,
        "total_connections": 0,
    }
