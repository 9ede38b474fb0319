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
lookup of several keys is one ``MGET``.

Failures: connect and read timeouts are short by default (0.5 s each) and
a command is retried at most ``retries`` times (default 1), only after a
connection error (a dropped or refused connection), never after a timeout.
So a hung server costs a request at most ``socket_timeout`` (or
``socket_connect_timeout``) before the middleware serves it from the
application; after a few failures its circuit breaker stops calling Redis
for a while.

Redis Cluster: the middleware places each entry and the tag generations it
depends on in one hash slot (``{sN}`` hash tags over :attr:`key_shards`
groups), so a hit is one ``MGET`` on one node. The namespace must then
not contain ``{`` or ``}``.
"""

from __future__ import annotations

import math
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from time import monotonic
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from ..errors import ConfigurationError
from ._net import interval_seconds, parse_hosts, positive_seconds, split_userinfo, whole_number
from .base import Backend, construct, options_from_query

try:
    import redis as _redis
    from redis.backoff import NoBackoff
    from redis.connection import parse_url
    from redis.crc import key_slot
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError
    from redis.retry import Retry
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        f"the Redis backend needs the redis package ({exc}): pip install 'wsgicache[redis]'"
    ) from exc

__all__ = ["RedisBackend", "RedisClusterBackend", "RedisSentinelBackend"]

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


class RedisBackend(Backend):
    """One Redis server (``redis://``, ``rediss://`` or ``unix://``).

    :param url: where the server is: ``redis://[user:password@]host[:port][/db]``,
        ``rediss://...`` (TLS) or ``unix:///path/to/redis.sock``.
    :param socket_connect_timeout: seconds to wait for a connection (default 0.5).
    :param socket_timeout: seconds to wait for an answer (default 0.5).
    :param retries: times a command is retried after a connection error (default 1).
    :param max_connections: most pooled connections (default: no limit).
    :param health_check_interval: seconds after which an idle connection is
        checked with ``PING`` before use (default 0: never).
    :param db, username, password: override the URL's.
    :param ssl_cert_reqs, ssl_ca_certs, ssl_certfile, ssl_keyfile: TLS
        settings for ``rediss://``.
    :param scan_count: the ``COUNT`` hint of the ``SCAN`` that :meth:`clear` runs.
    :param connection_options: further keyword arguments for redis-py's
        connections (dict configurations only).
    """

    #: The URL schemes this class serves.
    schemes: tuple[str, ...] = ("redis", "rediss", "unix")

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
        }
        for name, value in (
            ("max_connections", max_connections),
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
        return {key: bytes(value) for key, value in zip(keys, values, strict=True) if value is not None}

    def _mget(self, full_keys: list[str]) -> list[Any]:
        return list(self.client.mget(full_keys))

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.client.set(self._prefix + key, value, px=_milliseconds(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return bool(self.client.set(self._prefix + key, value, px=_milliseconds(ttl), nx=True))

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
    and ``ssl=true`` for TLS. ``retries`` defaults to 0 here: redis-py's
    cluster client retries after timeouts too, and a retry would double the
    wait on a hung node.
    """

    #: Entries and the tag generations they depend on are spread over this
    #: many hash slots; invalidating a tag writes one key in each.
    key_shards = 16
    schemes = ("redis+cluster",)

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
        connection_options: Mapping[str, Any] | None = None,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        self.node_retry_after = positive_seconds(type(self).__name__, "node_retry_after", node_retry_after)
        # node name -> until when (monotonic clock) it is not asked
        self._down_nodes: dict[str, float] = {}
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
        return RedisCluster(
            startup_nodes=[
                ClusterNode(host, port)  # type: ignore[no-untyped-call]
                for host, port in self.startup_nodes
            ],
            retry=Retry(NoBackoff(), retry.get_retries()),
            **options,
        )

    def _mget(self, full_keys: list[str]) -> list[Any]:
        client = self.client
        first = key_slot(full_keys[0].encode())
        if all(key_slot(key.encode()) == first for key in full_keys[1:]):
            # The middleware's lookups: one slot, one MGET, one round trip.
            return list(self._on_node(full_keys[0], client.mget, full_keys))
        return list(client.mget_nonatomic(full_keys))

    # Each command goes through _on_node: a node that timed out or refused
    # is skipped (an immediate error) for node_retry_after seconds, so that
    # a hung node costs one timeout per period rather than one per request
    # (the middleware's circuit breaker does not open while the other nodes
    # answer).

    def _on_node(self, full_key: str, command: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        client = self.client
        node = client.get_node_from_key(full_key).name
        until = self._down_nodes.get(node)
        if until is not None:
            if monotonic() < until:
                wait = until - monotonic()
                raise RedisConnectionError(f"Redis Cluster node {node} failed; not asked for {wait:.1f} s")
            self._down_nodes.pop(node, None)
        try:
            return command(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError):
            self._down_nodes[node] = monotonic() + self.node_retry_after
            raise

    def get(self, key: str) -> bytes | None:
        full_key = self._prefix + key
        value = self._on_node(full_key, self.client.get, full_key)
        return None if value is None else bytes(value)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        full_key = self._prefix + key
        self._on_node(full_key, self.client.set, full_key, value, px=_milliseconds(ttl))

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        full_key = self._prefix + key
        return bool(self._on_node(full_key, self.client.set, full_key, value, px=_milliseconds(ttl), nx=True))

    def delete(self, key: str) -> None:
        full_key = self._prefix + key
        self._on_node(full_key, self.client.unlink, full_key)

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
    password in the URL are the master's. After a failover, connections
    move to the new master on their next use.

    :param sentinel_password: password of the sentinels themselves, if any.
    """

    schemes = ("redis+sentinel",)

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

    def _connect(self) -> Any:
        from redis.sentinel import Sentinel

        options = dict(self._options)
        max_connections = options.pop("max_connections", None)
        sentinel_kwargs: dict[str, Any] = {
            "socket_connect_timeout": self.socket_connect_timeout,
            "socket_timeout": self.socket_timeout,
            # redis-py's default (3 retries, exponential backoff) would make
            # every lookup wait seconds while the sentinels are unreachable.
            "retry": Retry(NoBackoff(), self.retries, supported_errors=(RedisConnectionError,)),
        }
        if self.sentinel_password is not None:
            sentinel_kwargs["password"] = self.sentinel_password
        sentinel = Sentinel(  # type: ignore[no-untyped-call]
            self.sentinels, sentinel_kwargs=sentinel_kwargs, **options
        )
        pool_options: dict[str, Any] = {}
        if max_connections is not None:
            pool_options["max_connections"] = max_connections
        return sentinel.master_for(self.service_name, **pool_options)  # type: ignore[no-untyped-call]
