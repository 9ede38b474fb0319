"""Redis: one server, TLS, a Unix socket, Redis Cluster or Sentinel (redis-py).

::

    backend="redis://127.0.0.1:6379/0"
    backend="rediss://:password@cache.example.com:6380/0?ssl_ca_certs=/etc/ssl/ca.pem"
    backend="unix:///run/redis/redis.sock?db=0"
    backend="redis+cluster://10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000"
    backend="redis+sentinel://10.0.0.1:26379,10.0.0.2:26379/mymaster/0"

Every key is stored as ``<namespace>:<key>``, where the namespace is the
``key_prefix`` (``KEY_PREFIX``) or ``wsgicache`` when there is none;
:meth:`RedisBackend.clear` removes only keys of that namespace, with
``SCAN`` and ``UNLINK`` (never ``FLUSHDB``). Values are written with
``SET ... PX`` (millisecond lifetimes); ``add`` is ``SET ... NX PX``; a
lookup of several keys is one ``MGET``; invalidations are one pipeline of
``SET``s per node (:meth:`RedisBackend.set_many`), followed by ``WAIT`` for
``wait_replicas`` replicas.

Failures: connect and read timeouts are short by default (0.5 s each) and
a command is retried at most ``retries`` times (default 1), only after a
connection error (a dropped or refused connection), never after a timeout.
So a hung server costs a request at most ``socket_timeout`` (or
``socket_connect_timeout``) before the middleware serves it from the
application; after a few failures its circuit breaker stops calling Redis
for a while. A connection whose read fails (a timeout, a protocol error) is
closed, never reused, so no command reads the late reply of another.

Redis Cluster: the middleware places each entry and the tag generations it
depends on in one hash slot (``{sN}`` hash tags over :attr:`key_shards`
groups), so a hit is one ``MGET`` on one node. The namespace must then
not contain ``{`` or ``}``.
"""

from __future__ import annotations

import inspect
import logging
import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from time import monotonic
from typing import Any, ClassVar
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigurationError, TransientBackendError
from ._net import KeyListMemo, interval_seconds, parse_hosts, positive_seconds, split_userinfo, whole_number
from .base import Backend, construct, options_from_query

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.crc import key_slot
    from redis.exceptions import (
        AskError,
        ClusterDownError,
        MovedError,
        RedisError,
        SlotNotCoveredError,
        TryAgainError,
    )
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
    from redis.sentinel import (
        MasterNotFoundError,
        Sentinel,
        SentinelManagedConnection,
        SentinelManagedSSLConnection,
    )
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        f"the Redis backend needs the redis package ({exc}): pip install 'wsgicache[redis]'"
    ) from exc

__all__ = ["RedisBackend", "RedisClusterBackend", "RedisSentinelBackend"]

_log = logging.getLogger(__name__)

#: What a Redis Cluster node answers while the cluster changes (another
#: master failing over, a slot moving): it passes within about a second and
#: says nothing about the health of the node that answered.
_CLUSTER_TRANSIENT = (ClusterDownError, TryAgainError, SlotNotCoveredError)

#: Shortest interval between two reloads of the cluster's slot table.
_TOPOLOGY_REFRESH_INTERVAL = 0.25

#: Lists of keys remembered as sharing one hash slot or not, and the characters they may hold.
_SLOT_MEMO_SIZE = 4096
_SLOT_MEMO_CHARS = 2 * 1024 * 1024

#: A lookup of the master with the sentinels that fails after this long (or
#: after a sentinel timed out) is not repeated for a while (they hang): it
#: would add that wait to calls. Meanwhile the last master they named is used.
_SLOW_SENTINELS = 0.1

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_DATABASE = re.compile(r"[0-9]{1,9}")


def check_database(url: str, text: str, owner: str) -> int:
    """The Redis database number ``text`` names in ``url``; anything but digits is an error.

    redis-py reads a database it cannot parse as 0: a typo would silently
    share database 0 with whatever else uses it.
    """
    if not _DATABASE.fullmatch(text):
        raise ConfigurationError(
            f"{owner}: the Redis database in {url!r} must be a number, such as 0 "
            f"(redis://host:6379/0); got {text!r}. To keep sites apart within one "
            "database, give each a KEY_PREFIX"
        )
    return int(text)


_DELETE_BATCH = 500


def _milliseconds(ttl: float) -> int:
    """A lifetime in whole milliseconds, never 0 (which Redis rejects)."""
    return max(1, math.ceil(ttl * 1000))


#: The pool size wsgicache passes to redis-py unless ``max_connections`` is
#: given: redis-py's own default since 8.0 (2**31, no real limit, before).
DEFAULT_MAX_CONNECTIONS = 100

#: Default ``wait_timeout``, when ``socket_timeout`` leaves room for it.
DEFAULT_WAIT_TIMEOUT = 0.1

#: How late ``WAIT`` may answer after its timeout: Redis checks the timeouts
#: of blocked commands on its timer, every 1/hz s (hz 10 by default).
WAIT_SLACK = 0.1


def _wait_milliseconds(deadline: float) -> int:
    """The ``WAIT`` timeout left until ``deadline`` in whole milliseconds, never 0 (``WAIT 0`` blocks)."""
    return max(1, math.ceil((deadline - monotonic()) * 1000))


def _check_wait_options(
    owner: str, wait_replicas: object, wait_timeout: object, socket_timeout: float, default_replicas: int
) -> tuple[int, float]:
    """``(wait_replicas, wait_timeout)`` checked; ``None`` picks the default.

    ``WAIT``'s answer is read within ``socket_timeout``, and may come
    :data:`WAIT_SLACK` after ``wait_timeout``: the two must leave room for
    it. By default, a ``socket_timeout`` too short for that turns waiting off.
    """
    room = socket_timeout - WAIT_SLACK
    if wait_replicas is None:
        wait_replicas = default_replicas if room > 0 else 0
    if isinstance(wait_replicas, bool) or not isinstance(wait_replicas, int) or wait_replicas < 0:
        raise ConfigurationError(
            f"{owner} wait_replicas must be a whole number >= 0: how many replicas must acknowledge "
            f"an invalidation (Redis WAIT), 0 not to wait; got {wait_replicas!r}"
        )
    if wait_timeout is None:
        if wait_replicas and room <= 0:
            raise ConfigurationError(
                f"{owner}: with wait_replicas={wait_replicas}, socket_timeout ({socket_timeout:g} s) must "
                f"be longer than {WAIT_SLACK:g} s, since Redis may answer WAIT up to {WAIT_SLACK:g} s "
                "after its timeout; raise socket_timeout, or give wait_replicas=0 not to wait for replicas"
            )
        wait_timeout = min(DEFAULT_WAIT_TIMEOUT, room / 2) if room > 0 else DEFAULT_WAIT_TIMEOUT
    seconds = positive_seconds(owner, "wait_timeout", wait_timeout)
    if wait_replicas and seconds >= room:
        raise ConfigurationError(
            f"{owner} wait_timeout ({seconds:g} s) must be shorter than socket_timeout "
            f"({socket_timeout:g} s) minus {WAIT_SLACK:g} s: Redis may answer WAIT up to "
            f"{WAIT_SLACK:g} s after its timeout, and the answer is read within socket_timeout. "
            f"Use a wait_timeout such as {max(room / 2, 0.001):.3g} (or wait_replicas=0 not to wait)"
        )
    return wait_replicas, seconds


class _DisconnectOnError:
    """Mixin for redis-py connections: one whose read fails is closed, never reused.

    redis-py's ``Connection.read_response`` closes the connection on any error
    while reading (``disconnect_on_error=True``: a timeout, a protocol error, an
    interruption), so that no later command reads the reply meant for this
    one. ``SentinelManagedConnection`` overrides it with
    ``disconnect_on_error=False`` (redis-py 6.4, 7.0 and 8.1 checked), and redis-py
    closes a connection otherwise only for the errors its ``retry`` object
    retries, which wsgicache limits to connection errors (a command is never
    retried after a timeout). A Sentinel connection whose read timed out thus
    went back to the pool with the late reply still to come, and every later
    command on it read the reply of the one before. This restores the default
    of ``Connection``.
    """

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("disconnect_on_error", True)
        return super().read_response(*args, **kwargs)  # type: ignore[misc]


class _SentinelConnection(_DisconnectOnError, SentinelManagedConnection):
    """The Sentinel backend's connections: closed after any read error."""


class _SentinelSSLConnection(_DisconnectOnError, SentinelManagedSSLConnection):
    """The Sentinel backend's TLS connections: closed after any read error."""


def _require_master(connection: Any) -> None:
    """redis-py ``redis_connect_func`` of the Sentinel backend: a new connection must reach a master.

    Runs redis-py's own handshake, then ``ROLE``: a server the sentinels
    still name although it was demoted (a replica now) is refused, so that
    nothing reads from it or writes to it.
    """
    connection.on_connect()
    connection.send_command("ROLE")
    reply = connection.read_response()
    role = reply[0] if isinstance(reply, (list, tuple)) and reply else reply
    if isinstance(role, bytes):
        role = role.decode("ascii", "replace")
    if role != "master":
        raise RedisConnectionError(
            f"{connection.host}:{connection.port} is not a master (ROLE {role!r}): it was demoted and "
            "the sentinels do not name the new master yet"
        )


class _Unretried(Exception):
    """Carries a :class:`MasterNotFoundError` through :class:`_NoLookupRetry`."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class _NoLookupRetry(Retry):
    """redis-py ``Retry`` that never retries a failed master lookup (``MasterNotFoundError``).

    ``MasterNotFoundError`` is a ``ConnectionError``: redis-py retried it at
    the connection level and again at the command level, so one call asked
    the sentinels up to four times while they hung.
    """

    def call_with_retry(
        self, do: Callable[[], Any], fail: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> Any:
        def attempt() -> Any:
            try:
                return do()
            except MasterNotFoundError as exc:
                raise _Unretried(exc) from exc

        try:
            return super().call_with_retry(attempt, fail, *args, **kwargs)
        except _Unretried as exc:
            raise exc.error from None


class _Sentinel(Sentinel):
    """redis-py ``Sentinel`` whose master lookup has one deadline and falls back on the last master.

    ``discover_master`` asks the sentinels in turn until ``lookup_timeout``
    has passed (each is also given only its share of the timeouts, see
    :meth:`RedisSentinelBackend._connect`). When none of them answers (they
    hang, or refuse connections), it returns the last master they named, if
    any (``_require_master`` still checks with ``ROLE`` that it is a
    master); and when asking took long, the sentinels are not asked again
    for ``quiet_for`` seconds: lookups return that master at once (or fail
    at once when none is known). A sentinel that answers without naming a
    healthy master (it is down, a failover is under way) is believed.
    """

    def __init__(self, sentinels: Any, *, lookup_timeout: float, quiet_for: float, **kwargs: Any) -> None:
        super().__init__(sentinels, **kwargs)  # type: ignore[no-untyped-call]
        self.lookup_timeout = lookup_timeout
        self.quiet_for = quiet_for
        self.last_master: dict[str, tuple[str, int]] = {}
        self.quiet_until = -math.inf

    def discover_master(self, service_name: str) -> tuple[str, int]:
        started = monotonic()
        known = self.last_master.get(service_name)
        if started < self.quiet_until:
            if known is not None:
                return known
            raise MasterNotFoundError(
                f"No master found for {service_name!r}: the sentinels did not answer in time; "
                f"not asked again for {self.quiet_until - started:.1f} s"
            )
        deadline = started + self.lookup_timeout
        errors: list[str] = []
        answered = timed_out = False
        for sentinel in list(self.sentinels):
            if monotonic() >= deadline:
                errors.append(f"no answer within {self.lookup_timeout:g} s")
                timed_out = True
                break
            try:
                masters: Any = sentinel.sentinel_masters()
            except (RedisConnectionError, RedisTimeoutError) as exc:
                timed_out = timed_out or isinstance(exc, RedisTimeoutError)
                errors.append(f"{sentinel} - {exc!r}")
                continue
            answered = True
            state = masters.get(service_name)
            if state and self.check_master_state(state, service_name):  # type: ignore[no-untyped-call]
                # Ask this sentinel first next time (as redis-py does).
                sentinels = self.sentinels
                index = next((i for i, each in enumerate(sentinels) if each is sentinel), 0)
                sentinels[0], sentinels[index] = sentinels[index], sentinels[0]
                forced = getattr(self, "_force_master_ip", None)
                address = (forced if forced is not None else state["ip"], int(state["port"]))
                self.last_master[service_name] = address
                return address
        if not answered:
            if timed_out or monotonic() - started > _SLOW_SENTINELS:
                self.quiet_until = monotonic() + self.quiet_for
            if known is not None:
                _log.debug(
                    "no sentinel of %r answered (%s); using the last master they named, %s:%s",
                    service_name,
                    "; ".join(errors),
                    *known,
                )
                return known
        raise MasterNotFoundError(
            f"No master found for {service_name!r}: {'; '.join(errors) or 'none named'}"
        )


class RedisBackend(Backend):
    """One Redis server (``redis://``, ``rediss://`` or ``unix://``).

    :param url: where the server is: ``redis://[user:password@]host[:port][/db]``,
        ``rediss://...`` (TLS) or ``unix:///path/to/redis.sock``.
    :param socket_connect_timeout: seconds to wait for a connection (default 0.5).
    :param socket_timeout: seconds to wait for an answer (default 0.5).
    :param retries: times a command is retried after a connection error (default 1).
    :param max_connections: most pooled connections (default 100, redis-py's
        own default since 8.0; past it a call fails at once).
    :param health_check_interval: seconds after which an idle connection is
        checked with ``PING`` before use (default 0: never).
    :param db, username, password: override the URL's.
    :param ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile: TLS
        settings for ``rediss://``.
    :param scan_count: the ``COUNT`` hint of the ``SCAN`` that :meth:`clear` runs.
    :param wait_replicas: how many replicas :meth:`set_many` (invalidations)
        waits for with ``WAIT`` (default 0 here: no waiting; 1 for Sentinel
        and Cluster unless ``socket_timeout`` is 0.1 s or less).
    :param wait_timeout: seconds :meth:`set_many` waits for them (default 0.1,
        less if ``socket_timeout`` is under 0.3 s). Redis may answer ``WAIT``
        up to 0.1 s late (:data:`WAIT_SLACK`), and the answer is read within
        ``socket_timeout``: ``wait_timeout`` + 0.1 must be shorter than it.
    :param connection_options: further keyword arguments for redis-py's
        connections (dict configurations only).
    """

    #: The URL schemes this class serves.
    schemes: tuple[str, ...] = ("redis", "rediss", "unix")

    #: ``wait_replicas`` when not given (0 when ``socket_timeout`` is at most
    #: :data:`WAIT_SLACK`, too short to read ``WAIT``'s answer).
    default_wait_replicas: ClassVar[int] = 0

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        socket_connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        retries: int = 1,
        max_connections: int | None = None,
        health_check_interval: float = 0,
        db: int | None = None,
        username: str | None = None,
        password: str | None = None,
        ssl_cert_reqs: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        scan_count: int = 1000,
        wait_replicas: int | None = None,
        wait_timeout: float | None = None,
        connection_options: Mapping[str, Any] | None = None,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
        owner = type(self).__name__
        if not isinstance(url, str):
            raise ConfigurationError(f"{owner} url must be a string such as 'redis://127.0.0.1:6379/0'")
        self.socket_connect_timeout = positive_seconds(
            owner, "socket_connect_timeout", socket_connect_timeout
        )
        self.socket_timeout = positive_seconds(owner, "socket_timeout", socket_timeout)
        self.retries = whole_number(owner, "retries", retries, 0)
        if max_connections is not None:
            whole_number(owner, "max_connections", max_connections, 1)
        interval_seconds(owner, "health_check_interval", health_check_interval)
        if db is not None:
            whole_number(owner, "db", db, 0)
        self.scan_count = whole_number(owner, "scan_count", scan_count, 1)
        self.wait_replicas, self.wait_timeout = _check_wait_options(
            owner, wait_replicas, wait_timeout, self.socket_timeout, self.default_wait_replicas
        )
        if connection_options is not None and not isinstance(connection_options, Mapping):
            raise ConfigurationError(f"{owner} connection_options must be a dict of redis-py options")
        namespace = key_prefix or "wsgicache"
        if "{" in namespace or "}" in namespace:
            raise ConfigurationError(
                f"{owner} key_prefix {key_prefix!r} must not contain '{{' or '}}' "
                "(they would change the Redis Cluster hash slot of keys)"
            )
        self.namespace = namespace
        self._prefix = namespace + ":"
        self._match = _GLOB_SPECIAL.sub(r"\\\1", namespace) + ":*"
        self.url = url
        options: dict[str, Any] = {
            "socket_connect_timeout": self.socket_connect_timeout,
            "socket_timeout": self.socket_timeout,
            "retry": Retry(NoBackoff(), self.retries, supported_errors=(RedisConnectionError,)),
            "health_check_interval": health_check_interval,
            "max_connections": DEFAULT_MAX_CONNECTIONS if max_connections is None else max_connections,
        }
        for name, value in (
            ("db", db),
            ("username", username),
            ("password", password),
            ("ssl_cert_reqs", ssl_cert_reqs),
            ("ssl_ca_certs", ssl_ca_certs),
            ("ssl_certfile", ssl_certfile),
            ("ssl_keyfile", ssl_keyfile),
        ):
            if value is not None:
                options[name] = value
        options.update(connection_options or {})
        self._options = options
        self._client_lock = threading.Lock()
        self._client_obj: Any = None
        self._check_url()

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Backend:
        """Build from a URL; its query parameters are options (``?socket_timeout=0.2``)."""
        parts = urlsplit(url)
        merged: dict[str, Any] = dict(options_from_query(parts.query))
        merged.update(options)
        merged["url"] = f"{parts.scheme}://{parts.netloc}{parts.path}"
        return construct(cls, url, merged)

    def __repr__(self) -> str:
        parts = urlsplit(self.url)
        _, _, hosts = split_userinfo(parts.netloc)
        return f"<{type(self).__name__} {parts.scheme}://{hosts}{parts.path} namespace={self.namespace!r}>"

    # -- connection ------------------------------------------------------------

    def _check_url(self) -> None:
        scheme = urlsplit(self.url).scheme.lower()
        if scheme not in self.schemes:
            raise ConfigurationError(
                f"{type(self).__name__} takes URLs of the scheme(s) "
                f"{', '.join(s + '://' for s in self.schemes)}; got {self.url!r}"
            )
        if type(self) is RedisBackend:
            parts = urlsplit(self.url)
            owner = type(self).__name__
            if scheme != "unix":
                database = unquote(parts.path)[1:]
                if database.endswith("/"):
                    database = database[:-1]
                if database:
                    check_database(self.url, database, owner)
            for name, value in parse_qsl(parts.query, keep_blank_values=True):
                if name == "db":
                    check_database(self.url, value, owner)
            try:
                parse_url(self.url)  # type: ignore[no-untyped-call]
            except ValueError as exc:
                raise ConfigurationError(f"invalid Redis URL {self.url!r}: {exc}") from exc

    def _connect(self) -> Any:
        pool = _redis.ConnectionPool.from_url(self.url, **self._options)
        return _redis.Redis(connection_pool=pool)

    @property
    def client(self) -> Any:
        """The redis-py client (created on first use, so start-up never waits on Redis)."""
        client = self._client_obj
        if client is None:
            with self._client_lock:
                client = self._client_obj
                if client is None:
                    client = self._client_obj = self._connect()
        return client

    def close(self) -> None:
        with self._client_lock:
            client, self._client_obj = self._client_obj, None
        if client is not None:
            client.close()
            pool = getattr(client, "connection_pool", None)
            if pool is not None:
                pool.disconnect()

    # -- the contract ------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        value = self.client.get(self._prefix + key)
        return None if value is None else bytes(value)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        if not keys:
            return {}
        prefix = self._prefix
        values = self._mget([prefix + key for key in keys])
        return {
            key: value if type(value) is bytes else bytes(value)
            for key, value in zip(keys, values, strict=True)
            if value is not None
        }

    def _mget(self, full_keys: list[str]) -> list[Any]:
        values: list[Any] = self.client.mget(full_keys)
        return values

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.client.set(self._prefix + key, value, px=_milliseconds(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self.client.set(self._prefix + key, value, px=_milliseconds(ttl), nx=True))

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int | None:
        """Write every item in one round trip, then wait for ``wait_replicas`` replicas.

        One non-transactional pipeline of ``SET ... PX``, ending with
        ``WAIT <wait_replicas> <wait_timeout ms>`` on the same connection
        when ``wait_replicas`` > 0. Returns how many replicas acknowledged
        the writes (``WAIT``'s answer, possibly fewer than asked after
        ``wait_timeout``), or ``None`` without waiting (or without items).
        """
        if not items:
            return None
        prefix = self._prefix
        deadline = monotonic() + self.wait_timeout
        full_items = [(prefix + key, value) for key, value in items.items()]
        return self._write_many(self.client, full_items, ttl, deadline)

    def _write_many(
        self, node: Any, items: Sequence[tuple[str, bytes]], ttl: float, deadline: float, wait: bool = True
    ) -> int | None:
        """One pipeline of ``SET``s on ``node`` (a redis-py client), then ``WAIT`` until ``deadline``.

        Returns ``WAIT``'s answer, or ``None`` when not waiting.
        """
        pipe = node.pipeline(transaction=False)
        lifetime = _milliseconds(ttl)
        for full_key, value in items:
            pipe.set(full_key, value, px=lifetime)
        waiting = wait and self.wait_replicas > 0
        if waiting:
            pipe.execute_command("WAIT", self.wait_replicas, _wait_milliseconds(deadline))
        replies = pipe.execute()
        return int(replies[-1]) if waiting else None

    def delete(self, key: str) -> None:
        self.client.unlink(self._prefix + key)

    def clear(self) -> None:
        """Remove the keys of this namespace (``SCAN MATCH <namespace>:*`` + ``UNLINK``)."""
        self._clear_node(self.client)

    def _clear_node(self, node: Any) -> None:
        batch: list[bytes] = []
        for key in node.scan_iter(match=self._match, count=self.scan_count):
            batch.append(key)
            if len(batch) >= _DELETE_BATCH:
                self._unlink(node, batch)
                batch = []
        if batch:
            self._unlink(node, batch)

    def _unlink(self, node: Any, keys: list[bytes]) -> None:
        node.unlink(*keys)


class RedisClusterBackend(RedisBackend):
    """Redis Cluster (``redis+cluster://host:port[,host:port...]``), through redis-py's ``RedisCluster``.

    The hosts are start-up nodes: any reachable one tells the client where
    every slot lives. The client is created on first use. Takes the options
    of :class:`RedisBackend` (``db`` excepted: a cluster has only db 0),
    and ``ssl=true`` for TLS. ``retries`` defaults to 0 here: a command is
    retried after a connection error only on another node (the slot's new
    owner after a failover), never on the node that failed.

    Each command goes to the redis-py client of the node that owns its slot:
    redis-py's ``RedisCluster`` sleeps 0.25 s on every ``CLUSTERDOWN`` (and
    up to 0.4 s on ``TRYAGAIN``) before raising, with no option to turn that
    off, while every node answers ``CLUSTERDOWN`` for about a second when
    another master fails over. Those answers raise
    :class:`~wsgicache.errors.TransientBackendError` at once instead, which
    the middleware's breaker does not count against the node's shards.
    ``RedisCluster`` still keeps the slot table (refreshed after such
    answers and after a node fails, at most every 0.25 s) and follows
    ``MOVED`` and ``ASK`` redirections.
    """

    #: Entries and the tag generations they depend on are spread over this
    #: many hash slots; invalidating a tag writes one key in each.
    key_shards = 16
    schemes = ("redis+cluster",)
    default_wait_replicas = 1

    def __init__(
        self,
        url: str = "redis+cluster://127.0.0.1:7000",
        *,
        socket_connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        retries: int = 0,
        max_connections: int | None = None,
        health_check_interval: float = 0,
        username: str | None = None,
        password: str | None = None,
        ssl_cert_reqs: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        ssl: bool = False,
        node_retry_after: float = 5.0,
        scan_count: int = 1000,
        wait_replicas: int | None = None,
        wait_timeout: float | None = None,
        connection_options: Mapping[str, Any] | None = None,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        self.node_retry_after = positive_seconds(type(self).__name__, "node_retry_after", node_retry_after)
        # node name -> until when (monotonic clock) it is not asked
        self._down_nodes: dict[str, float] = {}
        self._refresh_lock = threading.Lock()
        self._refreshing: threading.Event | None = None  # set while the slot table reloads
        self._refreshed_at = -math.inf
        self._refresh_defers_failed_node = False
        # tuple of full keys -> whether they share one hash slot
        self._single_slot: KeyListMemo[bool] = KeyListMemo(_SLOT_MEMO_SIZE, _SLOT_MEMO_CHARS)
        super().__init__(
            url,
            socket_connect_timeout=socket_connect_timeout,
            socket_timeout=socket_timeout,
            retries=retries,
            max_connections=max_connections,
            health_check_interval=health_check_interval,
            username=username,
            password=password,
            ssl_cert_reqs=ssl_cert_reqs,
            ssl_ca_certs=ssl_ca_certs,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            scan_count=scan_count,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
            connection_options=connection_options,
            key_prefix=key_prefix,
            default_timeout=default_timeout,
        )
        parts = urlsplit(url)
        user, secret, hosts = split_userinfo(parts.netloc)
        self.startup_nodes = parse_hosts(hosts, 6379, url)
        if not self.startup_nodes:
            raise ConfigurationError(f"{url!r} names no node; write redis+cluster://host:port[,host:port...]")
        if parts.path.strip("/") not in ("", "0"):
            raise ConfigurationError(f"{url!r}: Redis Cluster has only database 0")
        if user is not None:
            self._options.setdefault("username", user)
        if secret is not None:
            self._options.setdefault("password", secret)
        if ssl:
            self._options["ssl"] = True

    def _connect(self) -> Any:
        from redis.cluster import ClusterNode, RedisCluster

        options = dict(self._options)
        retry = options.pop("retry")
        client = RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in self.startup_nodes
            ],
            retry=Retry(NoBackoff(), retry.get_retries()),
            **options,
        )
        # redis-py 8 can try the node that just failed last when it refreshes the slot table.
        initialize = getattr(client.nodes_manager, "initialize", None)
        try:
            parameters = inspect.signature(initialize).parameters if initialize is not None else {}
        except (TypeError, ValueError):  # pragma: no cover - not introspectable
            parameters = {}
        self._refresh_defers_failed_node = "last_failed_node_name" in parameters
        return client

    # -- routing ---------------------------------------------------------------
    #
    # A node that timed out or refused is skipped (an immediate error) for
    # node_retry_after seconds, so that a hung node costs one timeout per
    # period rather than one per request (the middleware's circuit breaker
    # does not open while the other nodes answer). Meanwhile its keys ask
    # for a refresh of the slot table (at most every 0.25 s): once a replica
    # is promoted in its place, they go to the new master.

    def _node_of(self, client: Any, full_key: str) -> Any:
        """The primary node that owns the slot of ``full_key``."""
        try:
            node = client.get_node_from_key(full_key)
            until = self._down_nodes.get(node.name)
            if (
                until is not None
                and monotonic() < until
                and self._refresh_topology(client, wait=self.socket_timeout)
            ):
                node = client.get_node_from_key(full_key)
        except _CLUSTER_TRANSIENT as exc:
            raise self._transient(client, "(slot table)", exc) from exc
        return node

    def _on_node(self, client: Any, node: Any, call: Callable[[Any], Any]) -> Any:
        """``call(redis-py client of node)``, skipping a node that failed recently."""
        name = node.name
        until = self._down_nodes.get(name)
        if until is not None:
            if monotonic() < until:
                wait = until - monotonic()
                raise RedisConnectionError(f"Redis Cluster node {name} failed; not asked for {wait:.1f} s")
            self._down_nodes.pop(name, None)
        try:
            return call(client.get_redis_connection(node))
        except _CLUSTER_TRANSIENT as exc:
            raise self._transient(client, name, exc) from exc
        except (RedisConnectionError, RedisTimeoutError):
            self._down_nodes[name] = monotonic() + self.node_retry_after
            self._refresh_topology(client, failed=name)
            raise

    def _on_key(self, full_key: str, command: str, *args: Any, **kwargs: Any) -> Any:
        """The redis-py method ``command(*args, **kwargs)`` on the node that owns ``full_key``."""
        client = self.client
        node = self._node_of(client, full_key)
        for attempt in range(self.retries + 1):
            try:
                return self._on_node(client, node, lambda redis: getattr(redis, command)(*args, **kwargs))
            except (MovedError, AskError):
                # The slot moved or is moving (a failover, a resharding):
                # RedisCluster follows the redirection and updates its table.
                return self._through_cluster(client, getattr(client, command), *args, **kwargs)
            except RedisConnectionError:
                if attempt == self.retries:
                    raise
                moved_to = self._node_of(client, full_key)
                if moved_to.name == node.name:
                    raise
                node = moved_to  # a replica took over the slot: try it
        raise AssertionError("unreachable")  # pragma: no cover

    def _through_cluster(self, client: Any, call: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return call(*args, **kwargs)
        except _CLUSTER_TRANSIENT as exc:
            raise self._transient(client, "(redirected)", exc) from exc

    def _transient(self, client: Any, name: str, exc: Exception) -> TransientBackendError:
        self._refresh_topology(client)
        return TransientBackendError(
            f"Redis Cluster node {name} answered {type(exc).__name__} ({exc}): the cluster is changing "
            "(a node failing over, a slot moving); not counted against this node"
        )

    def _refresh_topology(self, client: Any, failed: str | None = None, wait: float = 0.0) -> bool:
        """Reload the slot table (``CLUSTER SLOTS``), at most every 0.25 s; True if reloaded now.

        The reload runs in a background thread: it may ask a node that hangs
        (redis-py tries the nodes in turn, each within ``socket_timeout``),
        and no call should pay for that on top of its own timeout. The
        caller waits for it at most ``wait`` seconds (only a call that is
        about to use the new table waits). Only one reload runs at a time;
        the other threads go on with the table they have.
        """
        with self._refresh_lock:
            if self._refreshing is not None or monotonic() - self._refreshed_at < _TOPOLOGY_REFRESH_INTERVAL:
                return False
            self._refreshed_at = monotonic()
            done = self._refreshing = threading.Event()
        outcome: list[bool] = []
        thread = threading.Thread(
            target=self._reload_slot_table,
            args=(client, failed, done, outcome),
            name="wsgicache-cluster-refresh",
            daemon=True,
        )
        thread.start()
        return wait > 0 and done.wait(wait) and bool(outcome and outcome[0])

    def _reload_slot_table(
        self, client: Any, failed: str | None, done: threading.Event, outcome: list[bool]
    ) -> None:
        try:
            if failed is not None and self._refresh_defers_failed_node:
                client.nodes_manager.initialize(last_failed_node_name=failed)
            else:
                client.nodes_manager.initialize()
            outcome.append(True)
        except Exception as exc:  # the nodes did not answer: keep the table
            _log.debug("Redis Cluster slot table not refreshed: %s", exc)
            outcome.append(False)
        finally:
            with self._refresh_lock:
                self._refreshing = None
            done.set()

    # -- the contract ------------------------------------------------------------

    def _mget(self, full_keys: list[str]) -> list[Any]:
        if self._one_slot(full_keys):
            # The middleware's lookups: one slot, one MGET, one round trip.
            return list(self._on_key(full_keys[0], "mget", full_keys))
        client = self.client
        return list(self._through_cluster(client, client.mget_nonatomic, full_keys))

    def _one_slot(self, full_keys: list[str]) -> bool:
        """Whether the keys share one hash slot (remembered: the middleware reads the same keys
        on every hit of a URL, and the answer depends on the keys alone)."""
        memo_key = tuple(full_keys)
        known = self._single_slot.get(memo_key)
        if known is None:
            first = key_slot(full_keys[0].encode())
            known = all(key_slot(key.encode()) == first for key in full_keys[1:])
            self._single_slot.put(memo_key, known, sum(map(len, full_keys)))
        return known

    def get(self, key: str) -> bytes | None:
        full_key = self._prefix + key
        value = self._on_key(full_key, "get", full_key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        full_key = self._prefix + key
        self._on_key(full_key, "set", full_key, value, px=_milliseconds(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        full_key = self._prefix + key
        return bool(self._on_key(full_key, "set", full_key, value, px=_milliseconds(ttl), nx=True))

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int | None:
        """One pipeline (and ``WAIT``) per node owning some of the keys.

        Returns the fewest replicas that acknowledged on any of those nodes
        (``None`` when ``wait_replicas`` is 0). The nodes are written in
        turn and share one ``wait_timeout``: each ``WAIT`` is given what is
        left of it, and once a node answered 0 the next ones do not wait.
        Every node is written even if one fails; then the first error is
        raised.
        """
        if not items:
            return None
        client = self.client
        deadline = monotonic() + self.wait_timeout
        groups: dict[str, tuple[Any, list[tuple[str, bytes]]]] = {}
        for key, value in items.items():
            full_key = self._prefix + key
            node = self._node_of(client, full_key)
            groups.setdefault(node.name, (node, []))[1].append((full_key, value))
        acknowledged: int | None = None
        failure: Exception | None = None
        for node, group in groups.values():
            # Once a node answered 0, the result is 0: the next nodes do not wait.
            wait = acknowledged != 0
            try:
                replicas = self._on_node(
                    client,
                    node,
                    partial(self._write_many, items=group, ttl=ttl, deadline=deadline, wait=wait),
                )
            except (MovedError, AskError):
                # The slot moved: write those keys one by one through RedisCluster,
                # which follows the redirection; no WAIT on that connection.
                try:
                    lifetime = _milliseconds(ttl)
                    for full_key, value in group:
                        self._through_cluster(client, client.set, full_key, value, px=lifetime)
                except Exception as exc:
                    failure = failure or exc
                    continue
                replicas = 0 if self.wait_replicas else None
            except Exception as exc:
                failure = failure or exc
                continue
            if replicas is not None:
                acknowledged = replicas if acknowledged is None else min(acknowledged, replicas)
        if failure is not None:
            raise failure
        return acknowledged

    def delete(self, key: str) -> None:
        full_key = self._prefix + key
        self._on_key(full_key, "unlink", full_key)

    def clear(self) -> None:
        """``SCAN`` + ``UNLINK`` this namespace on every primary node."""
        client = self.client
        for node in client.get_primaries():
            self._clear_node(client.get_redis_connection(node))

    def _unlink(self, node: Any, keys: list[bytes]) -> None:
        by_slot: dict[int, list[bytes]] = {}
        for key in keys:
            by_slot.setdefault(key_slot(key), []).append(key)
        for slot_keys in by_slot.values():
            node.unlink(*slot_keys)


class RedisSentinelBackend(RedisBackend):
    """A Redis master found through Sentinel
    (``redis+sentinel://host:port[,host:port...]/service_name[/db]``).

    The hosts are the sentinels (default port 26379); a user name and
    password in the URL are the master's.

    Following the master: every new connection asks the sentinels where the
    master is and checks with ``ROLE`` that the server it reaches is a
    master. After any error, and every ``master_check_interval`` seconds,
    the next call asks the sentinels again; when they name another master,
    the pooled connections to the old one are closed (those in use when
    they come back). So an old master that returns after a failover, still
    believing it is the master until Sentinel demotes it, is not written to
    once the sentinels name its successor. A connection whose read fails
    (a timeout, a protocol error) is closed, never reused.

    Sentinels that hang: one lookup asks them within ``socket_timeout`` in
    all and is not retried; when none answers, the last master they named
    is used, and hung sentinels are not asked again for 5 s (see
    :class:`_Sentinel`). So a call waits at most about twice
    ``socket_timeout`` (the sentinels, then the master).

    :param sentinel_password: password of the sentinels themselves, if any.
    :param master_check_interval: seconds between two checks of the master's
        address with the sentinels while nothing fails (default 1; 0: only
        after errors).
    """

    schemes = ("redis+sentinel",)
    default_wait_replicas = 1

    def __init__(
        self,
        url: str = "redis+sentinel://127.0.0.1:26379/mymaster",
        *,
        socket_connect_timeout: float = 0.5,
        socket_timeout: float = 0.5,
        retries: int = 1,
        max_connections: int | None = None,
        health_check_interval: float = 0,
        db: int | None = None,
        username: str | None = None,
        password: str | None = None,
        sentinel_password: str | None = None,
        ssl: bool = False,
        ssl_cert_reqs: str | None = None,
        ssl_ca_certs: str | None = None,
        ssl_certfile: str | None = None,
        ssl_keyfile: str | None = None,
        scan_count: int = 1000,
        wait_replicas: int | None = None,
        wait_timeout: float | None = None,
        master_check_interval: float = 1.0,
        connection_options: Mapping[str, Any] | None = None,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        super().__init__(
            url,
            socket_connect_timeout=socket_connect_timeout,
            socket_timeout=socket_timeout,
            retries=retries,
            max_connections=max_connections,
            health_check_interval=health_check_interval,
            db=db,
            username=username,
            password=password,
            ssl_cert_reqs=ssl_cert_reqs,
            ssl_ca_certs=ssl_ca_certs,
            ssl_certfile=ssl_certfile,
            ssl_keyfile=ssl_keyfile,
            scan_count=scan_count,
            wait_replicas=wait_replicas,
            wait_timeout=wait_timeout,
            connection_options=connection_options,
            key_prefix=key_prefix,
            default_timeout=default_timeout,
        )
        parts = urlsplit(url)
        user, secret, hosts = split_userinfo(parts.netloc)
        self.sentinels = parse_hosts(hosts, 26379, url)
        segments = [unquote(s) for s in parts.path.split("/") if s]
        if not self.sentinels or not segments or len(segments) > 2:
            raise ConfigurationError(
                f"{url!r}: write redis+sentinel://host:port[,host:port...]/service_name[/db]"
            )
        self.service_name = segments[0]
        if len(segments) == 2:
            self._options.setdefault("db", check_database(url, segments[1], type(self).__name__))
        if user is not None:
            self._options.setdefault("username", user)
        if secret is not None:
            self._options.setdefault("password", secret)
        if ssl:
            self._options["ssl"] = True
        self.sentinel_password = sentinel_password
        self.master_check_interval = interval_seconds(
            type(self).__name__, "master_check_interval", master_check_interval
        )
        self._master_check_lock = threading.Lock()
        self._next_master_check = math.inf  # set when the client is created
        self._master_suspect = False  # a call failed: ask the sentinels before the next one
        if "retry" not in (connection_options or {}):
            # A failed master lookup is not retried: it already had its deadline.
            self._options["retry"] = _NoLookupRetry(
                NoBackoff(), self.retries, supported_errors=(RedisConnectionError,)
            )

    def _connect(self) -> Any:
        options = dict(self._options)
        max_connections = options.pop("max_connections", None)
        if "connection_class" not in options:
            options["connection_class"] = (
                _SentinelSSLConnection if options.pop("ssl", False) else _SentinelConnection
            )
        options.setdefault("redis_connect_func", _require_master)
        # One lookup asks the sentinels in turn within socket_timeout in all:
        # each gets its share of the timeouts.
        share = len(self.sentinels)
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": self.socket_connect_timeout / share,
            "socket_timeout": self.socket_timeout / share,
            # redis-py's default (3 retries, exponential backoff) would make
            # every lookup wait seconds while the sentinels are unreachable.
            "retry": Retry(NoBackoff(), self.retries, supported_errors=(RedisConnectionError,)),
        }
        if self.sentinel_password is not None:
            sentinel_kwargs["password"] = self.sentinel_password
        sentinel = _Sentinel(
            self.sentinels,
            lookup_timeout=self.socket_timeout,
            quiet_for=max(5.0, self.master_check_interval),
            sentinel_kwargs=sentinel_kwargs,
            **options,
        )
        pool_options: dict[str, Any] = {}
        if max_connections is not None:
            pool_options["max_connections"] = max_connections
        client = sentinel.master_for(self.service_name, **pool_options)  # type: ignore[no-untyped-call]
        interval = self.master_check_interval
        self._next_master_check = monotonic() + interval if interval else math.inf
        return client

    @property
    def client(self) -> Any:
        """The redis-py client; asks the sentinels where the master is first when that is due."""
        client = super().client
        if self._master_suspect or monotonic() >= self._next_master_check:
            self._follow_master(client)
        return client

    def _follow_master(self, client: Any) -> None:
        """Ask the sentinels for the master; if it moved, close the connections to the old one.

        redis-py's ``SentinelConnectionPool.get_master_address`` does the
        closing: idle connections at once, those in use when they are
        released (the pool no longer owns a connection to another address).
        """
        now = monotonic()
        if not self._master_check_lock.acquire(blocking=False):
            return
        try:
            self._master_suspect = False
            interval = self.master_check_interval
            self._next_master_check = now + interval if interval else math.inf
            try:
                client.connection_pool.get_master_address()
            except RedisError as exc:
                # No master named (the master is down and not yet replaced, or
                # the sentinels hang and none was ever named): keep the
                # connections. Sentinels that hang are not asked again for a
                # while (_Sentinel.discover_master).
                _log.debug("the sentinels of %r name no master: %s", self.service_name, exc)
        finally:
            self._master_check_lock.release()

    def _watched(self, call: Callable[..., Any], *args: Any) -> Any:
        try:
            return call(*args)
        except RedisError:
            self._master_suspect = True
            raise

    def get(self, key: str) -> bytes | None:
        value: bytes | None = self._watched(super().get, key)
        return value

    def _mget(self, full_keys: list[str]) -> list[Any]:
        values: list[Any] = self._watched(super()._mget, full_keys)
        return values

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self._watched(super().set, key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self._watched(super().add, key, value, ttl))

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int | None:
        replicas: int | None = self._watched(super().set_many, items, ttl)
        return replicas

    def delete(self, key: str) -> None:
        self._watched(super().delete, key)

    def clear(self) -> None:
        self._watched(super().clear)
