#!/usr/bin/env python
"""What a cache hit costs on each backend: wsgicache and Flask-Caching, 2 KiB and 200 KiB bodies.

In one process and one run, for a 2 KiB and a 200 KiB body, this times a
wsgicache hit on every built-in backend form and a Flask-Caching hit on the
same Flask route, with the harness of ``bench_hit.py`` (imported from it):
a fresh environ per request, one ``start_response``, the body iterated and
``close()`` called; no HTTP server.

Rows, for each body size:

- wsgicache hits, ``CacheMiddleware`` wrapping the Flask app's ``wsgi_app``
  with ``Rule("/page", timeout=3600, tags=["pages", "site"])``, so a hit also
  checks three tag generations (the path's and the two tags'), on
  ``memory://``, ``file://`` (a temporary directory), ``memcached://`` (one
  server), ``memcached://`` (three servers), ``redis://`` (one server) and
  ``redis+cluster://`` (three masters);
- for each network backend row, a "driver only" row: the one call our
  backend makes on that hit, made directly on the driver: redis-py ``mget``
  on a ``redis.Redis`` / ``RedisCluster``, pymemcache ``get_many`` on a
  ``PooledClient`` / ``HashClient``. The client is the one the backend
  builds for the same URL (same class, same options; its own connections),
  and the call reads the very server keys of the primed wsgicache hit (the
  plan's read keys through the backend's key prefixing, and on memcached
  the namespace generation too), whose values are checked against what our
  backend returned;
- next to each, a "memory hit, then driver call" row: in one loop, a
  ``memory://`` hit through the harness followed by that driver call. The
  goal's denominator adds two rows timed each in a loop of its own; this row
  shows what the two cost when they alternate, as they do inside a network
  hit (a loop of round trips alone runs faster than round trips spaced by
  other work);
- Flask-Caching hits, ``@cache.cached(timeout=3600)`` on the same Flask view,
  with ``CACHE_TYPE`` ``SimpleCache``, ``RedisCache`` and ``MemcachedCache``
  (once for each memcached client that cachelib supports and that is
  installed: ``pylibmc``, ``python-memcached``).

Goals (issue 10), judged on the median, per body size: each network hit
costs at most 1.15x (memory hit + driver call), the same run's rows (the
driver-only row and the memory row added up); and a redis hit at most 0.5x a
Flask-Caching ``RedisCache`` hit.

The servers are real ``redis-server`` and ``memcached`` processes that the
script starts on free 127.0.0.1 ports in a temporary directory with the
helpers of ``tests/servers.py``, and stops (by pid) at the end. A missing
server binary or client library skips its rows and says so; nothing stands
in for it.

Each row is primed (one miss, then one hit whose body is compared byte for
byte), warmed up, and checked after every timed batch: every response
``200`` with the whole body; for wsgicache ``X-Cache: HIT`` and ``stats()``
counting one hit per request and no miss, store, bypass or error; for
Flask-Caching that the view was not called. On network backends the
servers' own counters are read around every batch too: Redis ``INFO``
(``commandstats``, ``keyspace_hits``), memcached ``stats`` (``cmd_get``,
``get_hits``, ``get_misses``, ``cmd_set``, ``total_connections``). They
must show exactly one command per request on Redis (``MGET`` for wsgicache,
``GET`` for Flask-Caching), every key read a hit, nothing written, no new
connection: so every timed request really went to the server, in one round
trip. A driver row must do there exactly what its wsgicache row does (the
same command, the same number of keys, all hits), and return the same
values after every batch.

Batches of all rows are interleaved; the garbage collector stays on
(``gc.collect()`` before each batch). ``best`` is the fastest batch,
``median`` the median batch.

Usage::

    python benchmarks/bench_backends.py            # full run (about 3 minutes)
    python benchmarks/bench_backends.py --quick    # smoke test (about 15 s); numbers not meaningful
    python benchmarks/bench_backends.py --json     # machine-readable output
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.util
import itertools
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# The harness of bench_hit.py, and the server helpers of the test suite.
sys.path[:0] = [str(HERE), str(HERE.parent / "tests")]

import servers  # noqa: E402  (tests/servers.py)
from bench_hit import (  # noqa: E402
    BenchError,
    Counter,
    Recorder,
    machine,
    make_environ,
    package_version,
    parse_args,
    ratio,
    run_batch,
)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

PATH = "/page"
TIMEOUT = 3600  # seconds; far longer than a run, so no entry expires while measuring
TAGS = ("pages", "site")
RATIO_WIDTH = 64
ROW_WIDTH = 54
#: Issue 10: a network hit <= 1.15 x (memory hit + the driver's call); a redis hit
#: <= 0.5 x a Flask-Caching RedisCache hit. Judged on the median batches.
GOAL_OVER_DRIVER = 1.15
GOAL_REDIS_VS_FLASK_CACHING = 0.5
#: The wsgicache network rows that get a driver-only row (their backend keys).
DRIVER_ROWS = ("redis", "redis_cluster", "memcached", "memcached3")
#: (size in bytes, key suffix, label)
SIZES = ((2 * 1024, "2k", "2 KiB"), (200 * 1024, "200k", "200 KiB"))
#: Memcached clients that cachelib (Flask-Caching's MemcachedCache) supports:
#: (row suffix, importable module, label, PyPI name)
MEMCACHED_CLIENTS = (
    ("pylibmc", "pylibmc", "pylibmc", "pylibmc"),
    ("python_memcached", "memcache", "python-memcached", "python-memcached"),
)


def make_body(size: int) -> bytes:
    body = (b"<!doctype html><title>bench</title><p>" + b"x" * size)[: size - 4] + b"</p>"
    assert len(body) == size
    return body


# -- the servers' own counters ---------------------------------------------------


class Probe:
    """Reads a server's counters around a batch and checks what each hit did there."""

    def snapshot(self) -> dict[str, int]:
        raise NotImplementedError

    def check(self, label: str, before: dict[str, int], after: dict[str, int], n: int) -> dict[str, Any]:
        """Raise :class:`BenchError` unless the batch of ``n`` hits did exactly what
        a hit should on the server; return what one hit did there."""
        raise NotImplementedError


class RedisProbe(Probe):
    """``INFO commandstats`` and ``INFO stats`` of every node, summed."""

    def __init__(self, ports: Sequence[int], command: str) -> None:
        self.ports = list(ports)
        self.command = command

    def snapshot(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for port in self.ports:
            for section in ("commandstats", "stats"):
                reply = servers.resp_command(port, "INFO", section)
                assert isinstance(reply, bytes)
                for line in reply.decode().splitlines():
                    name, _, value = line.partition(":")
                    if name.startswith("cmdstat_"):
                        calls = int(value.split(",")[0].removeprefix("calls="))
                        total[name] = total.get(name, 0) + calls
                    elif name in ("keyspace_hits", "keyspace_misses"):
                        total[name] = total.get(name, 0) + int(value)
        return total

    def check(self, label: str, before: dict[str, int], after: dict[str, int], n: int) -> dict[str, Any]:
        commands = {
            name.removeprefix("cmdstat_"): after[name] - before.get(name, 0)
            for name in after
            if name.startswith("cmdstat_") and name != "cmdstat_info"
        }
        commands = {name: calls for name, calls in commands.items() if calls}
        if commands != {self.command: n}:
            raise BenchError(
                f"{label}: Redis ran {commands} for {n} hits, expected {{{self.command!r}: {n}}}"
            )
        hits = after["keyspace_hits"] - before.get("keyspace_hits", 0)
        misses = after["keyspace_misses"] - before.get("keyspace_misses", 0)
        if misses or hits % n or not hits:
            raise BenchError(f"{label}: Redis keyspace hits +{hits}, misses +{misses} for {n} hits")
        return {"commands": 1, "command": self.command.upper(), "keys": hits // n}


class MemcachedProbe(Probe):
    """``stats`` of every memcached server, summed (each read opens one connection)."""

    FIELDS = ("cmd_get", "get_hits", "get_misses", "cmd_set", "total_connections")

    def __init__(self, mc_servers: Sequence[servers.MemcachedServer]) -> None:
        self.servers = list(mc_servers)

    def snapshot(self) -> dict[str, int]:
        total = dict.fromkeys(self.FIELDS, 0)
        for server in self.servers:
            stats = server.stats()
            for name in self.FIELDS:
                total[name] += stats[name]
        return total

    def check(self, label: str, before: dict[str, int], after: dict[str, int], n: int) -> dict[str, Any]:
        delta = {name: after[name] - before[name] for name in self.FIELDS}
        # Only the "after" stats connections are new (one per server): the client reconnected never.
        delta["total_connections"] -= len(self.servers)
        hits = delta["get_hits"]
        if (
            delta["get_misses"]
            or delta["cmd_set"]
            or delta["total_connections"]
            or hits != delta["cmd_get"]
            or not hits
            or hits % n
        ):
            raise BenchError(f"{label}: memcached counters moved by {delta} for {n} hits")
        return {"command": "get", "keys": hits // n}


# -- rows --------------------------------------------------------------------------


@dataclass
class Row:
    key: str
    group: str  # "wsgicache" | "driver" | "combined" | "flask_caching"
    backend: str
    label: str
    size: int
    size_key: str
    body: bytes
    app: WSGIApp | None
    counter: Counter
    #: for wsgicache rows: the middleware whose stats and header prove the hits
    middleware: Any = None
    probe: Probe | None = None
    #: for driver rows: the call timed, and what it must return every time
    driver: DriverCall | None = None
    #: for wsgicache rows: the backend URL
    url: str | None = None
    server_per_hit: dict[str, Any] = field(default_factory=dict)
    samples_ns: list[float] = field(default_factory=list)
    iterations: int = 0
    verified_batches: int = 0

    def __post_init__(self) -> None:
        self.paths = itertools.repeat(PATH)


@dataclass
class DriverCall:
    """The call a wsgicache backend makes on a hit, made directly on its driver."""

    client: Any
    #: "Redis.mget", "HashClient.get_many", ...
    description: str
    call: Callable[[], Any]
    server_keys: list[str]
    expected: Any
    close: Callable[[], None]


@dataclass
class Servers:
    directory: Path
    redis: Any = None
    redis_cluster: Any = None
    memcached: Any = None
    memcached_3: list[Any] = field(default_factory=list)
    #: what could not be started, and why
    missing: dict[str, str] = field(default_factory=dict)

    def stop(self) -> None:
        running = [self.redis, self.memcached, *self.memcached_3]
        if self.redis_cluster is not None:
            running.extend(self.redis_cluster.nodes)
        for server in running:
            if server is not None:
                server.stop()


def missing_module(module: str, pypi: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return f"the Python package {pypi} is not installed (pip install -e '.[bench]')"
    return None


def missing_binaries(*names: str) -> str | None:
    absent = [name for name in names if shutil.which(name) is None]
    if absent:
        return (
            f"{', '.join(absent)} not installed (Debian: apt-get install redis-server memcached; "
            "bash scripts/test installs them)"
        )
    return None


def start_servers(directory: Path) -> Servers:
    found = Servers(directory)
    redis_missing = missing_binaries("redis-server") or missing_module("redis", "redis")
    cluster_missing = redis_missing or missing_binaries("redis-cli")
    memcached_missing = missing_binaries("memcached")
    if redis_missing:
        found.missing["redis"] = redis_missing
    else:
        found.redis = servers.start_redis(directory / "redis")
    if cluster_missing:
        found.missing["redis_cluster"] = cluster_missing
    else:
        found.redis_cluster = servers.start_redis_cluster(directory / "redis-cluster", masters=3)
    if memcached_missing:
        found.missing["memcached"] = memcached_missing
    else:
        found.memcached = servers.start_memcached(directory / "memcached")
        found.memcached_3 = [servers.start_memcached(directory / f"memcached-3-{n}") for n in range(3)]
    return found


def flask_app(name: str, body: bytes, counter: Counter, cache_config: dict[str, Any] | None) -> Any:
    """The Flask route every row serves; with ``cache_config``, under Flask-Caching's ``@cached``."""
    from flask import Flask

    app = Flask(name)
    app.config["TESTING"] = False

    def page() -> bytes:
        counter.calls += 1
        return body

    view: Callable[[], bytes] = page
    if cache_config is not None:
        from flask_caching import Cache

        cache = Cache(app, config={"CACHE_DEFAULT_TIMEOUT": TIMEOUT, **cache_config})
        view = cache.cached(timeout=TIMEOUT)(page)
        app.extensions["bench_cache"] = cache
    app.add_url_rule(PATH, "page", view, methods=["GET"])
    return app


def build_rows(env: Servers) -> tuple[list[Row], dict[str, str]]:
    """Every row that can run here, and the rows that cannot (key -> why)."""
    from wsgicache import CacheMiddleware, Rule

    rules = [Rule(PATH, timeout=TIMEOUT, tags=list(TAGS))]
    rows: list[Row] = []
    skipped: dict[str, str] = {}
    pymemcache_missing = missing_module("pymemcache", "pymemcache")

    for size, size_key, _ in SIZES:
        body = make_body(size)

        # backend key, label, URL (or None: skipped), probe, why skipped
        ours: list[tuple[str, str, str | None, Probe | None, str | None]] = [
            ("memory", "wsgicache memory://", "memory://", None, None),
            (
                "file",
                "wsgicache file:// (tmp dir)",
                f"file://{env.directory / f'file-cache-{size_key}'}",
                None,
                None,
            ),
        ]
        mc_why = env.missing.get("memcached") or pymemcache_missing
        ours.append(
            (
                "memcached",
                "wsgicache memcached:// (1 server)",
                None if mc_why else env.memcached.url,
                None if mc_why else MemcachedProbe([env.memcached]),
                mc_why,
            )
        )
        ours.append(
            (
                "memcached3",
                "wsgicache memcached:// (3 servers)",
                None if mc_why else servers.memcached_url(env.memcached_3),
                None if mc_why else MemcachedProbe(env.memcached_3),
                mc_why,
            )
        )
        redis_why = env.missing.get("redis")
        ours.append(
            (
                "redis",
                "wsgicache redis:// (1 server)",
                None if redis_why else env.redis.url,
                None if redis_why else RedisProbe([env.redis.port], "mget"),
                redis_why,
            )
        )
        cluster_why = env.missing.get("redis_cluster")
        ours.append(
            (
                "redis_cluster",
                "wsgicache redis+cluster:// (3 masters)",
                None if cluster_why else env.redis_cluster.url,
                None if cluster_why else RedisProbe([n.port for n in env.redis_cluster.nodes], "mget"),
                cluster_why,
            )
        )
        for backend, label, url, probe, why in ours:
            key = f"ours_{backend}_{size_key}"
            if url is None:
                skipped[key] = why or "not available"
                continue
            counter = Counter()
            app = flask_app(f"bench_{key}", body, counter, None)
            middleware = CacheMiddleware(
                app.wsgi_app, backend=url, rules=rules, key_prefix=f"bench-{size_key}"
            )
            rows.append(
                Row(
                    key,
                    "wsgicache",
                    backend,
                    label,
                    size,
                    size_key,
                    body,
                    middleware,
                    counter,
                    middleware,
                    probe,
                    url=url,
                )
            )

        # Flask-Caching on the same route; each row its own key prefix on the shared servers.
        theirs: list[tuple[str, str, dict[str, Any] | None, Probe | None, str | None]] = [
            ("simple", "Flask-Caching SimpleCache", {"CACHE_TYPE": "SimpleCache"}, None, None)
        ]
        theirs.append(
            (
                "redis",
                "Flask-Caching RedisCache",
                None
                if redis_why
                else {
                    "CACHE_TYPE": "RedisCache",
                    "CACHE_REDIS_URL": env.redis.url,
                    "CACHE_KEY_PREFIX": f"fc-redis-{size_key}-",
                },
                None if redis_why else RedisProbe([env.redis.port], "get"),
                redis_why,
            )
        )
        for suffix, module, client_label, pypi in MEMCACHED_CLIENTS:
            why = env.missing.get("memcached") or missing_module(module, pypi)
            config: dict[str, Any] | None = None
            if not why:
                if module == "pylibmc":
                    # A server list: cachelib builds its preferred client, pylibmc, in a pool.
                    servers_option: Any = [env.memcached.address]
                else:
                    import memcache  # type: ignore[import-not-found]

                    servers_option = memcache.Client([env.memcached.address])
                config = {
                    "CACHE_TYPE": "MemcachedCache",
                    "CACHE_MEMCACHED_SERVERS": servers_option,
                    "CACHE_KEY_PREFIX": f"fc-{suffix}-{size_key}-",
                }
            theirs.append(
                (
                    f"memcached_{suffix}",
                    f"Flask-Caching MemcachedCache ({client_label})",
                    config,
                    None if why else MemcachedProbe([env.memcached]),
                    why,
                )
            )
        for backend, label, config, probe, why in theirs:
            key = f"fc_{backend}_{size_key}"
            if config is None:
                skipped[key] = why or "not available"
                continue
            counter = Counter()
            app = flask_app(f"bench_{key}", body, counter, config)
            if backend.startswith("memcached_"):
                client = app.extensions["bench_cache"].cache._client
                wanted = "pylibmc" if backend.endswith("pylibmc") else "memcache"
                if not type(client).__module__.startswith(wanted):
                    raise BenchError(f"{label}: cachelib chose the client {type(client)!r}")
            rows.append(
                Row(
                    key,
                    "flask_caching",
                    backend,
                    label,
                    size,
                    size_key,
                    body,
                    app.wsgi_app,
                    counter,
                    None,
                    probe,
                )
            )
    return rows, skipped


def driver_call(row: Row) -> DriverCall:
    """What the backend of the primed wsgicache ``row`` does on a hit, on its own driver client.

    The keys are the plan's read keys (what the middleware asks the backend
    for in one call), turned into server keys as the backend does; the client
    is the one the backend class builds for the same URL, on its own
    connections. The values read are checked against our backend's answer.
    """
    from wsgicache.backends import get_backend
    from wsgicache.middleware import WSGIRequest

    middleware = row.middleware
    plan = middleware._planner.plan(WSGIRequest(make_environ(PATH)))
    keys = list(plan.read_keys)
    ours = middleware.backends[plan.alias]
    found = ours.get_many(keys)
    if set(found) != set(keys):
        raise BenchError(f"{row.label} ({row.size_key}): primed, but {sorted(set(keys) - set(found))} absent")
    assert row.url is not None
    twin = get_backend(row.url)
    client = twin.client
    name = type(client).__name__
    if row.backend.startswith("redis"):
        # RedisBackend: every key is stored as "<namespace>:<key>" (one MGET per hit).
        server_keys = [f"{ours.namespace}:{key}" for key in keys]
        expected: Any = [found[key] for key in keys]

        def call() -> Any:
            return client.mget(server_keys)

        description = f"{name}.mget"
    else:
        # MemcachedBackend: the keys' storage keys and their shards' namespace
        # generations in one get_many; a value is its generation + the bytes stored.
        storage_keys = [ours._storage_key(key) for key in keys]
        generation_keys = list(dict.fromkeys(ours._generation_key(ours._shard_of(k)) for k in storage_keys))
        server_keys = [*generation_keys, *storage_keys]
        first = client.get_many(server_keys)
        expected = {}
        for key, storage_key in zip(keys, storage_keys, strict=True):
            generation = first.get(ours._generation_key(ours._shard_of(storage_key)))
            if generation is None:
                raise BenchError(f"{row.label} ({row.size_key}): no namespace generation for {storage_key}")
            expected[storage_key] = generation + found[key]
            expected[ours._generation_key(ours._shard_of(storage_key))] = generation

        def call() -> Any:
            return client.get_many(server_keys)

        from pymemcache.client.hash import HashClient

        if isinstance(client, HashClient) and type(client) is not HashClient:
            name = f"HashClient ({name})"
        description = f"{name}.get_many"
    result = call()
    if result != expected:
        raise BenchError(f"{row.label} ({row.size_key}): the driver read other values than our backend")
    return DriverCall(client, description, call, server_keys, expected, twin.close)


def add_driver_rows(rows: list[Row], env: Servers) -> list[Row]:
    """``rows`` with, after each primed wsgicache network row, its driver-only row and its
    "memory hit then driver call" row (both in one loop, see :func:`run_batch_and_calls`)."""
    ports = {
        "redis": [env.redis.port] if env.redis is not None else [],
        "redis_cluster": [n.port for n in env.redis_cluster.nodes] if env.redis_cluster is not None else [],
    }
    memory_rows = {row.size_key: row for row in rows if row.key.startswith("ours_memory_")}
    found: list[Row] = []
    for row in rows:
        found.append(row)
        if row.group != "wsgicache" or row.backend not in DRIVER_ROWS:
            continue
        driver = driver_call(row)
        probes: list[Probe] = []
        for _ in range(2):
            if row.backend.startswith("redis"):
                probes.append(RedisProbe(ports[row.backend], "mget"))
            else:
                assert isinstance(row.probe, MemcachedProbe)
                probes.append(MemcachedProbe(row.probe.servers))
        found.append(
            Row(
                f"driver_{row.backend}_{row.size_key}",
                "driver",
                row.backend,
                f"driver only: {driver.description}",
                row.size,
                row.size_key,
                b"",
                None,
                Counter(),
                probe=probes[0],
                driver=driver,
            )
        )
        memory = memory_rows.get(row.size_key)
        if memory is not None:
            found.append(
                Row(
                    f"combined_{row.backend}_{row.size_key}",
                    "combined",
                    row.backend,
                    f"memory:// hit, then {driver.description}",
                    row.size,
                    row.size_key,
                    memory.body,
                    memory.app,
                    memory.counter,
                    memory.middleware,
                    probe=probes[1],
                    driver=driver,
                )
            )
    return found


# -- checks ------------------------------------------------------------------------


def request_once(row: Row) -> tuple[str, list[tuple[str, str]], bytes]:
    recorder = Recorder()
    result = row.app(make_environ(PATH), recorder.start_response)
    try:
        body = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return recorder.status, recorder.headers, body


def check_one(row: Row, expect_cache: str, view_calls: int) -> None:
    status, headers, body = request_once(row)
    if status != "200 OK" or body != row.body:
        raise BenchError(f"{row.label} ({row.size_key}): {status!r} with {len(body)} body bytes")
    if row.middleware is not None:
        got = dict(headers).get("X-Cache")
        if got != expect_cache:
            raise BenchError(f"{row.label} ({row.size_key}): X-Cache {got!r}, expected {expect_cache!r}")
    if row.counter.calls != view_calls:
        raise BenchError(f"{row.label} ({row.size_key}): the view ran {row.counter.calls} times")


def prime(row: Row, recorder: Recorder, warmup: int) -> None:
    """One miss fills the cache, one hit returns the very body; then warm up.

    Driver rows were checked when they were built (:func:`driver_call`), and the
    memory row of a "memory hit then driver call" row is primed: they are only warmed up.
    """
    if row.driver is None:
        check_one(row, "MISS", 1)
        check_one(row, "HIT", 1)
    measure(row, recorder, warmup)


def run_calls(call: Callable[[], Any], n: int) -> tuple[int, Any]:
    """Make ``n`` driver calls; return (elapsed ns, the last answer)."""
    answer = None
    started = time.perf_counter_ns()
    for _ in range(n):
        answer = call()
    elapsed = time.perf_counter_ns() - started
    return elapsed, answer


def run_batch_and_calls(
    app: WSGIApp, paths: Iterator[str], n: int, recorder: Recorder, call: Callable[[], Any]
) -> tuple[int, int, Any]:
    """``run_batch`` with one driver call after each request; return (elapsed ns, body bytes, last answer).

    What "a memory hit + the driver call" costs when both run in turn, as
    they do in a network hit, rather than each in a loop of its own.
    """
    start_response = recorder.start_response
    received = 0
    answer = None
    started = time.perf_counter_ns()
    for _ in range(n):
        result = app(make_environ(next(paths)), start_response)
        try:
            for chunk in result:
                received += len(chunk)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        answer = call()
    elapsed = time.perf_counter_ns() - started
    return elapsed, received, answer


def measure(row: Row, recorder: Recorder, n: int) -> int:
    """One verified batch of ``n`` requests (and/or driver calls); returns the elapsed nanoseconds."""
    label = f"{row.label} ({row.size_key})"
    calls_before = row.counter.calls
    stats_before = row.middleware.stats() if row.middleware is not None else None
    probe_before = row.probe.snapshot() if row.probe is not None else None
    if row.app is None:
        assert row.driver is not None
        elapsed, answer = run_calls(row.driver.call, n)
        probe_after = row.probe.snapshot() if row.probe is not None else None
        if answer != row.driver.expected:
            raise BenchError(f"{label}: the driver's answer changed")
        return checked_on_server(row, label, probe_before, probe_after, n, elapsed)
    if row.driver is not None:
        elapsed, received, answer = run_batch_and_calls(row.app, row.paths, n, recorder, row.driver.call)
        if answer != row.driver.expected:
            raise BenchError(f"{label}: the driver's answer changed")
    else:
        elapsed, received = run_batch(row.app, row.paths, n, recorder)
    probe_after = row.probe.snapshot() if row.probe is not None else None
    if received != n * row.size:
        raise BenchError(f"{label}: {received} body bytes for {n} requests of {row.size}")
    if recorder.status != "200 OK":
        raise BenchError(f"{label}: status {recorder.status!r}")
    if row.middleware is not None and recorder.header("X-Cache") != "HIT":
        raise BenchError(f"{label}: X-Cache {recorder.header('X-Cache')!r}, expected 'HIT'")
    calls = row.counter.calls - calls_before
    if calls:
        raise BenchError(f"{label}: not a hit, the view ran {calls} times for {n} requests")
    if stats_before is not None:
        stats_after = row.middleware.stats()
        for name, expected in (("hits", n), ("misses", 0), ("stores", 0), ("bypasses", 0), ("errors", 0)):
            delta = stats_after[name] - stats_before[name]
            if delta != expected:
                raise BenchError(f"{label}: stats {name} +{delta}, expected +{expected}")
    return checked_on_server(row, label, probe_before, probe_after, n, elapsed)


def checked_on_server(
    row: Row,
    label: str,
    probe_before: dict[str, int] | None,
    probe_after: dict[str, int] | None,
    n: int,
    elapsed: int,
) -> int:
    """``elapsed``, once the server's counters show that each of the ``n`` hits did what it should."""
    if row.probe is not None:
        assert probe_before is not None and probe_after is not None
        per_hit = row.probe.check(label, probe_before, probe_after, n)
        if row.server_per_hit and per_hit != row.server_per_hit:
            raise BenchError(f"{label}: a hit did {per_hit} on the server, earlier {row.server_per_hit}")
        row.server_per_hit = per_hit
    row.verified_batches += 1
    return elapsed


def calibrate(row: Row, recorder: Recorder, target_ns: float, minimum: int) -> int:
    """Iterations for one batch to last about ``target_ns``.

    Estimated twice (network rows are noisy on a small machine), keeping the
    larger estimate, so that one slow batch does not leave a row with short,
    noisier batches.
    """
    n = 20
    while True:
        elapsed = measure(row, recorder, n)
        if elapsed >= target_ns / 20 or n >= 1_000_000:
            break
        n *= 4
    first = max(minimum, int(n * target_ns / max(elapsed, 1)))
    second = int(first * target_ns / max(measure(row, recorder, first), 1))
    return max(minimum, first, second)


# -- reporting ---------------------------------------------------------------------


def server_version(argv: list[str]) -> str:
    """``1.2.3`` from ``redis-server --version`` / ``memcached -V``."""
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return "?"
    found = re.search(r"\d+\.\d+\.\d+", done.stdout + done.stderr)
    return found.group(0) if found else "?"


def ratio_definitions() -> list[tuple[str, str, tuple[str, ...], tuple[str, ...]]]:
    """(name, label, numerator rows, denominator rows) with ``{s}`` for the size key.

    With several rows on one side, their per-request times are added up.
    """
    found = [
        (
            f"ours_{b}_over_memory",
            f"wsgicache {label} / memory://",
            (f"ours_{b}_{{s}}",),
            ("ours_memory_{s}",),
        )
        for b, label in (
            ("file", "file://"),
            ("memcached", "memcached:// (1)"),
            ("memcached3", "memcached:// (3)"),
            ("redis", "redis://"),
            ("redis_cluster", "redis+cluster://"),
        )
    ]
    found.extend(
        (
            f"ours_{b}_over_memory_plus_driver",
            f"wsgicache {label} / (memory:// + driver call)",
            (f"ours_{b}_{{s}}",),
            ("ours_memory_{s}", f"driver_{b}_{{s}}"),
        )
        for b, label in (
            ("redis", "redis://"),
            ("redis_cluster", "redis+cluster://"),
            ("memcached", "memcached:// (1)"),
            ("memcached3", "memcached:// (3)"),
        )
    )
    found.extend(
        (
            f"ours_{b}_over_combined",
            f"wsgicache {label} / (memory:// hit, then driver call)",
            (f"ours_{b}_{{s}}",),
            (f"combined_{b}_{{s}}",),
        )
        for b, label in (
            ("redis", "redis://"),
            ("redis_cluster", "redis+cluster://"),
            ("memcached", "memcached:// (1)"),
            ("memcached3", "memcached:// (3)"),
        )
    )
    found.append(
        (
            "ours_redis_over_fc_redis",
            "wsgicache redis:// / Flask-Caching RedisCache",
            ("ours_redis_{s}",),
            ("fc_redis_{s}",),
        )
    )
    found.append(
        (
            "memory_plus_driver_redis_over_fc_redis",
            "(memory:// + driver call) / Flask-Caching RedisCache",
            ("ours_memory_{s}", "driver_redis_{s}"),
            ("fc_redis_{s}",),
        )
    )
    found.append(
        (
            "fc_redis_over_ours_redis",
            "Flask-Caching RedisCache / our redis://",
            ("fc_redis_{s}",),
            ("ours_redis_{s}",),
        )
    )
    for suffix, _, client_label, _ in MEMCACHED_CLIENTS:
        found.append(
            (
                f"fc_memcached_{suffix}_over_ours_memcached",
                f"FC MemcachedCache ({client_label}) / our memcached://",
                (f"fc_memcached_{suffix}_{{s}}",),
                ("ours_memcached_{s}",),
            )
        )
    found.append(
        (
            "fc_simple_over_ours_memory",
            "Flask-Caching SimpleCache / our memory://",
            ("fc_simple_{s}",),
            ("ours_memory_{s}",),
        )
    )
    return found


#: (ratio name, the most it may be, the ratio that bounds it from below or None): the goals
#: of issue 10, judged on the median. A redis hit costs at least a memory hit and the driver
#: call: (memory:// + driver call) / Flask-Caching RedisCache is the best any hit making that
#: call could reach.
GOALS = (
    *((f"ours_{b}_over_memory_plus_driver", GOAL_OVER_DRIVER, None) for b in DRIVER_ROWS),
    ("ours_redis_over_fc_redis", GOAL_REDIS_VS_FLASK_CACHING, "memory_plus_driver_redis_over_fc_redis"),
)


def summarize(
    rows: list[Row], skipped: dict[str, str], env: Servers, args: argparse.Namespace
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for row in rows:
        per_request_us = [s / 1000 for s in row.samples_ns]
        results[row.key] = {
            "label": row.label,
            "group": row.group,
            "backend": row.backend,
            "body_bytes": row.size,
            "size": row.size_key,
            "best_us": min(per_request_us),
            "median_us": statistics.median(per_request_us),
            "samples_us": per_request_us,
            "iterations": row.iterations,
            "repeats": len(per_request_us),
            "hit": True,
            "verified": row.verified_batches > 0,
            "verified_batches": row.verified_batches,
            "view_calls": row.counter.calls,
            "server_per_hit": row.server_per_hit or None,
        }
        if row.middleware is not None:
            results[row.key]["stats"] = row.middleware.stats()
        if row.driver is not None:
            results[row.key]["driver"] = {
                "client": type(row.driver.client).__module__ + "." + type(row.driver.client).__qualname__,
                "call": row.driver.description,
                "server_keys": row.driver.server_keys,
            }

    ratios: dict[str, dict[str, dict[str, float]]] = {}
    labels: dict[str, str] = {}
    for _, size_key, _ in SIZES:
        per_stat: dict[str, dict[str, float]] = {"best": {}, "median": {}}
        for name, label, numerators, denominators in ratio_definitions():
            top = [numerator.format(s=size_key) for numerator in numerators]
            bottom = [denominator.format(s=size_key) for denominator in denominators]
            if all(key in results for key in (*top, *bottom)):
                labels[name] = label
                for stat in per_stat:
                    per_stat[stat][name] = ratio(
                        sum(results[key][f"{stat}_us"] for key in top),
                        sum(results[key][f"{stat}_us"] for key in bottom),
                    )
        ratios[size_key] = per_stat
    goals: dict[str, dict[str, Any]] = {}
    for name, limit, floor in GOALS:
        for _, size_key, _ in SIZES:
            values = {stat: ratios[size_key][stat].get(name) for stat in ("best", "median")}
            if values["median"] is None:
                continue
            goals[f"{name}_{size_key}"] = {
                "ratio": name,
                "size": size_key,
                "limit": limit,
                "at_most": True,
                "judged_on": "median",
                "values": values,
                "met": values["median"] <= limit,
                # the lowest ratio a hit making the driver call could reach (when there is one)
                "floor": (
                    {stat: ratios[size_key][stat].get(floor) for stat in ("best", "median")}
                    if floor is not None and floor in ratios[size_key]["median"]
                    else None
                ),
            }
    growth: dict[str, dict[str, float]] = {"best": {}, "median": {}}
    small, large = SIZES[0][1], SIZES[-1][1]
    for key in results:
        if key.endswith(f"_{small}"):
            base = key.removesuffix(f"_{small}")
            if f"{base}_{large}" in results:
                for stat in growth:
                    growth[stat][base] = ratio(
                        results[f"{base}_{large}"][f"{stat}_us"], results[key][f"{stat}_us"]
                    )

    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {
            name: package_version(name)
            for name in (
                "wsgicache",
                "Werkzeug",
                "Flask",
                "Flask-Caching",
                "cachelib",
                "redis",
                "hiredis",
                "pymemcache",
                "pylibmc",
                "python-memcached",
            )
        }
        | {
            "redis-server": server_version(["redis-server", "--version"]),
            "memcached": server_version(["memcached", "-V"]),
        },
        "config": {
            "sizes": [size for size, _, _ in SIZES],
            "rule": f"Rule({PATH!r}, timeout={TIMEOUT}, tags={list(TAGS)!r})",
            "quick": args.quick,
            "repeats": args.repeats,
            "target_batch_ms": args.target_ms,
            "gc_enabled": gc.isenabled(),
            "redis_parser": redis_parser(),
            "servers": {
                "redis": env.redis.address if env.redis is not None else None,
                "redis_cluster": (
                    [n.address for n in env.redis_cluster.nodes] if env.redis_cluster is not None else None
                ),
                "memcached": env.memcached.address if env.memcached is not None else None,
                "memcached_3": [s.address for s in env.memcached_3],
            },
        },
        "results": results,
        "skipped": skipped,
        "ratios": ratios,
        "ratio_labels": labels,
        "goals": goals,
        "size_growth": growth,
    }


def redis_parser() -> str | None:
    """The reply parser redis-py uses in this process (``_HiredisParser`` when hiredis is installed)."""
    if importlib.util.find_spec("redis") is None:
        return None
    from redis.connection import Connection

    return type(Connection()._parser).__name__  # not connected: only the parser it would use


def describe_server_work(per_hit: dict[str, Any] | None) -> str:
    if not per_hit:
        return "-"
    keys = per_hit["keys"]
    return f"1 {per_hit['command']}, {keys} key{'s' if keys != 1 else ''}"


def print_table(summary: dict[str, Any]) -> None:
    m, v, cfg = summary["machine"], summary["versions"], summary["config"]
    print(f"wsgicache hit cost per backend, {summary['date']}")
    print(f"Python {m['python']} ({m['implementation']}) on {m['platform']}, {m['cpus']} CPUs")
    print(
        "  ".join(f"{name} {ver}" for name, ver in v.items() if "server" not in name and name != "memcached")
    )
    print(
        f"redis-server {v['redis-server']}, memcached {v['memcached']}, all on 127.0.0.1; "
        f"redis-py reply parser: {cfg['redis_parser']}"
    )
    print(
        f"wsgicache: {cfg['rule']} (a hit reads the entry + 3 tag generations); "
        "Flask-Caching: @cache.cached(timeout=3600) on the same Flask view"
    )
    print(
        f"{cfg['repeats']} interleaved batches of ~{cfg['target_batch_ms']:g} ms per row, GC on; "
        "each request = fresh environ + app call + body consumed + close()"
    )
    results = summary["results"]
    growth = summary["size_growth"]["best"]
    header = (
        f"{'row':<{ROW_WIDTH}} {'N/batch':>8} {'best µs':>9} {'median µs':>10} {'x memory':>9} {'x 2 KiB':>8}"
        "  server work per hit"
    )
    for _, size_key, size_label in SIZES:
        print()
        print(f"body {size_label}")
        print(header)
        print("-" * len(header))
        memory = results.get(f"ours_memory_{size_key}")
        for key, r in results.items():
            if r["size"] != size_key:
                continue
            times_memory = f"{r['best_us'] / memory['best_us']:>9.2f}" if memory else f"{'-':>9}"
            base = key.removesuffix(f"_{size_key}")
            times_small = (
                f"{growth[base]:>8.2f}" if size_key != SIZES[0][1] and base in growth else f"{'-':>8}"
            )
            print(
                f"{r['label']:<{ROW_WIDTH}} {r['iterations']:>8} "
                f"{r['best_us']:>9.1f} {r['median_us']:>10.1f} "
                f"{times_memory} {times_small}  {describe_server_work(r['server_per_hit'])}"
            )
    print()
    sizes = [(size_key, size_label) for _, size_key, size_label in SIZES]
    head = f"{'ratio of per-request times':<{RATIO_WIDTH}}" + "".join(
        f" {label + ' best':>13} {'median':>7}" for _, label in sizes
    )
    print(head)
    print("-" * len(head))
    for name, label in summary["ratio_labels"].items():
        cells = ""
        for size_key, _ in sizes:
            stats = summary["ratios"][size_key]
            if name in stats["best"]:
                cells += f" {stats['best'][name]:>13.2f} {stats['median'][name]:>7.2f}"
            else:
                cells += f" {'-':>13} {'-':>7}"
        print(f"{label:<{RATIO_WIDTH}}{cells}")
    print()
    print("goals (issue 10), judged on the median batch")
    print(f"{'':<{RATIO_WIDTH}} {'body':>7} {'median':>7} {'(best)':>7}")
    for goal in summary["goals"].values():
        size_label = next(label for _, key, label in SIZES if key == goal["size"])
        values = goal["values"]
        floor = goal["floor"]
        print(
            f"{summary['ratio_labels'][goal['ratio']]:<{RATIO_WIDTH}} {size_label:>7} "
            f"{values['median']:>7.2f} {'(' + format(values['best'], '.2f') + ')':>7}  "
            f"goal <= {goal['limit']:g}x: {'met' if goal['met'] else 'NOT MET'}"
            + (
                f"  (memory:// + driver call alone: {floor['median']:.2f}, "
                f"{'below' if floor['median'] <= goal['limit'] else 'above'} the goal)"
                if floor
                else ""
            )
        )
    print()
    for key, why in summary["skipped"].items():
        print(f"skipped {key}: {why}")
    print("(ratios include the harness cost in both terms, which can only push them towards 1)")


# -- main ----------------------------------------------------------------------------


def run(args: argparse.Namespace, directory: Path) -> dict[str, Any]:
    env = start_servers(directory)
    rows: list[Row] = []
    try:
        rows, skipped = build_rows(env)
        recorder = Recorder()
        warmup = 20 if args.quick else 500
        for row in rows:
            prime(row, recorder, warmup)
        # The driver-only rows read what the primed wsgicache rows read.
        ours = {row.key: row for row in rows}
        rows = add_driver_rows(rows, env)
        for row in rows:
            if row.driver is not None:
                prime(row, recorder, warmup)
                twin = ours[f"ours_{row.backend}_{row.size_key}"]
                if row.server_per_hit != twin.server_per_hit:
                    raise BenchError(
                        f"{row.label} ({row.size_key}) did {row.server_per_hit} on the server, "
                        f"a wsgicache hit {twin.server_per_hit}"
                    )
        minimum = 10 if args.quick else 200
        for row in rows:
            row.iterations = calibrate(row, recorder, args.target_ms * 1e6, minimum)
        for _ in range(args.repeats):
            for row in rows:
                gc.collect()
                row.samples_ns.append(measure(row, recorder, row.iterations) / row.iterations)
        return summarize(rows, skipped, env, args)
    finally:
        for row in rows:
            if row.middleware is not None:
                row.middleware.close()
            if row.driver is not None:
                row.driver.close()
        env.stop()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, __doc__)
    directory = Path(tempfile.mkdtemp(prefix="bench_backends-"))
    try:
        summary = run(args, directory)
    except BenchError as exc:
        print(f"bench_backends: {exc}", file=sys.stderr)
        return 1
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
