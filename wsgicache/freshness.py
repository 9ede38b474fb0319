"""RFC 9111 storability and freshness decisions for a shared cache, as pure functions.

Nothing here does I/O, reads the clock or keeps state: every time is a parameter
(Unix seconds) and every function is table-tested in ``tests/test_freshness.py``.
The behaviour on malformed input follows RFC 9111 and the HTTP cache conformance
suite (cache-tests.fyi); the tests replay the suite's cases, named by their ids.

The steps, in the order a shared cache takes them::

    >>> headers = [("Date", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ...            ("Cache-Control", "max-age=60, stale-while-revalidate=30"), ("ETag", '"v1"')]
    >>> received = 784111777.0                       # the Unix time of that Date
    >>> d = response_directives(headers, targeted_fields=("CDN-Cache-Control",))
    >>> why_not_storable(200, headers, d, method="GET", statuses=None) is None
    True
    >>> freshness_lifetime(200, headers, d, response_time=received)
    Lifetime(seconds=60.0, source='max-age')
    >>> corrected_initial_age(headers, request_time=received - 0.5, response_time=received)
    0.5
    >>> request = request_directives(None, None)     # the request had no Cache-Control / Pragma
    >>> age = current_age(0.5, response_time=received, now=received + 70)
    >>> classify(age=age, lifetime=60.0, request=request, no_cache=d.no_cache,
    ...          must_revalidate=d.must_revalidate, stale_while_revalidate=30.0, has_validator=True)
    <Reuse.STALE_WHILE_REVALIDATE: 'stale_while_revalidate'>
"""

from __future__ import annotations

import base64
import binascii
import enum
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, NamedTuple, TypeAlias

from werkzeug.http import parse_date

__all__ = [
    "HEURISTICALLY_CACHEABLE",
    "NO_REQUEST_DIRECTIVES",
    "UNDERSTOOD_STATUSES",
    "Headers",
    "Lifetime",
    "LifetimeSource",
    "NotStoredReason",
    "RequestDirectives",
    "ResponseDirectives",
    "Reuse",
    "classify",
    "corrected_initial_age",
    "current_age",
    "freshness_lifetime",
    "may_serve_stale_on_error",
    "parse_http_date",
    "request_directives",
    "response_directives",
    "why_not_storable",
]

#: Response headers as WSGI gives them: ``(name, value)``, names in any case, repeats allowed.
Headers: TypeAlias = Sequence[tuple[str, str]]

#: Statuses a cache may give a heuristic freshness lifetime (RFC 9110 15.1, RFC 9111 4.2.2).
HEURISTICALLY_CACHEABLE: frozenset[int] = frozenset(
    {200, 203, 204, 206, 300, 301, 308, 404, 405, 410, 414, 501}
)

#: Final statuses whose requirements this cache understands: the ones RFC 9110 defines.
#: Only consulted for ``must-understand`` (RFC 9111 5.2.2.3); other statuses are stored normally.
UNDERSTOOD_STATUSES: frozenset[int] = frozenset(
    {200, 201, 202, 203, 204, 205, 206}
    | {300, 301, 302, 303, 304, 305, 307, 308}
    | set(range(400, 418))
    | {421, 422, 426}
    | set(range(500, 506))
)

#: RFC 9111 1.2.2: a delta-seconds larger than a cache can represent is taken as 2**31.
DELTA_SECONDS_MAX = 2**31

_NEVER_WHOLE = frozenset({206, 304})
_STORABLE_METHODS = frozenset({"GET"})

NotStoredReason = Literal[
    "status",  # not a final status, or not in the rule's statuses
    "partial",  # 206, 304 or Content-Range: never a whole representation
    "method",  # only GET responses are stored as whole entries
    "set-cookie",
    "no-store",
    "private",
    "vary-star",
    "vary",  # (for the caller) Vary names a header the key does not hold
    "authorization",
    "no-freshness",  # (for the caller) freshness_lifetime() returned None
    "must-understand",
    "request-no-store",
    "error",  # (for the caller) the application failed
    "too_large",  # (for the caller)
    "length",  # (for the caller)
]

LifetimeSource = Literal["s-maxage", "max-age", "expires", "timeout", "heuristic"]


class Lifetime(NamedTuple):
    """A freshness lifetime in seconds and the field it came from."""

    seconds: float
    source: LifetimeSource


@dataclass(frozen=True, slots=True)
class ResponseDirectives:
    """The cache directives a shared cache obeys, from Cache-Control or a targeted field (RFC 9213)."""

    no_store: bool = False
    #: unqualified no-cache: store, but revalidate before every reuse
    no_cache: bool = False
    #: no-cache="Foo, Bar": lower-cased field names not to reuse without revalidation
    no_cache_fields: frozenset[str] = frozenset()
    #: unqualified private: a shared cache must not store
    private: bool = False
    #: private="Foo": a shared cache may store the response without those fields
    private_fields: frozenset[str] = frozenset()
    public: bool = False
    #: must-revalidate, proxy-revalidate, or s-maxage (RFC 9111 5.2.2.10): never serve stale
    must_revalidate: bool = False
    must_understand: bool = False
    #: None: absent; a present but invalid value is 0 (RFC 9111 4.2.1: treat as stale)
    max_age: int | None = None
    s_maxage: int | None = None
    #: RFC 5861; an invalid value is None (no stale serving)
    stale_while_revalidate: int | None = None
    stale_if_error: int | None = None
    #: lower-cased name of the field the directives came from
    source: str = "cache-control"
    #: the must-revalidate directive itself (RFC 9111 3.5 lets it store answers to Authorization;
    #: proxy-revalidate does not)
    must_revalidate_directive: bool = False
    immutable: bool = False


@dataclass(frozen=True, slots=True)
class RequestDirectives:
    """The request's cache directives (RFC 9111 5.2.1, RFC 5861 4)."""

    max_age: int | None = None
    min_fresh: int | None = None
    #: None: absent; math.inf for a bare max-stale
    max_stale: float | None = None
    #: Cache-Control: no-cache, or Pragma: no-cache when there is no Cache-Control field (RFC 9111 5.4)
    no_cache: bool = False
    no_store: bool = False
    only_if_cached: bool = False
    #: RFC 5861 4: the client accepts a stale response this long when the origin fails
    stale_if_error: int | None = None


#: The directives of a request without Cache-Control and Pragma: the common case, shared.
NO_REQUEST_DIRECTIVES = RequestDirectives()
_NO_RESPONSE_DIRECTIVES = ResponseDirectives()


class Reuse(enum.Enum):
    """What to do with a stored response for a request (:func:`classify`)."""

    FRESH = "fresh"  # serve it
    STALE_ALLOWED = "stale_allowed"  # stale, but the request's max-stale allows it: serve
    STALE_WHILE_REVALIDATE = "stale_while_revalidate"  # serve stale if another request refreshes it
    REVALIDATE = "revalidate"  # ask the application conditionally (the entry has a validator)
    REFILL = "refill"  # cannot be reused; fetch a new response (no validator)
    UNSATISFIABLE = "unsatisfiable"  # only-if-cached and no reusable entry: answer 504


# --------------------------------------------------------------------------- field access


def _lines(headers: Headers, name: str) -> list[str]:
    """The values of every field line called ``name`` (lower case), in order."""
    return [value for key, value in headers if key.lower() == name]


def _first(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value
    return None


def _has(headers: Headers, name: str) -> bool:
    return any(key.lower() == name for key, _ in headers)


def _delta_seconds(value: str | None) -> int | None:
    """RFC 9111 1.2.2 ``delta-seconds = 1*DIGIT``, capped at 2**31; None when not one."""
    if not value or not value.isascii() or not value.isdigit():
        return None  # no sign, no decimals, no "_" or non-ASCII digits (int() would take those)
    if len(value) > 10:
        return DELTA_SECONDS_MAX
    return min(int(value), DELTA_SECONDS_MAX)


# --------------------------------------------------------------------------- dates

_WKDAY = r"(?:mon|tue|wed|thu|fri|sat|sun)"
_WEEKDAY = r"(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday)"
_MONTH = r"(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)"
_TIME = r"[0-9]{2}:[0-9]{2}:[0-9]{2}"
#: RFC 9110 5.6.7 HTTP-date: IMF-fixdate / rfc850-date / asctime-date. Names and "GMT" are
#: matched in any case (the suite's optimal tests); everything else exactly (its required ones).
_HTTP_DATE = re.compile(
    rf"{_WKDAY}, [0-9]{{2}} {_MONTH} [0-9]{{4}} {_TIME} gmt"
    rf"|{_WEEKDAY}, [0-9]{{2}}-{_MONTH}-[0-9]{{2}} {_TIME} gmt"
    rf"|{_WKDAY} {_MONTH} (?:[0-9]{{2}}| [0-9]) {_TIME} [0-9]{{4}}",
    re.IGNORECASE | re.ASCII,
)


def parse_http_date(value: str | None) -> float | None:
    """An HTTP-date (RFC 9110 5.6.7) as Unix seconds; None when absent or not exactly that syntax.

    The syntax is checked strictly (werkzeug's parser also takes ``UTC``, two-digit years in the
    IMF form, missing commas, ...), then werkzeug converts it.
    """
    if value is None:
        return None
    value = value.strip(" \t")
    if _HTTP_DATE.fullmatch(value) is None:
        return None
    parsed = parse_date(value)
    return None if parsed is None else parsed.timestamp()


def _date_value(headers: Headers, response_time: float) -> float:
    """The first Date field line, or ``response_time`` when it is absent or invalid."""
    date = parse_http_date(_first(headers, "date"))
    return response_time if date is None else date


# --------------------------------------------------------------------------- Cache-Control

_TCHAR = frozenset("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_OWS = " \t"
_DELTA_DIRECTIVES = frozenset({"max-age", "s-maxage", "stale-while-revalidate", "stale-if-error"})


def _split_list(value: str) -> list[str]:
    """Split a field line at commas outside quoted strings; drop empty elements.

    An unterminated quoted string swallows the rest of the line but keeps what came before
    (werkzeug's ``parse_list_header`` drops the whole line, which would lose a ``no-store``).
    """
    items: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(value):
        if quoted:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quoted = False
        elif char == '"':
            quoted = True
        elif char == ",":
            items.append(value[start:index])
            start = index + 1
    items.append(value[start:])
    return [item for item in (raw.strip(_OWS) for raw in items) if item]


def _unquote(raw: str) -> str | None:
    """The content of a quoted-string that is all of ``raw``; None when malformed."""
    out: list[str] = []
    index, end = 1, len(raw)
    while index < end:
        char = raw[index]
        if char == "\\":
            if index + 1 >= end:
                return None
            out.append(raw[index + 1])
            index += 2
        elif char == '"':
            return "".join(out) if index == end - 1 else None
        else:
            out.append(char)
            index += 1
    return None


def _directive(element: str) -> tuple[str, str | None, bool]:
    """``(lower-cased name, argument or None, argument well-formed)`` of one list element.

    RFC 9111 5.2: ``token [ "=" ( token / quoted-string ) ]``, no whitespace around ``=``;
    both argument forms are accepted for every directive.
    """
    name, eq, raw = element.partition("=")
    if not eq:
        return name.lower(), None, True
    lname = name.strip(_OWS).lower()
    if name != name.rstrip(_OWS) or not raw or raw[0] in _OWS:
        return lname, raw, False
    if raw[0] == '"':
        text = _unquote(raw)
        return (lname, text, True) if text is not None else (lname, raw, False)
    return lname, raw, all(char in _TCHAR for char in raw)


def _field_names(value: str) -> frozenset[str]:
    return frozenset(name.lower() for name in (part.strip(_OWS) for part in value.split(",")) if name)


class _Builder:
    """Collects directives; :meth:`build` applies the shared-cache implications."""

    __slots__ = (
        "deltas",
        "immutable",
        "must_revalidate",
        "must_understand",
        "no_cache",
        "no_cache_fields",
        "no_store",
        "private",
        "private_fields",
        "proxy_revalidate",
        "public",
    )

    def __init__(self) -> None:
        self.no_store = self.no_cache = self.private = self.public = False
        self.must_revalidate = self.proxy_revalidate = self.must_understand = self.immutable = False
        self.no_cache_fields: frozenset[str] = frozenset()
        self.private_fields: frozenset[str] = frozenset()
        #: first occurrence of each delta directive; None when that occurrence is invalid
        self.deltas: dict[str, int | None] = {}

    def flag(self, name: str) -> None:
        if name == "no-store":
            self.no_store = True
        elif name == "no-cache":
            self.no_cache = True
        elif name == "private":
            self.private = True
        elif name == "public":
            self.public = True
        elif name == "must-revalidate":
            self.must_revalidate = True
        elif name == "proxy-revalidate":
            self.proxy_revalidate = True
        elif name == "must-understand":
            self.must_understand = True
        elif name == "immutable":
            self.immutable = True

    def fields(self, name: str, names: frozenset[str]) -> None:
        """A qualified no-cache / private; an empty list counts as unqualified."""
        if not names:
            self.flag(name)
        elif name == "no-cache":
            self.no_cache_fields |= names
        else:
            self.private_fields |= names

    def _lifetime(self, name: str) -> int | None:
        """RFC 9111 4.2.1: present but invalid freshness information makes the response stale (0)."""
        if name not in self.deltas:
            return None
        value = self.deltas[name]
        return 0 if value is None else value

    def build(self, source: str) -> ResponseDirectives:
        deltas = self.deltas
        max_age = self._lifetime("max-age")
        s_maxage = self._lifetime("s-maxage")
        return ResponseDirectives(
            no_store=self.no_store,
            no_cache=self.no_cache,
            no_cache_fields=frozenset() if self.no_cache else self.no_cache_fields,
            private=self.private,
            private_fields=frozenset() if self.private else self.private_fields,
            public=self.public,
            must_revalidate=self.must_revalidate or self.proxy_revalidate or s_maxage is not None,
            must_understand=self.must_understand,
            max_age=max_age,
            s_maxage=s_maxage,
            stale_while_revalidate=deltas.get("stale-while-revalidate"),
            stale_if_error=deltas.get("stale-if-error"),
            source=source,
            must_revalidate_directive=self.must_revalidate,
            immutable=self.immutable,
        )


def _cache_control(lines: list[str]) -> ResponseDirectives:
    builder = _Builder()
    for line in lines:
        for element in _split_list(line):
            name, value, well_formed = _directive(element)
            if name in _DELTA_DIRECTIVES:
                # RFC 9111 4.2.1: with more than one value, the first occurrence is used.
                if name not in builder.deltas:
                    builder.deltas[name] = _delta_seconds(value) if well_formed else None
            elif name in ("no-cache", "private") and value is not None and well_formed:
                builder.fields(name, _field_names(value))
            else:
                builder.flag(name)  # a flag with a stray or malformed argument still counts
    return builder.build("cache-control")


# --------------------------------------------------------------------------- RFC 8941 dictionaries


class _Token(str):
    """An sf-token, kept apart from an sf-string."""

    __slots__ = ()


_BareItem: TypeAlias = "int | float | str | bytes | bool"
_Member: TypeAlias = "_BareItem | list[_BareItem]"


class _SFError(ValueError):
    pass


_SF_KEY_START = frozenset("abcdefghijklmnopqrstuvwxyz*")
_SF_KEY_CHARS = _SF_KEY_START | frozenset("0123456789_-.")
_SF_TOKEN_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ*")
_SF_TOKEN_CHARS = _TCHAR | frozenset(":/")
_SF_BASE64 = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=")


class _SFParser:
    """A strict RFC 8941 parser for Dictionaries (section 4.2.2); parameters are parsed and dropped."""

    __slots__ = ("pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def _peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def dictionary(self) -> dict[str, _Member]:
        text = self.text
        if not text.isascii():
            raise _SFError("not ASCII")
        members: dict[str, _Member] = {}
        while self.pos < len(text):
            key = self._key()
            member: _Member
            if self._peek() == "=":
                self.pos += 1
                member = self._inner_list() if self._peek() == "(" else self._bare_item()
            else:
                member = True
            self._parameters()
            members[key] = member  # a repeated key: the last one wins
            while self._peek() in (" ", "\t"):
                self.pos += 1
            if self.pos >= len(text):
                return members
            if text[self.pos] != ",":
                raise _SFError(f"expected ',' at {self.pos}")
            self.pos += 1
            while self._peek() in (" ", "\t"):
                self.pos += 1
            if self.pos >= len(text):
                raise _SFError("trailing comma")
        return members

    def _key(self) -> str:
        start = self.pos
        if self._peek() not in _SF_KEY_START:
            raise _SFError(f"bad key at {start}")
        while self.pos < len(self.text) and self.text[self.pos] in _SF_KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def _parameters(self) -> None:
        while self._peek() == ";":
            self.pos += 1
            while self._peek() == " ":
                self.pos += 1
            self._key()
            if self._peek() == "=":
                self.pos += 1
                self._bare_item()

    def _inner_list(self) -> list[_BareItem]:
        self.pos += 1  # "("
        items: list[_BareItem] = []
        while self.pos < len(self.text):
            while self._peek() == " ":
                self.pos += 1
            if self._peek() == ")":
                self.pos += 1
                return items
            items.append(self._bare_item())
            self._parameters()
            if self._peek() not in (" ", ")"):
                raise _SFError("bad inner list")
        raise _SFError("unterminated inner list")

    def _bare_item(self) -> _BareItem:
        char = self._peek()
        if char == "-" or char.isdigit():
            return self._number()
        if char == '"':
            return self._string()
        if char in _SF_TOKEN_START:
            return self._token()
        if char == ":":
            return self._bytes()
        if char == "?":
            flag = self.text[self.pos + 1 : self.pos + 2]
            if flag not in ("0", "1"):
                raise _SFError("bad boolean")
            self.pos += 2
            return flag == "1"
        raise _SFError(f"bad item at {self.pos}")

    def _number(self) -> int | float:
        text, start = self.text, self.pos
        if text[self.pos] == "-":
            self.pos += 1
        digits_start = self.pos
        decimal = False
        while self.pos < len(text):
            char = text[self.pos]
            if char.isdigit():
                self.pos += 1
            elif char == "." and not decimal:
                if self.pos - digits_start > 12:
                    raise _SFError("decimal too long")
                decimal = True
                self.pos += 1
            else:
                break
            if not decimal and self.pos - digits_start > 15:
                raise _SFError("integer too long")
            if decimal and self.pos - digits_start > 16:
                raise _SFError("decimal too long")
        number = text[start : self.pos]
        if number in ("", "-") or not text[digits_start : digits_start + 1].isdigit():
            raise _SFError("no digits")
        if not decimal:
            return int(number)
        if number.endswith(".") or len(number) - number.index(".") - 1 > 3:
            raise _SFError("bad decimal")
        return float(number)

    def _string(self) -> str:
        self.pos += 1
        out: list[str] = []
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            self.pos += 1
            if char == "\\":
                escaped = text[self.pos : self.pos + 1]
                if escaped not in ('"', "\\"):
                    raise _SFError("bad escape")
                out.append(escaped)
                self.pos += 1
            elif char == '"':
                return "".join(out)
            elif not " " <= char <= "~":
                raise _SFError("bad string character")
            else:
                out.append(char)
        raise _SFError("unterminated string")

    def _token(self) -> _Token:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] in _SF_TOKEN_CHARS:
            self.pos += 1
        return _Token(self.text[start : self.pos])

    def _bytes(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise _SFError("unterminated byte sequence")
        content = self.text[self.pos + 1 : end]
        if not set(content) <= _SF_BASE64:
            raise _SFError("bad base64")
        self.pos = end + 1
        try:
            return base64.b64decode(content + "=" * (-len(content) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _SFError("bad base64") from exc


_SF_FLAGS = frozenset(
    {"no-store", "public", "must-revalidate", "proxy-revalidate", "must-understand", "immutable"}
)


def _targeted(lines: list[str], source: str) -> ResponseDirectives | None:
    """RFC 9213 2.1: the directives of a targeted field, or None when it must be ignored
    (empty, not a Dictionary, or a known directive with a value of the wrong type)."""
    # RFC 8941 4.2: lines are joined with ", " (an empty line adds nothing, RFC 9110 5.3).
    text = ", ".join(line.strip(" ") for line in lines if line.strip(" "))
    if not text:
        return None
    try:
        members = _SFParser(text).dictionary()
    except _SFError:
        return None
    builder = _Builder()
    for name, value in members.items():
        if name in _DELTA_DIRECTIVES:
            if type(value) is not int or value < 0:
                return None
            builder.deltas[name] = min(value, DELTA_SECONDS_MAX)
        elif name in _SF_FLAGS or name in ("no-cache", "private"):
            if value is True:
                builder.flag(name)
            elif value is False:
                continue
            elif name not in _SF_FLAGS and type(value) is str:  # an sf-string of field names
                builder.fields(name, _field_names(value))
            else:
                return None
    return builder.build(source)


def response_directives(headers: Headers, targeted_fields: Sequence[str] = ()) -> ResponseDirectives:
    """The directives this shared cache obeys for a response.

    RFC 9213 2.2: the first of ``targeted_fields`` (e.g. ``("CDN-Cache-Control",)``) present with a
    valid, non-empty Structured Field Dictionary is used *instead of* Cache-Control (and Expires:
    see :func:`freshness_lifetime`); a targeted field that does not parse is ignored.
    Otherwise Cache-Control (every field line) is parsed as RFC 9111 5.2 and 4.2.1 say.
    """
    for field in targeted_fields:
        name = field.lower()
        lines = _lines(headers, name)
        if lines:
            directives = _targeted(lines, name)
            if directives is not None:
                return directives
    lines = _lines(headers, "cache-control")
    return _cache_control(lines) if lines else _NO_RESPONSE_DIRECTIVES


# --------------------------------------------------------------------------- request directives


def request_directives(cache_control: str | None, pragma: str | None) -> RequestDirectives:
    """The request's directives from its Cache-Control (all lines joined with ``", "``) and Pragma.

    ``Pragma: no-cache`` counts only when the request has no Cache-Control field (RFC 9111 5.4).
    Invalid or repeated values: the first valid occurrence counts; an invalid one is ignored.
    """
    if cache_control is None:
        if pragma is None:
            return NO_REQUEST_DIRECTIVES
        if any(item.lower() == "no-cache" for item in _split_list(pragma)):
            return RequestDirectives(no_cache=True)
        return NO_REQUEST_DIRECTIVES
    max_age = min_fresh = stale_if_error = None
    max_stale: float | None = None
    no_cache = no_store = only_if_cached = False
    for element in _split_list(cache_control):
        name, value, well_formed = _directive(element)
        delta = _delta_seconds(value) if well_formed else None
        if name == "max-age":
            max_age = delta if max_age is None else max_age
        elif name == "min-fresh":
            min_fresh = delta if min_fresh is None else min_fresh
        elif name == "max-stale":
            if max_stale is None:
                max_stale = math.inf if value is None else delta
        elif name == "stale-if-error":
            stale_if_error = delta if stale_if_error is None else stale_if_error
        elif name == "no-cache":
            no_cache = True
        elif name == "no-store":
            no_store = True
        elif name == "only-if-cached":
            only_if_cached = True
    result = RequestDirectives(
        max_age=max_age,
        min_fresh=min_fresh,
        max_stale=max_stale,
        no_cache=no_cache,
        no_store=no_store,
        only_if_cached=only_if_cached,
        stale_if_error=stale_if_error,
    )
    return NO_REQUEST_DIRECTIVES if result == NO_REQUEST_DIRECTIVES else result


# --------------------------------------------------------------------------- freshness and age


def freshness_lifetime(
    status: int,
    headers: Headers,
    directives: ResponseDirectives,
    *,
    response_time: float,
    timeout: float | None = None,
    heuristic: float = 0.0,
    heuristic_cap: float = 86400.0,
) -> Lifetime | None:
    """RFC 9111 4.2.1: the freshness lifetime of a response, or None when it has none.

    s-maxage, then max-age, then Expires minus Date (Date absent or invalid: ``response_time``;
    Expires invalid, e.g. ``0``: already expired). Expires is ignored when the directives come from
    a targeted field (RFC 9213 2.2). Without any of them, and only for a heuristically cacheable
    status or a ``public`` response (RFC 9111 3, 4.2.2): ``timeout`` when given, else when
    ``heuristic > 0`` ``min(heuristic * (Date - Last-Modified), heuristic_cap)``, else 0 seconds
    for a ``no-cache`` response with a validator (stored only to be revalidated).
    """
    if directives.s_maxage is not None:
        return Lifetime(float(directives.s_maxage), "s-maxage")
    if directives.max_age is not None:
        return Lifetime(float(directives.max_age), "max-age")
    if directives.source == "cache-control":
        expires_field = _first(headers, "expires")
        if expires_field is not None:
            # RFC 9111 5.3: an invalid date, especially "0", is a time in the past.
            expires = parse_http_date(expires_field)
            if expires is None:
                return Lifetime(0.0, "expires")
            return Lifetime(max(0.0, expires - _date_value(headers, response_time)), "expires")
    if status not in HEURISTICALLY_CACHEABLE and not directives.public:
        return None
    if timeout is not None:
        return Lifetime(max(0.0, float(timeout)), "timeout")
    if heuristic > 0:
        last_modified = parse_http_date(_first(headers, "last-modified"))
        if last_modified is not None:
            since = _date_value(headers, response_time) - last_modified
            return Lifetime(max(0.0, min(heuristic * since, heuristic_cap)), "heuristic")
    if directives.no_cache and (_has(headers, "etag") or _has(headers, "last-modified")):
        # The origin asks to revalidate every reuse: worth storing, stale from the start (the
        # suite's cc-resp-no-cache-revalidate). The lifetime never matters: no-cache rules reuse.
        return Lifetime(0.0, "heuristic")
    return None


def _age_value(headers: Headers) -> int:
    """RFC 9111 5.1 as the suite reads it: the first element of the first Age line, 0 when invalid."""
    line = _first(headers, "age")
    if line is None:
        return 0
    first = line.split(",", 1)[0].strip(_OWS)
    value = _delta_seconds(first)
    return 0 if value is None else value


def corrected_initial_age(headers: Headers, *, request_time: float, response_time: float) -> float:
    """RFC 9111 4.2.3: the age of a response when it was received.

    ``max(apparent_age, age_value + response_delay)`` where ``apparent_age`` is
    ``response_time - Date`` (0 when Date is absent, invalid or in the future).
    """
    date = parse_http_date(_first(headers, "date"))
    apparent_age = 0.0 if date is None else max(0.0, response_time - date)
    response_delay = max(0.0, response_time - request_time)
    return max(apparent_age, _age_value(headers) + response_delay)


def current_age(corrected_initial: float, *, response_time: float, now: float) -> float:
    """RFC 9111 4.2.3: ``corrected_initial_age + resident_time``."""
    return corrected_initial + max(0.0, now - response_time)


# --------------------------------------------------------------------------- storing


def why_not_storable(
    status: int,
    headers: Headers,
    directives: ResponseDirectives,
    *,
    method: str,
    statuses: frozenset[int] | None,
    request_no_store: bool = False,
    request_authorization: bool = False,
    allow_authorization: bool = False,
    allow_set_cookie: bool = False,
) -> NotStoredReason | None:
    """RFC 9111 section 3 for a shared cache: why this response must not be stored, or None.

    ``statuses`` None stores every final status (except 206/304, "partial"); a set only those.
    Lifetime is not decided here: the caller uses "no-freshness" when :func:`freshness_lifetime`
    returns None.
    """
    if status < 200 or status >= 600:
        return "status"
    if status in _NEVER_WHOLE or _has(headers, "content-range"):
        return "partial"
    if statuses is not None and status not in statuses:
        return "status"
    if method not in _STORABLE_METHODS:
        return "method"
    if request_no_store:
        return "request-no-store"
    if directives.must_understand:
        # RFC 9111 5.2.2.3: only with a status the cache understands, and then no-store may go.
        if status not in UNDERSTOOD_STATUSES:
            return "must-understand"
    elif directives.no_store:
        return "no-store"
    if directives.private:
        return "private"
    if any(item == "*" for line in _lines(headers, "vary") for item in _split_list(line)):
        return "vary-star"
    if (
        request_authorization
        and not allow_authorization
        and not directives.public
        and directives.s_maxage is None
        and not directives.must_revalidate_directive
    ):
        return "authorization"  # RFC 9111 3.5
    if not allow_set_cookie and _has(headers, "set-cookie"):
        return "set-cookie"
    return None


# --------------------------------------------------------------------------- reusing


def _forbids_stale(request: RequestDirectives, age: float, lifetime: float) -> bool:
    """RFC 9111 5.2.1: request directives that rule out this entry whatever its freshness allows."""
    if request.no_cache:
        return True
    if request.max_age is not None and age > request.max_age:
        return True
    return request.min_fresh is not None and lifetime - age < request.min_fresh


def classify(
    *,
    age: float,
    lifetime: float,
    request: RequestDirectives,
    no_cache: bool,
    must_revalidate: bool,
    stale_while_revalidate: float,
    has_validator: bool,
) -> Reuse:
    """RFC 9111 4 and 5.2.1, RFC 5861 3: what to do with a stored response for a request.

    ``age`` is its current age, ``lifetime`` its freshness lifetime; ``no_cache`` and
    ``must_revalidate`` are the response's (see :class:`ResponseDirectives`);
    ``stale_while_revalidate`` the window in seconds (0: none).
    """
    if request is NO_REQUEST_DIRECTIVES and not no_cache and age < lifetime:
        return Reuse.FRESH  # the hit path
    if not no_cache and not _forbids_stale(request, age, lifetime):
        if age < lifetime:
            return Reuse.FRESH
        if not must_revalidate:
            staleness = age - lifetime
            if request.max_stale is not None and staleness <= request.max_stale:
                return Reuse.STALE_ALLOWED
            # RFC 9111 5.2.1.1: with max-age and no max-stale the client wants no stale response.
            if staleness < stale_while_revalidate and request.max_age is None:
                return Reuse.STALE_WHILE_REVALIDATE
    if request.only_if_cached:
        return Reuse.UNSATISFIABLE
    return Reuse.REVALIDATE if has_validator else Reuse.REFILL


def may_serve_stale_on_error(
    *,
    age: float,
    lifetime: float,
    stale_if_error: float,
    must_revalidate: bool,
    request: RequestDirectives,
    no_cache: bool = False,
) -> bool:
    """RFC 9111 4.2.4, RFC 5861 4: may a stored response answer for an application that failed?

    Never when the response has must-revalidate (or proxy-revalidate, s-maxage) or no-cache,
    nor when the request's no-cache, max-age or min-fresh rules it out (unless its max-stale or
    stale-if-error covers the staleness). Otherwise while ``age < lifetime + stale_if_error``
    (``stale_if_error``: the response's or the rule's window), or within the request's
    max-stale / stale-if-error.
    """
    if must_revalidate or no_cache or request.no_cache:
        return False
    staleness = age - lifetime
    if request.max_stale is not None and staleness <= request.max_stale:
        return True
    if request.stale_if_error is not None and staleness < request.stale_if_error:
        return True
    if _forbids_stale(request, age, lifetime):
        return False
    return staleness < 0 or staleness < stale_if_error
