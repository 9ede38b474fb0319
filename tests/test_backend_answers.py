"""Backends that answer outside the contract, and backends written the minimal way.

A backend that returns the wrong types (a ``str`` or an ``int`` where bytes
belong, a list or ``None`` where a dict belongs, a non-bool from ``add``) is
a logged, counted miss: the application answers, nothing raises, and the
request is not silently turned into a ``BYPASS``. A third-party backend that
does not call ``super().__init__()`` still works, also from a configuration.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any
from wsgiref.validate import validator

import pytest
from helpers import RecordingApp, cached
from webtest import TestApp

from wsgicache import CacheMiddleware, ConfigurationError, Rule, backends
from wsgicache.backends import Backend, get_backend, register_backend
from wsgicache.backends.memory import MemoryBackend
from wsgicache.guard import GuardedBackend
from wsgicache.stats import Stats

Answer = Callable[[dict[str, bytes], Sequence[str]], Any]


class GarbageBackend(MemoryBackend):
    """A real memory store whose ``get_many`` answer is reshaped by ``answer``."""

    def __init__(self, answer: Answer) -> None:
        super().__init__()
        self.answer = answer
        self.asked = 0

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self.asked += 1
        found = super().get_many(keys)
        result: dict[str, bytes] = self.answer(found, keys)
        return result


GARBAGE: dict[str, Answer] = {
    "none": lambda found, keys: None,
    "str": lambda found, keys: "not a dict",
    "bytes": lambda found, keys: b"not a dict",
    "int": lambda found, keys: 42,
    "list": lambda found, keys: list(found.values()),
    "str values": lambda found, keys: {k: v.decode("latin-1") for k, v in found.items()},
    "int values": lambda found, keys: dict.fromkeys(found, 1),
    "list values": lambda found, keys: {k: [v] for k, v in found.items()},
    "str values, even for absent keys": lambda found, keys: dict.fromkeys(keys, "x"),
}


def _assert_logged(caplog: pytest.LogCaptureFixture, *words: str) -> None:
    messages = [
        r.getMessage() for r in caplog.records if r.name == "wsgicache" and r.levelno == logging.WARNING
    ]
    assert any(all(word in message for word in words) for message in messages), messages


@pytest.mark.parametrize("shape", list(GARBAGE))
def test_wrong_types_from_get_many_are_a_logged_counted_miss(
    shape: str, caplog: pytest.LogCaptureFixture
) -> None:
    backend = GarbageBackend(GARBAGE[shape])
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p/<int:n>", timeout=60, tags=["posts", "p:{n}"])], backend=backend)
    for expected_calls in (1, 2, 3):
        response = client.get("/p/1")
        assert response.headers["X-Cache"] == "MISS"  # not BYPASS: the backend answered
        assert response.body == b"GET localhost/p/1?"
        assert app.count == expected_calls
    stats = cache.stats()
    assert stats["errors"] >= 2  # the first lookup may find nothing to get wrong
    assert stats["misses"] == 3 and stats["hits"] == 0 and stats["bypasses"] == 0
    _assert_logged(caplog, "'default'", "get_many")


def test_the_warning_names_the_backend_alias_and_the_type(caplog: pytest.LogCaptureFixture) -> None:
    backend = GarbageBackend(GARBAGE["list"])
    client, _ = cached(
        RecordingApp(), [Rule("/p", backend="pages")], backend={"default": "memory://", "pages": backend}
    )
    assert client.get("/p").headers["X-Cache"] == "MISS"
    _assert_logged(caplog, "'pages'", "list")


@pytest.mark.parametrize("convert", [bytearray, memoryview], ids=["bytearray", "memoryview"])
def test_bytes_like_values_are_accepted(convert: Callable[[bytes], Any]) -> None:
    backend = GarbageBackend(lambda found, keys: {k: convert(v) for k, v in found.items()})
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60, tags=["posts"])], backend=backend)
    assert client.get("/p").headers["X-Cache"] == "MISS"
    response = client.get("/p")
    assert response.headers["X-Cache"] == "HIT"
    assert response.body == b"GET localhost/p?"
    assert app.count == 1
    assert cache.stats()["errors"] == 0


def test_keys_that_were_not_asked_for_are_dropped() -> None:
    backend = GarbageBackend(lambda found, keys: {**found, "e:other": b"x", "t:other": b"y"})
    guard = GuardedBackend("default", backend, Stats())
    backend.set("a", b"1", 60)
    assert guard.get_many(["a", "b"]) == {"a": b"1"}


def test_a_good_answer_after_garbage_is_served_again() -> None:
    answers: list[Answer] = [lambda found, keys: found]
    backend = GarbageBackend(lambda found, keys: answers[0](found, keys))
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60)], backend=backend)
    client.get("/p")
    answers[0] = GARBAGE["str values"]
    assert client.get("/p").headers["X-Cache"] == "MISS"
    answers[0] = lambda found, keys: found
    assert client.get("/p").headers["X-Cache"] == "HIT"  # nothing was deleted or poisoned
    assert cache.stats()["corrupt"] == 0


class HidingBackend(MemoryBackend):
    """``get_many`` never shows tag generations, so the middleware reads one with ``get``."""

    def __init__(self, get_answer: object) -> None:
        super().__init__()
        self.get_answer = get_answer

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        return {k: v for k, v in super().get_many(keys).items() if not k.startswith("t:")}

    def get(self, key: str) -> bytes | None:
        value = super().get(key)
        return None if value is None else self.get_answer  # type: ignore[return-value]


@pytest.mark.parametrize("garbage", ["a str", 7, ["a list"]], ids=["str", "int", "list"])
def test_wrong_types_from_get_are_a_logged_counted_miss(
    garbage: object, caplog: pytest.LogCaptureFixture
) -> None:
    backend = HidingBackend(garbage)
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60, tags=["posts"])], backend=backend)
    client.get("/p")  # creates the generations with add()
    response = client.get("/p")  # add() finds them: they are read with get()
    assert response.headers["X-Cache"] == "MISS"
    assert app.count == 2
    assert cache.stats()["errors"] >= 1
    assert cache.stats()["not_stored"] >= 1
    _assert_logged(caplog, "'default'", "answered get", type(garbage).__name__)


def test_a_bytes_like_value_from_get_is_accepted() -> None:
    backend = HidingBackend(bytearray(b"gen"))
    guard = GuardedBackend("default", backend, Stats())
    backend.set("k", b"whatever", 60)
    assert guard.get_many(["k"]) == {"k": b"gen"}


class OddAddBackend(MemoryBackend):
    """``add`` stores the value but answers something other than True or False."""

    shared_between_processes = True  # so that fills take lock keys with add() too

    def __init__(self, answer: object) -> None:
        super().__init__()
        self.answer = answer

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        super().add(key, value, ttl)
        return self.answer  # type: ignore[return-value]


@pytest.mark.parametrize("answer", [None, 1, 0, "OK", b"1"], ids=["None", "1", "0", "OK", "bytes"])
def test_non_bool_from_add_is_a_logged_counted_miss_without_waiting(
    answer: object, caplog: pytest.LogCaptureFixture
) -> None:
    backend = OddAddBackend(answer)
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p", timeout=60, tags=["posts"])], backend=backend, lock_wait=5)
    started = time.monotonic()
    for expected_calls in (1, 2):
        response = client.get("/p")
        assert response.headers["X-Cache"] == "MISS"
        assert app.count == expected_calls
    # An unknown answer for the fill lock is not "someone else holds it": no polling.
    assert time.monotonic() - started < 2
    assert cache.stats()["errors"] >= 2
    _assert_logged(caplog, "'default'", "answered add", type(answer).__name__)


# -- a backend that does not call super().__init__() --------------------------


class NoSuperBackend(Backend):
    """A third-party backend written the shortest way: no ``super().__init__()``."""

    def __init__(self) -> None:
        self.data: dict[str, tuple[bytes, float]] = {}

    def get(self, key: str) -> bytes | None:
        item = self.data.get(key)
        if item is None or item[1] <= time.monotonic():
            return None
        return item[0]

    def set(self, key: str, value: bytes, ttl: float) -> None:
        self.data[key] = (value, time.monotonic() + ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        if self.get(key) is not None:
            return False
        self.set(key, value, ttl)
        return True

    def delete(self, key: str) -> None:
        self.data.pop(key, None)

    def clear(self) -> None:
        self.data.clear()


def test_a_backend_without_super_init_has_the_class_defaults() -> None:
    backend = NoSuperBackend()
    assert backend.key_prefix == ""
    assert backend.default_timeout == 300
    assert "NoSuperBackend" in repr(backend)


def _serves_from_the_cache(middleware: CacheMiddleware) -> None:
    client = TestApp(validator(middleware), extra_environ={"HTTP_HOST": "localhost"})
    assert client.get("/p").headers["X-Cache"] == "MISS"
    response = client.get("/p")
    assert response.headers["X-Cache"] == "HIT"
    assert response.body == b"GET localhost/p?"


def test_a_backend_without_super_init_works_through_the_middleware() -> None:
    app = RecordingApp()
    client, cache = cached(app, [Rule("/p"), Rule("/t", timeout=5, tags=["t"])], backend=NoSuperBackend())
    for path in ("/p", "/t"):
        assert client.get(path).headers["X-Cache"] == "MISS"
        assert client.get(path).headers["X-Cache"] == "HIT"
    assert app.count == 2
    cache.invalidate(tags=["t"])
    assert client.get("/t").headers["X-Cache"] == "MISS"
    assert cache.clear()
    assert client.get("/p").headers["X-Cache"] == "MISS"
    # Rule("/p") has no timeout: the class default (300 s) applies.
    assert cache._planner.ruleset.rules[0].timeout == 300


def test_a_backend_without_super_init_works_from_config() -> None:
    path = f"{__name__}.NoSuperBackend"
    middleware = CacheMiddleware.from_config(
        validator(RecordingApp()),
        {"BACKENDS": {"default": {"BACKEND": path, "TIMEOUT": 60}}, "RULES": [Rule("/p")]},
    )
    backend = middleware.backends["default"]
    assert isinstance(backend, NoSuperBackend)
    assert backend.default_timeout == 60  # TIMEOUT applies though __init__ does not take it
    assert middleware._planner.ruleset.rules[0].timeout == 60
    _serves_from_the_cache(middleware)

    without_timeout = CacheMiddleware.from_config(
        validator(RecordingApp()), {"BACKEND": {"BACKEND": path}, "RULES": [Rule("/p")]}
    )
    assert without_timeout.backends["default"].default_timeout == 300
    _serves_from_the_cache(without_timeout)


def test_a_backend_without_super_init_works_from_a_registered_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(backends, "_registry", dict(backends._registry))  # undone after the test
    register_backend("nosuper-test", NoSuperBackend)
    backend = get_backend("nosuper-test://")
    assert isinstance(backend, NoSuperBackend)
    _serves_from_the_cache(
        CacheMiddleware(validator(RecordingApp()), backend="nosuper-test://", rules=[Rule("/p")])
    )


def test_options_a_backend_cannot_take_are_still_refused() -> None:
    # KEY_PREFIX is a namespace the backend itself must honour (clear() empties
    # only it): a backend that does not take it cannot be given one silently.
    with pytest.raises(ConfigurationError, match="key_prefix"):
        get_backend({"BACKEND": f"{__name__}.NoSuperBackend", "KEY_PREFIX": "site1"})
    with pytest.raises(ConfigurationError, match="TIMEOUT"):
        get_backend({"BACKEND": f"{__name__}.NoSuperBackend", "TIMEOUT": float("nan")})


class BadTimeoutBackend(NoSuperBackend):
    def __init__(self) -> None:
        super().__init__()
        self.default_timeout = float("inf")


def test_a_backend_instance_with_an_unusable_default_timeout_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"backend 'default' .*BadTimeoutBackend.*default_timeout"):
        CacheMiddleware(RecordingApp(), backend=BadTimeoutBackend(), rules=[Rule("/p")])
