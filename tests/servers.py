"""Real redis-server and memcached processes for the backend tests.

Every server listens on 127.0.0.1 only, on a free port, with its files in
its own temporary directory, and is stopped by its pid. A missing binary
skips the tests that need it, except under ``CI=true`` where it fails them.

::

    server = start_redis(tmp_path)            # RedisServer
    cluster = start_redis_cluster(tmp_path)   # RedisClusterServers (3 masters)
    sentinel = start_redis_sentinel(tmp_path) # master + sentinel
    mc = start_memcached(tmp_path)            # MemcachedServer

    server.pause(); server.resume()           # SIGSTOP / SIGCONT
    server.kill(); server.restart()           # SIGKILL, then the same port again
    server.stop()
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple, TypeVar

HOST = "127.0.0.1"
_T = TypeVar("_T")

#: Every built-in backend form; tests parametrized over "all backends" use these
#: (the ``make_backend`` fixture of conftest.py builds them).
BACKEND_KINDS = (
    "memory",
    "filesystem",
    "memcached",
    "memcached-3",
    "redis",
    "redis-cluster",
    "redis-sentinel",
)
_STARTED: list[ServerProcess] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def require_binary(name: str) -> str:
    """The path of ``name``; skip the test without it (fail under ``CI=true``).

    pytest is imported only here, so that scripts (benchmarks/bench_backends.py)
    can start servers with this module without pytest installed; they check
    ``shutil.which`` themselves first.
    """
    path = shutil.which(name)
    if path is None:
        import pytest

        message = (
            f"{name} is not installed (Debian: apt-get install redis-server memcached; "
            "the README's test command installs them)"
        )
        if in_ci():
            pytest.fail(message + " -- required when CI=true")
        pytest.skip(message)
    return path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def free_cluster_port() -> int:
    """A free port P <= 55535 whose cluster bus port P + 10000 is free too."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randint(20000, 55535)
        if all(_bindable(candidate) for candidate in (port, port + 10000)):
            return port
    raise RuntimeError("no free port pair for a Redis Cluster node")


def _bindable(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


class ServerProcess:
    """One server process: started, paused, killed, restarted and stopped by pid."""

    kind = "server"

    def __init__(self, argv: Sequence[str], port: int, directory: Path) -> None:
        self.argv = list(argv)
        self.port = port
        self.directory = directory
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 10.0) -> None:
        log = open(self.directory / f"{self.kind}-{self.port}.log", "ab")  # noqa: SIM115
        try:
            self.process = subprocess.Popen(
                self.argv,
                cwd=self.directory,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        finally:
            log.close()
        if self not in _STARTED:
            _STARTED.append(self)
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.kind} on port {self.port} exited at start: {self.log_tail()}")
            if self.ready():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"{self.kind} on port {self.port} did not answer: {self.log_tail()}")
            time.sleep(0.02)

    def ready(self) -> bool:
        raise NotImplementedError

    def log_tail(self) -> str:
        try:
            return (self.directory / f"{self.kind}-{self.port}.log").read_text(errors="replace")[-2000:]
        except OSError:
            return "(no log)"

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections, nothing answers."""
        os.kill(self.pid, signal.SIGSTOP)
        self.paused = True
        self._wait_for_state(stopped=True)

    def _wait_for_state(self, *, stopped: bool) -> None:
        """Signals arrive asynchronously: wait until every thread is (or is no longer) stopped."""
        deadline = time.monotonic() + 5
        task_dir = Path(f"/proc/{self.pid}/task")
        if not task_dir.exists():
            time.sleep(0.05)
            return
        while time.monotonic() < deadline:
            states = []
            for task in task_dir.iterdir():
                with contextlib.suppress(OSError):
                    states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
            if states and all((state in "Tt") == stopped for state in states):
                return
            time.sleep(0.005)
        raise RuntimeError(f"{self.kind} {self.pid} did not {'stop' if stopped else 'continue'}")

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)
        self.paused = False
        self._wait_for_state(stopped=False)

    def kill(self) -> None:
        """SIGKILL: connections are refused until :meth:`restart`."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
            self.process.wait(5)

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            if self.paused:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGCONT)
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(process.pid, signal.SIGKILL)
                process.wait(5)
        self.paused = False
        if self in _STARTED:
            _STARTED.remove(self)


def _die_with_parent() -> None:
    """In the child, before exec: be killed if the test process dies (Linux)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def stop_all() -> None:
    """Stop every server still running (end of the test session), all at once."""
    running = list(_STARTED)
    for server in running:
        process = server.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                if server.paused:
                    os.kill(process.pid, signal.SIGCONT)
                os.kill(process.pid, signal.SIGTERM)
    for server in running:
        with contextlib.suppress(Exception):
            server.stop()


atexit.register(stop_all)


# -- Redis ----------------------------------------------------------------------


def replicas_acknowledged(port: int) -> bool:
    """Whether every replica of a master (if it has any) acknowledged its whole stream.

    A replica that has just synced answers ``WAIT`` only after its first
    ``REPLCONF ACK`` (sent once a second): until then an invalidation's
    ``WAIT`` can time out on a healthy topology.
    """
    try:
        info = resp_command(port, "INFO", "replication", timeout=0.5)
    except (OSError, RuntimeError):
        return False
    if not isinstance(info, bytes):
        return False
    fields = dict(line.split(":", 1) for line in info.decode("latin-1").splitlines() if ":" in line)
    replicas = [value for name, value in fields.items() if name.startswith("slave") and name[5:].isdigit()]
    if fields.get("role") != "master":
        return False
    offset = fields.get("master_repl_offset", "")
    for replica in replicas:
        details = dict(part.split("=", 1) for part in replica.split(",") if "=" in part)
        if details.get("state") != "online" or details.get("offset") != offset:
            return False
    return True


def resp_command(port: int, *args: str, timeout: float = 2.0) -> bytes | int | list[object] | None:
    """Send one command in RESP and return the reply (for readiness checks)."""
    request = f"*{len(args)}\r\n".encode() + b"".join(
        f"${len(arg.encode())}\r\n".encode() + arg.encode() + b"\r\n" for arg in args
    )
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(request)
        reader = sock.makefile("rb")
        return _read_reply(reader)


def _read_reply(reader: object) -> bytes | int | list[object] | None:
    line: bytes = reader.readline()  # type: ignore[attr-defined]
    if not line:
        raise ConnectionError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        length = int(rest)
        if length < 0:
            return None
        data: bytes = reader.read(length + 2)  # type: ignore[attr-defined]
        return data[:-2]
    if kind == b"*":
        count = int(rest)
        return None if count < 0 else [_read_reply(reader) for _ in range(count)]
    raise RuntimeError(f"unexpected reply {line!r}")


class RedisServer(ServerProcess):
    kind = "redis"

    def __init__(self, directory: Path, port: int | None = None, extra: Sequence[str] = ()) -> None:
        binary = require_binary("redis-server")
        port = port or free_port()
        directory.mkdir(parents=True, exist_ok=True)
        argv = [
            binary,
            "--bind",
            HOST,
            "--port",
            str(port),
            "--dir",
            str(directory),
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--protected-mode",
            "yes",
            "--unixsocket",
            str(directory / "redis.sock"),
            "--unixsocketperm",
            "700",
            *extra,
        ]
        super().__init__(argv, port, directory)

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    @property
    def unix_socket(self) -> Path:
        return self.directory / "redis.sock"

    def ready(self) -> bool:
        try:
            return resp_command(self.port, "PING", timeout=0.5) == b"PONG"
        except (OSError, RuntimeError):
            return False


def start_redis(directory: Path, port: int | None = None) -> RedisServer:
    """One redis-server (TCP on 127.0.0.1, and a Unix socket in ``directory``)."""
    server = RedisServer(directory, port)
    server.start()
    return server


class RedisTLSServer(RedisServer):
    """A redis-server that speaks only TLS, with a self-signed certificate for 127.0.0.1."""

    def __init__(self, directory: Path) -> None:
        openssl = require_binary("openssl")
        directory.mkdir(parents=True, exist_ok=True)
        self.certificate = directory / "cert.pem"
        key = directory / "key.pem"
        subprocess.run(
            [
                openssl,
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "1",
                "-subj",
                f"/CN={HOST}",
                "-addext",
                f"subjectAltName=IP:{HOST}",
                "-keyout",
                str(key),
                "-out",
                str(self.certificate),
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        port = free_port()
        super().__init__(
            directory,
            port,
            extra=[
                "--port",
                "0",
                "--tls-port",
                str(port),
                "--tls-cert-file",
                str(self.certificate),
                "--tls-key-file",
                str(key),
                "--tls-ca-cert-file",
                str(self.certificate),
                "--tls-auth-clients",
                "no",
            ],
        )

    @property
    def url(self) -> str:
        return f"rediss://{HOST}:{self.port}/0?ssl_ca_certs={self.certificate}"

    def ready(self) -> bool:
        context = ssl.create_default_context(cafile=str(self.certificate))
        try:
            with (
                socket.create_connection((HOST, self.port), timeout=0.5) as raw,
                context.wrap_socket(raw, server_hostname=HOST) as sock,
            ):
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except (OSError, ssl.SSLError):
            return False


def start_redis_tls(directory: Path) -> RedisTLSServer:
    server = RedisTLSServer(directory)
    server.start()
    return server


class Promotion(NamedTuple):
    """A replica that became master, and when the test first saw it (``time.monotonic()``)."""

    node: RedisServer
    at: float
    waited: float  # seconds from the start of the wait
    #: Cluster: when a live node first flagged the dead master ``fail`` (the cluster is
    #: down, CLUSTERDOWN on every node, from then until the promotion).
    failed_at: float | None = None


class ClusterNodeInfo(NamedTuple):
    """One line of ``CLUSTER NODES``."""

    node_id: str
    port: int
    flags: frozenset[str]
    master_id: str  # "-" for a master
    slots: tuple[tuple[int, int], ...]

    @property
    def is_master(self) -> bool:
        return "master" in self.flags

    @property
    def failed(self) -> bool:
        return "fail" in self.flags


def parse_cluster_nodes(text: str) -> list[ClusterNodeInfo]:
    """The nodes a ``CLUSTER NODES`` reply lists (slot ranges of masters; importing/migrating skipped)."""
    found = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 8:
            continue
        address = fields[1].split("@", 1)[0]
        port = int(address.rsplit(":", 1)[1]) if ":" in address else 0
        slots = []
        for part in fields[8:]:
            if part.startswith("["):
                continue
            first, _, last = part.partition("-")
            slots.append((int(first), int(last or first)))
        found.append(
            ClusterNodeInfo(fields[0], port, frozenset(fields[2].split(",")), fields[3], tuple(slots))
        )
    return found


def redis_role(port: int, timeout: float = 0.5) -> str:
    """``"master"``, ``"slave"`` or ``"sentinel"``: the first field of ``ROLE``."""
    reply = resp_command(port, "ROLE", timeout=timeout)
    assert isinstance(reply, list) and isinstance(reply[0], bytes), reply
    return reply[0].decode()


def _poll_until(what: str, check: Callable[[], _T | None], timeout: float, interval: float = 0.01) -> _T:
    """Call ``check`` until it returns something other than ``None``, or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        time.sleep(interval)


class RedisClusterServers:
    """A Redis Cluster: ``nodes`` are its masters at creation, ``replicas`` one per master or none.

    ``cluster_nodes()``, ``slot_owner()`` and ``wait_for_promotion()`` ask the
    live nodes themselves (``CLUSTER NODES`` / ``CLUSTER SLOTS``), so they
    follow failovers.
    """

    def __init__(
        self, nodes: list[RedisServer], replicas: Sequence[RedisServer] = (), node_timeout_ms: int = 5000
    ) -> None:
        self.nodes = nodes
        self.replicas = list(replicas)
        self.node_timeout_ms = node_timeout_ms

    @property
    def all_nodes(self) -> list[RedisServer]:
        return [*self.nodes, *self.replicas]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.all_nodes)

    def node_on(self, port: int) -> RedisServer:
        for node in self.all_nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def live_nodes(self) -> list[RedisServer]:
        """The nodes whose process runs and is not stopped."""
        return [
            node
            for node in self.all_nodes
            if node.process is not None and node.process.poll() is None and not node.paused
        ]

    def cluster_nodes(self, asking: RedisServer | None = None) -> list[ClusterNodeInfo]:
        """``CLUSTER NODES`` as ``asking`` (default: the first live node that answers) sees it."""
        candidates = [asking] if asking is not None else self.live_nodes()
        error: Exception | None = None
        for node in candidates:
            try:
                reply = resp_command(node.port, "CLUSTER", "NODES", timeout=0.5)
            except (OSError, RuntimeError) as exc:
                error = exc
                continue
            assert isinstance(reply, bytes)
            return parse_cluster_nodes(reply.decode())
        raise RuntimeError(f"no cluster node answered CLUSTER NODES: {error}")

    def masters(self) -> list[RedisServer]:
        """The nodes serving slots now, as a live node sees it."""
        return [self.node_on(info.port) for info in self.cluster_nodes() if info.is_master and info.slots]

    def replica_of(self, master: RedisServer) -> RedisServer:
        infos = self.cluster_nodes()
        master_id = next(info.node_id for info in infos if info.port == master.port)
        return next(self.node_on(info.port) for info in infos if info.master_id == master_id)

    def slot_owner(self, slot: int) -> RedisServer:
        """The master serving hash slot ``slot``, as a live node sees it."""
        for info in self.cluster_nodes():
            if info.is_master and any(first <= slot <= last for first, last in info.slots):
                return self.node_on(info.port)
        raise KeyError(f"no master serves slot {slot}")

    def state_ok(self, node: RedisServer) -> bool:
        try:
            info = resp_command(node.port, "CLUSTER", "INFO", timeout=0.5)
        except (OSError, RuntimeError):
            return False
        return isinstance(info, bytes) and b"cluster_state:ok" in info

    def wait_until_stable(self, timeout: float = 30.0) -> None:
        """Every live node: ``cluster_state:ok``, sees one master per slot range and every
        replica attached (``master_link_status:up``)."""
        live = self.live_nodes()

        def stable() -> bool | None:
            masters = {node.port for node in self.nodes}
            replicas = {node.port for node in self.replicas}
            for node in live:
                if not self.state_ok(node):
                    return None
                try:
                    infos = self.cluster_nodes(node)
                except RuntimeError:
                    return None
                seen_masters = {info.port for info in infos if info.is_master and not info.failed}
                seen_replicas = {info.port for info in infos if "slave" in info.flags and not info.failed}
                if not masters <= seen_masters or not replicas <= seen_replicas:
                    return None
            for node in self.replicas:
                if node in live:
                    info = resp_command(node.port, "INFO", "replication", timeout=0.5)
                    if not isinstance(info, bytes) or b"master_link_status:up" not in info:
                        return None
            masters_now = [node for node in live if node not in self.replicas]
            return True if all(replicas_acknowledged(node.port) for node in masters_now) else None

        _poll_until("the Redis Cluster is stable", stable, timeout, interval=0.05)

    def wait_for_promotion(self, dead: RedisServer, timeout: float = 15.0) -> Promotion:
        """Poll the live nodes' ``CLUSTER NODES`` until one of them shows a replica of ``dead``
        promoted to master; the moment the first node showed it."""
        started = time.monotonic()
        dead_id = ""
        replica_ids: set[str] = set()
        for info in self.cluster_nodes():
            if info.port == dead.port:
                dead_id = info.node_id
        assert dead_id, f"{dead.address} is not in the cluster"

        failed_at: list[float] = []

        def promoted() -> Promotion | None:
            for node in self.live_nodes():
                try:
                    infos = self.cluster_nodes(node)
                except RuntimeError:
                    continue
                for info in infos:
                    if info.master_id == dead_id:
                        replica_ids.add(info.node_id)
                    if info.node_id == dead_id and info.failed and not failed_at:
                        failed_at.append(time.monotonic())
                    if info.node_id in replica_ids and info.is_master and info.slots:
                        now = time.monotonic()
                        return Promotion(
                            self.node_on(info.port), now, now - started, failed_at[0] if failed_at else None
                        )
            return None

        return _poll_until(f"a replica of {dead.address} promoted", promoted, timeout)

    def stop(self) -> None:
        for node in self.all_nodes:
            node.stop()


def start_redis_cluster(
    directory: Path, masters: int = 3, *, replicas: int = 0, node_timeout_ms: int = 5000
) -> RedisClusterServers:
    """``masters`` cluster-enabled redis-servers (and ``replicas`` per master) joined with
    ``redis-cli --cluster create``; ``node_timeout_ms`` is ``cluster-node-timeout``."""
    cli = require_binary("redis-cli")
    started: list[RedisServer] = []
    try:
        for index in range(masters * (1 + replicas)):
            node_dir = directory / f"node{index}"
            port = free_cluster_port()
            node = RedisServer(
                node_dir,
                port,
                extra=[
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    str(node_dir / "nodes.conf"),
                    "--cluster-node-timeout",
                    str(node_timeout_ms),
                    *_REPLICATION_OPTIONS,
                ],
            )
            node.start()
            started.append(node)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(node.address for node in started),
                "--cluster-replicas",
                str(replicas),
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        cluster = RedisClusterServers(started, node_timeout_ms=node_timeout_ms)
        if replicas:
            # redis-cli chose the masters; ask the cluster which they are.
            def all_joined() -> list[ClusterNodeInfo] | None:
                found = cluster.cluster_nodes()
                joined = sum("slave" in info.flags for info in found) == masters * replicas
                return found if joined else None

            infos = _poll_until("every replica joined", all_joined, 20.0, interval=0.05)
            ports = {info.port for info in infos if info.is_master and info.slots}
            cluster = RedisClusterServers(
                [node for node in started if node.port in ports],
                [node for node in started if node.port not in ports],
                node_timeout_ms=node_timeout_ms,
            )
        cluster.wait_until_stable(30.0)
    except BaseException:
        for node in started:
            node.stop()
        raise
    return cluster


#: Every data node: a replica's first sync (and a demoted master's resync) starts at once.
_REPLICATION_OPTIONS = ("--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0")


class SentinelServer(ServerProcess):
    kind = "sentinel"

    def __init__(
        self,
        directory: Path,
        master: RedisServer,
        service: str,
        *,
        quorum: int = 1,
        down_after_ms: int = 60000,
        failover_timeout_ms: int = 180000,
    ) -> None:
        binary = require_binary("redis-server")
        port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sentinel.conf"
        config.write_text(
            f"port {port}\n"
            f"bind {HOST}\n"
            f'dir "{directory}"\n'
            f"sentinel monitor {service} {HOST} {master.port} {quorum}\n"
            f"sentinel down-after-milliseconds {service} {down_after_ms}\n"
            f"sentinel failover-timeout {service} {failover_timeout_ms}\n"
        )
        config.chmod(0o600)
        super().__init__([binary, str(config), "--sentinel"], port, directory)
        self.service = service
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def ready(self) -> bool:
        return self.master_port(timeout=0.5) is not None

    def master_port(self, timeout: float = 0.5) -> int | None:
        """The port ``SENTINEL get-master-addr-by-name`` names now, or None when it does not answer."""
        try:
            reply = resp_command(
                self.port, "SENTINEL", "get-master-addr-by-name", self.service, timeout=timeout
            )
        except (OSError, RuntimeError):
            return None
        if isinstance(reply, list) and len(reply) == 2 and isinstance(reply[1], bytes):
            return int(reply[1])
        return None

    def known(self, what: str) -> list[dict[str, str]]:
        """``SENTINEL replicas`` / ``SENTINEL sentinels`` of the service, as dicts."""
        reply = resp_command(self.port, "SENTINEL", what, self.service, timeout=0.5)
        assert isinstance(reply, list)
        found = []
        for item in reply:
            assert isinstance(item, list)
            pairs = [value.decode() if isinstance(value, bytes) else str(value) for value in item]
            found.append(dict(zip(pairs[::2], pairs[1::2], strict=True)))
        return found


class RedisSentinelServers:
    """Redis master(s) and sentinel(s) watching them as ``service``.

    ``master`` and ``sentinel`` are the ones started first (the single-sentinel
    fixture's); ``current_master()`` and ``wait_for_promotion()`` ask the
    sentinels, so they follow failovers.
    """

    def __init__(
        self,
        master: RedisServer,
        sentinel: SentinelServer,
        service: str,
        *,
        replicas: Sequence[RedisServer] = (),
        sentinels: Sequence[SentinelServer] = (),
    ) -> None:
        self.master = master
        self.sentinel = sentinel
        self.service = service
        self.replicas = list(replicas)
        self.sentinels = list(sentinels) or [sentinel]

    @property
    def data_nodes(self) -> list[RedisServer]:
        return [self.master, *self.replicas]

    @property
    def url(self) -> str:
        return f"redis+sentinel://{','.join(s.address for s in self.sentinels)}/{self.service}/0"

    def node_on(self, port: int) -> RedisServer:
        for node in self.data_nodes:
            if node.port == port:
                return node
        raise KeyError(port)

    def master_ports(self) -> dict[int, int | None]:
        """Each sentinel's answer to ``get-master-addr-by-name`` (sentinel port -> master port)."""
        return {sentinel.port: sentinel.master_port(timeout=0.3) for sentinel in self.sentinels}

    def current_master(self) -> RedisServer:
        """The master that most sentinels name now."""
        answers = [port for port in self.master_ports().values() if port is not None]
        if not answers:
            raise RuntimeError("no sentinel answered")
        return self.node_on(max(set(answers), key=answers.count))

    def wait_until_ready(self, timeout: float = 20.0) -> None:
        """Replicas attached; every sentinel knows every replica and the other sentinels."""

        def ready() -> bool | None:
            for node in self.replicas:
                info = resp_command(node.port, "INFO", "replication", timeout=0.5)
                if not isinstance(info, bytes) or b"master_link_status:up" not in info:
                    return None
            for sentinel in self.sentinels:
                try:
                    replicas = sentinel.known("replicas")
                    others = sentinel.known("sentinels")
                except (OSError, RuntimeError):
                    return None
                attached = [
                    r for r in replicas if "disconnected" not in r["flags"] and "s_down" not in r["flags"]
                ]
                if len(attached) < len(self.replicas) or len(others) < len(self.sentinels) - 1:
                    return None
            return True if replicas_acknowledged(self.master.port) else None

        _poll_until("the sentinels know every replica and each other", ready, timeout, interval=0.05)

    def wait_for_promotion(self, old: RedisServer, timeout: float = 20.0) -> Promotion:
        """Poll every sentinel until one names a master other than ``old``; the moment it first did."""
        started = time.monotonic()

        def promoted() -> Promotion | None:
            for port in self.master_ports().values():
                if port is not None and port != old.port:
                    now = time.monotonic()
                    return Promotion(self.node_on(port), now, now - started)
            return None

        return _poll_until(f"a sentinel names a master other than {old.address}", promoted, timeout)

    def wait_for_role(self, node: RedisServer, role: str, timeout: float = 20.0) -> float:
        """Poll ``ROLE`` of ``node`` until it is ``role`` ("master" / "slave"); when it was."""

        def has_role() -> float | None:
            try:
                current = redis_role(node.port, timeout=0.3)
            except (OSError, RuntimeError):
                return None
            return time.monotonic() if current == role else None

        return _poll_until(f"{node.address} has the role {role}", has_role, timeout)

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        for node in self.data_nodes:
            node.stop()


def start_redis_sentinel(directory: Path, service: str = "mymaster") -> RedisSentinelServers:
    """A redis-server master and a ``redis-server --sentinel`` monitoring it."""
    master = start_redis(directory / "master")
    try:
        sentinel = SentinelServer(directory / "sentinel", master, service)
        sentinel.start()
    except BaseException:
        master.stop()
        raise
    return RedisSentinelServers(master, sentinel, service)


def start_redis_sentinel_failover(
    directory: Path,
    service: str = "mymaster",
    *,
    replicas: int = 1,
    sentinels: int = 3,
    quorum: int = 2,
    down_after_ms: int = 1000,
    failover_timeout_ms: int = 3000,
) -> RedisSentinelServers:
    """A master, ``replicas`` replicas and ``sentinels`` sentinels (``quorum``) that fail over fast.

    Returns once the replicas are in sync and every sentinel knows every
    replica and the other sentinels (so a failover can start at once).
    """
    started: list[ServerProcess] = []
    try:
        master = RedisServer(directory / "master", extra=_REPLICATION_OPTIONS)
        master.start()
        started.append(master)
        replica_nodes = []
        for index in range(replicas):
            replica = RedisServer(
                directory / f"replica{index}",
                extra=[*_REPLICATION_OPTIONS, "--replicaof", HOST, str(master.port)],
            )
            replica.start()
            started.append(replica)
            replica_nodes.append(replica)
        sentinel_nodes = []
        for index in range(sentinels):
            sentinel = SentinelServer(
                directory / f"sentinel{index}",
                master,
                service,
                quorum=quorum,
                down_after_ms=down_after_ms,
                failover_timeout_ms=failover_timeout_ms,
            )
            sentinel.start()
            started.append(sentinel)
            sentinel_nodes.append(sentinel)
        topology = RedisSentinelServers(
            master, sentinel_nodes[0], service, replicas=replica_nodes, sentinels=sentinel_nodes
        )
        topology.wait_until_ready()
    except BaseException:
        for server in reversed(started):
            server.stop()
        raise
    return topology


# -- Memcached --------------------------------------------------------------------


class MemcachedServer(ServerProcess):
    kind = "memcached"

    def __init__(self, directory: Path, port: int | None = None, memory_mb: int = 64) -> None:
        binary = require_binary("memcached")
        port = port or free_port()
        directory.mkdir(parents=True, exist_ok=True)
        argv = [binary, "-l", HOST, "-p", str(port), "-U", "0", "-m", str(memory_mb), "-t", "2", "-c", "1024"]
        if os.geteuid() == 0:
            argv += ["-u", "root"]  # memcached refuses to run as root otherwise
        super().__init__(argv, port, directory)

    @property
    def url(self) -> str:
        return f"memcached://{self.address}"

    def ready(self) -> bool:
        try:
            with socket.create_connection((HOST, self.port), timeout=0.5) as sock:
                sock.sendall(b"version\r\n")
                return sock.recv(64).startswith(b"VERSION")
        except OSError:
            return False

    def stats(self) -> dict[str, int]:
        """The numeric counters of the ``stats`` command."""
        with socket.create_connection((HOST, self.port), timeout=2) as sock:
            sock.sendall(b"stats\r\n")
            data = b""
            while not data.endswith(b"END\r\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        found: dict[str, int] = {}
        for line in data.decode().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "STAT" and parts[2].lstrip("-").isdigit():
                found[parts[1]] = int(parts[2])
        return found


def start_memcached(directory: Path, port: int | None = None) -> MemcachedServer:
    server = MemcachedServer(directory, port)
    server.start()
    return server


def memcached_url(servers: Sequence[MemcachedServer]) -> str:
    return "memcached://" + ",".join(server.address for server in servers)
