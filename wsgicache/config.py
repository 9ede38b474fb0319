"""Reading Django-style settings for :meth:`CacheMiddleware.from_config`.

::

    # myproj/cache_settings.py
    from wsgicache import Rule

    BACKENDS = {"default": {"BACKEND": "memory", "TIMEOUT": 300, "KEY_PREFIX": "site1"}}
    RULES = [Rule("/recent_posts", timeout=300, tags=["posts"])]

    app.wsgi_app = CacheMiddleware.from_config(app.wsgi_app, "myproj.cache_settings")

The same structure works as a dict. ``BACKEND`` (one backend) may replace
``BACKENDS``; ``KEY_PREFIX``, ``CACHE_HEADER`` and ``OPTIONS`` (keyword
arguments of :class:`~wsgicache.CacheMiddleware`) are optional.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from .backends import Backend, get_backend
from .errors import ConfigurationError

SETTINGS = frozenset({"BACKENDS", "BACKEND", "RULES", "KEY_PREFIX", "CACHE_HEADER", "OPTIONS"})


def load_settings(config: Mapping[str, Any] | str) -> Mapping[str, Any]:
    """The settings of a dict, or the upper-case settings of a module named by its path."""
    if isinstance(config, Mapping):
        return config
    if isinstance(config, str):
        try:
            module = importlib.import_module(config)
        except ImportError as exc:
            raise ConfigurationError(f"cannot import cache settings module {config!r}: {exc}") from exc
        return {name: getattr(module, name) for name in dir(module) if name in SETTINGS}
    raise ConfigurationError(f"config must be a dict or the dotted path of a settings module, got {config!r}")


def middleware_arguments(config: Mapping[str, Any] | str) -> dict[str, Any]:
    """Keyword arguments of ``CacheMiddleware`` (all but ``app``) from settings."""
    settings = load_settings(config)
    unknown = sorted(set(settings) - SETTINGS)
    if unknown:
        raise ConfigurationError(f"unknown cache setting(s) {unknown}; valid settings are {sorted(SETTINGS)}")
    if "BACKENDS" in settings and "BACKEND" in settings:
        raise ConfigurationError("give either BACKENDS (aliases to backends) or BACKEND, not both")
    if "RULES" not in settings:
        raise ConfigurationError("the cache configuration needs RULES, a list of Rule objects")
    options = settings.get("OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(f"OPTIONS must be a dict of middleware options, got {options!r}")
    return {
        "backend": settings.get("BACKENDS", settings.get("BACKEND", "memory://")),
        "rules": settings["RULES"],
        "key_prefix": settings.get("KEY_PREFIX", ""),
        "cache_header": settings.get("CACHE_HEADER", "X-Cache"),
        **options,
    }


def build_backends(spec: str | Backend | Mapping[str, Any]) -> dict[str, Backend]:
    """Backends by alias from the ``backend`` argument (one backend becomes ``"default"``)."""
    if isinstance(spec, Mapping) and not ({"BACKEND", "LOCATION"} & set(spec)):
        if "default" not in spec:
            raise ConfigurationError(
                "a dict of backends needs a 'default' alias, e.g. "
                "{'default': {'BACKEND': 'memory'}}; got aliases "
                f"{sorted(spec) or 'none'}"
            )
        return {str(alias): get_backend(value) for alias, value in spec.items()}
    return {"default": get_backend(spec)}
