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
from collections.abc import Sequence
from pathlib import Path

HOST = "127.0.0.1"

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


class RedisClusterServers:
    """A Redis Cluster of ``len(nodes)`` masters and no replicas."""

    def __init__(self, nodes: list[RedisServer]) -> None:
        self.nodes = nodes

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(node.address for node in self.nodes)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_redis_cluster(directory: Path, masters: int = 3) -> RedisClusterServers:
    """``masters`` cluster-enabled redis-servers joined with ``redis-cli --cluster create``."""
    cli = require_binary("redis-cli")
    nodes: list[RedisServer] = []
    try:
        for index in range(masters):
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
                    "5000",
                ],
            )
            node.start()
            nodes.append(node)
        subprocess.run(
            [
                cli,
                "--cluster",
                "create",
                *(node.address for node in nodes),
                "--cluster-replicas",
                "0",
                "--cluster-yes",
            ],
            check=True,
            capture_output=True,
            timeout=30,
        )
        deadline = time.monotonic() + 20
        while True:
            states = []
            for node in nodes:
                info = resp_command(node.port, "CLUSTER", "INFO")
                assert isinstance(info, bytes)
                states.append(b"cluster_state:ok" in info)
            if all(states):
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
            time.sleep(0.05)
    except BaseException:
        for node in nodes:
            node.stop()
        raise
    return RedisClusterServers(nodes)


class SentinelServer(ServerProcess):
    kind = "sentinel"

    def __init__(self, directory: Path, master: RedisServer, service: str) -> None:
        binary = require_binary("redis-server")
        port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "sentinel.conf"
        config.write_text(
            f"port {port}\n"
            f"bind {HOST}\n"
            f'dir "{directory}"\n'
            f"sentinel monitor {service} {HOST} {master.port} 1\n"
            f"sentinel down-after-milliseconds {service} 60000\n"
            f"sentinel failover-timeout {service} 180000\n"
        )
        config.chmod(0o600)
        super().__init__([binary, str(config), "--sentinel"], port, directory)
        self.service = service

    def ready(self) -> bool:
        try:
            reply = resp_command(self.port, "SENTINEL", "get-master-addr-by-name", self.service, timeout=0.5)
        except (OSError, RuntimeError):
            return False
        return isinstance(reply, list) and len(reply) == 2


class RedisSentinelServers:
    """A Redis master and one sentinel watching it as ``service``."""

    def __init__(self, master: RedisServer, sentinel: SentinelServer, service: str) -> None:
        self.master = master
        self.sentinel = sentinel
        self.service = service

    @property
    def url(self) -> str:
        return f"redis+sentinel://{self.sentinel.address}/{self.service}/0"

    def stop(self) -> None:
        self.sentinel.stop()
        self.master.stop()


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
