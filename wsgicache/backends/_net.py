"""Parsing of the network locations of the Redis and Memcached backends."""

from __future__ import annotations

import math
import re
from urllib.parse import unquote

from ..checks import is_positive_seconds
from ..errors import ConfigurationError

_PORT = re.compile(r"[0-9]{1,5}")


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
