"""A server stopped (SIGSTOP) or killed (SIGKILL) mid-run, then brought back.

Throughout, every request is answered correctly by the application (never a
cached answer that could be wrong, never an error), no request waits longer
than the configured timeout plus a margin, and hits resume once the server
is back. Each test runs its own short-lived servers.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers import RecordingApp, cached
from servers import (
    MemcachedServer,
    RedisClusterServers,
    RedisServer,
    memcached_url,
    start_memcached,
    start_redis,
    start_redis_cluster,
)

from wsgicache import Rule
from wsgicache.backends import get_backend

TIMEOUT = 0.3
#: Scheduling noise allowed on top of TIMEOUT (2 busy cores in CI).
MARGIN = 0.5
RULES = [Rule("/p/<int:n>", timeout=300, tags=["page:{n}", "pages"])]
#: The breaker's default probing (first probe 0.1 s after it opens, then at
#: doubling intervals up to retry_after, 1 s): hits resume within about
#: retry_after of the server answering again.
MIDDLEWARE = {"failure_threshold": 3}
#: How soon after a server is back all pages must be hits again: the longest
#: wait for the next probe, one request timing out on a reconnect, and noise.
RECOVERY = 1.0 + TIMEOUT + MARGIN


class Site:
    """The app behind the cache; every request is timed and checked."""

    def __init__(self, backend: Any, **options: Any) -> None:
        self.backend = backend
        self.app = RecordingApp()
        self.client, self.cache = cached(self.app, RULES, backend=backend, **{**MIDDLEWARE, **options})
        self.slowest = 0.0

    def get(self, n: int) -> str:
        started = time.monotonic()
        response = self.client.get(f"/p/{n}")
        elapsed = time.monotonic() - started
        self.slowest = max(self.slowest, elapsed)
        assert response.status_int == 200
        assert response.body == f"GET localhost/p/{n}?".encode()
        assert elapsed < TIMEOUT + MARGIN, f"/p/{n} took {elapsed:.2f}s"
        return str(response.headers["X-Cache"])

    def fill(self, pages: range) -> None:
        for n in pages:
            self.get(n)
        for n in pages:
            assert self.get(n) == "HIT"

    def wait_for_hits(self, pages: range, within: float = 15.0) -> float:
        """Request the pages until all are hits again; return how long it took."""
        started = time.monotonic()
        while True:
            results = [self.get(n) for n in pages]
            if all(result == "HIT" for result in results):
                return time.monotonic() - started
            assert time.monotonic() - started < within, f"no hits {within}s after recovery: {results}"
            time.sleep(0.1)


@pytest.fixture
def redis_site(tmp_path: Path) -> Iterator[tuple[RedisServer, Site]]:
    server = start_redis(tmp_path / "redis")
    backend = get_backend(server.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    yield server, Site(backend)
    backend.close()
    server.stop()


@pytest.fixture
def memcached_site(tmp_path: Path) -> Iterator[tuple[MemcachedServer, Site]]:
    server = start_memcached(tmp_path / "memcached")
    backend = get_backend(server.url, timeout=TIMEOUT, connect_timeout=TIMEOUT)
    yield server, Site(backend)
    backend.close()
    server.stop()


@pytest.fixture
def memcached_ring(tmp_path: Path) -> Iterator[tuple[list[MemcachedServer], Site]]:
    servers = [start_memcached(tmp_path / f"memcached{n}") for n in range(3)]
    backend = get_backend(
        memcached_url(servers),
        timeout=TIMEOUT,
        connect_timeout=TIMEOUT,
        retry_attempts=1,
        retry_timeout=0.5,
        dead_timeout=1.0,
    )
    yield servers, Site(backend)
    backend.close()
    for server in servers:
        server.stop()


@pytest.fixture
def cluster_site(tmp_path: Path) -> Iterator[tuple[RedisClusterServers, Site]]:
    cluster = start_redis_cluster(tmp_path / "cluster")
    backend = get_backend(
        cluster.url, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT, node_retry_after=1.0
    )
    # The default thresholds: the breaker has one circuit per shard, so the
    # dead node's shards are skipped while the other nodes keep hitting.
    yield cluster, Site(backend)
    backend.close()
    cluster.stop()


def _outage(site: Site, pages: range, seconds: float) -> list[str]:
    """Keep requesting during an outage; nothing may come from the cache."""
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for n in pages:
            result = site.get(n)
            assert result != "HIT", f"/p/{n} served from a cache that cannot be reached"
            seen.append(result)
    return seen


@pytest.mark.parametrize("fixture", ["redis_site", "memcached_site"])
def test_sigstop_then_sigcont(fixture: str, request: pytest.FixtureRequest) -> None:
    server, site = request.getfixturevalue(fixture)
    pages = range(5)
    site.fill(pages)
    calls = site.app.count

    server.pause()
    try:
        seen = _outage(site, pages, 2.0)
    finally:
        server.resume()
    assert site.app.count - calls == len(seen)  # every request went to the app
    stats = site.cache.stats()
    assert stats["errors"] >= 1
    assert stats["skipped"] >= 1  # the circuit breaker stopped waiting on the server

    recovered = site.wait_for_hits(pages)  # the entries survived the pause
    assert recovered < RECOVERY, f"hits resumed {recovered:.2f}s after SIGCONT"
    print(f"{fixture}: recovered in {recovered:.2f}s, slowest request {site.slowest:.2f}s, ", end="")
    print(f"stats {site.cache.stats()}")


@pytest.mark.parametrize("fixture", ["redis_site", "memcached_site"])
def test_sigkill_then_restart(fixture: str, request: pytest.FixtureRequest) -> None:
    server, site = request.getfixturevalue(fixture)
    pages = range(5)
    site.fill(pages)

    server.kill()
    seen = _outage(site, pages, 1.5)
    assert set(seen) <= {"MISS", "BYPASS"}
    server.start()  # same port, empty
    recovered = site.wait_for_hits(pages)
    assert recovered < RECOVERY, f"hits resumed {recovered:.2f}s after the restart"
    assert site.cache.stats()["errors"] >= 1
    print(f"{fixture}: recovered in {recovered:.2f}s, slowest request {site.slowest:.2f}s, ", end="")
    print(f"stats {site.cache.stats()}")


def _entry_keys(site: Site, pages: range) -> dict[int, str]:
    """The entry key the backend is asked for, per page (each page must be a hit)."""
    backend = site.backend
    asked: list[str] = []
    real_get_many: Callable[..., Any] = backend.get_many

    def recording_get_many(keys: Any) -> Any:
        asked.extend(key for key in keys if key.startswith("e:"))
        return real_get_many(keys)

    backend.get_many = recording_get_many
    keys = {}
    try:
        for n in pages:
            asked.clear()
            assert site.get(n) == "HIT"
            keys[n] = asked[0]
    finally:
        del backend.get_many
    return keys


def _pages_by_server(site: Site, pages: range) -> dict[str, list[int]]:
    """Which memcached server holds each page's entry."""
    placement: dict[str, list[int]] = {}
    for n, key in _entry_keys(site, pages).items():
        placement.setdefault(site.backend.server_of(key), []).append(n)
    return placement


def _pages_by_node(site: Site, pages: range) -> dict[int, list[int]]:
    """Which Redis Cluster node (by port) holds each page's entry."""
    client = site.backend.client
    placement: dict[int, list[int]] = {}
    for n, key in _entry_keys(site, pages).items():
        node = client.get_node_from_key(site.backend._prefix + key)
        placement.setdefault(int(node.port), []).append(n)
    return placement


def test_one_redis_cluster_node_stopped_then_killed(cluster_site: tuple[RedisClusterServers, Site]) -> None:
    cluster, site = cluster_site
    pages = range(24)
    site.fill(pages)
    placement = _pages_by_node(site, pages)
    assert len(placement) >= 2, placement
    victim = max(cluster.nodes, key=lambda node: len(placement.get(node.port, [])))
    on_victim = placement[victim.port]
    elsewhere = [n for n in pages if n not in on_victim]

    for phase in ("SIGSTOP", "SIGKILL"):
        if phase == "SIGSTOP":
            victim.pause()
        else:
            victim.kill()
        try:
            waited = time.monotonic()
            for _ in range(3):
                for n in on_victim:
                    assert site.get(n) != "HIT"
                for n in elsewhere:
                    assert site.get(n) == "HIT"  # the other masters keep serving
            waited = time.monotonic() - waited
            # A hung node is waited on once per node_retry_after, not once per request.
            if phase == "SIGSTOP":
                assert waited < 3 * TIMEOUT + MARGIN, waited
        finally:
            if phase == "SIGSTOP":
                victim.resume()
            else:
                victim.start()  # same port and nodes.conf: it rejoins, empty
        site.wait_for_hits(pages)
    print(f"cluster: slowest {site.slowest:.2f}s, placement {placement}, stats {site.cache.stats()}")


@pytest.mark.parametrize("signal_name", ["SIGKILL", "SIGSTOP"])
def test_one_memcached_server_down_of_three(
    signal_name: str, memcached_ring: tuple[list[MemcachedServer], Site]
) -> None:
    servers, site = memcached_ring
    pages = range(24)
    site.fill(pages)
    placement = _pages_by_server(site, pages)
    assert len(placement) >= 2, placement  # the pages are spread over the servers
    victim = max(servers, key=lambda server: len(placement.get(server.address, [])))
    on_victim = placement[victim.address]
    elsewhere = [n for n in pages if n not in on_victim]

    if signal_name == "SIGKILL":
        victim.kill()
    else:
        victim.pause()
    try:
        # The others keep hitting; the victim's pages are answered by the app.
        for n in on_victim:
            assert site.get(n) != "HIT"
        for n in elsewhere:
            assert site.get(n) == "HIT"
        # Once the victim is out of the ring, its pages are cached elsewhere.
        time.sleep(1.2)
        site.wait_for_hits(pages)
    finally:
        if signal_name == "SIGKILL":
            victim.start()
        else:
            victim.resume()
    # Back in the ring after dead_timeout: its shards get a new generation
    # (values written before it left are never served), then hit again.
    time.sleep(1.2)
    site.wait_for_hits(pages)
    assert site.backend.server_of(f"e:{{s0}}:{'0' * 32}") is not None
    new_placement = _pages_by_server(site, pages)
    assert victim.address in new_placement, "the server is used again once it is back"
    print(f"{signal_name}: slowest {site.slowest:.2f}s, placement {placement}, stats {site.cache.stats()}")
