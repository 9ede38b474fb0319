"""Shared pytest configuration. Helpers for tests live in tests/helpers.py."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _wsgicache_logs_visible(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="wsgicache")


# ---------------------------------------------------------------------------
# Backends against real servers (issue 4). Everything below is used by
# tests/backends/. The servers (tests/servers.py) are session-scoped: started
# on first use on free 127.0.0.1 ports in temporary directories, stopped by
# pid at the end. A missing redis-server / memcached skips the tests that need
# it, or fails them when CI=true.
# ---------------------------------------------------------------------------


@pytest.fixture(scope="session", autouse=True)
def _stop_test_servers() -> Iterator[None]:
    # Set up first, so torn down last: stops every session server at once, by pid.
    yield
    from servers import stop_all

    stop_all()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from servers import start_redis

    return start_redis(tmp_path_factory.mktemp("redis"))


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from servers import start_redis_cluster

    return start_redis_cluster(tmp_path_factory.mktemp("redis-cluster"))


@pytest.fixture(scope="session")
def redis_sentinel(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from servers import start_redis_sentinel

    return start_redis_sentinel(tmp_path_factory.mktemp("redis-sentinel"))


# Failover topologies (issue 8): fresh for each test, since each test kills or
# stalls a master. Short detection times keep a failover at about 2 s.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 3000
CLUSTER_NODE_TIMEOUT_MS = 1000


_FAILOVER_REPORT = pytest.StashKey[list[str]]()


@pytest.fixture
def failover_report(request: pytest.FixtureRequest) -> list[str]:
    """Lines the failover tests measured; printed at the end of the run, even with -q."""
    return request.config.stash.setdefault(_FAILOVER_REPORT, [])


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    lines = config.stash.get(_FAILOVER_REPORT, [])
    if lines:
        terminalreporter.section("failover measurements (tests/backends/test_failover.py)")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def sentinel_failover(tmp_path: Any) -> Iterator[Any]:
    """A master, one replica and three sentinels (quorum 2) on 127.0.0.1, ready to fail over."""
    from servers import start_redis_sentinel_failover

    topology = start_redis_sentinel_failover(
        tmp_path / "sentinel",
        replicas=1,
        sentinels=3,
        quorum=2,
        down_after_ms=SENTINEL_DOWN_AFTER_MS,
        failover_timeout_ms=SENTINEL_FAILOVER_TIMEOUT_MS,
    )
    yield topology
    topology.stop()


@pytest.fixture
def cluster_failover(tmp_path: Any) -> Iterator[Any]:
    """A Redis Cluster of three masters with one replica each, ``cluster-node-timeout`` 1 s."""
    from servers import start_redis_cluster

    cluster = start_redis_cluster(
        tmp_path / "cluster", masters=3, replicas=1, node_timeout_ms=CLUSTER_NODE_TIMEOUT_MS
    )
    yield cluster
    cluster.stop()


@pytest.fixture(scope="session")
def memcached_server(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from servers import start_memcached

    return start_memcached(tmp_path_factory.mktemp("memcached"))


@pytest.fixture(scope="session")
def memcached_servers(tmp_path_factory: pytest.TempPathFactory) -> list[Any]:
    from servers import start_memcached

    return [start_memcached(tmp_path_factory.mktemp(f"memcached{n}")) for n in range(3)]


def backend_url(request: pytest.FixtureRequest, kind: str, directory: Any) -> str:
    """The URL of a backend of ``kind``, starting its server(s) if needed."""
    if kind == "memory":
        return "memory://"
    if kind == "filesystem":
        return f"file://{directory}"
    if kind == "memcached":
        return str(request.getfixturevalue("memcached_server").url)
    if kind == "memcached-3":
        from servers import memcached_url

        return memcached_url(request.getfixturevalue("memcached_servers"))
    if kind == "redis":
        return str(request.getfixturevalue("redis_server").url)
    if kind == "redis-cluster":
        return str(request.getfixturevalue("redis_cluster").url)
    if kind == "redis-sentinel":
        return str(request.getfixturevalue("redis_sentinel").url)
    raise ValueError(f"unknown backend kind {kind!r}")


@pytest.fixture
def make_backend(request: pytest.FixtureRequest, tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """``make_backend(kind, key_prefix="", **options)``: a backend on the shared test servers.

    Backends of one test share storage (one directory for "filesystem"); each
    is cleared and closed at the end of the test.
    """
    from wsgicache.backends import get_backend

    created: list[Any] = []

    def make(kind: str, key_prefix: str = "", **options: Any) -> Any:
        instance = get_backend(
            backend_url(request, kind, tmp_path / "cache"), key_prefix=key_prefix, **options
        )
        created.append(instance)
        return instance

    yield make
    for instance in created:
        with contextlib.suppress(Exception):
            instance.clear()
        with contextlib.suppress(Exception):
            instance.close()
