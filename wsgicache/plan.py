"""Planning a request: which rule decides, whether the cache is used, and under which keys.

:class:`Planner` is built once from the compiled rules; :meth:`Planner.plan`
turns a :class:`~wsgicache.request.RequestView` into one of four answers,
without any backend call::

    planner = Planner(ruleset, max_body_bytes=65536)
    outcome = planner.plan(RequestView(environ))
    if outcome is None: ...                 # no rule: pass it on untouched
    elif isinstance(outcome, Bypass): ...   # a rule matched; the app answers, uncached
    elif isinstance(outcome, Unsafe): ...   # may change state: pass on, invalidate on success
    else: ...                               # a Plan: look up outcome.entry_key and outcome.tag_keys

The only effects are reading a request body a rule keys on (through the
view's reader, which leaves it readable) and the rule's own callables.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from hashlib import blake2b
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote, unquote_to_bytes, urljoin, urlsplit

from . import http
from .keys import METHOD_OVERRIDE_HEADERS, OVERRIDE_HEADERS, key_material, match_form, request_host
from .memo import FifoMemo
from .request import RequestView
from .rules import CompiledRule, RuleSet

#: Methods that never change state (RFC 9110 section 9.2.1; WebDAV's PROPFIND
#: and REPORT, the SEARCH and QUERY methods): they invalidate nothing.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PROPFIND", "REPORT", "SEARCH", "QUERY"})

_METHOD_OVERRIDES = frozenset(METHOD_OVERRIDE_HEADERS)

#: Environ keys any of which can make a matched request bypass (checked in one call first).
_BYPASS_KEYS = frozenset(
    {"HTTP_AUTHORIZATION", "REMOTE_USER", "HTTP_TRANSFER_ENCODING", *METHOD_OVERRIDE_HEADERS}
)

#: Environ keys whose presence makes a plan depend on more than the URL: such
#: requests are planned afresh, never from the memo.
_PLAN_DEPENDS = _BYPASS_KEYS | frozenset(OVERRIDE_HEADERS)

PlanMemoKey = tuple[str, "str | None", "str | None", "str | None", "str | None", str, str, str, "str | None"]


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


class Unsafe:
    """A request that may change state: passed on, and invalidating its URL on success."""

    __slots__ = ("aliases", "bypass")

    def __init__(self, aliases: list[str], bypass: Bypass | None) -> None:
        self.aliases = aliases  # backends whose rules may hold entries of the URL
        self.bypass = bypass  # why a matching rule did not cache it (BYPASS header), if one matched


class Plan:
    """The lookup one matched request makes: the rule, the method, the keys."""

    __slots__ = ("alias", "entry_key", "head_as_get", "method", "read_keys", "request", "rule", "tag_keys")

    def __init__(
        self,
        request: RequestView,
        rule: CompiledRule,
        method: str,
        entry_key: str,
        tag_keys: Sequence[str],
    ) -> None:
        self.request = request
        self.rule = rule
        self.alias = rule.backend_alias
        self.method = method
        self.head_as_get = method == "HEAD" and rule.head_as_get
        self.entry_key = entry_key
        self.tag_keys = tag_keys
        self.read_keys = [entry_key, *tag_keys]  # what a lookup reads, in one call

    @property
    def lock_key(self) -> str:
        return self.rule.keyspace.lock_key(self.entry_key)

    def __repr__(self) -> str:
        return f"<Plan {self.method} {self.entry_key} tags={len(self.tag_keys)}>"


class _Remembered(NamedTuple):
    """What a plan holds besides its request (a tuple, so the memo counts its text)."""

    rule: CompiledRule
    method: str
    entry_key: str
    tag_keys: tuple[str, ...]


class Planner:
    """Decides, for each request, what the cache does with it (see the module docstring)."""

    memo_size = 16384
    memo_bytes = 8 * 1024 * 1024  # characters of URLs and keys held

    def __init__(self, ruleset: RuleSet, *, max_body_bytes: int) -> None:
        self.ruleset = ruleset
        self.max_body_bytes = max_body_bytes
        # The plans of GET and HEAD requests whose keys depend on their URL only.
        self._plans: FifoMemo[PlanMemoKey, _Remembered] = FifoMemo(self.memo_size, max_bytes=self.memo_bytes)

    def plan(self, request: RequestView) -> Plan | Bypass | Unsafe | None:
        """``None``: no rule matches; a :class:`Bypass`; an :class:`Unsafe`; else a :class:`Plan`."""
        environ = request.environ
        method = request.method
        if (method == "GET" or method == "HEAD") and environ.keys().isdisjoint(_PLAN_DEPENDS):
            memo_key: PlanMemoKey = (
                method,
                environ.get("HTTP_HOST"),
                environ.get("SERVER_NAME") if "HTTP_HOST" not in environ else None,
                environ.get("SERVER_PORT") if "HTTP_HOST" not in environ else None,
                environ.get("wsgi.url_scheme"),
                request.script_name,
                request.path,
                request.query,
                environ.get("RAW_URI") or environ.get("REQUEST_URI"),
            )
            remembered = self._plans.get(memo_key)
            if remembered is not None and not request.has_body():
                return Plan(request, *remembered)
            planned = self._plan(request)
            if type(planned) is Plan and planned.rule.plan_depends_on_url_only and not request.has_body():
                self._plans.put(
                    memo_key,
                    _Remembered(planned.rule, planned.method, planned.entry_key, tuple(planned.tag_keys)),
                )
            return planned
        return self._plan(request)

    def _plan(self, request: RequestView) -> Plan | Bypass | Unsafe | None:
        ruleset = self.ruleset
        environ = request.environ
        method = request.method
        unsafe = method not in ("GET", "HEAD") and is_unsafe(environ, method)
        host = request_host(environ)
        path_info = request.path
        if host is None:
            # Not a valid Host: never looked up nor stored, whatever the rules say.
            if unsafe:
                return Unsafe(ruleset.aliases_storing("", path_info), Bypass.INVALID_HOST)
            return Bypass.INVALID_HOST if ruleset.match("", path_info, method) else None
        found = ruleset.match(host.match, path_info, method)
        if found is None:
            if unsafe:
                aliases = ruleset.aliases_storing(host.match, path_info)
                return Unsafe(aliases, None) if aliases else None
            return None
        rule, values = found
        bypass = self.bypass_reason(request, rule, method)
        if bypass is not None:
            if unsafe or (bypass is Bypass.METHOD_OVERRIDE and is_unsafe(environ, method)):
                return Unsafe(ruleset.aliases_storing(host.match, path_info), bypass)
            return bypass

        key_method = "GET" if method == "GET" or (method == "HEAD" and rule.head_as_get) else method
        variant: list[str | None] = [environ.get(environ_key) for environ_key in rule.vary_keys]
        if rule.vary_cookies:
            cookies = request.cookies(rule.vary_cookies)
            if cookies is None:
                return Bypass.AMBIGUOUS_COOKIE
            variant.extend(cookies)
        if rule.allow_remote_user:
            variant.append(environ.get("REMOTE_USER"))
        if key_method not in ("GET", "HEAD"):
            body = request.read_body(self.max_body_bytes)
            if body is None:
                return Bypass.REQUEST_BODY
            variant.extend((environ.get("CONTENT_TYPE"), blake2b(body, digest_size=16).hexdigest()))
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
            rule.query_component(request.query),
            variant,
            custom_key,
        )
        keyspace = rule.keyspace
        entry_key, shard = keyspace.entry_key(material)
        tag_keys = [keyspace.path_tag_key(request.script_name + path_info, shard)]
        if custom_key is not None:
            tag_keys.append(keyspace.custom_key_tag_key(custom_key, shard))
        if rule.has_tags:
            tag_keys.extend(keyspace.tag_key(tag, shard) for tag in rule.tags_for(environ, values))
        return Plan(request, rule, method, entry_key, tag_keys)

    @staticmethod
    def bypass_reason(request: RequestView, rule: CompiledRule, method: str) -> Bypass | None:
        """Why a request a rule matched must not use the cache, or ``None``."""
        if not rule.cache:
            return Bypass.EXCLUDED
        environ = request.environ
        if not environ.keys().isdisjoint(_BYPASS_KEYS):  # one check for the common case
            if "HTTP_AUTHORIZATION" in environ and not rule.allow_authorization:
                # Under every policy (RFC 9111 3.5 would let "public" or "s-maxage"
                # answers be shared; a per-user page sent so would reach everyone).
                return Bypass.AUTHORIZATION
            if environ.get("REMOTE_USER") and not rule.allow_remote_user:
                return Bypass.REMOTE_USER
            if not environ.keys().isdisjoint(_METHOD_OVERRIDES):
                return Bypass.METHOD_OVERRIDE
            if "HTTP_TRANSFER_ENCODING" in environ:
                # A chunked body's length is unknown until read whole.
                return Bypass.REQUEST_BODY
        if "_method" in request.query and override_method(environ) is not None:
            return Bypass.METHOD_OVERRIDE
        if method in ("GET", "HEAD"):
            if request.has_body():
                # A body on GET/HEAD shares no entry with bodiless requests.
                return Bypass.REQUEST_BODY
        elif http.has_preconditions(environ):
            return Bypass.PRECONDITION
        if rule.unless is not None and rule.unless(environ):
            return Bypass.UNLESS
        return None


def override_method(environ: Mapping[str, Any]) -> str | None:
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


def is_unsafe(environ: Mapping[str, Any], method: str) -> bool:
    """Whether a request may change state: its method, or a method override, is not safe.

    Frameworks upper-case the method (werkzeug reads ``delete`` as ``DELETE``).
    """
    if method.upper() not in SAFE_METHODS:
        return True
    override = override_method(environ)
    return override is not None and override.strip().upper() not in SAFE_METHODS


def written_paths(environ: Mapping[str, Any], headers: Sequence[tuple[str, str]]) -> list[str]:
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


def wsgi_path(url: str) -> str:
    """The ``SCRIPT_NAME + PATH_INFO`` form of a URL or path."""
    path = urlsplit(url).path or "/"
    return unquote_to_bytes(path).decode("latin-1")
