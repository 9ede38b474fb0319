"""The Redis backends through a stalled server, a failover and a changing cluster (issue 8).

Real redis-server and sentinel processes on 127.0.0.1 only; no fakes.

- A read that times out closes its connection: the next commands on the same
  pool read their own replies (plain, Sentinel, Cluster).
- The Sentinel backend follows the master the sentinels name, away from an
  old master that came back, and refuses a demoted one they still name;
  while every sentinel hangs, it keeps using the last master they named.
- ``set_many`` writes in one round trip per node and waits for replicas
  (``WAIT``), within ``wait_timeout``.
- ``CLUSTERDOWN`` and ``TRYAGAIN`` raise ``TransientBackendError`` at once,
  without redis-py's sleeps.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

import pytest
import redis
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from servers import (
    HOST,
    RedisServer,
    SentinelServer,
    free_cluster_port,
    resp_command,
    start_redis_cluster,
    start_redis_sentinel_failover,
)

from wsgicache.backends import get_backend
from wsgicache.backends.redis import WAIT_SLACK, RedisBackend, RedisClusterBackend, RedisSentinelBackend
from wsgicache.errors import ConfigurationError, TransientBackendError

SERVICE = "unitmaster"
#: Read timeout of the backends under test: short, so a stalled server costs little.
TIMEOUT = 0.25
#: Scheduling noise allowed on top of a timeout (2 busy cores in CI).
MARGIN = 0.4

#: A master starts a replica's full sync at once (redis-server waits 5 s by default).
MASTER_OPTIONS = ("--repl-diskless-sync-delay", "0")

_T = TypeVar("_T")


def _wait_for(what: str, check: Callable[[], _T | None], timeout: float = 15.0) -> _T:
    """Poll ``check`` until it returns something other than None/False, or fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result is not None and result is not False:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        time.sleep(0.02)


def _info(port: int, section: str) -> str:
    reply = resp_command(port, "INFO", section)
    assert isinstance(reply, bytes)
    return reply.decode()


def _role(port: int) -> str:
    reply = resp_command(port, "ROLE")
    assert isinstance(reply, list) and isinstance(reply[0], bytes)
    return reply[0].decode()


def _raw_get(port: int, key: str) -> bytes | None:
    reply = resp_command(port, "GET", key)
    assert reply is None or isinstance(reply, bytes)
    return reply


def _start_replica(directory: Path, master: RedisServer, extra: tuple[str, ...] = ()) -> RedisServer:
    replica = RedisServer(directory, extra=[*extra, "--replicaof", HOST, str(master.port)])
    replica.start()
    _wait_for(f"{replica.address} replicates {master.address}", lambda: _in_sync(master, replica))
    return replica


def _in_sync(master: RedisServer, replica: RedisServer, probe: str = "wsgicache-test:probe") -> bool:
    """The replica acknowledges the master's writes (``WAIT`` answers 1).

    For about a second after a replica reports itself in sync, ``WAIT`` may
    still time out on it: wait until a write is acknowledged.
    """
    if "master_link_status:up" not in _info(replica.port, "replication"):
        return False
    client = redis.Redis(host=HOST, port=master.port, socket_timeout=2)
    try:
        pipe = client.pipeline(transaction=False)
        pipe.set(probe, b"1", px=1000)
        pipe.execute_command("WAIT", 1, 50)
        return bool(pipe.execute()[-1] == 1)
    finally:
        client.close()


# -- 1. a read timeout closes the connection ----------------------------------


def _stalled_server_and_keys(kind: str, request: pytest.FixtureRequest, backend: Any) -> tuple[Any, str, str]:
    """The server process that holds the test keys ``a`` and ``b`` of ``backend``."""
    if kind == "redis":
        return request.getfixturevalue("redis_server"), "a", "b"
    if kind == "redis-sentinel":
        return request.getfixturevalue("redis_sentinel").master, "a", "b"
    cluster = request.getfixturevalue("redis_cluster")
    a, b = "{t}a", "{t}b"  # one slot, so one node and one connection pool
    port = int(backend.client.get_node_from_key(backend._prefix + a).port)
    return next(node for node in cluster.nodes if node.port == port), a, b


def _call_after_skip_window(call: Callable[[], _T]) -> _T:
    """Run ``call``; the cluster backend skips a node for ``node_retry_after`` after a failure."""
    deadline = time.monotonic() + 5
    while True:
        try:
            return call()
        except RedisConnectionError as exc:
            if "not asked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.005)


@pytest.mark.parametrize("kind", ["redis", "redis-sentinel", "redis-cluster"])
def test_a_read_timeout_closes_the_connection_so_no_command_reads_another_reply(
    kind: str, request: pytest.FixtureRequest, make_backend: Callable[..., Any]
) -> None:
    options: dict[str, Any] = {"socket_timeout": TIMEOUT, "socket_connect_timeout": TIMEOUT}
    if kind == "redis-cluster":
        options["node_retry_after"] = 0.01
    # One connection per pool (per node in a cluster): the one that timed out is the one reused.
    backend = make_backend(kind, key_prefix=f"desync-{kind}", max_connections=1, **options)
    server, a, b = _stalled_server_and_keys(kind, request, backend)
    backend.set(a, b"value of a", 60)
    backend.set(b, b"value of b", 60)
    if kind == "redis-cluster":
        pool = backend.client.get_redis_connection(backend.client.get_node_from_key(backend._prefix + a))
        pool = pool.connection_pool
    else:
        pool = backend.client.connection_pool

    for stalled in ("get", "set_many"):
        server.pause()
        try:
            started = time.monotonic()
            with pytest.raises(RedisTimeoutError):
                if stalled == "get":
                    backend.get(a)  # its reply comes once the server continues
                else:
                    backend.set_many({a: b"value of a", b: b"value of b"}, 60)  # a pipeline
            assert time.monotonic() - started < TIMEOUT + MARGIN
        finally:
            server.resume()
        # Each command reads its own reply, on the same pool.
        assert _call_after_skip_window(lambda: backend.get(b)) == b"value of b"
        assert backend.get(a) == b"value of a"
        assert backend.get_many([b, a, "absent"]) == {a: b"value of a", b: b"value of b"}
        assert backend.add(f"{a}-{stalled}", b"x", 60) is True
        assert backend.add(f"{a}-{stalled}", b"y", 60) is False
        assert backend.get(f"{a}-{stalled}") == b"x"
    if kind == "redis-cluster":
        node = backend.client.get_node_from_key(backend._prefix + a)
        assert backend.client.get_redis_connection(node).connection_pool is pool
    else:
        assert backend.client.connection_pool is pool


# -- 2. Sentinel: follow the master the sentinels name -------------------------


class SentinelGroup(NamedTuple):
    master: RedisServer
    replica: RedisServer
    sentinel: SentinelServer

    @property
    def url(self) -> str:
        return f"redis+sentinel://{self.sentinel.address}/{SERVICE}/0"

    def named_master(self) -> int:
        """The master's port in ``SENTINEL MASTER``, which redis-py reads.

        (``get-master-addr-by-name`` names the promoted replica earlier, while
        the failover is still in progress.)
        """
        reply = resp_command(self.sentinel.port, "SENTINEL", "MASTER", SERVICE)
        assert isinstance(reply, list)
        fields = dict(zip(reply[::2], reply[1::2], strict=True))
        port = fields[b"port"]
        assert isinstance(port, bytes)
        return int(port)

    def replica_known(self) -> bool:
        reply = resp_command(self.sentinel.port, "SENTINEL", "REPLICAS", SERVICE)
        assert isinstance(reply, list)
        for item in reply:
            assert isinstance(item, list)
            fields = dict(zip(item[::2], item[1::2], strict=True))
            if (
                fields.get(b"port") == str(self.replica.port).encode()
                and b"disconnected" not in fields.get(b"flags", b"")
                and fields.get(b"master-link-status") == b"ok"
            ):
                return True
        return False


@pytest.fixture
def sentinel_group(tmp_path: Path) -> Iterator[SentinelGroup]:
    """A master, its replica and one sentinel (no automatic failover: down-after is 60 s)."""
    master = RedisServer(tmp_path / "master", extra=MASTER_OPTIONS)
    master.start()
    replica = sentinel = None
    try:
        replica = _start_replica(tmp_path / "replica", master)
        sentinel = SentinelServer(tmp_path / "sentinel", master, SERVICE)
        sentinel.start()
        group = SentinelGroup(master, replica, sentinel)
        _wait_for("the sentinel knows the replica", group.replica_known)
        yield group
    finally:
        for server in (sentinel, replica, master):
            if server is not None:
                server.stop()


def test_sentinel_backend_leaves_an_old_master_that_comes_back_after_a_failover(
    sentinel_group: SentinelGroup,
) -> None:
    group = sentinel_group
    backend = get_backend(
        group.url,
        key_prefix="split",
        socket_timeout=TIMEOUT,
        socket_connect_timeout=TIMEOUT,
        master_check_interval=0.2,
    )
    try:
        # A pooled connection to the master, and WAIT for the replica (item 3 on Sentinel).
        assert backend.set_many({"before": b"1"}, 60) == 1
        assert _raw_get(group.replica.port, "split:before") == b"1"

        # The master stalls while nothing is asked; the sentinel fails over to the replica.
        group.master.pause()
        try:
            resp_command(group.sentinel.port, "SENTINEL", "FAILOVER", SERVICE)
            _wait_for("the sentinel names the replica", lambda: group.named_master() == group.replica.port)
        finally:
            group.master.resume()
        # The old master is back and still believes it is the master: split brain.
        assert _role(group.master.port) == "master"

        backend.set("after", b"new master", 60)
        backend.add("lock", b"me", 60)

        assert _raw_get(group.replica.port, "split:after") == b"new master"
        assert _raw_get(group.replica.port, "split:lock") == b"me"
        on_old_master = _raw_get(group.master.port, "split:after")
        if _role(group.master.port) == "master":  # not yet demoted, so nothing replicated to it
            assert on_old_master is None, "written to the old master"
        assert backend.get("after") == b"new master"
    finally:
        backend.close()


def test_sentinel_backend_refuses_a_demoted_master_the_sentinels_still_name(
    sentinel_group: SentinelGroup,
) -> None:
    group = sentinel_group
    # Roles swapped behind the sentinel's back; it still names the old master for a while.
    resp_command(group.replica.port, "REPLICAOF", "NO", "ONE")
    resp_command(group.master.port, "REPLICAOF", HOST, str(group.replica.port))
    assert group.named_master() == group.master.port
    backend = get_backend(
        group.url, key_prefix="demoted", socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    try:
        with pytest.raises(RedisConnectionError, match="not a master"):
            backend.get("k")
        with pytest.raises(RedisConnectionError, match="not a master"):
            backend.set("k", b"v", 60)
        assert _raw_get(group.replica.port, "demoted:k") is None
    finally:
        backend.close()


def test_sentinel_backend_keeps_the_last_master_while_every_sentinel_hangs(tmp_path: Path) -> None:
    """All sentinels SIGSTOPped, the master healthy: no call waits much over 2 x socket_timeout.

    New connections (the master's clients killed) must not ask each hung
    sentinel in turn, nor retry the lookup; they use the last master named.
    """
    topology = start_redis_sentinel_failover(
        tmp_path, SERVICE, down_after_ms=60000, failover_timeout_ms=180000
    )
    backend = get_backend(
        topology.url, key_prefix="hung", socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT
    )
    stop = threading.Event()
    worst: list[float] = [0.0]
    hits: list[int] = [0]
    errors: list[str] = []

    def load() -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                hit = backend.get("k") == b"v"
            except Exception as exc:  # counted below: the master is healthy, none is expected
                errors.append(repr(exc))
                hit = False
            elapsed = time.monotonic() - started
            worst[0] = max(worst[0], elapsed)
            hits[0] += hit

    try:
        backend.set("k", b"v", 60)
        for sentinel in topology.sentinels:
            sentinel.pause()
        threads = [threading.Thread(target=load) for _ in range(4)]
        for thread in threads:
            thread.start()
        try:
            for _ in range(3):  # every pooled connection dropped: new ones must find the master
                time.sleep(0.4)
                resp_command(topology.master.port, "CLIENT", "KILL", "TYPE", "normal")
            time.sleep(0.4)
            before = hits[0]
            time.sleep(0.3)
            after = hits[0]
        finally:
            stop.set()
            for thread in threads:
                thread.join()
        assert worst[0] < 2 * TIMEOUT + MARGIN, f"a call waited {worst[0]:.2f} s"
        assert after > before, "no hits against the last known master"
        assert all("not a master" not in error for error in errors), errors
    finally:
        for sentinel in topology.sentinels:
            sentinel.resume()
        backend.close()
        topology.stop()


# -- 3. set_many and WAIT ------------------------------------------------------


@pytest.fixture
def master_and_replica(tmp_path: Path) -> Iterator[tuple[RedisServer, RedisServer]]:
    master = RedisServer(tmp_path / "master", extra=MASTER_OPTIONS)
    master.start()
    replica = None
    try:
        replica = _start_replica(tmp_path / "replica", master)
        yield master, replica
    finally:
        for server in (replica, master):
            if server is not None:
                server.stop()


def test_set_many_waits_for_a_replica_and_reports_how_many_acknowledged(
    master_and_replica: tuple[RedisServer, RedisServer],
) -> None:
    master, replica = master_and_replica
    wait_timeout = 0.2
    backend = get_backend(master.url, key_prefix="wait", wait_replicas=1, wait_timeout=wait_timeout)
    items = {f"g{n}": f"generation {n}".encode() for n in range(20)}
    try:
        assert backend.set_many(items, 60) == 1
        # WAIT returned 1: the replica has every item already.
        assert _raw_get(replica.port, "wait:g19") == b"generation 19"

        replica.pause()
        try:
            started = time.monotonic()
            assert backend.set_many(items, 60) == 0
            elapsed = time.monotonic() - started
        finally:
            replica.resume()
        assert wait_timeout - 0.01 <= elapsed < wait_timeout + WAIT_SLACK + MARGIN
        assert backend.get_many(list(items)) == items  # written on the master all the same

        more = get_backend(master.url, key_prefix="wait", wait_replicas=2, wait_timeout=0.05)
        assert more.set_many({"x": b"1"}, 60) == 1  # fewer than asked, after wait_timeout
        more.close()
    finally:
        backend.close()
    plain = get_backend(master.url, key_prefix="wait")
    assert plain.wait_replicas == 0
    assert plain.set_many({"y": b"2"}, 60) is None
    assert plain.set_many({}, 60) is None
    plain.close()


def test_set_many_on_a_cluster_without_replicas_is_bounded_by_wait_timeout(
    make_backend: Callable[..., Any],
) -> None:
    backend = make_backend("redis-cluster", key_prefix="cwait", wait_timeout=0.05)
    assert backend.wait_replicas == 1  # the Cluster default
    items = {f"{{s{n}}}gen": b"g" for n in range(16)}  # every node of the cluster
    started = time.monotonic()
    assert backend.set_many(items, 60) == 0  # no replica to acknowledge
    # One WAIT timeout in all (Redis may answer 0.1 s late), not one per node.
    assert time.monotonic() - started < 0.05 + WAIT_SLACK + MARGIN
    assert backend.get_many(list(items)) == items


# -- 4. a changing cluster fails fast -----------------------------------------


class ScratchCluster(NamedTuple):
    masters: list[RedisServer]
    replica: RedisServer  # of masters[0]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.masters)


def _cluster_node_id(port: int) -> str:
    reply = resp_command(port, "CLUSTER", "MYID")
    assert isinstance(reply, bytes)
    return reply.decode()


def _cluster_state(port: int) -> str:
    info = resp_command(port, "CLUSTER", "INFO")
    assert isinstance(info, bytes)
    return info.decode().split("cluster_state:", 1)[1].split()[0]


@pytest.fixture(scope="module")
def scratch_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScratchCluster]:
    """Three masters, and one replica for the first: a cluster these tests may break and mend."""
    directory = tmp_path_factory.mktemp("scratch-cluster")
    cluster = start_redis_cluster(directory / "masters")
    masters = cluster.nodes
    port = free_cluster_port()
    replica = RedisServer(
        directory / "replica",
        port,
        extra=[
            "--cluster-enabled",
            "yes",
            "--cluster-config-file",
            str(directory / "replica" / "nodes.conf"),
            "--cluster-node-timeout",
            "5000",
        ],
    )
    try:
        replica.start()
        resp_command(masters[0].port, "CONFIG", "SET", "repl-diskless-sync-delay", "0")
        resp_command(replica.port, "CLUSTER", "MEET", HOST, str(masters[0].port))
        master_id = _cluster_node_id(masters[0].port)

        def knows_master() -> bool:
            nodes = resp_command(replica.port, "CLUSTER", "NODES")
            return isinstance(nodes, bytes) and master_id.encode() in nodes

        _wait_for("the new node knows the master", knows_master)
        resp_command(replica.port, "CLUSTER", "REPLICATE", master_id)
        probe = _key_served_by(masters[0].port)
        _wait_for("the replica is in sync", lambda: _in_sync(masters[0], replica, probe))
        yield ScratchCluster(masters, replica)
    finally:
        replica.stop()
        cluster.stop()


def _key_served_by(port: int) -> str:
    """A key whose slot the cluster node on ``port`` serves."""
    ranges = resp_command(port, "CLUSTER", "SLOTS")
    assert isinstance(ranges, list)
    owned = [(int(r[0]), int(r[1])) for r in ranges if isinstance(r, list) and int(r[2][1]) == port]
    for n in range(100_000):
        slot = key_slot(f"probe{n}".encode())
        if any(low <= slot <= high for low, high in owned):
            return f"probe{n}"
    raise AssertionError(f"no slot on {port}")


def _keys_on(backend: Any, port: int, count: int = 1) -> list[str]:
    """``count`` entry keys (hash tags {sN}) whose slot lives on the node of ``port``."""
    found = []
    for n in range(1000):
        key = f"k{n}{{s{n % 16}}}"
        if backend.client.get_node_from_key(backend._prefix + key).port == port:
            found.append(key)
            if len(found) == count:
                return found
    raise AssertionError(f"no key on {port}")


def test_set_many_on_a_cluster_reports_the_fewest_replicas_of_the_nodes_written(
    scratch_cluster: ScratchCluster,
) -> None:
    backend = get_backend(scratch_cluster.url, key_prefix="cw", wait_timeout=0.1)
    try:
        with_replica = _keys_on(backend, scratch_cluster.masters[0].port, 3)
        elsewhere = _keys_on(backend, scratch_cluster.masters[1].port, 2)
        assert backend.set_many(dict.fromkeys(with_replica, b"g"), 60) == 1
        assert backend.set_many(dict.fromkeys(with_replica + elsewhere, b"h"), 60) == 0
        assert backend.get_many(with_replica + elsewhere) == dict.fromkeys(with_replica + elsewhere, b"h")
    finally:
        backend.close()


def _timed(call: Callable[[], object], times: int = 5) -> tuple[float, list[BaseException]]:
    errors: list[BaseException] = []
    started = time.monotonic()
    for _ in range(times):
        try:
            call()
        except Exception as exc:
            errors.append(exc)
    return time.monotonic() - started, errors


def test_tryagain_during_a_slot_migration_fails_fast_as_transient(scratch_cluster: ScratchCluster) -> None:
    backend = get_backend(scratch_cluster.url, key_prefix="ta")
    owner, target = scratch_cluster.masters[0], scratch_cluster.masters[1]
    present = _keys_on(backend, owner.port)[0]
    absent = "absent" + present[present.index("{") :]  # same hash tag, same slot
    slot = key_slot((backend._prefix + present).encode())
    backend.set(present, b"v", 60)
    resp_command(owner.port, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", _cluster_node_id(target.port))
    try:
        # MGET of a present and an absent key of a migrating slot: TRYAGAIN.
        elapsed, errors = _timed(lambda: backend.get_many([present, absent]))
    finally:
        resp_command(owner.port, "CLUSTER", "SETSLOT", str(slot), "STABLE")
    assert len(errors) == 5 and all(isinstance(e, TransientBackendError) for e in errors), errors
    assert "TryAgain" in str(errors[0])
    # redis-py's RedisCluster retries TRYAGAIN 16 times (0.4 s a call); 5 calls here take milliseconds.
    assert elapsed < 0.25, f"5 calls took {elapsed:.3f}s"
    assert backend.get_many([present, absent]) == {present: b"v"}
    backend.close()


def test_clusterdown_fails_fast_as_transient_and_other_nodes_keep_answering(
    scratch_cluster: ScratchCluster,
) -> None:
    backend = get_backend(scratch_cluster.url, key_prefix="cd", wait_replicas=0)
    owner, healthy = scratch_cluster.masters[0], scratch_cluster.masters[1]
    down_key = _keys_on(backend, owner.port)[0]
    up_key = _keys_on(backend, healthy.port)[0]
    backend.set(down_key, b"down", 60)
    backend.set(up_key, b"up", 60)
    slot = key_slot((backend._prefix + down_key).encode())
    # The owner stops serving one of its slots: it sees the cluster as down
    # (cluster-require-full-coverage) and answers CLUSTERDOWN for every key.
    resp_command(owner.port, "CLUSTER", "DELSLOTS", str(slot))
    try:
        _wait_for("the owner answers CLUSTERDOWN", lambda: _cluster_state(owner.port) == "fail")
        for call in (
            lambda: backend.get(down_key),
            lambda: backend.get_many([down_key]),
            lambda: backend.set(down_key, b"x", 60),
            lambda: backend.add(down_key + "-lock", b"x", 60),
            lambda: backend.delete(down_key),
            lambda: backend.set_many({down_key: b"x"}, 60),
        ):
            elapsed, errors = _timed(call)
            assert len(errors) == 5 and all(isinstance(e, TransientBackendError) for e in errors), errors
            assert "ClusterDown" in str(errors[0])
            # redis-py's RedisCluster sleeps 0.25 s per call on CLUSTERDOWN.
            assert elapsed < 0.25, f"5 calls took {elapsed:.3f}s"
        assert backend.get(up_key) == b"up"  # the healthy node answers all along
    finally:
        resp_command(owner.port, "CLUSTER", "ADDSLOTS", str(slot))
        _wait_for("the owner serves its slots again", lambda: _cluster_state(owner.port) == "ok")
    assert backend.get(down_key) == b"down"
    backend.close()


# -- options --------------------------------------------------------------------


def test_wait_options_are_checked_and_defaulted() -> None:
    assert RedisBackend("redis://127.0.0.1:1/0").wait_replicas == 0
    assert RedisSentinelBackend("redis+sentinel://127.0.0.1:1/m").wait_replicas == 1
    assert RedisClusterBackend("redis+cluster://127.0.0.1:1").wait_replicas == 1
    assert RedisBackend("redis://127.0.0.1:1/0").wait_timeout == 0.1
    # WAIT's answer, up to WAIT_SLACK late, is read within socket_timeout.
    assert RedisSentinelBackend("redis+sentinel://127.0.0.1:1/m", socket_timeout=0.2).wait_timeout == 0.05
    # A socket_timeout too short for WAIT's answer: no waiting by default, an error if asked for.
    assert RedisClusterBackend("redis+cluster://127.0.0.1:1", socket_timeout=0.1).wait_replicas == 0
    with pytest.raises(ConfigurationError, match=r"socket_timeout \(0.1 s\) must be longer than 0.1 s"):
        get_backend("redis+cluster://127.0.0.1:1", socket_timeout=0.1, wait_replicas=1)
    for bad in (-1, 1.5, True, "1"):
        with pytest.raises(ConfigurationError, match="wait_replicas must be a whole number"):
            get_backend("redis://127.0.0.1:1/0", wait_replicas=bad)
    for bad_timeout in (0, -1, float("nan"), "0.1"):
        with pytest.raises(ConfigurationError, match="wait_timeout must be a positive number"):
            get_backend("redis+sentinel://127.0.0.1:1/m", wait_timeout=bad_timeout)
    with pytest.raises(
        ConfigurationError, match=r"wait_timeout \(0.4 s\) must be shorter than socket_timeout"
    ):
        get_backend("redis+cluster://127.0.0.1:1", wait_timeout=0.4, socket_timeout=0.5)
    # Without waiting, wait_timeout does not matter.
    get_backend("redis://127.0.0.1:1/0", wait_replicas=0, wait_timeout=2)
    with pytest.raises(ConfigurationError, match="master_check_interval"):
        get_backend("redis+sentinel://127.0.0.1:1/m", master_check_interval=-1)
    assert get_backend("redis://127.0.0.1:1/0?wait_replicas=2&wait_timeout=0.2").wait_replicas == 2


def test_pool_size_and_connection_classes() -> None:
    from wsgicache.backends.redis import _SentinelConnection, _SentinelSSLConnection

    # wsgicache passes max_connections=100 itself (redis-py's default only since 8.0).
    assert get_backend("redis://127.0.0.1:1/0").client.connection_pool.max_connections == 100
    assert get_backend("redis://127.0.0.1:1/0", max_connections=7).client.connection_pool.max_connections == 7
    sentinel = get_backend("redis+sentinel://127.0.0.1:1/m")
    pool = sentinel.client.connection_pool  # no connection yet: nothing is asked
    assert pool.max_connections == 100
    assert pool.connection_class is _SentinelConnection
    tls = get_backend("redis+sentinel://127.0.0.1:1/m", ssl=True)
    assert tls.client.connection_pool.connection_class is _SentinelSSLConnection
