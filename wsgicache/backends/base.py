"""The contract every storage backend implements.

A backend stores opaque byte strings under string keys with a time to live.
The middleware does all encoding, hashing and bookkeeping; a backend only
moves bytes. Keys handed to a backend are short ASCII strings without
spaces or control characters (at most 120 characters), safe for every
built-in store.

A minimal third-party backend::

    from wsgicache.backends import Backend, register_backend

    class DictBackend(Backend):
        def __init__(self, *, key_prefix: str = "", default_timeout: float = 300):
            super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
            self.data: dict[str, bytes] = {}

        def get(self, key):
            return self.data.get(key)

        ...

    register_backend("dict", DictBackend)

Any method may raise, or answer with the wrong type: the middleware counts
and logs the error and serves the request from the application (fail open).
A subclass need not call ``super().__init__()``: ``key_prefix`` and
``default_timeout`` then keep their class-level defaults (``""`` and 300 s).
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

from ..checks import is_positive_seconds
from ..errors import ConfigurationError


class Backend:
    """Base class of storage backends.

    :param key_prefix: namespace of this backend's keys; :meth:`clear`
        removes only keys in this namespace.
    :param default_timeout: lifetime in seconds of entries whose rule gives
        no ``timeout`` (the ``TIMEOUT`` of a Django-style configuration).
    """

    #: How many groups ("shards") the middleware spreads entries over. Each
    #: shard holds its own copy of every tag generation, so that an entry and
    #: the generations it depends on share a shard (a Redis Cluster hash
    #: slot, for instance) and a hit stays one round trip. Invalidating a tag
    #: writes one key per shard. Stores without such placement keep 1. An
    #: instance may set its own (a larger cluster wants more shards).
    key_shards: int = 1

    #: False for a store private to one process (memory): the middleware then
    #: coordinates requests within the process only and takes no lock keys.
    shared_between_processes: ClassVar[bool] = True

    #: True when :meth:`get` returns the very ``bytes`` object that
    #: :meth:`set` stored (an in-process store). The middleware then decodes
    #: an entry once and reuses the result while the stored object is the same.
    returns_stored_object: ClassVar[bool] = False

    #: Class-level defaults, so that a subclass whose ``__init__`` does not
    #: call ``super().__init__()`` still has them.
    key_prefix: str = ""
    default_timeout: float = 300.0

    def __init__(self, *, key_prefix: str = "", default_timeout: float = 300) -> None:
        if not isinstance(key_prefix, str):
            raise ConfigurationError(f"key_prefix must be a string such as 'site1', got {key_prefix!r}")
        self.key_prefix = key_prefix
        self.default_timeout = check_default_timeout(default_timeout)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Backend:
        """Build a backend from a URL such as ``memory://?max_entries=100``.

        Query parameters become keyword arguments (numbers and ``true`` /
        ``false`` are converted); explicit ``options`` win over them.
        """
        parts = urlsplit(url)
        merged: dict[str, Any] = dict(options_from_query(parts.query))
        merged.update(options)
        return construct(cls, url, merged)

    def get(self, key: str) -> bytes | None:
        """Return the value stored under ``key``, or ``None``."""
        raise NotImplementedError

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        """Return the values of those ``keys`` that exist, in one round trip."""
        found: dict[str, bytes] = {}
        for key in keys:
            value = self.get(key)
            if value is not None:
                found[key] = value
        return found

    def set(self, key: str, value: bytes, ttl: float) -> bool | None:
        """Store ``value`` under ``key`` for ``ttl`` seconds (``ttl > 0``).

        May return ``False`` when the store declined the value without an
        error (too large for it, say); the middleware then counts the
        response as not stored. ``None`` or ``True`` mean stored.
        """
        raise NotImplementedError

    def set_many(self, items: Mapping[str, bytes], ttl: float) -> int | None:
        """Store every item for ``ttl`` seconds, in as few round trips as the store allows.

        The middleware writes invalidations (new tag generations) with it.
        Returns how many replicas acknowledged the writes when the store
        waits for replicas (Redis ``WAIT``), else ``None``. Raises when a
        value could not be stored. This default calls :meth:`set` per item.
        """
        for key, value in items.items():
            if self.set(key, value, ttl) is False:
                raise RuntimeError(f"{type(self).__name__} declined to store {key!r}")
        return None

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        """Store ``value`` only if ``key`` is absent; return whether it was stored."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        """Remove ``key`` if present."""
        raise NotImplementedError

    def clear(self) -> None:
        """Remove every key of this backend's namespace (and nothing else)."""
        raise NotImplementedError

    def close(self) -> None:
        """Release connections and other resources."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} key_prefix={self.key_prefix!r}>"


def check_default_timeout(value: object, owner: str = "") -> float:
    """``value`` as a lifetime in seconds: positive and finite, else :class:`ConfigurationError`."""
    if not is_positive_seconds(value):
        raise ConfigurationError(
            f"{owner + ' ' if owner else ''}default_timeout (TIMEOUT) must be a positive number "
            f"of seconds (not NaN or infinity), such as 300; got {value!r}"
        )
    return float(value)


def options_from_query(query: str) -> dict[str, Any]:
    """Turn a URL query string into keyword arguments for a backend."""
    options: dict[str, Any] = {}
    for name, raw in parse_qsl(query, keep_blank_values=True):
        options[name] = coerce_option(raw)
    return options


def coerce_option(raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "yes", "on"):
        return True
    if lowered in ("false", "no", "off"):
        return False
    if lowered in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def construct(cls: type[Backend], location: str, options: Mapping[str, Any]) -> Backend:
    """Call ``cls(**options)``, turning a wrong option name into a clear error."""
    accepted = accepted_options(cls)
    options = dict(options)
    # The middleware reads ``default_timeout`` from the instance: a backend
    # whose constructor does not take it (one that does not call
    # ``super().__init__()``) still gets the configured TIMEOUT.
    timeout: float | None = None
    if "default_timeout" in options:
        timeout = check_default_timeout(options["default_timeout"], f"{cls.__name__} ({location})")
        if "default_timeout" not in accepted and not _accepts_var_keyword(cls):
            del options["default_timeout"]
    unknown = sorted(set(options) - accepted)
    if unknown and not _accepts_var_keyword(cls):
        raise ConfigurationError(
            f"{cls.__name__} ({location}) does not take the option(s) "
            f"{', '.join(unknown)}; it takes: {', '.join(sorted(accepted)) or 'none'}"
        )
    try:
        instance = cls(**options)
    except ConfigurationError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigurationError(f"{cls.__name__} ({location}): {exc}") from exc
    if timeout is not None and "default_timeout" not in getattr(instance, "__dict__", {}):
        instance.default_timeout = timeout
    return instance


def accepted_options(cls: type[Backend]) -> set[str]:
    signature = inspect.signature(cls.__init__)
    return {
        name
        for name, parameter in signature.parameters.items()
        if name != "self" and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    }


def _accepts_var_keyword(cls: type[Backend]) -> bool:
    signature = inspect.signature(cls.__init__)
    return any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
