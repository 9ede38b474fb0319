from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from wsgicache import ConfigurationError
from wsgicache.backends import Backend, available_backends, get_backend, register_backend
from wsgicache.backends.memory import MemoryBackend


class DictBackend(Backend):
    """A minimal third-party backend used to exercise the registry."""

    def __init__(self, *, location: str = "", key_prefix: str = "", default_timeout: float = 300) -> None:
        super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
        self.location = location
        self.data: dict[str, bytes] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Backend:
        return cls(location=url, **options)

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.data[key] = value

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return self.data.setdefault(key, value) is value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def clear(self) -> None:
        self.data.clear()


@pytest.fixture
def third_party_module() -> Iterator[str]:
    module = types.ModuleType("thirdparty_cache")
    module.DictBackend = DictBackend  # type: ignore[attr-defined]
    module.NotABackend = dict  # type: ignore[attr-defined]
    sys.modules["thirdparty_cache"] = module
    yield "thirdparty_cache"
    del sys.modules["thirdparty_cache"]


def test_memory_url_with_options() -> None:
    backend = get_backend("memory://?max_entries=10&max_bytes=2048")
    assert isinstance(backend, MemoryBackend)
    assert (backend.max_entries, backend.max_bytes) == (10, 2048)


def test_memory_by_name_and_instance_passthrough() -> None:
    assert isinstance(get_backend("memory"), MemoryBackend)
    instance = MemoryBackend()
    assert get_backend(instance) is instance


def test_django_style_dict() -> None:
    backend = get_backend(
        {"BACKEND": "memory", "OPTIONS": {"max_entries": 5}, "TIMEOUT": 600, "KEY_PREFIX": "site1"}
    )
    assert isinstance(backend, MemoryBackend)
    assert backend.max_entries == 5
    assert backend.default_timeout == 600.0
    assert backend.key_prefix == "site1"
    by_location = get_backend({"LOCATION": "memory://?max_entries=7"})
    assert isinstance(by_location, MemoryBackend) and by_location.max_entries == 7


def test_dotted_path_and_class(third_party_module: str) -> None:
    backend = get_backend({"BACKEND": f"{third_party_module}.DictBackend", "LOCATION": "somewhere"})
    assert isinstance(backend, DictBackend)
    assert backend.location == "somewhere"
    assert isinstance(get_backend(f"{third_party_module}:DictBackend"), DictBackend)
    assert isinstance(get_backend(DictBackend), DictBackend)
    assert isinstance(get_backend({"BACKEND": DictBackend}), DictBackend)


def test_register_backend_makes_a_url_scheme() -> None:
    register_backend("dictstore", DictBackend)
    backend = get_backend("dictstore://host/path")
    assert isinstance(backend, DictBackend)
    assert backend.location == "dictstore://host/path"
    assert "dictstore" in available_backends()


def test_entry_point_group(monkeypatch: pytest.MonkeyPatch, third_party_module: str) -> None:
    from importlib.metadata import EntryPoint

    import wsgicache.backends as registry

    point = EntryPoint(name="epstore", value=f"{third_party_module}:DictBackend", group="wsgicache.backends")

    def fake_entry_points(group: str) -> list[EntryPoint]:
        return [point] if group == "wsgicache.backends" else []

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)
    assert "epstore" in available_backends()
    assert isinstance(get_backend("epstore://x"), DictBackend)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("nosuch://", "unknown backend 'nosuch'; known backends: "),
        ("nosuch", "unknown backend 'nosuch'"),
        ("://nothing", "has no scheme"),
        (42, "a backend is a URL such as 'memory://'"),
        ({"BACKEND": "memory", "LOCATON": "x"}, "unknown key(s) ['LOCATON']"),
        ({"OPTIONS": {}}, "needs 'BACKEND'"),
        ({"BACKEND": "memory", "OPTIONS": {"max_entires": 5}}, "does not take the option(s) max_entires"),
        ({"BACKEND": "memory", "OPTIONS": [1]}, "OPTIONS must be a dict"),
        ({"BACKEND": "memory", "TIMEOUT": -5}, "TIMEOUT) must be a positive number"),
        ({"BACKEND": "memory", "TIMEOUT": 0}, "positive number of seconds"),
        ({"BACKEND": "memory", "KEY_PREFIX": 5}, "key_prefix must be a string"),
        ({"BACKEND": 5}, "BACKEND must be a backend name"),
        ({"BACKEND": "memory", "LOCATION": 5}, "LOCATION must be a string"),
        ("memory://?max_entries=0", "max_entries must be a positive whole number"),
        ("memory://?max_bytes=lots", "max_bytes must be a positive whole number"),
        ("no_such_module_xyz.Backend", "cannot import backend"),
        ("thirdparty_cache.NotABackend", "is not a wsgicache Backend subclass"),
    ],
)
def test_bad_backend_configuration(spec: Any, message: str, third_party_module: str) -> None:
    with pytest.raises(ConfigurationError) as info:
        get_backend(spec)
    assert message in str(info.value)


def test_options_cannot_be_applied_to_an_instance() -> None:
    with pytest.raises(ConfigurationError, match="existing backend instance"):
        get_backend(MemoryBackend(), max_entries=3)


@pytest.mark.parametrize("name", ["", "a://b", 5])
def test_register_backend_rejects_bad_names(name: Any) -> None:
    with pytest.raises(ConfigurationError):
        register_backend(name, DictBackend)


def test_register_backend_rejects_non_backends() -> None:
    with pytest.raises(ConfigurationError, match="takes a Backend subclass"):
        register_backend("x", dict)  # type: ignore[arg-type]
