"""The cache itself: backends, key spaces, reads, stores and invalidations.

:class:`Cache` knows nothing of WSGI. The middleware builds one and asks it
to read and store entries for the requests it plans; a process that serves
no requests (a worker, a deploy hook) can build one from the same backend
configuration to invalidate what the middleware stored::

    from wsgicache.cache import Cache

    cache = Cache("redis://127.0.0.1:6379/0", key_prefix="site1")
    cache.invalidate(tags=["posts"])
    cache.invalidate("/posts/1")

Invalidation is O(1) per tag: every entry records the generation of each
tag key it depends on (its URL path, its rule's ``key``, its tags);
invalidating writes new generations, so every entry stored under the old
ones reads as a miss from then on. A backend that does not acknowledge an
invalidation gets it again from a background thread until it does; this
process serves nothing depending on it meanwhile.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from secrets import token_hex
from time import time
from typing import Any

from . import checks, variants
from .backends import Backend
from .backends.base import check_default_timeout
from .coalescing import Read
from .config import build_backends
from .errors import ConfigurationError, CorruptEntry, InvalidationError
from .guard import GuardedBackend
from .invalidation import InvalidationResult, PendingInvalidations
from .keys import KeySpace
from .memo import ByteBudgetLru, FifoMemo
from .plan import Plan, wsgi_path
from .stats import Stats
from .storage import FLAG_VARIANTS, Entry, decode, encode

logger = logging.getLogger("wsgicache")

#: Lifetime of a tag generation key. Entries depending on a tag live far
#: shorter; if the key is evicted or expires, those entries become misses.
TAG_TTL = 29 * 24 * 3600.0

_KEY_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")

_NO_READ = Read(False, None, {})


def new_generation() -> bytes:
    """A fresh, unguessable tag generation (ASCII, no spaces)."""
    return token_hex(8).encode("ascii")


def check_key_prefix(key_prefix: object) -> str:
    if not isinstance(key_prefix, str) or len(key_prefix) > 64 or not set(key_prefix) <= _KEY_PREFIX_CHARS:
        raise ConfigurationError(
            f"key_prefix must be at most 64 letters, digits or '-_.:', such as 'site1'; got {key_prefix!r}"
        )
    return key_prefix


class Cache:
    """Stored responses in one or more backends, without an application.

    :param backend: a backend URL, a :class:`~wsgicache.backends.Backend`,
        a Django-style dict for one backend, or a dict of aliases to
        backends (one named ``"default"``).
    :param key_prefix: joins every key (letters, digits, ``-_.:``); the
        middleware and every process invalidating its entries use the same.
    :param failure_threshold: consecutive backend failures that open a circuit.
    :param retry_after: the longest wait, in seconds, between two probes of
        an open circuit.
    :param probe_interval: seconds from a circuit opening to its first probe.
    :param decoded_cache_bytes: with an in-process backend, decoded entries
        up to this many bytes are kept so a hit skips decoding (0: off).
    :param clock: Unix time in seconds, for freshness, the circuit breaker
        and the retry schedule (tests pass a fake one).
    """

    def __init__(
        self,
        backend: str | Backend | Mapping[str, Any] = "memory://",
        *,
        key_prefix: str = "",
        failure_threshold: int = 5,
        retry_after: float = 1.0,
        probe_interval: float = 0.1,
        decoded_cache_bytes: int = 16 * 1024 * 1024,
        clock: Callable[[], float] = time,
        stats: Stats | None = None,
    ) -> None:
        self.key_prefix = check_key_prefix(key_prefix)
        for name, number, minimum in (
            ("failure_threshold", failure_threshold, 1),
            ("decoded_cache_bytes", decoded_cache_bytes, 0),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
                raise ConfigurationError(f"{name} must be a positive whole number, got {number!r}")
        retry_after = checks.seconds("retry_after", retry_after, example="1")
        probe_interval = checks.seconds("probe_interval", probe_interval, example="0.1")
        if not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning seconds, got {clock!r}")
        self.clock = clock
        self.stats = Stats() if stats is None else stats
        self.backends = build_backends(backend)
        for alias, instance in self.backends.items():
            # A backend built elsewhere (or one whose __init__ sets it) may hold anything.
            check_default_timeout(instance.default_timeout, f"backend {alias!r} ({type(instance).__name__})")
        self.guards = {
            alias: GuardedBackend(
                alias,
                instance,
                self.stats,
                failure_threshold=failure_threshold,
                retry_after=retry_after,
                probe_interval=probe_interval,
                clock=clock,
            )
            for alias, instance in self.backends.items()
        }
        self.keyspaces = {
            alias: KeySpace(key_prefix, instance.key_shards) for alias, instance in self.backends.items()
        }
        # entry key -> (stored bytes, decoded entry), for in-process backends
        self._decoded: ByteBudgetLru[str, tuple[bytes, Entry]] = ByteBudgetLru(decoded_cache_bytes)
        # entry key -> the Vary fields of its variants, to read the variant in the same call
        self._vary_names: FifoMemo[str, tuple[str, ...]] = FifoMemo(16384, max_bytes=2 * 1024 * 1024)
        self.pending = PendingInvalidations(clock)
        self._retry_thread: threading.Thread | None = None

    # -- reading --------------------------------------------------------------

    def blocked(self, plan: Plan) -> bool:
        """Whether an invalidation covering the plan's entry is pending (re-applied meanwhile)."""
        pending = self.pending
        if not pending.active:
            return False
        if pending.due():
            self._start_retry()
        return pending.blocks(plan.alias, plan.tag_keys)

    def read(self, plan: Plan, extra_key: str | None = None) -> Read:
        """Look the plan's entry up: one backend call for it and its tag generations (and ``extra_key``).

        The entry is returned only if it decodes and its tags still hold.
        When the URL's responses vary on request headers the rule does not
        key on, the entry found is the variants' index; the variant the
        request selects is read in the same call when this process has seen
        the index before (its ``Vary`` fields are remembered), else in a
        second one.
        """
        guard = self.guards[plan.alias]
        keys = plan.read_keys
        known_names = self._vary_names.get(plan.entry_key)
        predicted = None
        if known_names is not None:
            predicted = self.variant_key(plan, known_names)
            keys = [*keys, predicted]
        if extra_key is not None:
            keys = [*keys, extra_key]
        fetched = guard.get_many(keys)
        if fetched is None:
            return _NO_READ
        raw = fetched.get(plan.entry_key)
        if raw is None:
            return Read(True, None, fetched)
        entry = self._valid_entry(plan.entry_key, raw, guard, fetched)
        if entry is None or not entry.flags & FLAG_VARIANTS:
            return Read(True, entry, fetched)
        names = _index_names(entry)
        if names == known_names and predicted is not None:
            variant_key, found = predicted, fetched
        else:
            self._vary_names.put(plan.entry_key, names)
            variant_key = self.variant_key(plan, names)
            answer = guard.get_many([variant_key])
            if answer is None:
                return _NO_READ
            found = answer
        raw = found.get(variant_key)
        if raw is None:
            return Read(True, None, fetched)
        variant = self._valid_entry(variant_key, raw, guard, fetched)
        if variant is not None and variant.flags & FLAG_VARIANTS:
            variant = None
        return Read(True, variant, fetched)

    def _valid_entry(
        self, key: str, raw: bytes, guard: GuardedBackend, fetched: Mapping[str, bytes]
    ) -> Entry | None:
        remembered = self._decoded.get(key)
        if remembered is not None and remembered[0] is raw:
            entry = remembered[1]
        else:
            try:
                entry = decode(raw)
            except CorruptEntry as exc:
                self.stats.incr("corrupt")
                logger.warning("wsgicache: deleting undecodable entry %s: %s", key, exc)
                guard.delete(key)
                return None
            if guard.backend.returns_stored_object:
                self._decoded.put(key, (raw, entry), len(raw))
        for tag_key, generation in entry.tags:
            if fetched.get(tag_key) != generation:
                return None
        return entry

    @staticmethod
    def variant_key(plan: Plan, names: tuple[str, ...]) -> str:
        """The key of the variant of the plan's URL that the request selects (RFC 9111 4.1)."""
        values = variants.selecting_values(names, plan.request.header)
        return plan.entry_key + "~" + variants.secondary_key(names, values)

    # -- storing --------------------------------------------------------------

    def tag_generations(
        self, plan: Plan, fetched: Mapping[str, bytes]
    ) -> tuple[tuple[str, bytes], ...] | None:
        """The current generation of each tag of the entry, creating missing ones.

        ``None`` when the backend could not say (the response is then not stored).
        """
        guard = self.guards[plan.alias]
        pairs = []
        for tag_key in plan.tag_keys:
            generation = fetched.get(tag_key)
            if generation is None:
                generation = new_generation()
                added = guard.add(tag_key, generation, TAG_TTL)
                if added is None:
                    return None
                if not added:
                    current = guard.get_many([tag_key])
                    if not current or tag_key not in current:
                        return None
                    generation = current[tag_key]
            pairs.append((tag_key, generation))
        return tuple(pairs)

    @staticmethod
    def _uncovered(plan: Plan, vary: tuple[str, ...]) -> tuple[str, ...]:
        """The ``Vary`` fields the rule does not key on: they make the response a variant."""
        rule = plan.rule
        return tuple(
            name
            for name in vary
            if name not in rule.vary_lower and not (name == "cookie" and rule.vary_cookies)
        )

    def store(self, plan: Plan, entry: Entry, ttl: float, vary: tuple[str, ...] = ()) -> bool | None:
        """Write the entry for ``ttl`` seconds: ``True`` stored, ``False`` refused, ``None`` unknown.

        ``vary`` names the request headers the response varies on; those
        the rule does not key on make it a variant under the URL's index.
        Raises ``ValueError`` when the entry cannot be encoded.
        """
        guard = self.guards[plan.alias]
        uncovered = self._uncovered(plan, vary)
        data = encode(entry)
        # An entry never outlives its tag generations (and memcached wants lifetimes under 30 days).
        ttl = min(ttl, TAG_TTL)
        if not uncovered:
            return guard.set(plan.entry_key, data, ttl)
        index = Entry(
            "",
            [("Vary", ", ".join(vary))],
            b"",
            stored_at=entry.stored_at,
            fresh_until=entry.fresh_until,
            stale_until=entry.stale_until,
            tags=entry.tags,
            flags=FLAG_VARIANTS,
        )
        self._vary_names.put(plan.entry_key, vary)
        stored = guard.set(self.variant_key(plan, vary), data, ttl)
        if not stored:
            return stored
        return guard.set(plan.entry_key, encode(index), ttl)

    def discard(self, plan: Plan, vary: tuple[str, ...] = ()) -> None:
        """Delete the entry :meth:`store` wrote for the plan's request (its variant, when it varies)."""
        key = self.variant_key(plan, vary) if self._uncovered(plan, vary) else plan.entry_key
        self.guards[plan.alias].delete(key)

    # -- invalidating -----------------------------------------------------------

    def invalidate(
        self,
        url: str | None = None,
        *,
        tags: Iterable[str] | None = None,
        key: str | None = None,
        strict: bool = False,
    ) -> InvalidationResult:
        """Make entries unusable, in O(1) per tag, on every configured backend.

        - ``url``: every entry of that path (``"/posts/1"`` or a full URL;
          the query string, host and vary values do not narrow it down);
        - ``tags``: every entry stored with any of these tags;
        - ``key``: every entry whose rule ``key`` rendered to this value.

        Returns an :class:`~wsgicache.invalidation.InvalidationResult`, true
        when every backend acknowledged the write. One that did not is
        logged at ERROR, counted (``invalidation_failures``), kept in this
        process (which serves no entry depending on it meanwhile) and
        re-applied until the backend acknowledges it. With ``strict=True``
        it also raises :class:`~wsgicache.errors.InvalidationError`.
        """
        if url is None and tags is None and key is None:
            raise TypeError("invalidate() needs url=, tags= or key=")
        if isinstance(tags, str):
            raise TypeError(f"tags must be a list of tag names, such as [{tags!r}]")
        tags = list(tags or ())
        keys_by_alias: dict[str, list[str]] = {}
        for alias, keyspace in self.keyspaces.items():
            tag_keys: list[str] = []
            if url is not None:
                tag_keys.extend(keyspace.path_tag_keys_all_shards(wsgi_path(url)))
            for tag in tags:
                tag_keys.extend(keyspace.tag_keys_all_shards(tag))
            if key is not None:
                tag_keys.extend(keyspace.custom_key_tag_keys_all_shards(key))
            keys_by_alias[alias] = tag_keys
        what = ", ".join(
            f"{name}={value!r}"
            for name, value in (("url", url), ("tags", tags or None), ("key", key))
            if value
        )
        return self._invalidate(keys_by_alias, what, force=True, strict=strict)

    def invalidate_paths(self, paths: list[str], aliases: list[str]) -> InvalidationResult:
        """Invalidate the paths a successful write touched.

        Not forced: with a circuit open, the write is not held up waiting for
        a backend believed dead; the invalidation is kept and re-applied.
        """
        keys_by_alias = {
            alias: [key for path in paths for key in self.keyspaces[alias].path_tag_keys_all_shards(path)]
            for alias in aliases
        }
        return self._invalidate(keys_by_alias, "the URL written: " + ", ".join(paths), force=False)

    def clear(self, *, strict: bool = False) -> InvalidationResult:
        """Empty every configured backend's namespace.

        A backend that does not acknowledge it is handled as for
        :meth:`invalidate`: logged, counted, kept and re-applied.
        """
        self.stats.incr("invalidations")
        acknowledged = True
        for alias, guard in self.guards.items():
            if not guard.clear():
                acknowledged = False
                self.pending.add_clear(alias, "clear()")
        return self._result(acknowledged, None, "clear()", strict=strict)

    def _invalidate(
        self, keys_by_alias: Mapping[str, list[str]], what: str, *, force: bool, strict: bool = False
    ) -> InvalidationResult:
        """Write new generations for ``keys_by_alias``; keep what is not acknowledged."""
        self.stats.incr("invalidations")
        acknowledged = True
        replicated: bool | None = None
        for alias, tag_keys in keys_by_alias.items():
            if not tag_keys:
                continue
            written = self.guards[alias].set_many(
                {tag_key: new_generation() for tag_key in tag_keys}, TAG_TTL, force=force
            )
            if not written.ok:
                acknowledged = False
                self.pending.add(alias, tag_keys, what)
            elif written.replicas is not None:
                replicated = replicated is not False and written.replicas > 0
        return self._result(acknowledged, replicated, what, strict=strict)

    def _result(
        self, acknowledged: bool, replicated: bool | None, what: str, *, strict: bool
    ) -> InvalidationResult:
        result = InvalidationResult(acknowledged, replicated, len(self.pending))
        if not acknowledged:
            self.stats.incr("invalidation_failures")
            logger.error(
                "wsgicache: invalidation of %s was not acknowledged by the backend; this process "
                "bypasses the entries it covers and re-applies it until acknowledged (%d pending)",
                what,
                result.pending,
            )
            if strict:
                raise InvalidationError(f"invalidation of {what} was not acknowledged", result)
        elif replicated is False:
            logger.warning(
                "wsgicache: invalidation of %s was acknowledged but no replica confirmed it in time",
                what,
            )
        return result

    def _start_retry(self) -> None:
        """Re-apply what is pending in a background thread, one at a time: no request waits for it.

        A retry can be slow (a backend that hangs, a pending ``clear()``
        scanning a large namespace); requests go on meanwhile, bypassing
        what is still pending.
        """
        lock = self.pending.retrying()
        if not lock.acquire(blocking=False):
            return
        try:
            thread = threading.Thread(target=self._retry_pending, args=(lock,), name="wsgicache-retry")
            thread.daemon = True
            self._retry_thread = thread
            thread.start()
        except BaseException:
            lock.release()
            raise

    def _retry_pending(self, lock: threading.Lock) -> None:
        """Re-apply pending invalidations and delete left-behind locks; releases ``lock``."""
        pending = self.pending
        try:
            failed = False
            for alias, lock_keys in pending.lock_batches():
                guard = self.guards[alias]
                released = [key for key in lock_keys if guard.delete(key)]
                pending.locks_released(alias, released)
                failed = failed or len(released) < len(lock_keys)
            for alias, keys, clear, version in pending.batches():
                guard = self.guards[alias]
                if clear:
                    ok = guard.available("") and guard.clear()
                else:
                    ok = guard.set_many({key: new_generation() for key in keys}, TAG_TTL).ok
                if ok:
                    logger.warning(
                        "wsgicache: re-applied the invalidation of %s on backend %r",
                        pending.describe(alias, keys) or "clear()",
                        alias,
                    )
                    pending.done(alias, keys, clear, version)
                else:
                    failed = True
            if failed:
                pending.failed()
        except Exception:
            logger.exception("wsgicache: re-applying pending invalidations failed")
            pending.failed()
        finally:
            lock.release()

    def close(self) -> None:
        """Close every backend (connections, files)."""
        for instance in self.backends.values():
            try:
                instance.close()
            except Exception:
                logger.exception("wsgicache: closing %r failed", instance)

    def __repr__(self) -> str:
        return f"<Cache backends={sorted(self.backends)} key_prefix={self.key_prefix!r}>"


def _index_names(index: Entry) -> tuple[str, ...]:
    """The ``Vary`` field names a variants index holds."""
    value = index.headers[0][1] if index.headers else ""
    return tuple(name for name in value.split(", ") if name)
