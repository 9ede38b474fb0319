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

This module is the WSGI adapter of the cache: it turns the environ into a
:class:`~wsgicache.request.RequestView`, asks the
:class:`~wsgicache.plan.Planner` what to do, reads and stores through the
:class:`~wsgicache.cache.Cache`, takes the RFC 9111 decisions of
:mod:`wsgicache.decisions`, and speaks WSGI: ``start_response``, iterables,
``close()``. Requests no rule matches go to the application untouched,
without any backend call. A failing backend never fails a request: the
application answers, the error is logged to the ``wsgicache`` logger and
counted in :meth:`CacheMiddleware.stats`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from time import time
from typing import Any

from . import checks, decisions, http
from .backends import Backend
from .body import has_body, read_body
from .cache import Cache
from .coalescing import Coalescer, Fill, Read
from .config import middleware_arguments
from .errors import ConfigurationError
from .freshness import NO_REQUEST_DIRECTIVES, NotStoredReason, RequestDirectives, Reuse
from .invalidation import InvalidationResult
from .plan import Bypass, Plan, Planner, Unsafe, written_paths
from .ranges import RangeOutcome, answer_range
from .request import RequestView
from .response import CapturedResponse, StartResponse, StreamingBody, close_iterable
from .rules import Rule, RuleSet
from .storage import FLAG_NO_CACHE, Entry
from .validation import conditional_headers, has_validator, updated_headers
from .variants import vary_names

logger = logging.getLogger("wsgicache")

WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

#: Request headers removed when a cacheable miss is forwarded, so that the
#: application returns the full response that is stored; the middleware
#: then evaluates the client's own preconditions and range itself.
_FORWARD_STRIPPED = frozenset({*http.PRECONDITION_HEADERS, "HTTP_RANGE", "HTTP_IF_RANGE"})

#: Request headers that make a hit more than "send the entry": preconditions, a range.
_ANSWER_KEYS = frozenset({*http.PRECONDITION_HEADERS, "HTTP_RANGE"})

#: Background refreshes of stale entries (stale-while-revalidate) running at once, at most.
_MAX_REFRESHES = 8

#: The environ keys of the revalidation headers (RFC 9111 4.3.1).
_CONDITIONAL_KEYS = {"if-none-match": "HTTP_IF_NONE_MATCH", "if-modified-since": "HTTP_IF_MODIFIED_SINCE"}


class WSGIRequest(RequestView):
    """A WSGI request for the core: the environ, and its body read so the application can read it again."""

    __slots__ = ()

    def has_body(self) -> bool:
        environ = self.environ
        length = environ.get("CONTENT_LENGTH")
        # Without a length, a server that terminates wsgi.input lets a peek tell (the byte is kept).
        return bool((length and length != "0") or environ.get("wsgi.input_terminated")) and has_body(
            environ  # type: ignore[arg-type]
        )

    def read_body(self, limit: int) -> bytes | None:
        return read_body(self.environ, limit)  # type: ignore[arg-type]


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
    :param clock: Unix time in seconds, the one clock of the cache:
        freshness and ages, the circuit breaker, the retry schedule of
        pending invalidations (tests pass a fake one).
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
        clock: Callable[[], float] = time,
    ) -> None:
        if not callable(app):
            raise ConfigurationError(f"CacheMiddleware wraps a WSGI application (a callable), got {app!r}")
        self.app = app
        self.cache_header = None if cache_header is None else checks.header_name("cache_header", cache_header)
        if isinstance(max_entry_bytes, bool) or not isinstance(max_entry_bytes, int) or max_entry_bytes < 1:
            raise ConfigurationError(
                f"max_entry_bytes must be a positive whole number, got {max_entry_bytes!r}"
            )
        self.max_entry_bytes = max_entry_bytes
        self.lock_timeout = checks.seconds("lock_timeout", lock_timeout, example="30")
        self.lock_wait = checks.seconds("lock_wait", lock_wait, zero="no coalescing", example="5")
        if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int) or max_body_bytes < 0:
            raise ConfigurationError(
                f"max_body_bytes must be 0 or a positive whole number of bytes, got {max_body_bytes!r}"
            )
        self.max_body_bytes = max_body_bytes
        self.cache = Cache(
            backend,
            key_prefix=key_prefix,
            failure_threshold=failure_threshold,
            retry_after=retry_after,
            probe_interval=probe_interval,
            decoded_cache_bytes=decoded_cache_bytes,
            clock=clock,
        )
        self.key_prefix = key_prefix
        self.backends = self.cache.backends
        self._clock = clock
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
            compiled.append(rule.compile(self.cache.keyspaces[rule.backend], instance.default_timeout))
        self.rules = list(rules)
        self._planner = Planner(RuleSet(compiled), max_body_bytes=max_body_bytes)
        self._coalescer = Coalescer(
            self.cache.read,
            self.cache.pending,
            lock_timeout=self.lock_timeout,
            lock_wait=self.lock_wait,
            clock=clock,
        )
        self._stats = self.cache.stats
        # Background refreshes (stale-while-revalidate) under way at once, at most.
        self._refreshes = threading.BoundedSemaphore(_MAX_REFRESHES)
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
            outcome = self._planner.plan(WSGIRequest(environ))
        except Exception:
            logger.exception(
                "wsgicache: could not prepare %s; passing it to the application", _describe(environ)
            )
            self._stats.incr("errors")
            return self.app(environ, start_response)
        if outcome is None:
            return self.app(environ, start_response)
        if isinstance(outcome, Plan):
            return self._cached(environ, start_response, outcome)
        if isinstance(outcome, Unsafe):
            return self._pass_invalidating(environ, start_response, outcome)
        return self._pass(environ, start_response, outcome)

    def _cached(self, environ: dict[str, Any], start_response: StartResponse, plan: Plan) -> Iterable[bytes]:
        """Answer a planned request: from the cache, after revalidation, or from the application."""
        cache = self.cache
        rule = plan.rule
        request = NO_REQUEST_DIRECTIVES
        if rule.honours_request:
            cache_control = environ.get("HTTP_CACHE_CONTROL")
            pragma = environ.get("HTTP_PRAGMA")
            if cache_control is not None or pragma is not None:
                request = decisions.request_directives_for(rule, cache_control, pragma)
        if cache.blocked(plan):
            if request.only_if_cached:
                return self._gateway_timeout(start_response)
            return self._pass(environ, start_response, Bypass.PENDING_INVALIDATION)
        read = cache.read(plan)
        if not read.answered:
            if request.only_if_cached:
                return self._gateway_timeout(start_response)
            return self._pass(environ, start_response, Bypass.BACKEND)
        entry = read.entry
        now = self._clock()
        verdict = Reuse.REFILL
        if entry is not None:
            if (
                request is NO_REQUEST_DIRECTIVES
                and now < entry.fresh_until
                and not entry.flags & FLAG_NO_CACHE
            ):
                self._stats.incr("hits")  # the common case
                return self._serve(environ, start_response, plan, entry, now, self._header_hit)
            verdict = decisions.reuse(rule, entry, now, request)
            if verdict is Reuse.FRESH:
                self._stats.incr("hits")
                return self._serve(environ, start_response, plan, entry, now, self._header_hit)
            if verdict is Reuse.STALE_ALLOWED:
                self._stats.incr("stale")
                return self._serve(environ, start_response, plan, entry, now, self._header_stale)
            if verdict is Reuse.UNSATISFIABLE:
                return self._gateway_timeout(start_response)
            if verdict is Reuse.STALE_WHILE_REVALIDATE:
                fill = self._coalescer.try_claim(plan, cache.guards[plan.alias])
                if fill.owned and plan.method not in ("GET", "HEAD"):
                    # A rule keyed on the request body: this request refreshes it with its own body.
                    with fill:
                        self._stats.incr("misses")
                        return self._fetch(environ, start_response, plan, read, entry, request, None)
                if fill.owned:
                    self._refresh_in_background(environ, plan, read, entry, request, fill)
                self._stats.incr("stale")
                return self._serve(environ, start_response, plan, entry, now, self._header_stale)
        elif request.only_if_cached:
            return self._gateway_timeout(start_response)
        if entry is None and "HTTP_RANGE" in environ:
            # A hit answers a range request itself; a miss lets the application
            # answer the range (resumed downloads, media seeking), and nothing is stored.
            return self._pass(environ, start_response, Bypass.RANGE)
        validate = entry if verdict is Reuse.REVALIDATE else None
        if not self.lock_wait:
            self._stats.incr("misses")
            return self._fetch(environ, start_response, plan, read, entry, request, validate)
        with self._coalescer.claim_or_wait(plan, cache.guards[plan.alias]) as fill:
            if fill.entry is not None:
                self._stats.incr("hits")
                self._stats.incr("coalesced")
                return self._serve(environ, start_response, plan, fill.entry, self._clock(), self._header_hit)
            self._stats.incr("misses")
            return self._fetch(environ, start_response, plan, read, entry, request, validate)

    def _serve(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        plan: Plan,
        entry: Entry,
        now: float,
        cache_header: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """Send a stored entry, with its ``Age``."""
        rule = plan.rule
        headers = entry.headers
        if rule.rewrites_hit_headers:
            if rule.emit_max_age:
                headers = decisions.downstream_headers(rule, entry, now)
            else:
                headers = self._sent_headers(plan, headers)
        extra = [("Age", str(max(int(now - entry.stored_at), 0))), *cache_header]
        if not environ.keys().isdisjoint(_ANSWER_KEYS):
            return self._answer(environ, start_response, entry.status, headers, entry.body, extra)
        start_response(entry.status, headers + extra)  # the common case, without preconditions
        return [] if plan.method == "HEAD" else [entry.body]

    def _answer(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        extra: list[tuple[str, str]],
    ) -> Iterable[bytes]:
        """Send a whole response the cache holds, evaluating the request's preconditions and range."""
        if http.has_preconditions(environ):
            outcome = http.evaluate_preconditions(environ, status, headers)
            if outcome is not http.Precondition.SERVE:
                self._answer_precondition(start_response, outcome, headers, extra)
                return []
        method = environ.get("REQUEST_METHOD")
        range_header = environ.get("HTTP_RANGE")
        if range_header is not None:
            ranged = answer_range(
                range_header, environ.get("HTTP_IF_RANGE"), status, headers, body, method=method or "GET"
            )
            if ranged.outcome is not RangeOutcome.FULL:
                start_response(ranged.status, ranged.headers + extra)
                return [] if method == "HEAD" else [bytes(ranged.body)]
        start_response(status, headers + extra)
        if method == "HEAD":
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

    def _gateway_timeout(self, start_response: StartResponse) -> Iterable[bytes]:
        """``only-if-cached`` and nothing stored answers it (RFC 9111 5.2.1.7)."""
        self._stats.incr("misses")
        start_response(
            "504 Gateway Timeout",
            [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "0"), *self._header_miss],
        )
        return []

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
        self, environ: dict[str, Any], start_response: StartResponse, unsafe: Unsafe
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
                    self.cache.invalidate_paths(written_paths(environ, headers), aliases)
                except Exception:  # never fail the application's answer
                    logger.exception("wsgicache: invalidating after %s failed", _describe(environ))
                    self._stats.incr("errors")
            return start_response(status, headers + extra if extra else headers, exc_info)

        return self.app(environ, start_invalidating)

    # -- misses and revalidation -----------------------------------------------

    def _refresh_in_background(
        self,
        environ: dict[str, Any],
        plan: Plan,
        read: Read,
        stale: Entry,
        request: RequestDirectives,
        fill: Fill,
    ) -> None:
        """Refresh a stale entry in a thread while it is served (stale-while-revalidate, RFC 5861 3).

        The thread holds ``fill`` until the new response is stored, so
        other requests keep getting the stale entry meanwhile rather than
        refreshing it too.
        """
        if not self._refreshes.acquire(blocking=False):
            fill.release()  # enough refreshes under way: this one waits for a later request
            return
        refresh_environ = {key: value for key, value in environ.items() if key not in _FORWARD_STRIPPED}
        refresh_environ["wsgi.input"] = io.BytesIO(b"")
        refresh_environ.pop("CONTENT_LENGTH", None)
        validate = stale if plan.rule.policy == "http" and has_validator(stale.headers) else None

        def refresh() -> None:
            with fill, self._refreshes_done():
                try:
                    self._stats.incr("misses")
                    body = self._fetch(
                        refresh_environ, _discard_response, plan, read, None, request, validate
                    )
                    try:
                        for _ in body:
                            pass
                    finally:
                        close_iterable(body)
                except Exception:
                    logger.exception("wsgicache: refreshing %s in the background failed", _describe(environ))
                    self._stats.incr("errors")

        try:
            threading.Thread(target=refresh, name="wsgicache-refresh", daemon=True).start()
        except Exception:  # no thread to be had: the stale entry is served all the same
            logger.exception("wsgicache: could not start a background refresh of %s", _describe(environ))
            self._stats.incr("errors")
            self._refreshes.release()
            fill.release()

    @contextlib.contextmanager
    def _refreshes_done(self) -> Iterator[None]:
        try:
            yield
        finally:
            self._refreshes.release()

    def _fetch(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        plan: Plan,
        read: Read,
        stale: Entry | None,
        request: RequestDirectives,
        validate: Entry | None,
    ) -> Iterable[bytes]:
        """Call the application, store what may be stored, answer.

        ``validate``: a stored entry to revalidate; the application is asked
        conditionally and a ``304`` freshens the entry (RFC 9111 4.3).
        ``stale``: a stored entry that may answer if the application fails.

        The tag generations the entry will depend on are read (or created)
        before the application is called: an invalidation that happens
        while it builds the response then always makes the entry stale.
        """
        rule = plan.rule
        generations = self.cache.tag_generations(plan, read.fetched)
        # The application gets a copy: what it (or a middleware inside) changes in
        # it never changes the request the response is stored and answered for.
        app_environ = {k: v for k, v in environ.items() if k not in _FORWARD_STRIPPED}
        if plan.head_as_get:
            app_environ["REQUEST_METHOD"] = "GET"
        if validate is not None:
            for name, value in conditional_headers(validate.headers):
                app_environ[_CONDITIONAL_KEYS[name.lower()]] = value
        send_body = plan.method != "HEAD"
        request_time = self._clock()
        captured = CapturedResponse()
        try:
            app_iter = self.app(app_environ, captured.start_response)
        except Exception:
            if not self._may_serve_stale(plan, stale, request):
                raise
            return self._serve_stale(environ, start_response, plan, stale, "raised an exception", raised=True)

        handed_over = False
        revalidated = False
        try:
            try:
                iterator = iter(app_iter)
                reason = self._read(captured, iterator, plan, environ, request)
                if validate is not None and reason == "partial" and captured.status is not None:
                    # A 304 has no body: what an application sends with one is not read.
                    revalidated = http.status_code(captured.status) == 304 and not captured.failed
            except Exception:
                if not self._may_serve_stale(plan, stale, request):
                    raise
                return self._serve_stale(
                    environ, start_response, plan, stale, "raised an exception", raised=True
                )
            assert captured.status is not None
            if (captured.failed or http.status_code(captured.status) >= 500) and self._may_serve_stale(
                plan, stale, request
            ):
                return self._serve_stale(environ, start_response, plan, stale, f"answered {captured.status}")
            if reason is not None and not revalidated:
                self._stats.incr("too_large" if reason == "too_large" else "not_stored")
                logger.debug("wsgicache: not stored (%s) %s", reason, _describe(environ))
                if http.has_preconditions(environ):
                    outcome = http.evaluate_preconditions(environ, captured.status, captured.headers)
                    if outcome is not http.Precondition.SERVE:
                        self._answer_precondition(
                            start_response,
                            outcome,
                            self._sent_headers(plan, captured.headers),
                            self._header_miss,
                        )
                        return []
                if rule.private_fields:
                    captured.headers = self._sent_headers(plan, captured.headers)
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
        response_time = self._clock()
        if revalidated:
            assert validate is not None
            return self._freshen(
                environ,
                start_response,
                plan,
                read,
                validate,
                captured,
                generations,
                request,
                request_time,
                response_time,
            )
        asked_head = plan.method == "HEAD" and not plan.head_as_get
        status, headers = captured.status, captured.headers
        why = _why_incomplete(captured, body, asked_head=asked_head)
        if why is None and generations is None:
            why = "error"
        entry: Entry | NotStoredReason = why or decisions.new_entry(
            rule,
            status,
            headers,
            body,
            request_time=request_time,
            response_time=response_time,
            tags=generations or (),
        )
        self._store(environ, plan, entry, headers, response_time)
        if rule.emit_max_age and isinstance(entry, Entry):
            headers = decisions.downstream_headers(rule, entry, response_time)
        return self._answer(
            environ, start_response, status, self._sent_headers(plan, headers), body, self._header_miss
        )

    def _freshen(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        plan: Plan,
        read: Read,
        stored: Entry,
        captured: CapturedResponse,
        generations: tuple[tuple[str, bytes], ...] | None,
        request: RequestDirectives,
        request_time: float,
        response_time: float,
    ) -> Iterable[bytes]:
        """The application answered ``304`` to a revalidation: freshen the stored entry and answer from it."""
        refreshed = decisions.refreshed_entry(
            plan.rule,
            stored,
            captured.headers,
            request_time=request_time,
            response_time=response_time,
            tags=generations or (),
            request_authorization="HTTP_AUTHORIZATION" in environ,
            request_no_store=request.no_store,
        )
        if refreshed is None:
            # The 304 is for another response than the one stored: ask for the full one.
            return self._fetch(environ, start_response, plan, read, None, request, None)
        self._stats.incr("revalidated")
        if generations is None:
            refreshed = "error"
        self._store(environ, plan, refreshed, stored.headers, response_time)
        if not isinstance(refreshed, Entry) and refreshed not in ("error", "request-no-store"):
            # The application no longer lets the response be stored: drop the old one too.
            vary = vary_names(stored.headers)
            self.cache.discard(plan, () if vary == "*" else vary)
        if isinstance(refreshed, Entry):
            return self._serve(environ, start_response, plan, refreshed, response_time, self._header_miss)
        # Freshened but not to be stored again: still answer with the stored body.
        headers = updated_headers(stored.headers, captured.headers)
        return self._answer(
            environ,
            start_response,
            stored.status,
            self._sent_headers(plan, headers),
            stored.body,
            self._header_miss,
        )

    def _store(
        self,
        environ: Mapping[str, Any],
        plan: Plan,
        entry: Entry | NotStoredReason,
        headers: list[tuple[str, str]],
        response_time: float,
    ) -> None:
        """Store ``entry`` (or count why not); a failure is logged and counted, never raised."""
        if not isinstance(entry, Entry):
            self._stats.incr("not_stored")
            logger.debug("wsgicache: not stored (%s) %s", entry, _describe(environ))
            return
        vary = vary_names(headers)
        try:
            stored = self.cache.store(
                plan, entry, entry.stale_until - response_time, () if vary == "*" else vary
            )
        except (ValueError, UnicodeError) as exc:
            self._stats.incr("not_stored")
            logger.warning("wsgicache: response for %s cannot be stored: %s", _describe(environ), exc)
            return
        except Exception:  # a response the cache cannot judge is sent, not stored
            logger.exception("wsgicache: could not store the response to %s", _describe(environ))
            self._stats.incr("errors")
            return
        if stored:
            self._stats.incr("stores")
        elif stored is False:
            self._stats.incr("not_stored")

    def _read(
        self,
        captured: CapturedResponse,
        iterator: Iterator[bytes],
        plan: Plan,
        environ: Mapping[str, Any],
        request: RequestDirectives,
    ) -> NotStoredReason | None:
        """Read the response until it is whole, or known not to be storable.

        Returns why it cannot be stored, or ``None`` when it is read whole
        and may be stored.
        """
        decided = captured.status is not None
        if decided:
            reason = self._why_not_storable(captured, plan, environ, request)
            if reason is not None:
                return reason
        limit = self.max_entry_bytes
        for chunk in iterator:
            captured.write(chunk)
            if not decided:
                if captured.status is None:
                    continue
                decided = True
                reason = self._why_not_storable(captured, plan, environ, request)
                if reason is not None:
                    return reason
            if captured.size > limit:
                return "too_large"
        if captured.status is None:
            raise RuntimeError("the application returned without calling start_response")
        if not decided:
            reason = self._why_not_storable(captured, plan, environ, request)
            if reason is not None:
                return reason
        return "too_large" if captured.size > limit else None

    def _why_not_storable(
        self,
        captured: CapturedResponse,
        plan: Plan,
        environ: Mapping[str, Any],
        request: RequestDirectives,
    ) -> NotStoredReason | None:
        if captured.failed:
            return "error"
        assert captured.status is not None
        reason = decisions.not_storable_reason(
            plan.rule,
            captured.status,
            captured.headers,
            method="GET" if plan.head_as_get else plan.method,
            request_authorization="HTTP_AUTHORIZATION" in environ,
            request_no_store=request.no_store,
        )
        if reason is None:
            length = http.header_value(captured.headers, "content-length")
            if length is not None and (http.parse_count(length) or 0) > self.max_entry_bytes:
                return "too_large"
        return reason

    def _may_serve_stale(self, plan: Plan, stale: Entry | None, request: RequestDirectives) -> bool:
        return stale is not None and decisions.stale_on_error(plan.rule, stale, self._clock(), request)

    def _serve_stale(
        self,
        environ: dict[str, Any],
        start_response: StartResponse,
        plan: Plan,
        stale: Entry | None,
        what: str,
        *,
        raised: bool = False,
    ) -> Iterable[bytes]:
        assert stale is not None
        logger.warning(
            "wsgicache: application %s for %s; serving a stale entry",
            what,
            _describe(environ),
            exc_info=raised,
        )
        self._stats.incr("stale")
        return self._serve(environ, start_response, plan, stale, self._clock(), self._header_stale)

    @staticmethod
    def _sent_headers(plan: Plan, headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
        """The response headers sent on: without the targeted fields meant for this cache alone."""
        private = plan.rule.private_fields
        if not private:
            return headers
        return [(name, value) for name, value in headers if name.lower() not in private]

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

        See :meth:`wsgicache.cache.Cache.invalidate`.
        """
        return self.cache.invalidate(url, tags=tags, key=key, strict=strict)

    def clear(self, *, strict: bool = False) -> InvalidationResult:
        """Empty every configured backend's namespace. See :meth:`wsgicache.cache.Cache.clear`."""
        return self.cache.clear(strict=strict)

    def stats(self) -> dict[str, float]:
        """Counters of this process: hits, misses, stores, errors, hit_ratio and more."""
        return self._stats.snapshot()

    def close(self) -> None:
        """Close every backend (connections, files)."""
        self.cache.close()

    def __repr__(self) -> str:
        return f"<CacheMiddleware {len(self.rules)} rules, backends={sorted(self.backends)}>"


def _discard_response(
    status: str, headers: list[tuple[str, str]], exc_info: Any = None
) -> Callable[[bytes], object]:
    """The ``start_response`` of a background refresh: nobody waits for its answer."""
    return lambda data: None


def _why_incomplete(captured: CapturedResponse, body: bytes, *, asked_head: bool) -> NotStoredReason | None:
    """Why a response read whole must still not be stored, or ``None``."""
    if captured.failed:
        return "error"  # start_response(..., exc_info) while the body was produced
    if not asked_head:
        length = http.header_value(captured.headers, "content-length")
        if length is not None and http.parse_count(length) != len(body):
            return "length"
    return None


def _describe(environ: Mapping[str, Any]) -> str:
    return f"{environ.get('REQUEST_METHOD')} {environ.get('PATH_INFO')!r}"
