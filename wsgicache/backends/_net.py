"""Helpers of the Redis and Memcached backends: parsing of network locations, and
:class:`KeyListMemo`, what a backend works out for a list of keys, remembered."""

from __future__ import annotations

import math
import re
import threading
from typing import Generic, TypeVar
from urllib.parse import unquote

from ..checks import is_positive_seconds
from ..errors import ConfigurationError

_PORT = re.compile(r"[0-9]{1,5}")

V = TypeVar("V")


def split_userinfo(netloc: str) -> tuple[str | None, str | None, str]:
    """``(username, password, hosts part)`` of ``user:password@h1:p1,h2:p2``."""
    userinfo, at, hosts = netloc.rpartition("@")
    if not at:
        return None, None, netloc
    user, colon, password = userinfo.partition(":")
    return (unquote(user) or None), (unquote(password) if colon else None), hosts


def parse_hosts(hosts: str, default_port: int, url: str) -> list[tuple[str, int]]:
    """``[(host, port), ...]`` of ``h1:p1,h2,[::1]:p3`` (the port defaults to ``default_port``)."""
    found: list[tuple[str, int]] = []
    for raw in hosts.split(","):
        item = raw.strip()
        if not item:
            continue
        if item.startswith("["):
            host, bracket, rest = item[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ConfigurationError(f"invalid IPv6 address {item!r} in {url!r}; write [::1]:6379")
            port_text = rest[1:]
        else:
            host, colon, port_text = item.rpartition(":")
            if not colon:
                host, port_text = item, ""
        if not host:
            raise ConfigurationError(f"missing host name in {item!r} of {url!r}")
        if port_text:
            if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:
                raise ConfigurationError(f"invalid port {port_text!r} in {url!r}")
            port = int(port_text)
        else:
            port = default_port
        found.append((unquote(host), port))
    return found


def positive_seconds(owner: str, name: str, value: object) -> float:
    """Check a timeout option: a positive, finite number of seconds."""
    if not is_positive_seconds(value):
        raise ConfigurationError(
            f"{owner} {name} must be a positive number of seconds (not NaN or infinity), such as 0.5; "
            f"got {value!r}"
        )
    return float(value)


def interval_seconds(owner: str, name: str, value: object) -> float:
    """Check an interval option: 0 (off) or a positive, finite number of seconds."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value < 0
    ):
        raise ConfigurationError(
            f"{owner} {name} must be 0 (off) or a positive number of seconds (not NaN or infinity); "
            f"got {value!r}"
        )
    return float(value)


def whole_number(owner: str, name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{owner} {name} must be a whole number >= {minimum}, got {value!r}")
    return value


class KeyListMemo(Generic[V]):
    """What a backend works out from a list of keys (server keys, shards, slots), remembered.

    The middleware reads the same keys (an entry and its tag generations) on
    every hit of a URL, and what a backend derives from them depends on the
    keys alone, so a remembered result is never stale. At most ``size``
    results holding at most ``max_chars`` characters of keys are kept; when
    full, the memo starts afresh (a lost result only costs working it out
    again), and a result costing more than a 64th of ``max_chars`` is not
    kept. :meth:`get` is one dict lookup, without a lock; :meth:`put` takes
    one and costs about as little, so lists of keys seen once (a long tail of
    URLs) pay almost nothing for it.
    """

    __slots__ = ("_data", "_lock", "chars", "max_chars", "size")

    def __init__(self, size: int, max_chars: int) -> None:
        self.size = size
        self.max_chars = max_chars
        self.chars = 0
        self._data: dict[tuple[str, ...], V] = {}
        self._lock = threading.Lock()

    def get(self, keys: tuple[str, ...]) -> V | None:
        return self._data.get(keys)

    def put(self, keys: tuple[str, ...], value: V, chars: int) -> None:
        """Remember ``value`` for ``keys``; ``chars``: the characters of the keys it holds."""
        if chars > self.max_chars // 64:
            return
        with self._lock:
            if len(self._data) >= self.size or self.chars + chars > self.max_chars:
                # A new dict rather than clear(): a reader holding the old one is unaffected.
                self._data = {}
                self.chars = 0
            self._data[keys] = value
            self.chars += chars

    def __len__(self) -> int:
        return len(self._data)
