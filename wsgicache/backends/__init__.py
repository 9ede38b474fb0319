"""Storage backends and the registry that builds them from configuration.

A backend can be named by a URL (``"memory://"``, ``"redis://127.0.0.1:6379/0"``),
by a registered name (``"memory"``), by a dotted path to a class
(``"myproj.cache.MyBackend"``), by a Django-style dict, or passed as an
instance::

    from wsgicache.backends import get_backend, register_backend

    backend = get_backend("memory://?max_entries=5000")
    backend = get_backend({"BACKEND": "memory", "OPTIONS": {"max_bytes": 2**26},
                           "TIMEOUT": 600, "KEY_PREFIX": "site1"})

    register_backend("mystore", MyBackend)      # then "mystore://..." works

Third-party packages can also register through the ``wsgicache.backends``
entry-point group (name = URL scheme, value = ``"package.module:Class"``).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any
from urllib.parse import urlsplit

from ..errors import ConfigurationError
from .base import Backend, construct

__all__ = ["Backend", "available_backends", "get_backend", "register_backend"]

ENTRY_POINT_GROUP = "wsgicache.backends"

# Built-ins are named by dotted path so that importing wsgicache never imports
# a driver (redis, pymemcache) the user did not install.
_BUILTIN: dict[str, str] = {
    "memory": "wsgicache.backends.memory:MemoryBackend",
    "file": "wsgicache.backends.filesystem:FileBackend",
    "filesystem": "wsgicache.backends.filesystem:FileBackend",
    "memcached": "wsgicache.backends.memcached:MemcachedBackend",
    "redis": "wsgicache.backends.redis:RedisBackend",
    "rediss": "wsgicache.backends.redis:RedisBackend",
    "unix": "wsgicache.backends.redis:RedisBackend",
    "redis+cluster": "wsgicache.backends.redis:RedisClusterBackend",
    "redis+sentinel": "wsgicache.backends.redis:RedisSentinelBackend",
}

_registry: dict[str, type[Backend] | str] = dict(_BUILTIN)

_DICT_KEYS = {"BACKEND", "LOCATION", "OPTIONS", "TIMEOUT", "KEY_PREFIX"}


def register_backend(name: str, backend: type[Backend] | str) -> None:
    """Make ``name`` (and the URL scheme ``name://``) build ``backend``.

    ``backend`` is a :class:`Backend` subclass or a ``"module:Class"`` /
    ``"module.Class"`` path imported on first use.
    """
    if not isinstance(name, str) or not name or "://" in name:
        raise ConfigurationError(f"a backend name is a URL scheme such as 'mystore', got {name!r}")
    if not isinstance(backend, str) and not (isinstance(backend, type) and issubclass(backend, Backend)):
        raise ConfigurationError(
            f"register_backend({name!r}, ...) takes a Backend subclass or a dotted "
            f"path to one, got {backend!r}"
        )
    _registry[name.lower()] = backend


def available_backends() -> list[str]:
    """Names that :func:`get_backend` understands (registered and entry points)."""
    names = set(_registry)
    names.update(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))
    return sorted(names)


def get_backend(spec: str | Mapping[str, Any] | Backend | type[Backend], **options: Any) -> Backend:
    """Build a backend from a URL, a name, a dotted path, a dict or an instance.

    Extra ``options`` are passed to the backend's constructor.
    """
    if isinstance(spec, Backend):
        if options:
            raise ConfigurationError(
                f"options {sorted(options)} cannot be applied to an existing backend "
                f"instance {spec!r}; pass them to its constructor instead"
            )
        return spec
    if isinstance(spec, str):
        return _from_string(spec, options)
    if isinstance(spec, Mapping):
        return _from_dict(spec, options)
    if isinstance(spec, type) and issubclass(spec, Backend):
        return construct(spec, spec.__name__, options)
    raise ConfigurationError(
        "a backend is a URL such as 'memory://' or 'redis://127.0.0.1:6379/0', a "
        "registered name, a dotted path to a Backend class, a dict with 'BACKEND' and "
        f"'LOCATION', or a Backend instance; got {spec!r}"
    )


def _from_string(spec: str, options: dict[str, Any]) -> Backend:
    if "://" in spec:
        scheme = urlsplit(spec).scheme.lower()
        if not scheme:
            raise ConfigurationError(f"backend URL {spec!r} has no scheme; write e.g. 'memory://'")
        return resolve_backend_class(scheme).from_url(spec, **options)
    cls = resolve_backend_class(spec)
    return construct(cls, spec, options)


def _from_dict(spec: Mapping[str, Any], options: dict[str, Any]) -> Backend:
    unknown = sorted(set(spec) - _DICT_KEYS)
    if unknown:
        raise ConfigurationError(
            f"unknown key(s) {unknown} in backend configuration; valid keys are {sorted(_DICT_KEYS)}"
        )
    merged: dict[str, Any] = {}
    extra = spec.get("OPTIONS") or {}
    if not isinstance(extra, Mapping):
        raise ConfigurationError(f"OPTIONS must be a dict of keyword arguments, got {extra!r}")
    merged.update(extra)
    if "TIMEOUT" in spec:
        merged["default_timeout"] = spec["TIMEOUT"]
    if "KEY_PREFIX" in spec:
        merged["key_prefix"] = spec["KEY_PREFIX"]
    merged.update(options)

    name = spec.get("BACKEND")
    location = spec.get("LOCATION")
    if location is not None and not isinstance(location, str):
        raise ConfigurationError(
            f"LOCATION must be a string such as '127.0.0.1:6379' or a URL, got {location!r}"
        )
    if name is None:
        if location is None or "://" not in location:
            raise ConfigurationError(
                "a backend dict needs 'BACKEND' (e.g. 'redis') or a 'LOCATION' URL "
                "(e.g. 'redis://127.0.0.1:6379/0')"
            )
        return _from_string(location, merged)
    scheme = None
    if isinstance(name, type) and issubclass(name, Backend):
        cls = name
    elif isinstance(name, str):
        cls = resolve_backend_class(name)
        if "." not in name and ":" not in name:
            scheme = name.lower()
    else:
        raise ConfigurationError(
            f"BACKEND must be a backend name, a dotted path or a Backend class, got {name!r}"
        )
    if location is None:
        return construct(cls, cls.__name__, merged)
    # A bare location ("127.0.0.1:6379", "/var/cache/site") of a named backend
    # becomes that scheme's URL; a class given by path gets it as it is.
    url = location if "://" in location or scheme is None else f"{scheme}://{location}"
    return cls.from_url(url, **merged)


def resolve_backend_class(name: str) -> type[Backend]:
    """The Backend class for a registered name, URL scheme or dotted path."""
    key = name.lower()
    target = _registry.get(key)
    if target is None:
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            if ep.name.lower() == key:
                target = ep.value
                break
    if target is None:
        if "." in name or ":" in name:
            target = name
        else:
            raise ConfigurationError(
                f"unknown backend {name!r}; known backends: {', '.join(available_backends())}. "
                "A third-party backend is named by its dotted path "
                "('myproj.cache.MyBackend') or registered with register_backend()"
            )
    cls = _import_class(target) if isinstance(target, str) else target
    if isinstance(target, str) and key in _registry:
        _registry[key] = cls
    return cls


def _import_class(path: str) -> type[Backend]:
    module_name, _, attr = path.partition(":") if ":" in path else path.rpartition(".")
    if not module_name or not attr:
        raise ConfigurationError(
            f"{path!r} is not a dotted path to a class; write 'package.module.ClassName'"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = ""
        if module_name.startswith("wsgicache.backends.") and "pip install" not in str(exc):
            hint = f" (install the extra: pip install 'wsgicache[{attr_extra(module_name)}]')"
        raise ConfigurationError(f"cannot import backend {path!r}: {exc}{hint}") from exc
    cls = getattr(module, attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigurationError(
            f"{path!r} is not a wsgicache Backend subclass (got {cls!r}); a backend "
            "class must subclass wsgicache.backends.Backend"
        )
    return cls


def attr_extra(module_name: str) -> str:
    return module_name.rsplit(".", 1)[-1].replace("_backend", "")
