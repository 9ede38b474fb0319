"""The contract test suite every storage backend must pass (needs pytest).

The built-in backends run it (``tests/backends/test_contract.py``); a
third-party backend runs the very same suite by subclassing
:class:`BackendContract` in one of its test modules and providing one
fixture, ``backend_factory``: a callable that builds a backend for a given
namespace (``key_prefix``). Backends built with two different prefixes must
share the same storage, so that the suite can check that :meth:`clear`
leaves the other namespace alone::

    # test_mybackend.py
    import pytest
    from wsgicache.testing import BackendContract
    from myproj.cache import MyBackend

    class TestMyBackend(BackendContract):
        @pytest.fixture
        def backend_factory(self, my_server):
            return lambda key_prefix: MyBackend(location=my_server.url, key_prefix=key_prefix)

Optional fixtures to override:

- ``ttl_slack``: seconds a value may outlive its ``ttl`` (a store with a
  whole-second clock, such as memcached, needs about 2); default 0.
- ``shared_storage``: ``False`` for a store private to each instance (the
  in-process memory backend); default ``True``.
- ``large_value_size``: the size of the large value stored (default 512 KiB).

Every instance the suite builds is cleared and closed at the end of its test.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from secrets import token_hex

import pytest

from .backends.base import Backend

__all__ = ["BackendContract", "BackendFactory"]

#: Builds a backend whose namespace is the given key prefix.
BackendFactory = Callable[[str], Backend]

#: A key shaped like the middleware's (a shard hash tag and a 128-bit hash).
_ENTRY_KEY = "e:{s3}:" + "0123456789abcdef" * 2
_TAG_KEY = "t:{s3}:" + "fedcba9876543210" * 2


class BackendContract:
    """The behaviour the middleware relies on, as pytest tests.

    Subclass it and provide the ``backend_factory`` fixture (see the module
    documentation). Test methods use ``backend``, a fresh instance in a
    namespace of its own, and ``new_backend``, which builds more instances.
    """

    # -- fixtures a subclass provides or overrides -------------------------------

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        pytest.fail("a BackendContract subclass must provide the backend_factory fixture")

    @pytest.fixture
    def ttl_slack(self) -> float:
        return 0.0

    @pytest.fixture
    def shared_storage(self) -> bool:
        return True

    @pytest.fixture
    def large_value_size(self) -> int:
        return 512 * 1024

    @pytest.fixture
    def new_backend(self, backend_factory: BackendFactory) -> Iterator[Callable[..., Backend]]:
        created: list[Backend] = []

        def make(key_prefix: str | None = None) -> Backend:
            instance = backend_factory(key_prefix if key_prefix is not None else f"contract-{token_hex(4)}")
            created.append(instance)
            return instance

        yield make
        for instance in created:
            with suppress(Exception):
                instance.clear()
            with suppress(Exception):
                instance.close()

    @pytest.fixture
    def backend(self, new_backend: Callable[..., Backend]) -> Backend:
        return new_backend()

    # -- get / set ---------------------------------------------------------------

    def test_missing_key(self, backend: Backend) -> None:
        assert backend.get("absent") is None
        assert backend.get_many(["absent", "also-absent"]) == {}
        assert backend.get_many([]) == {}

    def test_set_then_get(self, backend: Backend) -> None:
        backend.set("k", b"value", 60)
        value = backend.get("k")
        assert value == b"value"
        assert type(value) is bytes

    def test_set_overwrites(self, backend: Backend) -> None:
        backend.set("k", b"one", 60)
        backend.set("k", b"two", 60)
        assert backend.get("k") == b"two"

    def test_get_many_returns_found_keys_only(self, backend: Backend) -> None:
        backend.set("a", b"1", 60)
        backend.set("c", b"3", 60)
        found = backend.get_many(["a", "b", "c"])
        assert found == {"a": b"1", "c": b"3"}
        assert all(type(value) is bytes for value in found.values())
        assert backend.get_many(["c"]) == {"c": b"3"}

    def test_middleware_shaped_keys(self, backend: Backend) -> None:
        longest = "e:{s15}:" + "a" * 112
        assert len(longest) == 120
        backend.set(_ENTRY_KEY, b"entry", 60)
        backend.set(_TAG_KEY, b"generation", 60)
        backend.set(longest, b"long key", 60)
        assert backend.get_many([_ENTRY_KEY, _TAG_KEY, longest]) == {
            _ENTRY_KEY: b"entry",
            _TAG_KEY: b"generation",
            longest: b"long key",
        }

    # -- add / delete ------------------------------------------------------------

    def test_add_only_when_absent(self, backend: Backend) -> None:
        assert backend.add("lock", b"first", 60) is True
        assert backend.add("lock", b"second", 60) is False
        assert backend.get("lock") == b"first"
        backend.delete("lock")
        assert backend.add("lock", b"third", 60) is True
        assert backend.get("lock") == b"third"

    def test_add_after_set(self, backend: Backend) -> None:
        backend.set("k", b"set", 60)
        assert backend.add("k", b"added", 60) is False
        assert backend.get("k") == b"set"

    def test_delete(self, backend: Backend) -> None:
        backend.set("k", b"v", 60)
        backend.delete("k")
        assert backend.get("k") is None
        backend.delete("k")  # absent: no error
        backend.delete("never-set")

    def test_concurrent_add_has_one_winner(self, backend: Backend) -> None:
        winners: list[int] = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        def contend(number: int) -> None:
            try:
                barrier.wait(5)
                if backend.add("contended", str(number).encode(), 60):
                    winners.append(number)
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=contend, args=(n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert not errors
        assert len(winners) == 1
        assert backend.get("contended") == str(winners[0]).encode()

    # -- lifetimes ---------------------------------------------------------------

    def test_ttl_expires_even_below_one_second(self, backend: Backend, ttl_slack: float) -> None:
        backend.set("short", b"v", 0.3)
        backend.set("long", b"v", 60)
        assert backend.add("short-lock", b"v", 0.3) is True
        assert backend.get("short") == b"v"  # a sub-second ttl never means "forever" nor "now"
        time.sleep(0.3 + ttl_slack + 0.15)
        assert backend.get("short") is None
        assert backend.get_many(["short", "long"]) == {"long": b"v"}
        assert backend.add("short-lock", b"again", 60) is True  # an expired key is absent for add

    def test_long_ttls(self, backend: Backend) -> None:
        backend.set("month", b"29 days", 29 * 24 * 3600)
        backend.set("year", b"365 days", 365 * 24 * 3600)
        assert backend.get_many(["month", "year"]) == {"month": b"29 days", "year": b"365 days"}

    # -- values ------------------------------------------------------------------

    def test_binary_values(self, backend: Backend) -> None:
        every_byte = bytes(range(256)) * 4
        protocol_like = b"\r\nEND\r\nVALUE x 0 1\r\n*1\r\n$-1\r\n\x00"
        backend.set("bytes", every_byte, 60)
        backend.set("protocol", protocol_like, 60)
        backend.set("empty", b"", 60)
        assert backend.get_many(["bytes", "protocol", "empty"]) == {
            "bytes": every_byte,
            "protocol": protocol_like,
            "empty": b"",
        }

    def test_large_value(self, backend: Backend, large_value_size: int) -> None:
        value = random.Random(42).randbytes(large_value_size)
        backend.set("large", value, 60)
        assert backend.get("large") == value
        assert backend.get_many(["large", "absent"]) == {"large": value}

    # -- namespaces --------------------------------------------------------------

    def test_clear_empties_the_namespace(self, backend: Backend) -> None:
        for number in range(20):
            backend.set(f"k{number}", b"v", 60)
        backend.set(_ENTRY_KEY, b"entry", 60)
        backend.clear()
        assert backend.get_many([f"k{n}" for n in range(20)] + [_ENTRY_KEY]) == {}
        backend.set("after", b"v", 60)  # still usable
        assert backend.get("after") == b"v"
        assert backend.add("k1", b"new", 60) is True

    def test_clear_leaves_other_namespaces_alone(
        self, new_backend: Callable[..., Backend], shared_storage: bool
    ) -> None:
        suffix = token_hex(3)
        first = new_backend(f"site1-{suffix}")
        second = new_backend(f"site2-{suffix}")
        nested = new_backend(f"site1-{suffix}x")
        for instance, value in ((first, b"1"), (second, b"2"), (nested, b"3")):
            instance.set("k", value, 60)
            instance.set(_ENTRY_KEY, value, 60)
        assert first.get("k") == b"1"
        assert second.get("k") == b"2"
        assert nested.get("k") == b"3"
        first.clear()
        assert first.get_many(["k", _ENTRY_KEY]) == {}
        assert second.get_many(["k", _ENTRY_KEY]) == {"k": b"2", _ENTRY_KEY: b"2"}
        assert nested.get_many(["k", _ENTRY_KEY]) == {"k": b"3", _ENTRY_KEY: b"3"}

    def test_instances_of_one_namespace_share_values(
        self, new_backend: Callable[..., Backend], shared_storage: bool
    ) -> None:
        if not shared_storage:
            pytest.skip("this backend keeps values private to each instance")
        prefix = f"shared-{token_hex(3)}"
        writer = new_backend(prefix)
        reader = new_backend(prefix)
        writer.set("k", b"v", 60)
        assert reader.get("k") == b"v"
        assert reader.add("k", b"w", 60) is False
        reader.clear()
        assert writer.get("k") is None

    # -- threads -------------------------------------------------------------------

    def test_threads_smoke(self, backend: Backend) -> None:
        """Eight threads reading and writing shared keys: no error, no torn value."""
        values = {f"k{n}": bytes([n]) * (1000 + n) for n in range(8)}
        errors: list[BaseException] = []

        def work(seed: int) -> None:
            rng = random.Random(seed)
            try:
                for _ in range(150):
                    key = rng.choice(list(values))
                    action = rng.random()
                    if action < 0.4:
                        backend.set(key, values[key], 30)
                    elif action < 0.8:
                        found = backend.get_many([key, rng.choice(list(values))])
                        for name, value in found.items():
                            assert value == values[name], f"torn value for {name}"
                    elif action < 0.9:
                        backend.add(key, values[key], 30)
                    else:
                        backend.delete(key)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=work, args=(os.getpid() + n,)) for n in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert not errors, errors[0]
