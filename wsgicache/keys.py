"""Cache keys: what identifies a stored response, and its backend-safe form.

A key is built from the scheme, the host as the request spells it,
``SCRIPT_NAME`` and ``PATH_INFO`` (apart), the raw request target's path,
the query parameters the rule keeps, the values of the rule's ``vary``
headers and ``vary_cookies``, the rule's extra ``key`` component, the
middleware's ``key_prefix`` and the storage format version. Every
component is length-prefixed before hashing, so no value can be crafted to
look like another component. The hash (BLAKE2b, 128 bits) gives keys of a
fixed length and alphabet that every backend accepts: no spaces, no control
characters, far below memcached's 250 bytes, usable as file names, and with
a Redis Cluster hash tag when the backend spreads keys over shards.

Request headers that proxies use to override the host, scheme, prefix or
method (``X-Forwarded-Host`` and friends) are part of every key when they
are present: an application that honours them (for instance through
werkzeug's ``ProxyFix`` inside the cache) can then never have a response
built for one of their values served to requests without it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from fnmatch import translate
from hashlib import blake2b
from typing import Any, NamedTuple
from urllib.parse import parse_qsl, quote

from .memo import FifoMemo
from .storage import FORMAT_VERSION

#: Environ keys of request headers that proxies (and werkzeug's ProxyFix,
#: Django, Pyramid/paste, waitress, IIS, Traefik, Cloudflare) use to tell an
#: application another scheme, host, port, path prefix or URL. Present ones
#: always join the key.
OVERRIDE_HEADERS: tuple[str, ...] = (
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_PROTOCOL",
    "HTTP_X_FORWARDED_SCHEME",
    "HTTP_X_FORWARDED_SSL",
    "HTTP_FRONT_END_HTTPS",
    "HTTP_X_URL_SCHEME",
    "HTTP_X_SCHEME",
    "HTTP_X_ARR_SSL",
    "HTTP_CF_VISITOR",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
    "HTTP_X_SCRIPT_NAME",
    "HTTP_X_FORWARDED_PATH",
    "HTTP_X_FORWARDED_URI",
    "HTTP_X_ORIGINAL_URI",
    "HTTP_X_ORIGINAL_URL",
    "HTTP_X_REWRITE_URL",
    "HTTP_X_FORWARDED_SERVER",
    "HTTP_X_ORIGINAL_HOST",
    "HTTP_X_HOST",
    "HTTP_FORWARDED",
)

OVERRIDE_HEADER_SET = frozenset(OVERRIDE_HEADERS)

#: Environ keys of request headers that tell an application to act as for
#: another method (werkzeug's and Flask's method-override recipes, Rails,
#: Google APIs). A request carrying one is never answered from the cache.
METHOD_OVERRIDE_HEADERS: tuple[str, ...] = (
    "HTTP_X_HTTP_METHOD_OVERRIDE",
    "HTTP_X_HTTP_METHOD",
    "HTTP_X_METHOD_OVERRIDE",
)

_DEFAULT_PORTS = {"http": "80", "https": "443"}
_HOST_RE = re.compile(r"(?:[a-z0-9_](?:[a-z0-9_.-]{0,251}[a-z0-9_])?|\[[0-9a-f:.]{2,45}\])")
_PORT_RE = re.compile(r"[0-9]{1,5}")


class RequestHost(NamedTuple):
    """The host of a request, in the two forms the cache needs.

    ``match`` is what rules' host patterns are compared with: lower case,
    without a trailing dot, the port as a number and the scheme's default
    port dropped. ``key`` is the spelling the application sees (the ``Host``
    header as sent, or ``SERVER_NAME:SERVER_PORT`` marked with ``@`` when
    there is none): applications build absolute URLs from it, so two
    spellings never share an entry.
    """

    match: str
    key: str


_host_memo: FifoMemo[tuple[str | None, str, str, str], RequestHost | tuple[()]] = FifoMemo(
    1024, max_bytes=256 * 1024
)


def request_host(environ: Mapping[str, Any]) -> RequestHost | None:
    """The request's :class:`RequestHost`, or ``None`` when it is not a valid host.

    Requests with an invalid host are never looked up nor stored.
    """
    header = environ.get("HTTP_HOST")
    scheme = environ.get("wsgi.url_scheme", "http")
    if header is None:
        memo_key: tuple[str | None, str, str, str] = (
            None,
            environ.get("SERVER_NAME", ""),
            environ.get("SERVER_PORT", ""),
            scheme,
        )
    else:
        memo_key = (header, "", "", scheme)
    found = _host_memo.get(memo_key)
    if found is None:
        found = _request_host(*memo_key) or ()
        _host_memo.put(memo_key, found)
    return found or None


def _request_host(header: str | None, server_name: str, server_port: str, scheme: str) -> RequestHost | None:
    if header is None:
        raw = f"{server_name}:{server_port}" if server_port else server_name
        key = "@" + raw
    else:
        raw = key = header
    match = match_form(raw, scheme)
    return None if match is None else RequestHost(match, key)


def match_form(raw: str, scheme: str) -> str | None:
    """A host as rules compare it (lower case, no trailing dot or default port), or ``None``."""
    host = raw.lower()
    if host.endswith("]") or ":" not in host:
        name, port = host, ""
    else:
        name, _, port = host.rpartition(":")
        if not _PORT_RE.fullmatch(port):
            return None
        port = str(int(port))
    if name.endswith(".") and not name.endswith(".."):
        name = name[:-1]
    if not _HOST_RE.fullmatch(name):
        return None
    if port and port != _DEFAULT_PORTS.get(scheme, ""):
        return f"{name}:{port}"
    return name


def wsgi_str(text: str) -> str:
    """``text`` as WSGI carries it in the environ: its UTF-8 bytes as latin-1 characters."""
    return text.encode("utf-8").decode("latin-1")


#: One cookie of a ``Cookie`` header, as werkzeug reads it: a name, then
#: an optional value that is a quoted string (which may hold ``;``) or runs
#: to the next ``;``.
_COOKIE_RE = re.compile(
    r"""([^=;]*)(?:\s*=\s*("(?:[^\\"]|\\.)*"|.*?))?\s*;\s*""",
    flags=re.ASCII,
)


def cookie_values(header: str, names: Sequence[str]) -> list[str | None] | None:
    """The raw values of the cookies ``names`` in a ``Cookie`` header.

    ``None`` when any of them is ambiguous, that is when frameworks could
    read different values: the name appears twice (werkzeug and Flask read
    the first, Django the last), or appears after a comma (some servers
    join several ``Cookie`` headers with commas, and older parsers split on
    them). Values are kept as sent, quotes included (a quoted value may
    hold ``;``), so two spellings never share an entry.
    """
    found: dict[str, str] = {}
    wanted = set(names)
    for name, value in _COOKIE_RE.findall(header + ";"):
        name = name.strip()
        if name in wanted:
            if name in found:
                return None
            found[name] = value.strip()
        if "," in name or "," in value:
            for piece in (name + "=" + value).split(",")[1:]:
                if piece.partition("=")[0].strip() in wanted:
                    return None
    return [found.get(name) for name in names]


def ignore_matcher(patterns: Iterable[str]) -> re.Pattern[str] | None:
    """One regex for a list of query-parameter globs such as ``utm_*``."""
    patterns = list(patterns)
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{translate(p)})" for p in patterns))


def normalize_query(
    query_string: str,
    keep: frozenset[str] | None,
    ignore: re.Pattern[str] | None,
) -> str:
    """The query parameters that form the key, sorted and re-encoded.

    ``keep`` is ``None`` for all parameters, else the names to keep (in
    :func:`wsgi_str` form, as are the names ``ignore`` is matched against). Blank
    values are kept (``?a=`` differs from no ``a``); order of parameters does
    not matter; repeated parameters keep their relative order.
    """
    if not query_string:
        return ""
    # latin-1 maps every byte to one character: values that are not valid
    # UTF-8 stay apart instead of all becoming U+FFFD.
    pairs = parse_qsl(query_string, keep_blank_values=True, encoding="latin-1")
    if keep is not None:
        pairs = [pair for pair in pairs if pair[0] in keep]
    if ignore is not None:
        pairs = [pair for pair in pairs if not ignore.match(pair[0])]
    pairs.sort(key=lambda pair: pair[0])
    return "&".join(
        f"{quote(name, safe='', encoding='latin-1')}={quote(value, safe='', encoding='latin-1')}"
        for name, value in pairs
    )


def key_material(
    environ: Mapping[str, Any],
    method: str,
    host: str,
    path: str,
    query: str,
    variant: list[str | None],
    custom_key: str | None,
) -> str:
    """Everything that identifies a response, as one unambiguous string.

    ``host`` is :attr:`RequestHost.key`; ``path`` is ``PATH_INFO``, and
    ``SCRIPT_NAME`` joins it as a separate component (``/a`` + ``/b/c`` and
    ``/a/b`` + ``/c`` are different requests to the application).
    ``variant`` holds the values of the rule's vary headers and cookies
    (``None`` when absent). The method, the scheme, the host and the
    normalized query cannot contain ``|``; the paths and every free-form
    value after them are length-prefixed. Proxy override headers and the
    raw request target's path (``RAW_URI`` / ``REQUEST_URI``, where ``%2F``
    and ``/`` differ) join when present.
    """
    script_name = environ.get("SCRIPT_NAME", "")
    material = (
        f"{method}|{environ.get('wsgi.url_scheme', 'http')}|{host}|{query}"
        f"|{len(script_name)}:{script_name}|{len(path)}:{path}"
    )
    if variant or custom_key is not None:
        variant = [*variant, custom_key]
    if not environ.keys().isdisjoint(OVERRIDE_HEADER_SET):
        for environ_key in OVERRIDE_HEADERS:
            if environ_key in environ:
                variant = [*variant, environ_key, environ[environ_key]]
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        variant = [*variant, "RAW_URI", raw_uri.partition("?")[0]]
    if variant:
        material += "|" + pack(variant)
    return material


def header_environ_key(name: str) -> str:
    """The WSGI environ key of request header ``name``."""
    upper = name.upper().replace("-", "_")
    if upper in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return upper
    return "HTTP_" + upper


def pack(parts: Iterable[str | None]) -> str:
    """Join key components so that no combination of values can collide."""
    return "|".join("-" if part is None else f"{len(part)}:{part}" for part in parts)


def digest(material: str) -> str:
    """The fixed-length, backend-safe hash of key material."""
    return blake2b(material.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


class KeySpace:
    """Turns key material into backend keys for one backend.

    With ``shards > 1`` (Redis Cluster), an entry key carries a hash tag
    ``{sN}`` chosen from its digest, and the tag generations it depends on
    are read from the copies held in the same shard.
    """

    __slots__ = ("_entry_memo", "_memo", "prefix", "shards")

    def __init__(self, key_prefix: str, shards: int = 1) -> None:
        self.prefix = pack([f"v{FORMAT_VERSION}", key_prefix])
        self.shards = max(int(shards), 1)
        self._memo: FifoMemo[tuple[str, str], str] = FifoMemo(16384, max_bytes=4 * 1024 * 1024)
        self._entry_memo: FifoMemo[str, tuple[str, str]] = FifoMemo(16384, max_bytes=8 * 1024 * 1024)

    def entry_key(self, material: str) -> tuple[str, str]:
        """The entry key for ``material`` and the shard marker its tags use."""
        found = self._entry_memo.get(material)
        if found is None:
            found = self._entry_key(material)
            self._entry_memo.put(material, found)
        return found

    def _entry_key(self, material: str) -> tuple[str, str]:
        hexdigest = digest(self.prefix + "|" + material)
        if self.shards == 1:
            return "e:" + hexdigest, ""
        shard = f"{{s{int(hexdigest[:8], 16) % self.shards}}}:"
        return "e:" + shard + hexdigest, shard

    def tag_key(self, tag: str, shard: str) -> str:
        """The generation key of a user tag (``Rule(tags=...)``)."""
        return self._generation_key("tag", tag, shard)

    def path_tag_key(self, path: str, shard: str) -> str:
        """The generation key every entry of a path depends on (``invalidate(url)``)."""
        return self._generation_key("path", path, shard)

    def custom_key_tag_key(self, value: str, shard: str) -> str:
        """The generation key of a rendered ``Rule(key=...)`` value (``invalidate(key)``)."""
        return self._generation_key("key", value, shard)

    def tag_keys_all_shards(self, tag: str) -> list[str]:
        return self._all_shards("tag", tag)

    def path_tag_keys_all_shards(self, path: str) -> list[str]:
        return self._all_shards("path", path)

    def custom_key_tag_keys_all_shards(self, value: str) -> list[str]:
        return self._all_shards("key", value)

    def _generation_key(self, kind: str, name: str, shard: str) -> str:
        memo_key = (kind, name)
        hexdigest = self._memo.get(memo_key)
        if hexdigest is None:
            hexdigest = digest(pack([self.prefix, kind, name]))
            self._memo.put(memo_key, hexdigest)
        return "t:" + shard + hexdigest

    def _all_shards(self, kind: str, name: str) -> list[str]:
        if self.shards == 1:
            return [self._generation_key(kind, name, "")]
        return [self._generation_key(kind, name, f"{{s{n}}}:") for n in range(self.shards)]

    def lock_key(self, entry_key: str) -> str:
        return "l:" + entry_key[2:]
