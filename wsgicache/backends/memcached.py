"""Memcached: one server or several with consistent hashing (pymemcache).

::

    backend="memcached://127.0.0.1:11211"
    backend="memcached://10.0.0.1:11211,10.0.0.2:11211,10.0.0.3:11211?timeout=0.2"

One server: a pymemcache ``PooledClient`` (a pool of connections, safe for
threads). Several servers: a ``HashClient`` (rendezvous hashing, pooled
connections per server) that takes a failing server out of the ring after
``retry_attempts`` failed attempts ``retry_timeout`` seconds apart, and
tries it again after ``dead_timeout`` seconds. Errors are raised (not
swallowed) so that the middleware counts them and fails open.

**One round trip per hit with several servers.** Keys are not hashed whole:
a key with a middleware hash tag (``{sN}``) goes to the server of shard
``N``, and the middleware gives an entry and the tag generations it depends
on the same tag (over :attr:`MemcachedHashBackend.key_shards` shards). So
a hit is one multi-key ``get`` on one server.

**Namespaces.** Memcached cannot list keys, so :meth:`~MemcachedBackend.clear`
cannot delete them one by one, and ``flush_all`` would empty the servers
for everyone. Instead each shard has a *namespace generation* key: every
stored value starts with the generation it was written under, the lookup
reads the generation in the same multi-key ``get``, and a value of another
generation is a miss. ``clear()`` writes new generations (one key per
shard); the old values are left for memcached's LRU to reclaim. When a
server leaves or rejoins the ring, the shards that move get a new
generation too, so values written before a move are never served after it.

**Keys.** A key is stored as ``<namespace>:<key>``. The namespace is the
``key_prefix`` when it is 1 to 64 characters among letters, digits and
``-_.``, ``wsgicache`` when there is none, else a hash of it. A key that
would not be a valid memcached key (over 250 bytes, spaces, control or
non-ASCII characters) is replaced by its hash.

**Lifetimes** are whole seconds in memcached, so a lifetime is rounded up
and one second is added (memcached's clock ticks once a second): an item
lives at least as long as asked, and less than two seconds longer; it never
becomes ``0`` (which means "forever"). Lifetimes over 30 days are sent as
absolute times, as the protocol requires.

**Large values.** Memcached refuses items over its ``-I`` limit (1 MiB by
default). Values that would not fit ``item_size_max`` are not sent, and a
refusal by the server is not an error either: the value is simply not
stored, and :attr:`MemcachedBackend.too_large` counts it.
"""

from __future__ import annotations

import logging
import math
import os
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from functools import partial
from hashlib import blake2b
from secrets import token_hex
from time import monotonic, time
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit
from zlib import crc32

from ..errors import ConfigurationError
from ._net import KeyListMemo, interval_seconds, parse_hosts, positive_seconds, split_userinfo, whole_number
from .base import Backend, construct, options_from_query

try:
    import pymemcache.client.base as _pymemcache_base
    from pymemcache.client.base import PooledClient
    from pymemcache.client.hash import HashClient
    from pymemcache.client.rendezvous import RendezvousHash
    from pymemcache.exceptions import MemcacheError, MemcacheServerError
except ImportError as exc:  # pragma: no cover - exercised in a subprocess
    raise ImportError(
        f"the Memcached backend needs the pymemcache package ({exc}): pip install 'wsgicache[memcached]'"
    ) from exc

__all__ = ["MemcachedBackend", "MemcachedHashBackend"]

# pymemcache reads replies 4 KiB per recv(): a 200 KiB entry took 51 system
# calls and cost more than the rest of a hit. 64 KiB buffers make that 4 (the
# hit fell from 283 to 161 us here) and stay under glibc's mmap threshold, so
# small replies do not pay for a larger buffer. The setting is pymemcache's
# module constant: it applies to every pymemcache client of the process.
_RECV_SIZE = 64 * 1024
if getattr(_pymemcache_base, "RECV_SIZE", _RECV_SIZE) < _RECV_SIZE:
    _pymemcache_base.RECV_SIZE = _RECV_SIZE

logger = logging.getLogger("wsgicache")

_GEN_LEN = 16
#: Seconds a process trusts the namespace generation it last saw before
#: writing (a stale one only makes a write invisible, never serves old data).
_GEN_MAX_AGE = 5.0
#: Room for memcached's item header and the key within ``item_size_max``.
_ITEM_OVERHEAD = 64
_THIRTY_DAYS = 30 * 24 * 3600
_SAFE_NAMESPACE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_KEY = 250
#: Lookups remembered per backend (see :class:`_Lookup`), and the characters of keys they may hold.
_LOOKUP_MEMO_SIZE = 4096
_LOOKUP_MEMO_CHARS = 4 * 1024 * 1024


class _Lookup(NamedTuple):
    """What :meth:`MemcachedBackend.get_many` asks memcached for, for one list of keys.

    It depends only on the keys (and the backend's namespace and shards), so
    it is worked out once per list of keys and remembered: the middleware
    reads the same keys (an entry and its tag generations) on every hit of a URL.
    """

    #: the shards' generation keys, then the keys' storage keys: one ``get_many``
    server_keys: tuple[str, ...]
    #: (shard, its generation key) of every shard involved
    generations: tuple[tuple[int, str], ...]
    #: (key, its storage key, the generation key of its shard) for every key
    values: tuple[tuple[str, str, str], ...]


def memcached_expire(ttl: float) -> int:
    """The ``exptime`` for a lifetime of ``ttl`` seconds: at least ``ttl``, never 0."""
    if ttl > _THIRTY_DAYS - 2:
        return int(time() + ttl) + 1
    return math.ceil(ttl) + 1


def _namespace(key_prefix: str) -> str:
    if not key_prefix:
        return "wsgicache"
    if _SAFE_NAMESPACE.fullmatch(key_prefix):
        return key_prefix
    return "h" + blake2b(key_prefix.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


def _is_too_large(exc: MemcacheServerError) -> bool:
    text = str(exc).lower()
    return "too large" in text or "out of memory" in text


class MemcachedBackend(Backend):
    """Memcached through pymemcache.

    ``MemcachedBackend(servers=[...])`` with several servers builds a
    :class:`MemcachedHashBackend`.

    :param servers: ``"host:port"``, a comma-separated list, or a list of them.
    :param connect_timeout: seconds to wait for a connection (default 0.5).
    :param timeout: seconds to wait for an answer (default 0.5).
    :param max_pool_size: most connections per server (default: no limit).
    :param pool_idle_timeout: seconds after which an idle pooled connection
        is closed (default 0: never).
    :param item_size_max: the servers' item size limit (``memcached -I``),
        default 1 MiB; larger values are not stored.
    """

    #: Values not stored because they would exceed ``item_size_max`` (this process).
    too_large: int

    def __new__(cls, *args: Any, **kwargs: Any) -> MemcachedBackend:
        if cls is MemcachedBackend:
            servers = kwargs.get("servers", args[0] if args else None)
            if servers is not None and len(_server_list(servers)) > 1:
                return super().__new__(MemcachedHashBackend)
        return super().__new__(cls)

    def __init__(
        self,
        servers: str | Sequence[str] = "127.0.0.1:11211",
        *,
        connect_timeout: float = 0.5,
        timeout: float = 0.5,
        max_pool_size: int | None = None,
        pool_idle_timeout: float = 0,
        item_size_max: int = 1024 * 1024,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
        owner = type(self).__name__
        self.servers = _server_list(servers)
        if not self.servers:
            raise ConfigurationError(f"{owner} needs at least one server such as '127.0.0.1:11211'")
        if len(self.servers) > 1 and not isinstance(self, MemcachedHashBackend):
            raise ConfigurationError(
                f"{owner} takes one server; use MemcachedHashBackend (or a memcached:// URL "
                "listing several servers) for several"
            )
        self.connect_timeout = positive_seconds(owner, "connect_timeout", connect_timeout)
        self.timeout = positive_seconds(owner, "timeout", timeout)
        if max_pool_size is not None:
            whole_number(owner, "max_pool_size", max_pool_size, 1)
        self.max_pool_size = max_pool_size
        self.pool_idle_timeout = interval_seconds(owner, "pool_idle_timeout", pool_idle_timeout)
        self.item_size_max = whole_number(owner, "item_size_max", item_size_max, 1024)
        self.namespace = _namespace(key_prefix)
        self._prefix = self.namespace + ":"
        self.too_large = 0
        # shard -> (generation, when it was read on the monotonic clock)
        self._generations: dict[int, tuple[bytes, float]] = {}
        # tuple of keys -> what reading them asks memcached for
        self._lookups: KeyListMemo[_Lookup] = KeyListMemo(_LOOKUP_MEMO_SIZE, _LOOKUP_MEMO_CHARS)
        self._client = self._make_client()
        _instances.add(self)

    def _after_fork(self) -> None:
        """In a forked child: new connections (pymemcache does not notice a fork).

        The parent's sockets are left alone; sharing them would mix both
        processes' answers (gunicorn's ``--preload``).
        """
        self._client = self._make_client()
        self._generations = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Backend:
        """``memcached://host:port[,host:port...]?timeout=0.2``."""
        parts = urlsplit(url)
        user, _, hosts = split_userinfo(parts.netloc)
        if user is not None:
            raise ConfigurationError(f"{url!r}: memcached (text protocol) takes no user name or password")
        if parts.path.strip("/"):
            raise ConfigurationError(f"{url!r}: write memcached://host:port[,host:port...] (no path)")
        servers = [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in parse_hosts(hosts, 11211, url)]
        if not servers:
            raise ConfigurationError(f"{url!r} names no server; write memcached://host:port")
        merged: dict[str, Any] = dict(options_from_query(parts.query))
        merged.update(options)
        merged["servers"] = servers
        target = MemcachedHashBackend if len(servers) > 1 and cls is MemcachedBackend else cls
        return construct(target, urlunsplit((parts.scheme, parts.netloc, "", "", "")), merged)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {','.join(self.servers)} namespace={self.namespace!r}>"

    # -- clients and keys -----------------------------------------------------

    @property
    def shards(self) -> int:
        return 1

    def _make_client(self) -> Any:
        return PooledClient(
            _server_spec(self.servers[0]),
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            no_delay=True,
            max_pool_size=self.max_pool_size,
            pool_idle_timeout=self.pool_idle_timeout,
            default_noreply=False,
            ignore_exc=False,
        )

    @property
    def client(self) -> Any:
        """The pymemcache client."""
        return self._client

    def _storage_key(self, key: str) -> str:
        full = self._prefix + key
        if len(full) <= _MAX_KEY and key.isascii() and key.isprintable() and " " not in key:
            return full
        return self._prefix + "h:" + blake2b(key.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()

    def _shard_of(self, storage_key: str) -> int:
        return 0

    def _generation_key(self, shard: int) -> str:
        # '#' never follows the namespace in a value's key, so no collision.
        return f"{self.namespace}#ns{{s{shard}}}"

    def _after_call(self) -> None:
        """Hook run after client calls (the hash client checks for ring changes)."""

    # -- the contract ------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self.get_many((key,)).get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """One multi-key ``get`` of the keys and their shards' namespace generations.

        A value is found only if it starts with the current generation of its shard.
        """
        if not keys:
            return {}
        lookup = self._lookup(keys)
        try:
            fetched = self._client.get_many(lookup.server_keys)
        finally:
            self._after_call()
        now = monotonic()
        known = self._generations
        for shard, generation_key in lookup.generations:
            generation = fetched.get(generation_key)
            if generation is not None and len(generation) == _GEN_LEN:
                known[shard] = (generation, now)
            else:
                known.pop(shard, None)
        found: dict[str, bytes] = {}
        for key, storage_key, generation_key in lookup.values:
            raw = fetched.get(storage_key)
            if raw is None:
                continue
            generation = fetched.get(generation_key)
            if generation is not None and len(generation) == _GEN_LEN and raw.startswith(generation):
                found[key] = raw[_GEN_LEN:]
        return found

    def _lookup(self, keys: Sequence[str]) -> _Lookup:
        """What reading ``keys`` asks memcached for (remembered: it depends on the keys alone)."""
        memo_key = tuple(keys)
        lookup = self._lookups.get(memo_key)
        if lookup is None:
            storage_key = self._storage_key
            storage_keys = [storage_key(key) for key in memo_key]
            shard_of = self._shard_of
            shards = [shard_of(key) for key in storage_keys]
            generation_keys = {shard: self._generation_key(shard) for shard in dict.fromkeys(shards)}
            lookup = _Lookup(
                (*generation_keys.values(), *storage_keys),
                tuple(generation_keys.items()),
                tuple(zip(memo_key, storage_keys, [generation_keys[shard] for shard in shards], strict=True)),
            )
            # The keys, their storage keys, and a generation key per shard.
            chars = 2 * sum(map(len, storage_keys)) + 20 * len(generation_keys)
            self._lookups.put(memo_key, lookup, chars)
        return lookup

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        storage_key = self._storage_key(key)
        if not self._fits(storage_key, value):
            self._not_stored(storage_key)
            return False
        try:
            generation = self._generation(self._shard_of(storage_key))
            try:
                stored = self._client.set(
                    storage_key, generation + value, expire=memcached_expire(ttl), noreply=False
                )
            except MemcacheServerError as exc:
                if not _is_too_large(exc):
                    raise
                self._not_stored(storage_key)
                return False
            return bool(stored)
        finally:
            self._after_call()

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        storage_key = self._storage_key(key)
        if not self._fits(storage_key, value):
            self.too_large += 1
            return False
        shard = self._shard_of(storage_key)
        expire = memcached_expire(ttl)
        try:
            # Always the current generation: a lock taken under an old one would be invisible.
            generation = self._generation(shard, fresh=True)
            try:
                if self._client.add(storage_key, generation + value, expire=expire, noreply=False):
                    return True
            except MemcacheServerError as exc:
                if not _is_too_large(exc):
                    raise
                self.too_large += 1
                return False
            # The key exists; it is absent all the same if it holds a value of an older generation.
            generation_key = self._generation_key(shard)
            found = self._client.gets_many([generation_key, storage_key])
            current = found.get(generation_key, (None, None))[0]
            raw, cas = found.get(storage_key, (None, None))
            if raw is None:
                return bool(self._client.add(storage_key, generation + value, expire=expire, noreply=False))
            if current is None or raw[:_GEN_LEN] == current:
                return False
            return bool(self._client.cas(storage_key, current + value, cas, expire=expire, noreply=False))
        finally:
            self._after_call()

    def delete(self, key: str) -> None:
        try:
            self._client.delete(self._storage_key(key), noreply=False)
        finally:
            self._after_call()

    def clear(self) -> None:
        """Start a new namespace generation in every shard (other namespaces are untouched)."""
        self._new_generations(range(self.shards))

    def close(self) -> None:
        self._client.close()

    # -- internals ---------------------------------------------------------------

    def _fits(self, storage_key: str, value: bytes) -> bool:
        return _GEN_LEN + len(value) + len(storage_key) + _ITEM_OVERHEAD <= self.item_size_max

    def _not_stored(self, storage_key: str) -> None:
        """Count a value too large to store, and drop the older value it replaces."""
        self.too_large += 1
        self._client.delete(storage_key, noreply=False)

    def _generation(self, shard: int, *, fresh: bool = False) -> bytes:
        """The namespace generation of ``shard``, creating it when missing."""
        if not fresh:
            known = self._generations.get(shard)
            if known is not None and monotonic() - known[1] < _GEN_MAX_AGE:
                return known[0]
        generation_key = self._generation_key(shard)
        generation = self._client.get(generation_key)
        if generation is None or len(generation) != _GEN_LEN:
            candidate = token_hex(_GEN_LEN // 2).encode("ascii")
            if generation is not None:
                self._client.set(generation_key, candidate, expire=0, noreply=False)
                generation = candidate
            elif self._client.add(generation_key, candidate, expire=0, noreply=False):
                generation = candidate
            else:
                generation = self._client.get(generation_key)
                if generation is None or len(generation) != _GEN_LEN:
                    raise MemcacheError(f"the namespace generation {generation_key} cannot be read")
        self._generations[shard] = (generation, monotonic())
        return bytes(generation)

    def _new_generations(self, shards: Any, *, check_ring: bool = True) -> None:
        generation = token_hex(_GEN_LEN // 2).encode("ascii")
        values = {self._generation_key(shard): generation for shard in shards}
        if not values:
            return
        self._generations.clear()
        try:
            failed = self._client.set_many(values, expire=0, noreply=False)
        finally:
            if check_ring:
                self._after_call()
        if failed:
            raise MemcacheError(f"could not write the new namespace generation of {len(failed)} shard(s)")


class _ShardHasher(RendezvousHash):  # type: ignore[misc]
    """Rendezvous hashing of a key's shard, not of the whole key."""

    def __init__(self, shard_of: Callable[[str], int]) -> None:
        super().__init__()
        self._shard_of = shard_of
        self._memo: dict[int, Any] = {}

    def add_node(self, node: Any) -> None:
        super().add_node(node)
        self._memo = {}

    def remove_node(self, node: Any) -> None:
        if node in self.nodes:
            super().remove_node(node)
        self._memo = {}

    def get_node(self, key: str) -> Any:
        return self.node_of_shard(self._shard_of(key))

    def node_of_shard(self, shard: int) -> Any:
        memo = self._memo
        try:
            return memo[shard]
        except KeyError:
            node = memo[shard] = super().get_node(f"s{shard}")
            return node


class _RingClient(HashClient):  # type: ignore[misc]
    """``HashClient`` with its server bookkeeping made safe for threads, and
    a flag raised whenever a server leaves or rejoins the ring."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._ring_lock = threading.RLock()
        self._ready = False
        self.ring_changed = False
        super().__init__(*args, **kwargs)
        self._ready = True

    def add_server(self, server: Any, port: Any = None) -> None:
        with self._ring_lock:
            super().add_server(server, port)
            if self._ready:
                self.ring_changed = True

    def remove_server(self, server: Any, port: Any = None) -> None:
        with self._ring_lock:
            if port is not None:
                server = (server, port)
            node = self._make_client_key(server)
            if node not in self.hasher.nodes:
                self._failed_clients.pop(server, None)
                return
            self._failed_clients.pop(server, None)
            self._dead_clients[server] = time()
            self.hasher.remove_node(node)
            self.ring_changed = True

    def _mark_failed_server(self, server: Any) -> None:
        with self._ring_lock:
            super()._mark_failed_server(server)

    def _retry_dead(self) -> None:
        with self._ring_lock:
            super()._retry_dead()


class MemcachedHashBackend(MemcachedBackend):
    """Several memcached servers, keys spread by rendezvous (consistent) hashing.

    Takes the options of :class:`MemcachedBackend`, and:

    :param retry_attempts: failed attempts after which a server leaves the ring (default 2).
    :param retry_timeout: seconds between attempts on a failing server (default 1);
        in between, its keys are misses without any wait.
    :param dead_timeout: seconds before a server out of the ring is tried again (default 30).
    """

    #: Entries are spread over this many shards (see the module documentation);
    #: clearing writes one key per shard, invalidating a tag one key per shard.
    key_shards = 32

    def __init__(
        self,
        servers: str | Sequence[str] = "127.0.0.1:11211",
        *,
        connect_timeout: float = 0.5,
        timeout: float = 0.5,
        max_pool_size: int | None = None,
        pool_idle_timeout: float = 0,
        item_size_max: int = 1024 * 1024,
        retry_attempts: int = 2,
        retry_timeout: float = 1.0,
        dead_timeout: float = 30.0,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        owner = type(self).__name__
        self.retry_attempts = whole_number(owner, "retry_attempts", retry_attempts, 0)
        self.retry_timeout = positive_seconds(owner, "retry_timeout", retry_timeout)
        self.dead_timeout = positive_seconds(owner, "dead_timeout", dead_timeout)
        self._ring_lock = threading.Lock()
        self._placement: dict[int, Any] = {}
        super().__init__(
            servers,
            connect_timeout=connect_timeout,
            timeout=timeout,
            max_pool_size=max_pool_size,
            pool_idle_timeout=pool_idle_timeout,
            item_size_max=item_size_max,
            key_prefix=key_prefix,
            default_timeout=default_timeout,
        )
        self._placement = self._current_placement()

    @property
    def shards(self) -> int:
        return self.key_shards

    def _make_client(self) -> Any:
        return _RingClient(
            [_server_spec(server) for server in self.servers],
            hasher=partial(_ShardHasher, self._shard_of),
            connect_timeout=self.connect_timeout,
            timeout=self.timeout,
            no_delay=True,
            use_pooling=True,
            max_pool_size=self.max_pool_size,
            pool_idle_timeout=self.pool_idle_timeout,
            retry_attempts=self.retry_attempts,
            retry_timeout=self.retry_timeout,
            dead_timeout=self.dead_timeout,
            default_noreply=False,
            ignore_exc=False,
        )

    def _shard_of(self, storage_key: str) -> int:
        start = storage_key.find("{")
        if start >= 0:
            end = storage_key.find("}", start + 2)
            if end > 0 and storage_key[start + 1] == "s":
                digits = storage_key[start + 2 : end]
                if digits.isdigit() and int(digits) < self.key_shards:
                    return int(digits)
        return crc32(storage_key.encode("ascii")) % self.key_shards

    def server_of(self, key: str) -> str | None:
        """The ``host:port`` that holds ``key`` now (``None`` if no server is in the ring)."""
        node = self._client.hasher.node_of_shard(self._shard_of(self._storage_key(key)))
        return None if node is None else str(node)

    def _after_fork(self) -> None:
        super()._after_fork()
        self._ring_lock = threading.Lock()
        self._placement = self._current_placement()

    def _current_placement(self) -> dict[int, Any]:
        hasher = self._client.hasher
        return {shard: hasher.node_of_shard(shard) for shard in range(self.key_shards)}

    def _after_call(self) -> None:
        client = self._client
        if not client.ring_changed:
            return
        with self._ring_lock:
            if not client.ring_changed:
                return
            client.ring_changed = False
            placement = self._current_placement()
            moved = [
                shard
                for shard, node in placement.items()
                if node is not None and node != self._placement.get(shard)
            ]
            self._placement = placement
        if moved:
            # Values a server holds from before it lost (or regained) these
            # shards may predate invalidations: never serve them.
            logger.warning(
                "wsgicache: memcached ring changed (servers now %s); new generation for %d shard(s)",
                sorted(str(node) for node in set(placement.values()) if node is not None),
                len(moved),
            )
            try:
                self._new_generations(moved, check_ring=False)
            except Exception as exc:
                logger.warning("wsgicache: could not renew moved memcached shards: %s", exc)


_instances: weakref.WeakSet[MemcachedBackend] = weakref.WeakSet()


def _reset_after_fork() -> None:
    for instance in list(_instances):
        instance._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def _server_list(servers: object) -> list[str]:
    if isinstance(servers, str):
        return [item.strip() for item in servers.split(",") if item.strip()]
    if isinstance(servers, (list, tuple)):
        found = []
        for item in servers:
            if isinstance(item, tuple) and len(item) == 2:
                found.append(f"{item[0]}:{item[1]}")
            elif isinstance(item, str) and item.strip():
                found.append(item.strip())
            else:
                raise ConfigurationError(f"a memcached server is 'host:port', got {item!r}")
        return found
    raise ConfigurationError(f"memcached servers are 'host:port' strings, got {servers!r}")


def _server_spec(server: str) -> Any:
    """pymemcache's form of ``host:port`` / ``[v6]:port`` / ``/unix/path``."""
    if server.startswith(("/", "unix:")):
        return server.removeprefix("unix:")
    host, port = parse_hosts(server, 11211, server)[0]
    return (host, port)
