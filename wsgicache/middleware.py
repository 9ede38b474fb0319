"""The WSGI middleware that serves full responses from a cache.

::

    from wsgicache import CacheMiddleware, Rule

    app.wsgi_app = CacheMiddleware(
        app.wsgi_app,
        backend="memory://",
        rules=[
            Rule("/recent_posts", timeout=300, tags=["posts"]),
            Rule("/admin/<path:rest>", cache=False),
        ],
    )

    # later, when a post is saved:
    app.wsgi_app.invalidate(tags=["posts"])

Requests no rule matches go to the application untouched, without any
backend call. For a matched request the middleware looks the response up
(one backend round trip, tag generations included), answers a hit itself,
and on a miss calls the application, stores what may be stored and passes
the response on. A failing backend never fails a request: the application
answers, the error is logged to the ``wsgicache`` logger and counted in
:meth:`CacheMiddleware.stats`.
"""

from __future__ import annotations

import enum
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from hashlib import blake2b
from secrets import token_hex
from time import monotonic, sleep, time
from typing import Any
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urljoin, urlsplit

from . import checks, http
from .backends import Backend
from .backends.base import check_default_timeout
from .body import has_body, read_body
from .config import build_backends, middleware_arguments
from .errors import ConfigurationError, CorruptEntry, InvalidationError
from .fills import Fills
from .guard import GuardedBackend
from .invalidation import InvalidationResult, PendingInvalidations
from .keys import (
    METHOD_OVERRIDE_HEADERS,
    KeySpace,
    cookie_values,
    key_material,
    match_form,
    request_host,
)
from .memo import ByteBudgetLru
from .response import CapturedResponse, StartResponse, StreamingBody, close_iterable
from .rules import CompiledRule, Rule, RuleSet
from .stats import Stats
from .storage import Entry, decode, encode

logger = logging.getLogger("wsgicache")

WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Lifetime of a tag generation key. Entries depending on a tag live far
#: shorter; if the key is evicted or expires, those entries become misses.
TAG_TTL = 29 * 24 * 3600.0

#: Request headers removed when a cacheable miss is forwarded, so that the
#: application returns the full response that is stored; the middleware
#: then evaluates the client's own preconditions itself.
_FORWARD_STRIPPED = frozenset({*http.PRECONDITION_HEADERS, "HTTP_RANGE", "HTTP_IF_RANGE"})

#: Methods that never change state (RFC 9110 section 9.2.1; WebDAV's PROPFIND
#: and REPORT, the SEARCH and QUERY methods): they invalidate nothing.
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH", "QUERY"})

_METHOD_OVERRIDES = frozenset(METHOD_OVERRIDE_HEADERS)

#: Environ keys any of which can make a matched request bypass (checked in one call first).
_BYPASS_KEYS = frozenset(
    {"HTTP_AUTHORIZATION", "REMOTE_USER", "HTTP_TRANSFER_ENCODING", *METHOD_OVERRIDE_HEADERS}
)


#: Seconds after a failure of a shard during which requests do not wait for
#: another process's fill lock on it (it may be left over from the outage).
_SETTLING_TIME = 10.0

#: Seconds between looks at the backend while another process fills an entry.
_POLL_INTERVAL = 0.02

_KEY_PREFIX_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:")


def new_generation() -> bytes:
    """A fresh, unguessable tag generation (ASCII, no spaces)."""
    return token_hex(8).encode("ascii")


class Bypass(enum.Enum):
    """Why a request a rule matched is answered by the application, uncached."""

    EXCLUDED = "excluded"  # Rule(cache=False)
    UNLESS = "unless"  # the rule's unless(environ) was true
    AUTHORIZATION = "authorization"  # Authorization header, rule does not allow it
    REMOTE_USER = "remote_user"  # REMOTE_USER set, rule does not allow it
    INVALID_HOST = "invalid_host"  # Host that is not a valid host name
    METHOD_OVERRIDE = "method_override"  # X-HTTP-Method-Override and friends, or ?_method=
    REQUEST_BODY = "request_body"  # body on GET/HEAD, chunked, over max_body_bytes, or cut short
    RANGE = "range"  # a Range request that missed: the application answers the range
    AMBIGUOUS_COOKIE = "ambiguous_cookie"  # a vary_cookies name twice or after a comma
    PRECONDITION = "precondition"  # If-Match & co. on a cached method other than GET/HEAD
    BACKEND = "backend"  # the backend could not be asked
    PENDING_INVALIDATION = "pending_invalidation"  # an invalidation of the entry awaits re-applying


class _Unsafe:
    """A request that may change state: passed on, and invalidating its URL on success."""

    __slots__ = ("aliases", "bypass")

    def __init__(self, aliases: list[str], bypass: Bypass | None) -> None:
        self.aliases = aliases  # backends whose rules may hold entries of the URL
        self.bypass = bypass  # why a matching rule did not cache it (BYPASS header), if one matched


class _Lookup:
    """What one matched request needs between lookup and store."""

    __slots__ = ("claimed", "entry_key", "fetched", "guard", "locked", "method", "rule", "tag_keys")

    def __init__(
        self,
        rule: CompiledRule,
        guard: GuardedBackend,
        method: str,
        entry_key: str,
        tag_keys: list[str],
    ) -> None:
        self.rule = rule
        self.guard = guard
        self.method = method
        self.entry_key = entry_key
        self.tag_keys = tag_keys
        self.fetched: dict[str, bytes] = {}
        self.claimed = False  # holds this process's claim to fill the entry
        self.locked = False  # holds the fill lock key in the backend


class CacheMiddleware:
    """Cache full responses of the WSGI application ``app``.

    :param app: the WSGI application to wrap.
    :param backend: a backend URL (``"memory://"``, ``"redis://..."``), a
        :class:`~wsgicache.backends.Backend` instance, a Django-style dict for
        one backend, or a dict of aliases to backends (one named
        ``"default"``) that rules pick with ``Rule(backend=...)``.
    :param rules: the ordered :class:`~wsgicache.Rule` list.
    :param key_prefix: joins every key, so that two sites sharing a backend
        namespace never share entries (letters, digits, ``-_.:``).
    :param cache_header: response header telling ``HIT``, ``MISS``, ``STALE``
        or ``BYPASS`` on matched requests; ``None`` for none.
    :param max_entry_bytes: larger responses stream through, unstored.
    :param failure_threshold: consecutive backend failures that open the
        circuit breaker.
    :param retry_after: the longest wait, in seconds, between two probes of
        an open circuit (the wait doubles from ``probe_interval`` after each
        failed probe up to this).
    :param probe_interval: seconds from a circuit opening to its first probe.
    :param lock_timeout: seconds a fill lock (in the backend, for requests
        of other processes) is held at most.
    :param lock_wait: seconds a request that misses waits for another
        request already filling the same entry before it calls the
        application itself; ``0`` turns coalescing off.
    :param clock: monotonic seconds for the circuit breaker and the retry
        schedule of pending invalidations (tests pass a fake one).
    :param max_body_bytes: a rule caching a method with a body (``POST``)
        keys on a digest of the body up to this size; larger bodies bypass.
    :param decoded_cache_bytes: with an in-process backend (memory), decoded
        entries up to this many bytes in all are kept so a hit skips decoding
        (0 turns it off). The stored bytes are shared with the backend; the
        cost is about one extra copy of the bodies kept.
    """

    def __init__(
        self,
        app: WSGIApp,
        backend: str | Backend | Mapping[str, Any] = "memory://",
        rules: Sequence[Rule] = (),
        key_prefix: str = "",
        cache_header: str | None = "X-Cache",
        *,
        max_entry_bytes: int = 1024 * 1024,
        failure_threshold: int = 5,
        retry_after: float = 1.0,
        probe_interval: float = 0.1,
        lock_timeout: float = 30.0,
        lock_wait: float = 5.0,
        decoded_cache_bytes: int = 16 * 1024 * 1024,
        max_body_bytes: int = 64 * 1024,
        clock: Callable[[], float] = monotonic,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"CacheMiddleware wraps a WSGI application (a callable), got {app!r}")
        self.app = app
        if (
            not isinstance(key_prefix, str)
            or len(key_prefix) > 64
            or not set(key_prefix) <= _KEY_PREFIX_CHARS
        ):
            raise ConfigurationError(
                "key_prefix must be at most 64 letters, digits or '-_.:', such as 'site1'; "
                f"got {key_prefix!r}"
            )
        self.key_prefix = key_prefix
        self.cache_header = None if cache_header is None else checks.header_name("cache_header", cache_header)
        for name, number, minimum in (
            ("max_entry_bytes", max_entry_bytes, 1),
            ("failure_threshold", failure_threshold, 1),
            ("decoded_cache_bytes", decoded_cache_bytes, 0),
        ):
            if isinstance(number, bool) or not isinstance(number, int) or number < minimum:
                raise ConfigurationError(f"{name} must be a positive whole number, got {number!r}")
        retry_after = checks.seconds("retry_after", retry_after, example="1")
        probe_interval = checks.seconds("probe_interval", probe_interval, example="0.1")
        self.max_entry_bytes = max_entry_bytes
        self.lock_timeout = checks.seconds("lock_timeout", lock_timeout, example="30")
        self.lock_wait = checks.seconds("lock_wait", lock_wait, zero="no coalescing", example="5")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 0:
            raise ConfigurationError(
                f"max_body_bytes must be 0 or a positive whole number of bytes, got {max_body_bytes!r}"
            )
        self.max_body_bytes = max_body_bytes
        self._stats = Stats()
        if not callable(clock):
            raise ConfigurationError(f"clock must be a callable returning seconds, got {clock!r}")
        self.backends = build_backends(backend)
        for alias, instance in self.backends.items():
            # A backend built elsewhere (or one whose __init__ sets it) may hold anything.
            check_default_timeout(instance.default_timeout, f"backend {alias!r} ({type(instance).__name__})")
        self._guards = {
            alias: GuardedBackend(
                alias,
                instance,
                self._stats,
                failure_threshold=failure_threshold,
                retry_after=retry_after,
                probe_interval=probe_interval,
                clock=clock,
            )
            for alias, instance in self.backends.items()
        }
        self._keyspaces = {
            alias: KeySpace(key_prefix, instance.key_shards) for alias, instance in self.backends.items()
        }
        if isinstance(rules, Rule) or not isinstance(rules, Iterable):
            raise ConfigurationError(f"rules must be a list of Rule objects, got {rules!r}")
        compiled = []
        for rule in rules:
            if not isinstance(rule, Rule):
                raise ConfigurationError(f"rules must contain Rule objects, got {rule!r}")
            if rule.backend not in self.backends:
                raise ConfigurationError(
                    f"{rule!r} uses backend {rule.backend!r}, but the configured backends are: "
                    f"{', '.join(sorted(self.backends))}"
                )
            instance = self.backends[rule.backend]
            compiled.append(rule.compile(self._keyspaces[rule.backend], instance.default_timeout))
        self.rules = list(rules)
        self._ruleset = RuleSet(compiled)
        # entry key -> (stored bytes, decoded entry), for in-process backends
        self._decoded: ByteBudgetLru[str, tuple[bytes, Entry]] = ByteBudgetLru(decoded_cache_bytes)
        self._fills = Fills()
        self._pending = PendingInvalidations(clock)
        self._retry_thread: threading.Thread | None = None
        self._header_hit = self._header("HIT")
        self._header_miss = self._header("MISS")
        self._header_stale = self._header("STALE")
        self._header_bypass = self._header("BYPASS")

    def _header(self, value: str) -> list[tuple[str, str]]:
        return [] if self.cache_header is None else [(self.cache_header, value)]

    @classmethod
    def from_config(cls, app: WSGIApp, config: Mapping[str, Any] | str) -> CacheMiddleware:
        """Build the middleware from a Django-style dict or an importable module path.

        ::

            CACHE = {
                "BACKENDS": {"default": {"BACKEND": "redis", "LOCATION": "redis://127.0.0.1:6379/0",
                                         "TIMEOUT": 300, "KEY_PREFIX": "site1"}},
                "RULES": [Rule("/recent_posts", timeout=300)],
                "KEY_PREFIX": "",            # optional
                "CACHE_HEADER": "X-Cache",   # optional
                "OPTIONS": {"max_entry_bytes": 1048576},  # optional middleware options
            }
            app = CacheMiddleware.from_config(app, CACHE)      # or "myproj.cache_settings"
        """
        arguments = middleware_arguments(config)
        try:
            return cls(app, **arguments)
        except TypeError as exc:
            raise ConfigurationError(f"invalid OPTIONS: {exc}") from exc

    # -- serving ------------------------------------------------------------

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        try:
            lookup = self._match(environ)
        except Exception:
            logger.exception(
                "wsgicache: could not prepare %s; passing it to the application", _describe(environ)
            )
            self._stats.incr("errors")
            return self.app(environ, start_response)
        if lookup is None:
            return self.app(environ, start_response)
        if isinstance(lookup, _Unsafe):
            return self._pass_invalidating(environ, start_response, lookup)
        if not isinstance(lookup, _Lookup):
            return self._pass(environ, start_response, lookup)

        try:
            return self._lookup_and_answer(environ, start_response, lookup)
        finally:
            # Whatever happened (an exception, a BaseException, a close() that
            # raised), this request's claim on the entry ends here.
            if lookup.claimed or lookup.locked:
                self._release(lookup)

    def _lookup_and_answer(
        self, environ: dict[str, Any], start_response: StartResponse, lookup: _Lookup
    ) -> Iterable[bytes]:
        pending = self._pending
        if pending.active:
            if pending.due():
                self._start_retry()
            if pending.blocks(lookup.guard.alias, lookup.tag_keys):
                return self._pass(environ, start_response, Bypass.PENDING_INVALIDATION)
        now = time()
        answered, entry = self._read_entry(lookup)
        if not answered:
            return self._pass(environ, start_response, Bypass.BACKEND)
        if entry is not None:
            if now < entry.fresh_until:
                self._stats.incr("hits")
                return self._serve(environ, start_response, entry, now, self._header_hit)
            if now < entry.fresh_until + lookup.rule.stale_while_revalidate and not self._claim(lookup):
                self._stats.incr("stale")
                return self._serve(environ, start_response, entry, now, self._header_stale)
            if now >= entry.fresh_until + lookup.rule.stale_if_error:
                entry = None
        if "HTTP_RANGE" in environ:
            # A hit answers a range request with the whole response (RFC 9110
            # allows it); a miss lets the application answer the range itself
            # (resumed downloads, media seeking), and nothing is stored.
            return self._pass(environ, start_response, Bypass.RANGE)
        if entry is None and self.lock_wait and not lookup.claimed:
            filled = self._wait_for_fill(lookup)
            if filled is not None:
                self._stats.incr("hits")
                self._stats.incr("coalesced")
                return self._serve(environ, start_response, filled, time(), self._header_hit)
        self._stats.incr("misses")
        return self._fetch(environ, start_response, lookup, entry)

    def _match(self, environ: dict[str, Any]) -> _Lookup | Bypass | _Unsafe | None:
        """What to do with a request.

        ``None``: no rule matches, pass it on untouched; a :class:`Bypass`:
        the application answers, uncached; an :class:`_Unsafe`: a request
        that may change state, passed on and invalidating its URL if it
        succeeds; else the lookup to make.
        """
        ruleset = self._ruleset
        method = environ.get("REQUEST_METHOD", "GET")
        unsafe = method not in ("GET", "HEAD") and _is_unsafe(environ, method)
        host = request_host(environ)
        path_info = environ.get("PATH_INFO", "")
        if host is None:
            # Not a valid Host: never looked up nor stored, whatever the rules say.
            if unsafe:
                return _Unsafe(self._ruleset.aliases_storing("", path_info), Bypass.INVALID_HOST)
            return Bypass.INVALID_HOST if ruleset.match("", path_info, method) else None
        found = ruleset.match(host.match, path_info, method)
        if found is None:
            if unsafe:
                aliases = ruleset.aliases_storing(host.match, path_info)
                return _Unsafe(aliases, None) if aliases else None
            return None
        rule, values = found
        bypass = self._bypass_reason(environ, rule, method)
        if bypass is not None:
            if unsafe or (bypass is Bypass.METHOD_OVERRIDE and _is_unsafe(environ, method)):
                return _Unsafe(ruleset.aliases_storing(host.match, path_info), bypass)
            return bypass

        head_as_get = method == "HEAD" and rule.head_as_get
        key_method = "GET" if method == "GET" or head_as_get else method
        variant: list[str | None] = [environ.get(environ_key) for environ_key in rule.vary_keys]
        if rule.vary_cookies:
            cookies = cookie_values(environ.get("HTTP_COOKIE", ""), rule.vary_cookies)
            if cookies is None:
                return Bypass.AMBIGUOUS_COOKIE
            variant.extend(cookies)
        if rule.allow_remote_user:
            variant.append(environ.get("REMOTE_USER"))
        if key_method not in ("GET", "HEAD"):
            body_digest = self._body_digest(environ)
            if body_digest is None:
                return Bypass.REQUEST_BODY
            variant.extend((environ.get("CONTENT_TYPE"), body_digest))
        custom_key = None
        if rule.key_template is not None:
            custom_key = rule.key_template.format_map(values)
        elif rule.key_function is not None:
            custom_key = str(rule.key_function(environ, values))
        material = key_material(
            environ,
            key_method,
            host.key,
            path_info,
            rule.query_component(environ.get("QUERY_STRING", "")),
            variant,
            custom_key,
        )
        keyspace = rule.keyspace
        entry_key, shard = keyspace.entry_key(material)
        tag_keys = [keyspace.path_tag_key(environ.get("SCRIPT_NAME", "") + path_info, shard)]
        if custom_key is not None:
            tag_keys.append(keyspace.custom_key_tag_key(custom_key, shard))
        if rule.has_tags:
            tag_keys.extend(keyspace.tag_key(tag, shard) for tag in rule.tags_for(environ, values))
        return _Lookup(rule, self._guards[rule.backend_alias], method, entry_key, tag_keys)

    def _bypass_reason(self, environ: dict[str, Any], rule: CompiledRule, method: str) -> Bypass | None:
        """Why a request a rule matched must not use the cache, or ``None``."""
        if not rule.cache:
            return Bypass.EXCLUDED
        if not environ.keys().isdisjoint(_BYPASS_KEYS):  # one check for the common case
            if "HTTP_AUTHORIZATION" in environ and not rule.allow_authorization:
                return Bypass.AUTHORIZATION
            if environ.get("REMOTE_USER") and not rule.allow_remote_user:
                return Bypass.REMOTE_USER
            if not environ.keys().isdisjoint(_METHOD_OVERRIDES):
                return Bypass.METHOD_OVERRIDE
            if "HTTP_TRANSFER_ENCODING" in environ:
                # A chunked body's length is unknown until read whole.
                return Bypass.REQUEST_BODY
        if "_method" in environ.get("QUERY_STRING", "") and _override_method(environ) is not None:
            return Bypass.METHOD_OVERRIDE
        if method in ("GET", "HEAD"):
            length = environ.get("CONTENT_LENGTH")
            if ((length and length != "0") or environ.get("wsgi.input_terminated")) and has_body(environ):
                # A body on GET/HEAD shares no entry with bodiless requests.
                return Bypass.REQUEST_BODY
        elif http.has_preconditions(environ):
            return Bypass.PRECONDITION
        if rule.unless is not None and rule.unless(environ):
            return Bypass.UNLESS
        return None

    def _body_digest(self, environ: dict[str, Any]) -> str | None:
        """A digest of the request body, which the application can still read whole.

        ``None`` when the body is larger than ``max_body_bytes`` or cut
        short (the request then bypasses).
        """
        body = read_body(environ, self.max_body_bytes)
        return None if body is None else blake2b(body, digest_size=16).hexdigest()

    def _read_entry(self, lookup: _Lookup, extra_key: str | None = None) -> tuple[bool, Entry | None]:
        """One backend call for the entry, its tag generations (and ``extra_key``).

        Returns whether the backend answered, and the entry if it is stored
        and its tags still hold (fresh or not). ``lookup.fetched`` keeps what
        the backend returned.
        """
        keys = [lookup.entry_key, *lookup.tag_keys]
        if extra_key is not None:
            keys.append(extra_key)
        fetched = lookup.guard.get_many(keys)
        if fetched is None:
            return False, None
        lookup.fetched = fetched
        raw = fetched.get(lookup.entry_key)
        return True, None if raw is None else self._valid_entry(raw, lookup)

    def _valid_entry(self, raw: bytes, lookup: _Lookup) -> Entry | None:
        remembered = self._decoded.get(lookup.entry_key)
        if remembered is not None and remembered[0] is raw:
            entry = remembered[1]
        else:
            try:
                entry = decode(raw)
            except CorruptEntry as exc:
                self._stats.incr("corrupt")
                logger.warning("wsgicache: deleting undecodable entry %s: %s", lookup.entry_key, exc)
                lookup.guard.delete(lookup.entry_key)
                return None
            if lookup.guard.backend.returns_stored_object:
                self._decoded.put(lookup.entry_key, (raw, entry), len(raw))
        fetched = lookup.fetched
        for tag_key, generation in entry.tags:
            if fetched.get(tag_key) != generation:
                return None
        return entry

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        entry: Entry,
        now: float,
        cache_header: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        extra = [("Age", str(max(int(now - entry.stored_at), 0))), *cache_header]
        if not environ.keys().isdisjoint(http.PRECONDITION_SET):
            return self._answer(environ, start_response, entry.status, entry.headers, entry.body, extra)
        start_response(entry.status, entry.headers + extra)  # the common case, without preconditions
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [entry.body]

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        extra: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """Send a whole response the cache holds, evaluating the request's preconditions."""
        if http.has_preconditions(environ):
            outcome = http.evaluate_preconditions(environ, status, headers)
            if outcome is not http.Precondition.SERVE:
                self._answer_precondition(start_response, outcome, headers, extra)
                return []
        start_response(status, headers + extra)
        if environ.get("REQUEST_METHOD") == "HEAD":
            return []
        return [body]

    @staticmethod
    def _answer_precondition(
        start_response: StartResponse,
        outcome: http.Precondition,
        headers: list[tuple[str, str]],
        extra: list[tuple[str, str]],
    ) -> None:
        if outcome is http.Precondition.NOT_MODIFIED:
            start_response("304 Not Modified", http.not_modified_headers(headers) + extra)
        else:
            start_response(
                "412 Precondition Failed",
                [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"), *extra],
            )

    def _pass(
        self, environ: dict[str, Any], start_response: StartResponse, reason: Bypass
    ) -> Iterable[bytes]:
        """Call the application unchanged, adding only the ``BYPASS`` header."""
        self._stats.incr("bypasses")
        logger.debug("wsgicache: BYPASS (%s) %s", reason.value, _describe(environ))
        if self.cache_header is None:
            return self.app(environ, start_response)
        extra = self._header_bypass

        def start_bypassed(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            return start_response(status, headers + extra, exc_info)

        return self.app(environ, start_bypassed)

    def _pass_invalidating(
        self, environ: dict[str, Any], start_response: StartResponse, unsafe: _Unsafe
    ) -> Iterable[bytes]:
        """Pass a request that may change state; if it succeeds, invalidate its URL.

        RFC 9111 section 4.4: a 2xx or 3xx answer to an unsafe method
        invalidates the target URI, and the same-host ``Location`` and
        ``Content-Location`` URIs. It happens before the response reaches
        the client, so a client never reads its own write stale.
        """
        if unsafe.bypass is not None:
            self._stats.incr("bypasses")
            logger.debug("wsgicache: BYPASS (%s) %s", unsafe.bypass.value, _describe(environ))
        extra = self._header_bypass if unsafe.bypass is not None else []
        aliases = unsafe.aliases

        def start_invalidating(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Callable[[bytes], object]:
            if exc_info is None and aliases and 200 <= http.status_code(status) < 400:
                try:
                    self._invalidate_paths(_written_paths(environ, headers), aliases)
                except Exception:  # never fail the application's answer
                    logger.exception("wsgicache: invalidating after %s failed", _describe(environ))
                    self._stats.incr("errors")
            return start_response(status, headers + extra if extra else headers, exc_info)

        return self.app(environ, start_invalidating)

    def _invalidate_paths(self, paths: list[str], aliases: list[str]) -> InvalidationResult:
        """Invalidate the paths a successful write touched.

        Not forced: with a circuit open, the write is not held up waiting for
        a backend believed dead; the invalidation is kept and re-applied.
        """
        keys_by_alias = {
            alias: [key for path in paths for key in self._keyspaces[alias].path_tag_keys_all_shards(path)]
            for alias in aliases
        }
        what = "the URL written: " + ", ".join(paths)
        return self._invalidate(keys_by_alias, what, force=False)

    # -- misses -------------------------------------------------------------

    def _fetch(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        lookup: _Lookup,
        stale: Entry | None,
    ) -> Iterable[bytes]:
        """Call the application for a miss, store what may be stored, answer.

        The tag generations the entry will depend on are read (or created)
        before the application is called: an invalidation that happens
        while it builds the response then always makes the entry stale.
        """
        rule = lookup.rule
        generations = self._tag_generations(lookup)
        head_as_get = lookup.method == "HEAD" and rule.head_as_get
        app_environ = environ
        if head_as_get or not environ.keys().isdisjoint(_FORWARD_STRIPPED):
            app_environ = {k: v for k, v in environ.items() if k not in _FORWARD_STRIPPED}
            if head_as_get:
                app_environ["REQUEST_METHOD"] = "GET"
        send_body = lookup.method != "HEAD"
        captured = CapturedResponse()
        try:
            app_iter = self.app(app_environ, captured.start_response)
        except Exception:
            if stale is None:
                raise
            return self._serve_stale(environ, start_response, stale, "raised an exception", raised=True)

        handed_over = False
        try:
            try:
                iterator = iter(app_iter)
                reason = self._read(captured, iterator, rule)
            except Exception:
                if stale is None:
                    raise
                return self._serve_stale(environ, start_response, stale, "raised an exception", raised=True)
            assert captured.status is not None
            if stale is not None and (captured.failed or http.status_code(captured.status) >= 500):
                return self._serve_stale(environ, start_response, stale, f"answered {captured.status}")
            if reason is not None:
                self._stats.incr("too_large" if reason == "too_large" else "not_stored")
                if http.has_preconditions(environ):
                    outcome = http.evaluate_preconditions(environ, captured.status, captured.headers)
                    if outcome is not http.Precondition.SERVE:
                        self._answer_precondition(
                            start_response, outcome, captured.headers, self._header_miss
                        )
                        return []
                captured.send_headers(start_response, self._header_miss)
                handed_over = True
                if send_body and not captured.chunks:
                    # Nothing read yet: hand over the app's own iterable, so the server
                    # still sees its wsgi.file_wrapper (sendfile) and closes it itself.
                    return app_iter
                return StreamingBody(captured, iterator, app_iter, send_body=send_body)
            body = b"".join(captured.chunks)
        finally:
            if not handed_over:
                close_iterable(app_iter)

        # The application's iterable is closed without an error: the response is complete.
        asked_head = lookup.method == "HEAD" and not head_as_get
        if self._why_incomplete(captured, body, asked_head=asked_head) is not None or generations is None:
            self._stats.incr("not_stored")
        else:
            try:
                self._store(lookup, captured, body, generations)
            except Exception:  # a response the cache cannot judge is sent, not stored
                logger.exception("wsgicache: could not store the response to %s", _describe(environ))
                self._stats.incr("errors")
        return self._answer(
            environ, start_response, captured.status, captured.headers, body, self._header_miss
        )

    def _read(
        self, captured: CapturedResponse, iterator: Iterator[bytes], rule: CompiledRule
    ) -> http.NotStoredReason | None:
        """Read the response until it is whole, or known not to be storable.

        Returns why it cannot be stored, or ``None`` when it is read whole
        and may be stored.
        """
        decided = captured.status is not None
        if decided:
            reason = self._why_not_storable(captured, rule)
            if reason is not None:
                return reason
        limit = self.max_entry_bytes
        for chunk in iterator:
            captured.write(chunk)
            if not decided:
                if captured.status is None:
                    continue
                decided = True
                reason = self._why_not_storable(captured, rule)
                if reason is not None:
                    return reason
            if captured.size > limit:
                return "too_large"
        if captured.status is None:
            raise RuntimeError("the application returned without calling start_response")
        if not decided:
            reason = self._why_not_storable(captured, rule)
            if reason is not None:
                return reason
        return "too_large" if captured.size > limit else None

    @staticmethod
    def _why_incomplete(
        captured: CapturedResponse, body: bytes, *, asked_head: bool
    ) -> http.NotStoredReason | None:
        """Why a response read whole must still not be stored, or ``None``."""
        if captured.failed:
            return "error"  # start_response(..., exc_info) while the body was produced
        if not asked_head:
            length = http.header_value(captured.headers, "content-length")
            if length is not None and http.parse_count(length) != len(body):
                return "length"
        return None

    def _serve_stale(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        stale: Entry,
        what: str,
        *,
        raised: bool = False,
    ) -> Iterable[bytes]:
        logger.warning(
            "wsgicache: application %s for %s; serving a stale entry",
            what,
            _describe(environ),
            exc_info=raised,
        )
        self._stats.incr("stale")
        return self._serve(environ, start_response, stale, time(), self._header_stale)

    def _why_not_storable(
        self, captured: CapturedResponse, rule: CompiledRule
    ) -> http.NotStoredReason | None:
        if captured.failed:
            return "error"
        assert captured.status is not None
        reason = http.why_not_storable(
            captured.status,
            captured.headers,
            statuses=rule.statuses,
            vary=rule.vary_lower,
            varies_on_cookies=bool(rule.vary_cookies),
            allow_set_cookie=rule.allow_set_cookie,
        )
        if reason is None:
            length = http.header_value(captured.headers, "content-length")
            if length is not None and (http.parse_count(length) or 0) > self.max_entry_bytes:
                return "too_large"
        return reason

    def _store(
        self,
        lookup: _Lookup,
        captured: CapturedResponse,
        body: bytes,
        generations: tuple[tuple[str, bytes], ...],
    ) -> None:
        rule = lookup.rule
        assert captured.status is not None
        now = time()
        age = http.initial_age(captured.headers)
        if rule.policy == "http":
            lifetime = http.http_lifetime(captured.headers, rule.timeout) - age
        else:
            lifetime = rule.timeout
        if lifetime <= 0:
            self._stats.incr("not_stored")
            return
        entry = Entry(
            captured.status,
            http.storable_headers(captured.headers),
            body,
            stored_at=now - age,
            fresh_until=now + lifetime,
            stale_until=now + lifetime + rule.stale_window,
            tags=generations,
        )
        try:
            data = encode(entry)
        except (ValueError, UnicodeError) as exc:
            self._stats.incr("not_stored")
            logger.warning("wsgicache: response for %s cannot be stored: %s", lookup.entry_key, exc)
            return
        stored = lookup.guard.set(lookup.entry_key, data, lifetime + rule.stale_window)
        if stored:
            self._stats.incr("stores")
        elif stored is False:
            self._stats.incr("not_stored")

    def _tag_generations(self, lookup: _Lookup) -> tuple[tuple[str, bytes], ...] | None:
        """The current generation of each tag of the entry, creating missing ones."""
        pairs = []
        for tag_key in lookup.tag_keys:
            generation = lookup.fetched.get(tag_key)
            if generation is None:
                generation = new_generation()
                added = lookup.guard.add(tag_key, generation, TAG_TTL)
                if added is None:
                    return None
                if not added:
                    current = lookup.guard.get_many([tag_key])
                    if not current or tag_key not in current:
                        return None
                    generation = current[tag_key]
            pairs.append((tag_key, generation))
        return tuple(pairs)

    # -- coalescing ---------------------------------------------------------------

    def _claim(self, lookup: _Lookup) -> bool:
        """Whether this request may fill the entry now (no other request is at it)."""
        if self._fills.claim(lookup.entry_key) is not None:
            return False
        lookup.claimed = True
        if not lookup.guard.backend.shared_between_processes:
            return True
        added = lookup.guard.add(lookup.rule.keyspace.lock_key(lookup.entry_key), b"1", self.lock_timeout)
        if added is False:
            self._release(lookup)
            return False
        # Taken, or unknown (the add may have reached the server before the
        # error): either way this request releases it.
        lookup.locked = True
        return True

    def _wait_for_fill(self, lookup: _Lookup) -> Entry | None:
        """A fresh entry filled by another request meanwhile, or ``None`` to fill it here.

        A request of this process at it: wait for it to finish, then look
        again (once: if it could not store the response, the waiters all go
        to the application at once rather than one after the other). A
        request of another process at it (the backend lock is taken): poll
        the backend until ``lock_wait`` runs out.
        """
        waiting_for = self._fills.claim(lookup.entry_key)
        if waiting_for is not None:
            waiting_for.wait(self.lock_wait)
            return self._look_again(lookup)
        lookup.claimed = True
        if not lookup.guard.backend.shared_between_processes:
            return None
        lock_key = lookup.rule.keyspace.lock_key(lookup.entry_key)
        added = lookup.guard.add(lock_key, b"1", self.lock_timeout)
        if added is not False:
            # Taken, or unknown (a timed-out add may still be applied when the
            # server continues): either way this request releases it.
            lookup.locked = True
            return None
        if self._pending.take_lock(lookup.guard.alias, lock_key):
            lookup.locked = True  # this process's own lock, left behind by a failed release
            return None
        if lookup.guard.failed_within(lock_key, _SETTLING_TIME):
            # Soon after the shard failed, a lock may be left over from the outage
            # (its release lost, or replicated to the promoted replica): do not
            # wait on it; at worst a few processes fill the entry at once.
            return None
        deadline = monotonic() + self.lock_wait
        while monotonic() < deadline:
            sleep(_POLL_INTERVAL)
            answered, entry = self._read_entry(lookup, lock_key)
            if not answered:
                break  # the backend stopped answering: do not wait on it
            if entry is not None and time() < entry.fresh_until:
                self._release(lookup)
                return entry
            if lock_key not in lookup.fetched:
                break  # the other process is done and stored nothing (or its lock expired)
        return None

    def _look_again(self, lookup: _Lookup) -> Entry | None:
        """The entry if it is fresh now."""
        _, entry = self._read_entry(lookup)
        if entry is None or time() >= entry.fresh_until:
            return None
        return entry

    def _release(self, lookup: _Lookup) -> None:
        if lookup.locked:
            lookup.locked = False
            lock_key = lookup.rule.keyspace.lock_key(lookup.entry_key)
            if not lookup.guard.delete(lock_key):
                # Left behind, the lock (perhaps replicated to the next master)
                # would make other processes wait for it: delete it later.
                self._pending.add_lock(lookup.guard.alias, lock_key)
        if lookup.claimed:
            lookup.claimed = False
            self._fills.release(lookup.entry_key)

    # -- management -------------------------------------------------------------

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
        for alias, keyspace in self._keyspaces.items():
            tag_keys: list[str] = []
            if url is not None:
                tag_keys.extend(keyspace.path_tag_keys_all_shards(_wsgi_path(url)))
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

    def clear(self, *, strict: bool = False) -> InvalidationResult:
        """Empty every configured backend's namespace.

        A backend that does not acknowledge it is handled as for
        :meth:`invalidate`: logged, counted, kept and re-applied.
        """
        self._stats.incr("invalidations")
        acknowledged = True
        for alias, guard in self._guards.items():
            if not guard.clear():
                acknowledged = False
                self._pending.add_clear(alias, "clear()")
        return self._result(acknowledged, None, "clear()", strict=strict)

    def _invalidate(
        self, keys_by_alias: Mapping[str, list[str]], what: str, *, force: bool, strict: bool = False
    ) -> InvalidationResult:
        """Write new generations for ``keys_by_alias``; keep what is not acknowledged."""
        self._stats.incr("invalidations")
        acknowledged = True
        replicated: bool | None = None
        for alias, tag_keys in keys_by_alias.items():
            if not tag_keys:
                continue
            written = self._guards[alias].set_many(
                {tag_key: new_generation() for tag_key in tag_keys}, TAG_TTL, force=force
            )
            if not written.ok:
                acknowledged = False
                self._pending.add(alias, tag_keys, what)
            elif written.replicas is not None:
                replicated = replicated is not False and written.replicas > 0
        return self._result(acknowledged, replicated, what, strict=strict)

    def _result(
        self, acknowledged: bool, replicated: bool | None, what: str, *, strict: bool
    ) -> InvalidationResult:
        result = InvalidationResult(acknowledged, replicated, len(self._pending))
        if not acknowledged:
            self._stats.incr("invalidation_failures")
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
        lock = self._pending.retrying()
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
        pending = self._pending
        try:
            failed = False
            for alias, lock_keys in pending.lock_batches():
                guard = self._guards[alias]
                released = [key for key in lock_keys if guard.delete(key)]
                pending.locks_released(alias, released)
                failed = failed or len(released) < len(lock_keys)
            for alias, keys, clear, version in pending.batches():
                guard = self._guards[alias]
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

    def stats(self) -> dict[str, float]:
        """Counters of this process: hits, misses, stores, errors, hit_ratio and more."""
        return self._stats.snapshot()

    def close(self) -> None:
        """Close every backend (connections, files)."""
        for instance in self.backends.values():
            try:
                instance.close()
            except Exception:
                logger.exception("wsgicache: closing %r failed", instance)

    def __repr__(self) -> str:
        return f"<CacheMiddleware {len(self.rules)} rules, backends={sorted(self.backends)}>"


def _wsgi_path(url: str) -> str:
    """The ``SCRIPT_NAME + PATH_INFO`` form of a URL or path."""
    path = urlsplit(url).path or "/"
    return unquote_to_bytes(path).decode("latin-1")


def _override_method(environ: Mapping[str, Any]) -> str | None:
    """The method a request asks the application to act as, if it carries an override.

    From ``X-HTTP-Method-Override`` and friends, or a ``_method`` query
    parameter (Rails-style forms, some method-override middleware).
    """
    for name in METHOD_OVERRIDE_HEADERS:
        value = environ.get(name)
        if value is not None:
            return str(value)
    query: str = environ.get("QUERY_STRING", "")
    if "_method" in query:
        for name, found in parse_qsl(query, keep_blank_values=True, encoding="latin-1"):
            if name == "_method":
                return found
    return None


def _is_unsafe(environ: Mapping[str, Any], method: str) -> bool:
    """Whether a request may change state: its method, or a method override, is not safe.

    Frameworks upper-case the method (werkzeug reads ``delete`` as ``DELETE``).
    """
    if method.upper() not in _SAFE_METHODS:
        return True
    override = _override_method(environ)
    return override is not None and override.strip().upper() not in _SAFE_METHODS


def _written_paths(environ: Mapping[str, Any], headers: list[tuple[str, str]]) -> list[str]:
    """The paths a successful unsafe request invalidates (RFC 9111 section 4.4).

    Its own path, then those of same-host ``Location`` and
    ``Content-Location`` answers and of a WebDAV ``Destination`` (``MOVE``,
    ``COPY``), resolved against the request URL. Unparsable URLs are
    skipped; nothing here raises.
    """
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    paths = [path]
    scheme = environ.get("wsgi.url_scheme", "http")
    host = request_host(environ)
    if host is None:
        return paths
    base = f"{scheme}://{host.match}{quote(path.encode('latin-1', 'replace'), safe='/')}"
    targets = [http.header_value(headers, "location"), http.header_value(headers, "content-location")]
    targets.append(environ.get("HTTP_DESTINATION"))
    for target in targets:
        if not target:
            continue
        try:
            parts = urlsplit(urljoin(base, target.strip()))
            if parts.scheme not in ("http", "https") or match_form(parts.netloc, parts.scheme) != host.match:
                continue
        except ValueError:
            continue
        written = unquote_to_bytes(parts.path or "/").decode("latin-1")
        if written not in paths:
            paths.append(written)
    return paths


def _describe(environ: Mapping[str, Any]) -> str:
    return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')!r}"
