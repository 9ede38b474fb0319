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

import re
import string
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter
from werkzeug.routing import Rule as RoutingRule
from werkzeug.routing.exceptions import RoutingException

from .errors import ConfigurationError
from .keys import KeySpace, header_environ_key, ignore_matcher, normalize_query
from .memo import FifoMemo

Environ = Mapping[str, Any]
KeyFunction = Callable[[Environ, Mapping[str, Any]], str]
TagFunction = Callable[[Environ, Mapping[str, Any]], str | Iterable[str]]
TagSpec = str | TagFunction

POLICIES = ("force", "http")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _fail(pattern: str, message: str) -> ConfigurationError:
    return ConfigurationError(f"Rule({pattern!r}): {message}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


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
        says; ``"http"`` takes the lifetime from the response's own
        ``Cache-Control`` / ``Expires`` (``timeout`` is the default).
    :param timeout: seconds; ``None`` uses the backend's default (``TIMEOUT``).
    :param query: ``"all"``, ``"none"`` or a list of parameter names in the key.
    :param ignore_query: parameter names or globs (``"utm_*"``) left out of the key.
    :param vary: request headers whose values join the key.
    :param vary_cookies: cookie names whose values join the key.
    :param key: an extra key component: a template over the URL's values
        (``"{lang}"``) or ``callable(environ, values) -> str``. It adds to
        the key; it never replaces scheme, host, path, query or vary values.
    :param tags: templates (``"user:{user_id}"``) or callables returning a
        tag or tags; invalidating a tag drops every entry stored with it.
    :param statuses: response status codes that may be stored.
    :param stale_while_revalidate: seconds an expired entry may still be
        served while one request refreshes it.
    :param stale_if_error: seconds an expired entry may be served when the
        application fails (raises or answers 5xx).
    :param backend: alias of the configured backend this rule stores in.
    :param unless: ``callable(environ) -> bool``; true means bypass the cache.
    :param allow_set_cookie: store responses that set cookies (off by default).
    :param allow_authorization: cache requests that carry ``Authorization``.
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
        statuses: Sequence[int] = (200,),
        stale_while_revalidate: float = 0,
        stale_if_error: float = 0,
        backend: str = "default",
        unless: Callable[[Environ], bool] | None = None,
        allow_set_cookie: bool = False,
        allow_authorization: bool = False,
    ) -> None:
        if not isinstance(pattern, str) or not pattern.startswith("/"):
            raise ConfigurationError(
                f"Rule pattern must be a URL path starting with '/', such as "
                f"'/posts/<int:post_id>'; got {pattern!r}"
            )
        self.pattern = pattern
        self.methods = self._check_methods(methods)
        if host is not None and (not isinstance(host, str) or not host):
            raise _fail(pattern, f"host must be a host pattern such as 'example.com', got {host!r}")
        self.host = host
        if not isinstance(cache, bool):
            raise _fail(pattern, f"cache must be True or False, got {cache!r}")
        self.cache = cache
        if policy not in POLICIES:
            raise _fail(pattern, f"policy must be 'force' or 'http', got {policy!r}")
        self.policy = policy
        if timeout is not None and (not _is_number(timeout) or timeout <= 0):
            raise _fail(
                pattern,
                f"timeout must be a positive number of seconds (e.g. timeout=60), or None "
                f"for the backend's default; got {timeout!r}",
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
        self.statuses = self._check_statuses(statuses)
        for name, seconds in (
            ("stale_while_revalidate", stale_while_revalidate),
            ("stale_if_error", stale_if_error),
        ):
            if not _is_number(seconds) or seconds < 0:
                raise _fail(pattern, f"{name} must be 0 or a positive number of seconds, got {seconds!r}")
        self.stale_while_revalidate = float(stale_while_revalidate)
        self.stale_if_error = float(stale_if_error)
        if not isinstance(backend, str) or not backend:
            raise _fail(pattern, f"backend must be the alias of a configured backend, got {backend!r}")
        self.backend = backend
        if unless is not None and not callable(unless):
            raise _fail(pattern, f"unless must be a callable taking the WSGI environ, got {unless!r}")
        self.unless = unless
        for name, flag in (
            ("allow_set_cookie", allow_set_cookie),
            ("allow_authorization", allow_authorization),
        ):
            if not isinstance(flag, bool):
                raise _fail(pattern, f"{name} must be True or False, got {flag!r}")
        self.allow_set_cookie = allow_set_cookie
        self.allow_authorization = allow_authorization
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

    def _build_map(self) -> Map:
        try:
            routing_rule = RoutingRule(
                self.pattern, endpoint="rule", methods=sorted(self.methods), host=self.host
            )
            return Map(
                [routing_rule],
                host_matching=self.host is not None,
                strict_slashes=True,
                merge_slashes=False,
                redirect_defaults=False,
            )
        except (ValueError, LookupError) as exc:
            raise _fail(self.pattern, f"invalid pattern: {exc}") from exc

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
        self.stale_while_revalidate = rule.stale_while_revalidate
        self.stale_if_error = rule.stale_if_error
        self.stale_window = max(rule.stale_while_revalidate, rule.stale_if_error)
        self.backend_alias = rule.backend
        self.statuses = rule.statuses
        self.allow_set_cookie = rule.allow_set_cookie
        self.allow_authorization = rule.allow_authorization
        self.unless = rule.unless
        self.host_matching = rule.host is not None
        self.map = rule._routing_map
        self.adapter: MapAdapter | None = None if self.host_matching else self.map.bind("localhost")
        self.query_keep: frozenset[str] | None = (
            None if rule.query == "all" else frozenset() if rule.query == "none" else frozenset(rule.query)
        )
        self.query_none = rule.query == "none"
        self.ignore = ignore_matcher(rule.ignore_query)
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
        self.key_method_from_request = bool(rule.methods - {"GET", "HEAD"})
        self.has_tags = bool(self.tag_templates or self.tag_functions or self.tag_function is not None)

    def match(self, host: str, path: str, method: str) -> dict[str, Any] | None:
        """URL values if this rule matches, else ``None``."""
        adapter = self.adapter
        if adapter is None:
            adapter = self.map.bind(host.split(":", 1)[0] if ":" in host and not host.endswith("]") else host)
        try:
            _, values = adapter.match(path, method)
        except (HTTPException, RoutingException):
            return None
        return dict(values)

    def query_component(self, query_string: str) -> str:
        if self.query_none or not query_string:
            return ""
        return normalize_query(query_string, self.query_keep, self.ignore)

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

    def __init__(self, rules: Sequence[CompiledRule]) -> None:
        self.rules = tuple(rules)
        self.uses_host = any(rule.host_matching for rule in self.rules)
        self._memo: FifoMemo[tuple[str, str, str], tuple[CompiledRule, dict[str, Any]] | tuple[()]] = (
            FifoMemo(self.memo_size)
        )

    def match(self, host: str, path_info: str, method: str) -> tuple[CompiledRule, dict[str, Any]] | None:
        memo_key = (host if self.uses_host else "", path_info, method)
        remembered = self._memo.get(memo_key)
        if remembered is not None:
            return remembered or None
        path = path_info.encode("latin-1", "replace").decode("utf-8", "replace") or "/"
        for rule in self.rules:
            values = rule.match(host, path, method)
            if values is not None:
                found = (rule, values)
                self._memo.put(memo_key, found)
                return found
        self._memo.put(memo_key, _NO_MATCH)
        return None
