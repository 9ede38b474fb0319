from __future__ import annotations

from typing import Any

import pytest
from helpers import RecordingApp
from webtest import TestApp

from wsgicache import CacheMiddleware, ConfigurationError, Rule
from wsgicache.backends.memory import MemoryBackend


def test_from_config_dict() -> None:
    app = RecordingApp()
    cache = CacheMiddleware.from_config(
        app,
        {
            "BACKENDS": {
                "default": {"BACKEND": "memory", "LOCATION": "", "TIMEOUT": 90, "KEY_PREFIX": "s1"},
            },
            "RULES": [Rule("/p")],
        },
    )
    backend = cache.backends["default"]
    assert isinstance(backend, MemoryBackend)
    assert backend.default_timeout == 90 and backend.key_prefix == "s1"
    client = TestApp(cache)
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "HIT"


def test_from_config_module_path() -> None:
    app = RecordingApp()
    cache = CacheMiddleware.from_config(app, "cache_settings_example")
    assert sorted(cache.backends) == ["default", "pages"]
    assert cache.key_prefix == "v2"
    assert cache.cache_header == "X-Site-Cache"
    assert cache.max_entry_bytes == 4096
    assert cache.backends["default"].default_timeout == 120
    client = TestApp(cache)
    client.get("/page/a")
    assert client.get("/page/a").headers["X-Site-Cache"] == "HIT"
    assert client.get("/admin/x").headers["X-Site-Cache"] == "BYPASS"


def test_from_config_single_backend_url() -> None:
    cache = CacheMiddleware.from_config(RecordingApp(), {"BACKEND": "memory://?max_entries=3", "RULES": []})
    assert isinstance(cache.backends["default"], MemoryBackend)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"RULES": [], "BACKNEDS": {}}, "unknown cache setting(s) ['BACKNEDS']"),
        ({"BACKENDS": {}}, "needs RULES"),
        ({"RULES": [], "BACKEND": "memory://", "BACKENDS": {"default": "memory://"}}, "not both"),
        ({"RULES": [], "OPTIONS": {"max_entry_byte": 1}}, "invalid OPTIONS"),
        ({"RULES": [], "OPTIONS": 5}, "OPTIONS must be a dict"),
        ({"RULES": [], "BACKENDS": {"default": {"BACKEND": "nosuch"}}}, "unknown backend 'nosuch'"),
        ("no.such.settings.module", "cannot import cache settings module"),
        (42, "config must be a dict or the dotted path"),
    ],
)
def test_bad_config(config: Any, message: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        CacheMiddleware.from_config(RecordingApp(), config)
    assert message in str(info.value)
