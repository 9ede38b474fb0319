"""Rules: which requests are cached, under which key, and for how long.

A :class:`Rule` is plain configuration, checked when it is created. The
middleware compiles its rule list once, at start-up, into
:class:`CompiledRule` objects and a :class:`RuleSet` that finds the first
matching rule for a request::

    from wsgicache import Rule

    rules = [
        Rule("/static/<path:name>", timeout=86400),
        Rule("/user/<int:user_id>", timeout=60, vary_cookies=["session"],
             tags=["user:{user_id}"]),
        Rule("/search", timeout=30, query=["q", "page"]),
        Rule("/admin/<path:rest>", cache=False),
        Rule("/<path:rest>", policy="http"),
    ]

Patterns use werkzeug's routing syntax and converters. Rules are tried in
the order given; the first whose pattern, methods and host match decides.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter
from werkzeug.routing import Rule as RoutingRule
from werkzeug.routing.converters import BaseConverter, NumberConverter
from werkzeug.routing.exceptions import RequestRedirect, RoutingException

from .errors import ConfigurationError
from .keys import KeySpace, header_environ_key, ignore_matcher, normalize_query, wsgi_str
from .memo import FifoMemo

Environ = Mapping[str, Any]
KeyFunction = Callable[[Environ, Mapping[str, Any]], str]
TagFunction = Callable[[Environ, Mapping[str, Any]], str | Iterable[str]]
TagSpec = str | TagFunction

POLICIES = ("force", "http")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: A URL variable of a werkzeug rule (werkzeug's own syntax): converter,
#: arguments, name.
_VARIABLE_RE = re.compile(
    r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\((?P<arguments>.*?)\))?:)?(?P<variable>[a-zA-Z_][a-zA-Z0-9_]*)>"
)
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-._")
_IPV6_HOST_CHARS = frozenset("0123456789abcdef:.[]")


def _fail(pattern: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"Rule({pattern!r}): {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _static_text(pattern: str) -> str:
    """The fixed text of a werkzeug pattern, without its URL variables."""
    return _VARIABLE_RE.sub("", pattern)


class Rule:
    """One entry of the ordered rule list. See the module docstring.

    :param pattern: a werkzeug URL rule matched against ``PATH_INFO``.
    :param methods: request methods the rule matches (``HEAD`` is answered
        from the ``GET`` entry).
    :param host: a werkzeug host pattern (``"<tenant>.example.com"``); ``None``
        matches every host.
    :param cache: ``False`` makes an exclusion rule: matching requests go
        straight to the application.
    :param policy: ``"force"`` caches for ``timeout`` whatever the response
        says; ``"http"`` behaves as an RFC 9111 shared cache: the lifetime
        comes from the response's own ``CDN-Cache-Control``,
        ``Cache-Control`` and ``Expires``, stale entries are revalidated,
        ``Vary`` is honoured and request directives count (see
        ``docs/http.md``).
    :param timeout: seconds. Under ``"force"``, the lifetime of every entry
        (``None``: the backend's default ``TIMEOUT``); under ``"http"``,
        the lifetime of responses without explicit freshness (``None``:
        those are not stored; the backend's default never applies).
    :param query: ``"all"``, ``"none"`` or a list of parameter names in the key.
    :param ignore_query: parameter names or globs (``"utm_*"``) left out of the key.
    :param vary: request headers whose values join the key.
    :param vary_cookies: cookie names whose values join the key.
    :param key: an extra key component: a template over the URL's values
        (``"{lang}"``) or ``callable(environ, values) -> str``. It adds to
        the key; it never replaces scheme, host, path, query or vary values.
    :param tags: templates (``"user:{user_id}"``) or callables returning a
        tag or tags; invalidating a tag drops every entry stored with it.
    :param statuses: response status codes that may be stored; ``None``
        means 200 under ``"force"`` and every final status RFC 9111 allows
        under ``"http"``.
    :param heuristic: under ``"http"``, the fraction of the time since
        ``Last-Modified`` that a response without explicit freshness stays
        fresh (RFC 9111 4.2.2; ``0.1`` is usual), at most a day; ``0``
        (the default) turns heuristic freshness off.
    :param keep: under ``"http"``, seconds an expired response with a
        validator (``ETag``, ``Last-Modified``) is kept to be revalidated
        with a conditional request rather than fetched again.
    :param ignore_request_no_cache: under ``"http"``, ignore the request's
        ``Cache-Control: no-cache`` and ``Pragma: no-cache`` (a client
        reloading, or anyone flooding the application through the cache).
    :param targeted_fields: under ``"http"``, response fields holding cache
        directives for this cache that take precedence over
        ``Cache-Control`` (RFC 9213), in order. Fields other than
        ``CDN-Cache-Control`` are meant for this cache alone and removed
        from the responses it sends.
    :param emit_max_age: under ``"force"``, send ``Cache-Control: max-age``
        and ``Expires`` for the entry's remaining lifetime, so browsers and
        CDNs downstream keep it no longer than the cache does.
    :param stale_while_revalidate: seconds an expired entry may still be
        served while one request refreshes it.
    :param stale_if_error: seconds an expired entry may be served when the
        application fails (raises or answers 5xx).
    :param backend: alias of the configured backend this rule stores in.
    :param unless: ``callable(environ) -> bool``; true means bypass the cache.
    :param allow_set_cookie: store responses that set cookies (off by default).
    :param allow_authorization: cache requests that carry ``Authorization``;
        ``vary`` must then list ``Authorization``, so users never share entries.
    :param allow_remote_user: cache requests for which the server or an outer
        middleware set ``REMOTE_USER`` (a login the cache cannot see in the
        headers); each user then gets entries of their own.
    """

    def __init__(
        self,
        pattern: str,
        *,
        methods: Sequence[str] = ("GET", "HEAD"),
        host: str | None = None,
        cache: bool = True,
        policy: str = "force",
        timeout: float | None = None,
        query: str | Sequence[str] = "all",
        ignore_query: Sequence[str] = (),
        vary: Sequence[str] = (),
        vary_cookies: Sequence[str] = (),
        key: str | KeyFunction | None = None,
        tags: Sequence[TagSpec] | TagFunction = (),
        statuses: Sequence[int] | None = None,
        stale_while_revalidate: float = 0,
        stale_if_error: float = 0,
        backend: str = "default",
        unless: Callable[[Environ], bool] | None = None,
        allow_set_cookie: bool = False,
        allow_authorization: bool = False,
        allow_remote_user: bool = False,
        heuristic: float = 0.0,
        keep: float = 3600.0,
        ignore_request_no_cache: bool = False,
        targeted_fields: Sequence[str] = ("CDN-Cache-Control",),
        emit_max_age: bool = False,
    ) -> None:
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ConfigurationError(
                f"Rule pattern must be a URL path starting with '/', such as "
                f"'/posts/<int:post_id>'; got {pattern!r}"
            )
        self.pattern = pattern
        self._check_path_pattern()
        self.methods = self._check_methods(methods)
        self.host = None if host is None else self._check_host(host)
        if not isinstance(cache, bool):
            raise _fail(pattern, f"cache must be True or False, got {cache!r}")
        self.cache = cache
        if policy not in POLICIES:
            raise _fail(pattern, f"policy must be 'force' or 'http', got {policy!r}")
        self.policy = policy
        if timeout is not None and (not _is_number(timeout) or not math.isfinite(timeout) or timeout <= 0):
            raise _fail(
                pattern,
                f"timeout must be a positive number of seconds (e.g. timeout=60; not NaN or "
                f"infinity), or None; got {timeout!r}",
            )
        self.timeout = None if timeout is None else float(timeout)
        self.query = self._check_query(query)
        self.ignore_query = self._check_names("ignore_query", ignore_query)
        self.vary = self._check_names("vary", vary, header=True)
        self.vary_cookies = self._check_names("vary_cookies", vary_cookies)
        if key is not None and not isinstance(key, str) and not callable(key):
            raise _fail(pattern, f"key must be a template string or a callable, got {key!r}")
        self.key = key
        self.tags = self._check_tags(tags)
        self.statuses = None if statuses is None else self._check_statuses(statuses)
        for name, seconds in (
            ("stale_while_revalidate", stale_while_revalidate),
            ("stale_if_error", stale_if_error),
        ):
            if not _is_number(seconds) or not math.isfinite(seconds) or seconds < 0:
                raise _fail(
                    pattern,
                    f"{name} must be 0 or a positive number of seconds (e.g. {name}=30; not NaN "
                    f"or infinity), got {seconds!r}",
                )
        self.stale_while_revalidate = float(stale_while_revalidate)
        self.stale_if_error = float(stale_if_error)
        if not _is_number(heuristic) or not 0 <= heuristic <= 1:
            raise _fail(
                pattern,
                f"heuristic must be a fraction from 0 (off) to 1, such as heuristic=0.1; got {heuristic!r}",
            )
        self.heuristic = float(heuristic)
        if not _is_number(keep) or not math.isfinite(keep) or keep < 0:
            raise _fail(
                pattern, f"keep must be 0 or a positive number of seconds (e.g. keep=3600), got {keep!r}"
            )
        self.keep = float(keep)
        self.targeted_fields = self._check_names("targeted_fields", targeted_fields, header=True)
        for field in self.targeted_fields:
            if not field.lower().endswith("cache-control") or field.lower() == "cache-control":
                raise _fail(
                    pattern,
                    f"targeted_fields names fields of cache directives for this cache (RFC 9213), "
                    f"such as 'CDN-Cache-Control' or 'WSGICache-Control'; {field!r} is not one",
                )
        if policy == "force":
            for name, value, default in (
                ("heuristic", heuristic, 0.0),
                ("keep", keep, 3600.0),
                ("ignore_request_no_cache", ignore_request_no_cache, False),
                ("targeted_fields", tuple(targeted_fields), ("CDN-Cache-Control",)),
            ):
                if value != default:
                    raise _fail(
                        pattern,
                        f"{name}= applies to policy='http' (the response's own freshness); "
                        "under policy='force' the rule's timeout decides: remove it or use policy='http'",
                    )
        for name, flag in (
            ("ignore_request_no_cache", ignore_request_no_cache),
            ("emit_max_age", emit_max_age),
        ):
            if not isinstance(flag, bool):
                raise _fail(pattern, f"{name} must be True or False, got {flag!r}")
        if emit_max_age and policy != "force":
            raise _fail(
                pattern,
                "emit_max_age=True applies to policy='force'; under policy='http' the "
                "application's own Cache-Control is passed on",
            )
        self.ignore_request_no_cache = ignore_request_no_cache
        self.emit_max_age = emit_max_age
        if not isinstance(backend, str) or not backend:
            raise _fail(pattern, f"backend must be the alias of a configured backend, got {backend!r}")
        self.backend = backend
        if unless is not None and not callable(unless):
            raise _fail(pattern, f"unless must be a callable taking the WSGI environ, got {unless!r}")
        self.unless = unless
        for name, flag in (
            ("allow_set_cookie", allow_set_cookie),
            ("allow_authorization", allow_authorization),
            ("allow_remote_user", allow_remote_user),
        ):
            if not isinstance(flag, bool):
                raise _fail(pattern, f"{name} must be True or False, got {flag!r}")
        self.allow_set_cookie = allow_set_cookie
        self.allow_authorization = allow_authorization
        self.allow_remote_user = allow_remote_user
        if allow_authorization and "authorization" not in {name.lower() for name in self.vary}:
            raise _fail(
                pattern,
                "allow_authorization=True shares entries between users unless the key holds "
                "their credentials: add vary=['Authorization'] (or exclude the URL)",
            )
        # Build the werkzeug rule now so a malformed pattern fails here.
        self._routing_map = self._build_map()
        self.arguments = frozenset(next(iter(self._routing_map.iter_rules())).arguments)
        self._check_templates()

    def __repr__(self) -> str:
        kind = "cache=False" if not self.cache else f"policy={self.policy!r}"
        return f"Rule({self.pattern!r}, {kind})"

    # -- validation -------------------------------------------------------

    def _check_methods(self, methods: Sequence[str]) -> frozenset[str]:
        if isinstance(methods, str) or not isinstance(methods, Iterable):
            raise _fail(self.pattern, f"methods must be a list such as ['GET', 'HEAD'], got {methods!r}")
        checked = set()
        for method in methods:
            if not isinstance(method, str) or not _TOKEN_RE.fullmatch(method):
                raise _fail(self.pattern, f"{method!r} is not an HTTP method name")
            checked.add(method.upper())
        if not checked:
            raise _fail(self.pattern, "methods must name at least one method, such as ['GET', 'HEAD']")
        if "GET" in checked:
            checked.add("HEAD")
        return frozenset(checked)

    def _check_query(self, query: str | Sequence[str]) -> str | frozenset[str]:
        if query in ("all", "none"):
            return str(query)
        if isinstance(query, str):
            raise _fail(
                self.pattern,
                f"query must be 'all', 'none' or a list of parameter names such as "
                f"[{query!r}]; got {query!r}",
            )
        return frozenset(self._check_names("query", query))

    def _check_names(self, option: str, names: Sequence[str], header: bool = False) -> tuple[str, ...]:
        if isinstance(names, str):
            raise _fail(self.pattern, f"{option} must be a list, such as [{names!r}]; got {names!r}")
        checked = []
        for name in names:
            if not isinstance(name, str) or not name:
                raise _fail(self.pattern, f"{option} entries must be non-empty strings, got {name!r}")
            if header and not _TOKEN_RE.fullmatch(name):
                raise _fail(self.pattern, f"{name!r} in {option} is not a header name")
            checked.append(name)
        return tuple(checked)

    def _check_tags(self, tags: Sequence[TagSpec] | TagFunction) -> tuple[TagSpec, ...] | TagFunction:
        if callable(tags):
            return tags
        if isinstance(tags, str):
            raise _fail(self.pattern, f"tags must be a list, such as [{tags!r}]; got {tags!r}")
        checked: list[TagSpec] = []
        for tag in tags:
            if not (isinstance(tag, str) and tag) and not callable(tag):
                raise _fail(self.pattern, f"each tag is a template string or a callable, got {tag!r}")
            checked.append(tag)
        return tuple(checked)

    def _check_statuses(self, statuses: Sequence[int]) -> frozenset[int]:
        if isinstance(statuses, int) or not isinstance(statuses, Iterable):
            raise _fail(self.pattern, f"statuses must be a list such as [200, 404], got {statuses!r}")
        checked = set()
        for code in statuses:
            if isinstance(code, bool) or not isinstance(code, int) or not 100 <= code <= 599:
                raise _fail(self.pattern, f"{code!r} in statuses is not an HTTP status code")
            checked.add(code)
        return frozenset(checked)

    def _check_path_pattern(self) -> None:
        """Refuse path patterns that can never match the path a request carries."""
        for mark, what in (("?", "query string"), ("#", "fragment")):
            if mark in _static_text(self.pattern):
                raise _fail(
                    self.pattern,
                    f"a pattern matches the path only, never a {what} ({mark!r}); write the path "
                    "alone and use query=['name', ...] for the query parameters in the key",
                )
        escape = _PERCENT_ESCAPE.search(_static_text(self.pattern))
        if escape:
            raise _fail(
                self.pattern,
                f"patterns are matched against the decoded path, so {escape.group()!r} only matches "
                "a literal '%' in the URL; write the character itself (such as ' ' for '%20', "
                "'é' for '%C3%A9')",
            )

    def _check_host(self, host: object) -> str:
        """A host pattern in the form request hosts are compared in, or an error.

        Request hosts are lower-cased, lose a trailing dot and their port
        before matching, so the pattern's fixed text is lower-cased and a
        trailing dot dropped; a port, or characters a host name never has,
        would never match and are refused.
        """
        if not isinstance(host, str) or not host:
            raise _fail(self.pattern, f"host must be a host pattern such as 'example.com', got {host!r}")
        pieces: list[str] = []
        position = 0
        for variable in _VARIABLE_RE.finditer(host):
            arguments = variable.group("arguments") or ""
            if variable.group("converter") == "any" and arguments != arguments.lower():
                raise _fail(
                    self.pattern,
                    f"host {host!r}: hosts are compared in lower case, so any({arguments}) can only "
                    f"match with lower-case values: write any({arguments.lower()})",
                )
            pieces.append(host[position : variable.start()].lower())
            pieces.append(variable.group())
            position = variable.end()
        pieces.append(host[position:].lower())
        text = "".join(pieces[::2])  # the fixed text, without the variables
        ipv6 = host.startswith("[") and host.endswith("]")
        if "*" in text:
            raise _fail(
                self.pattern,
                f"host {host!r}: '*' is not a wildcard here; name the varying part with a URL "
                "variable, such as host='<subdomain>.example.com'",
            )
        if host.startswith("."):
            raise _fail(
                self.pattern,
                f"host {host!r}: a host never starts with '.'; to match every subdomain write "
                "host='<subdomain>.example.com' (and another rule for the bare domain)",
            )
        if ":" in text and not ipv6:
            raise _fail(
                self.pattern,
                f"host {host!r}: host patterns match the host name without its port (requests on "
                f"every port match), so a port can never match; write host={host.rsplit(':', 1)[0]!r}",
            )
        bad = sorted({c for c in text if c not in (_IPV6_HOST_CHARS if ipv6 else _HOST_CHARS)})
        if bad:
            raise _fail(
                self.pattern,
                f"host {host!r}: a host name never contains {', '.join(map(repr, bad))}; write "
                "letters, digits, '-' and '.', such as 'example.com' or '<tenant>.example.com'",
            )
        normalized = "".join(pieces)
        if normalized.endswith(".") and not normalized.endswith(".."):
            normalized = normalized[:-1]
        return normalized

    def _build_map(self) -> Map:
        self._check_variables()
        try:
            routing_rule = RoutingRule(
                self.pattern, endpoint="rule", methods=sorted(self.methods), host=self.host
            )
            routing_map = Map(
                [routing_rule],
                host_matching=self.host is not None,
                strict_slashes=True,
                merge_slashes=False,
                redirect_defaults=False,
            )
        except (ValueError, LookupError, SyntaxError, TypeError, re.error) as exc:
            raise _fail(self.pattern, f"invalid pattern: {exc}") from exc
        for name, converter in routing_rule._converters.items():
            self._check_converter(name, converter)
        try:
            # werkzeug compiles its matcher on the first match: make a bad
            # converter regex fail here rather than on every request.
            routing_map.bind("localhost").match("/")
        except (HTTPException, RoutingException):
            pass
        except (ValueError, TypeError, re.error) as exc:
            raise _fail(self.pattern, f"invalid pattern: {exc}") from exc
        return routing_map

    def _check_variables(self) -> None:
        """Each URL variable is named once, across the pattern and the host pattern."""
        seen: dict[str, str] = {}
        for where, text in (("pattern", self.pattern), ("host pattern", self.host or "")):
            for variable in _VARIABLE_RE.finditer(text):
                name = variable.group("variable")
                if name in seen:
                    place = (
                        f"twice in the {where}"
                        if seen[name] == where
                        else f"in both the {seen[name]} and the {where}"
                    )
                    raise _fail(
                        self.pattern,
                        f"the URL variable {name!r} appears {place}; a variable holds one value, so "
                        f"give each its own name (such as <{name}> and <{name}2>)",
                    )
                seen[name] = where

    def _check_converter(self, name: str, converter: BaseConverter) -> None:
        """Number ranges that can work (werkzeug accepts any value and fails later)."""
        if not isinstance(converter, NumberConverter):
            return
        low, high = converter.min, converter.max
        for bound, value in (("min", low), ("max", high)):
            if value is not None and (not _is_number(value) or not math.isfinite(value)):
                raise _fail(
                    self.pattern,
                    f"<{name}>: {bound} must be a finite number, such as {bound}=1; got {value!r}",
                )
        if low is not None and high is not None and low > high:
            raise _fail(self.pattern, f"<{name}>: min={low!r} is above max={high!r}, so nothing can match")

    def _check_templates(self) -> None:
        templates = []
        if isinstance(self.key, str):
            templates.append(("key", self.key))
        if not callable(self.tags):
            templates.extend(("tags", tag) for tag in self.tags if isinstance(tag, str))
        known = ", ".join(sorted(self.arguments)) or "none"
        for option, template in templates:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(template) if f is not None]
            except ValueError as exc:
                raise _fail(self.pattern, f"{option} template {template!r}: {exc}") from exc
            for field in fields:
                name = re.split(r"[.\[]", field, maxsplit=1)[0]
                if name not in self.arguments:
                    raise _fail(
                        self.pattern,
                        f"{option} template {template!r} uses {{{field}}}, but the pattern "
                        f"only has the URL values: {known}",
                    )

    # -- compilation --------------------------------------------------------

    def compile(self, keyspace: KeySpace, default_timeout: float) -> CompiledRule:
        return CompiledRule(self, keyspace, default_timeout)


class CompiledRule:
    """A rule with everything that does not depend on the request decided."""

    def __init__(self, rule: Rule, keyspace: KeySpace, default_timeout: float) -> None:
        self.rule = rule
        self.cache = rule.cache
        self.policy = rule.policy
        self.keyspace = keyspace
        self.timeout = rule.timeout if rule.timeout is not None else default_timeout
        # Under "http": the lifetime of responses without freshness information, if any.
        self.http_timeout = rule.timeout
        self.honours_request = rule.policy == "http"
        self.heuristic = rule.heuristic
        self.keep = rule.keep
        self.ignore_request_no_cache = rule.ignore_request_no_cache
        # Under "force" the response's own directives decide nothing but private and no-store.
        self.targeted_fields = (
            tuple(name.lower() for name in rule.targeted_fields) if rule.policy == "http" else ()
        )
        # Targeted fields for this cache alone, removed from what it sends (RFC 9213 2.1).
        self.private_fields = frozenset(name for name in self.targeted_fields if name != "cdn-cache-control")
        self.emit_max_age = rule.emit_max_age
        self.rewrites_hit_headers = self.emit_max_age or bool(self.private_fields)
        self.stale_while_revalidate = rule.stale_while_revalidate
        self.stale_if_error = rule.stale_if_error
        self.stale_window = max(rule.stale_while_revalidate, rule.stale_if_error)
        self.backend_alias = rule.backend
        # None under "http": every final status the RFC allows.
        self.statuses: frozenset[int] | None = rule.statuses
        if rule.statuses is None and rule.policy == "force":
            self.statuses = frozenset({200})
        self.allow_set_cookie = rule.allow_set_cookie
        self.allow_authorization = rule.allow_authorization
        self.allow_remote_user = rule.allow_remote_user
        self.unless = rule.unless
        self.host_matching = rule.host is not None
        self.map = rule._routing_map
        self.adapter: MapAdapter | None = None if self.host_matching else self.map.bind("localhost")
        self.query_keep: frozenset[str] | None = (
            None
            if rule.query == "all"
            else frozenset()
            if rule.query == "none"
            else frozenset(wsgi_str(name) for name in rule.query)
        )
        self.query_none = rule.query == "none"
        self._query_memo: FifoMemo[str, str] = FifoMemo(4096, max_bytes=2 * 1024 * 1024)
        self.ignore = ignore_matcher(wsgi_str(pattern) for pattern in rule.ignore_query)
        self.vary_keys = tuple(header_environ_key(name) for name in rule.vary)
        self.vary_lower = frozenset(name.lower() for name in rule.vary)
        self.vary_cookies = rule.vary_cookies
        self.key_template = rule.key if isinstance(rule.key, str) else None
        self.key_function = None if isinstance(rule.key, str) else rule.key
        if callable(rule.tags):
            self.tag_function: TagFunction | None = rule.tags
            self.tag_templates: tuple[str, ...] = ()
            self.tag_functions: tuple[TagFunction, ...] = ()
        else:
            self.tag_function = None
            self.tag_templates = tuple(t for t in rule.tags if isinstance(t, str))
            self.tag_functions = tuple(t for t in rule.tags if not isinstance(t, str))
        # HEAD is asked of the application as GET (so the entry serves both)
        # only when the rule caches GET; otherwise a HEAD entry of its own.
        self.head_as_get = "GET" in rule.methods
        self.has_tags = bool(self.tag_templates or self.tag_functions or self.tag_function is not None)
        # Whether the keys of a request depend only on its method, host, scheme, paths and
        # query (no header, cookie, user or callable): its plan can then be remembered.
        self.plan_depends_on_url_only = (
            self.cache
            and not self.vary_keys
            and not self.vary_cookies
            and not self.allow_remote_user
            and self.key_function is None
            and self.tag_function is None
            and not self.tag_functions
            and self.unless is None
        )

    def match(self, host: str, path: str, method: str) -> dict[str, Any] | None:
        """URL values if this rule matches, else ``None``."""
        adapter = self.adapter
        if adapter is None:
            # Without the port ("[::1]:8080" -> "[::1]"): patterns never hold one.
            adapter = self.map.bind(
                host.rsplit(":", 1)[0] if ":" in host and not host.endswith("]") else host
            )
        try:
            _, values = adapter.match(path, method)
        except RequestRedirect:
            # The other trailing-slash spelling of the pattern ("/x" for "/x/"):
            # the rule covers it, as frameworks that strip or add the slash do.
            return self._match_spellings(adapter, path, method, (_toggle_slash(path),))
        except (HTTPException, RoutingException):
            if self.cache:
                return None
            # An exclusion also covers the spellings an application may fold
            # together: "/account/" for "/account", "//account".
            merged = _MERGE_SLASHES.sub("/", path)
            spellings = (_toggle_slash(path), merged, _toggle_slash(merged))
            return self._match_spellings(adapter, path, method, spellings)
        return dict(values)

    @staticmethod
    def _match_spellings(
        adapter: MapAdapter, path: str, method: str, spellings: Iterable[str]
    ) -> dict[str, Any] | None:
        for spelling in spellings:
            if spelling == path:
                continue
            try:
                _, values = adapter.match(spelling, method)
            except (HTTPException, RoutingException):
                continue
            return dict(values)
        return None

    def query_component(self, query_string: str) -> str:
        """The query as the key holds it (normalized once per distinct query string)."""
        if self.query_none or not query_string:
            return ""
        component = self._query_memo.get(query_string)
        if component is None:
            component = normalize_query(query_string, self.query_keep, self.ignore)
            self._query_memo.put(query_string, component)
        return component

    def tags_for(self, environ: Environ, values: Mapping[str, Any]) -> list[str]:
        """The tag names of a request (templates and callables evaluated)."""
        tags = [template.format_map(values) for template in self.tag_templates]
        functions: Iterable[TagFunction] = self.tag_functions
        if self.tag_function is not None:
            functions = (self.tag_function,)
        for function in functions:
            produced = function(environ, values)
            if isinstance(produced, str):
                tags.append(produced)
            else:
                tags.extend(str(tag) for tag in produced)
        return tags


_NO_MATCH: tuple[()] = ()


class RuleSet:
    """The compiled, ordered rule list and a memo of recent match results."""

    memo_size = 16384
    memo_bytes = 4 * 1024 * 1024  # characters of hosts, paths and URL values held

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self.uses_host = any(rule.host_matching for rule in self.rules)
        # The methods some rule stores entries for: only their first matches can hold entries.
        self.cached_methods = tuple(
            sorted({method for rule in self.rules if rule.cache for method in rule.rule.methods})
        )
        self._memo: FifoMemo[tuple[str, str, str], tuple[CompiledRule, dict[str, Any]] | tuple[()]] = (
            FifoMemo(self.memo_size, max_bytes=self.memo_bytes)
        )

    def match(self, host: str, path_info: str, method: str) -> tuple[CompiledRule, dict[str, Any]] | None:
        memo_key = (host if self.uses_host else "", path_info, method)
        remembered = self._memo.get(memo_key)
        if remembered is not None:
            return remembered or None
        path = _routing_path(path_info)
        for rule in self.rules:
            values = rule.match(host, path, method)
            if values is not None:
                found = (rule, values)
                self._memo.put(memo_key, found)
                return found
        self._memo.put(memo_key, _NO_MATCH)
        return None

    def aliases_storing(self, host: str, path_info: str) -> list[str]:
        """The backend aliases that may hold entries of this URL.

        For each method some rule caches, the rule that decides a request
        of that method (the first match, as for any request) is looked at;
        if it caches, its backend may hold entries. A successful unsafe
        request (``POST``, ``DELETE``, ...) invalidates the URL there; a URL
        every such request of which passes through or is excluded touches
        no backend.
        """
        aliases: list[str] = []
        for method in self.cached_methods:
            found = self.match(host, path_info, method)
            if found is not None and found[0].cache and found[0].backend_alias not in aliases:
                aliases.append(found[0].backend_alias)
        return aliases


_MERGE_SLASHES = re.compile("/{2,}")


def _toggle_slash(path: str) -> str:
    """``path`` with its trailing slash removed, or added."""
    if path.endswith("/"):
        return path.rstrip("/") or "/"
    return path + "/"


def _routing_path(path_info: str) -> str:
    return path_info.encode("latin-1", "replace").decode("utf-8", "replace") or "/"
