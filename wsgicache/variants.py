"""Variants of a response selected by ``Vary``: RFC 9111 section 4.1.

Pure functions, no I/O, no state. A stored response's ``Vary`` names the
request fields that selected it (:func:`vary_names`); the presented request's
values of those fields, normalised as 4.1 allows (:func:`selecting_values`),
form a secondary key (:func:`secondary_key`) that tells the stored variants of
one URL apart. Two requests match exactly when their secondary keys are equal.

Usage::

    names = vary_names(response_headers)            # ("accept-encoding",) or "*"
    if names != STAR:
        values = selecting_values(names, lambda name: request_header(name))
        variant = secondary_key(names, values)      # "3f0c...": same value, same variant
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from hashlib import blake2b
from typing import Final, Literal, TypeAlias

#: Response headers as WSGI gives them: names in any case, repeats allowed.
Headers: TypeAlias = Sequence[tuple[str, str]]

#: A ``Vary`` that lists ``*``: no request ever matches (RFC 9111, 4.1).
STAR: Final = "*"

#: A field name (RFC 9110, 5.1: a token).
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")

#: Request fields whose values are lists of case-insensitive tokens with optional weights or
#: parameters: language tags (RFC 9110 12.5.4, RFC 4647), content codings (8.4.1, 12.5.3) and
#: charsets (12.5.2, obsolete) compare without regard to case. ``Accept`` is not here: media
#: type parameter values may be case-sensitive (8.3.1).
CASE_INSENSITIVE_FIELDS: frozenset[str] = frozenset({"accept-language", "accept-encoding", "accept-charset"})

#: Request fields whose list members are ``token *( OWS ";" OWS parameter )``, so the whitespace
#: around ``;`` is not significant either (RFC 9110, 12.5.1 to 12.5.4).
_PARAMETERISED_FIELDS: frozenset[str] = CASE_INSENSITIVE_FIELDS | {"accept"}

#: Whitespace (OWS: space and tab) around a delimiter outside quoted strings.
_OWS = " \t"


def vary_names(headers: Headers) -> tuple[str, ...] | Literal["*"]:
    """The request fields that ``Vary`` nominates, lower-cased, sorted, without duplicates.

    All ``Vary`` lines count; empty list members are ignored (RFC 9110,
    5.6.1). A member ``*``, or one that is not a field name at all (such as
    ``"Foo"``), gives :data:`STAR`: the response matches no request. No
    ``Vary`` gives ``()``.
    """
    names: set[str] = set()
    for key, value in headers:
        if key.lower() != "vary":
            continue
        for member in value.split(","):
            member = member.strip(_OWS)
            if not member:
                continue
            if member == STAR or _TOKEN.fullmatch(member) is None:
                return STAR
            names.add(member.lower())
    return tuple(sorted(names))


def _split(value: str, delimiter: str) -> list[str]:
    """``value`` split at ``delimiter`` outside quoted strings, each part stripped of OWS."""
    parts: list[str] = []
    start = 0
    quoted = escaped = False
    for index, char in enumerate(value):
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == delimiter and not quoted:
            parts.append(value[start:index])
            start = index + 1
    parts.append(value[start:])
    return [part.strip(_OWS) for part in parts]


def normalise_value(name: str, value: str) -> str:
    """A request field value in a canonical form with the same semantics (RFC 9111, 4.1).

    Whitespace at either end and around the commas of a list is removed
    (several field lines joined with ``", "`` thus equal one line); for the
    ``Accept`` family also around ``;``, and the values of
    :data:`CASE_INSENSITIVE_FIELDS` are lower-cased. Whitespace inside
    quoted strings, the case of other values, empty list members and the
    order of members are kept: the order of equally weighted languages or
    codings is a preference to some applications (RFC 9110, 12.5.4), so
    ``en, de`` and ``de, en`` remain different.
    """
    name = name.lower()
    members = _split(value, ",")
    if name in _PARAMETERISED_FIELDS:
        members = [";".join(_split(member, ";")) for member in members]
    result = ",".join(members)
    return result.lower() if name in CASE_INSENSITIVE_FIELDS else result


def selecting_values(names: Sequence[str], get_header: Callable[[str], str | None]) -> tuple[str | None, ...]:
    """The presented request's normalised values of the selecting fields ``names``.

    ``get_header`` takes a lower-case field name and returns its value
    (several field lines joined with ``", "``) or ``None`` when absent. An
    absent field stays ``None`` and an empty one ``""``: they differ (RFC
    9111, 4.1: an absent field only matches an absent one).
    """
    values: list[str | None] = []
    for name in names:
        value = get_header(name.lower())
        values.append(None if value is None else normalise_value(name, value))
    return tuple(values)


def secondary_key(names: Sequence[str], values: Sequence[str | None]) -> str:
    """A stable digest (BLAKE2b, 128 bits, hex) of the selecting fields and their values.

    Unambiguous: every name and value is length-prefixed and an absent value
    (``None``) is marked apart from an empty one, so ``("a", "b")`` and
    ``("ab",)`` or ``None`` and ``""`` never collide. Pass ``names`` as
    :func:`vary_names` gives them, ``values`` from :func:`selecting_values`.
    """
    if len(names) != len(values):
        raise ValueError(f"{len(names)} names but {len(values)} values")
    digest = blake2b(digest_size=16, person=b"wsgicache-vary")
    digest.update(len(names).to_bytes(4, "big"))
    for name, value in zip(names, values, strict=True):
        encoded = name.encode("utf-8", "surrogatepass")
        digest.update(len(encoded).to_bytes(8, "big") + encoded)
        if value is None:
            digest.update(b"\x00")
        else:
            encoded = value.encode("utf-8", "surrogatepass")
            digest.update(b"\x01" + len(encoded).to_bytes(8, "big") + encoded)
    return digest.hexdigest()
