"""The memcached backend: keys, lifetimes, item size, namespaces, several servers."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any

import pytest

from wsgicache import ConfigurationError
from wsgicache.backends import get_backend
from wsgicache.backends.memcached import MemcachedBackend, MemcachedHashBackend, memcached_expire


def test_url_forms(memcached_server: Any, memcached_servers: list[Any]) -> None:
    one = get_backend(f"{memcached_server.url}?timeout=0.2&connect_timeout=0.1&item_size_max=2048")
    assert type(one) is MemcachedBackend
    assert (one.timeout, one.connect_timeout, one.item_size_max) == (0.2, 0.1, 2048)
    several = get_backend("memcached://" + ",".join(s.address for s in memcached_servers) + "?dead_timeout=5")
    assert isinstance(several, MemcachedHashBackend)
    assert several.dead_timeout == 5.0 and len(several.servers) == 3
    direct = MemcachedBackend(servers=[s.address for s in memcached_servers])
    assert isinstance(direct, MemcachedHashBackend)
    via_dict = get_backend({"BACKEND": "memcached", "LOCATION": memcached_server.address, "TIMEOUT": 60})
    assert isinstance(via_dict, MemcachedBackend) and via_dict.default_timeout == 60
    for instance in (one, several, direct, via_dict):
        instance.close()
    with pytest.raises(ConfigurationError, match="user name"):
        get_backend("memcached://user:secret@127.0.0.1:11211")
    with pytest.raises(ConfigurationError, match="port"):
        get_backend("memcached://127.0.0.1:99999")
    with pytest.raises(ConfigurationError, match="timeout"):
        get_backend("memcached://127.0.0.1:11211?timeout=0")


def test_lifetimes_are_whole_seconds_never_zero_and_absolute_past_30_days() -> None:
    assert memcached_expire(0.001) == 2
    assert memcached_expire(0.5) == 2
    assert memcached_expire(1) == 2
    assert memcached_expire(59.2) == 61
    far = memcached_expire(40 * 24 * 3600)
    assert abs(far - (time.time() + 40 * 24 * 3600)) < 5  # an absolute Unix time


def test_any_key_and_prefix_becomes_a_valid_memcached_key(make_backend: Callable[..., Any]) -> None:
    backend = make_backend("memcached", key_prefix="my site/ünïcode prefix")
    keys = ["with space", "tab\tand\nnewline", "ünïcode", "x" * 400, "e:{s1}:" + "f" * 32]
    for key in keys:
        backend.set(key, key.encode(), 60)
    assert backend.get_many(keys) == {key: key.encode() for key in keys}
    for key in keys:
        storage_key = backend._storage_key(key)
        assert len(storage_key) <= 250 and storage_key.isascii() and storage_key.isprintable()
        assert " " not in storage_key
    assert backend.namespace.startswith("h")  # the unusable prefix was hashed


@pytest.mark.parametrize("kind", ["memcached", "memcached-3"])
def test_values_over_the_item_size_limit_are_not_stored_and_not_errors(
    kind: str, make_backend: Callable[..., Any]
) -> None:
    backend = make_backend(kind, key_prefix="big")
    backend.set("k", b"small", 60)
    backend.set("k", b"x" * (1024 * 1024), 60)  # over the default 1 MiB item size
    assert backend.get("k") is None  # not stored, and the old value is gone
    assert backend.too_large == 1
    assert backend.add("lock", b"x" * (1024 * 1024), 60) is False
    assert backend.too_large == 2
    backend.set("fits", b"y" * (900 * 1024), 60)
    assert backend.get("fits") == b"y" * (900 * 1024)


def test_a_refusal_by_the_server_is_not_an_error(make_backend: Callable[..., Any]) -> None:
    # The backend is told the servers take 4 MiB items; this one takes 1 MiB.
    backend = make_backend("memcached", key_prefix="refused", item_size_max=4 * 1024 * 1024)
    backend.set("k", b"z" * (2 * 1024 * 1024), 60)
    assert backend.get("k") is None
    assert backend.too_large == 1
    backend.set("k", b"ok", 60)  # the connection is still usable
    assert backend.get("k") == b"ok"


def test_clear_is_seen_at_once_by_every_instance(make_backend: Callable[..., Any]) -> None:
    writer = make_backend("memcached-3", key_prefix="ns")
    reader = make_backend("memcached-3", key_prefix="ns")
    other = make_backend("memcached-3", key_prefix="ns2")
    keys = [f"e:{{s{n}}}:{n:032x}" for n in range(32)] + ["plain", "l:{s3}:x"]
    for key in keys:
        writer.set(key, b"v", 60)
        other.set(key, b"o", 60)
    assert reader.get_many(keys) == dict.fromkeys(keys, b"v")
    writer.clear()
    assert reader.get_many(keys) == {}
    assert other.get_many(keys) == dict.fromkeys(keys, b"o")
    # A stale value left in memcached does not make the key "present" for add.
    assert reader.add("plain", b"lock", 60) is True
    assert writer.add("plain", b"again", 60) is False
    assert writer.get("plain") == b"lock"


def test_several_servers_keep_a_hash_tag_on_one_server(make_backend: Callable[..., Any]) -> None:
    backend = make_backend("memcached-3", key_prefix="tags")
    for shard in range(backend.key_shards):
        keys = [f"{kind}:{{s{shard}}}:{n:032x}" for kind in "etl" for n in range(3)]
        assert len({backend.server_of(key) for key in keys}) == 1
    used = {backend.server_of(f"e:{{s{shard}}}:0") for shard in range(backend.key_shards)}
    assert len(used) == 3  # the shards are spread over every server
    untagged = {backend.server_of(f"key{n}") for n in range(60)}
    assert len(untagged) == 3


def test_a_dead_server_raises_for_the_middleware_to_count(tmp_path: Any) -> None:
    from servers import free_port

    backend = get_backend(f"memcached://127.0.0.1:{free_port()}?timeout=0.2&connect_timeout=0.2")
    started = time.monotonic()
    with pytest.raises(OSError):
        backend.get("k")
    assert time.monotonic() - started < 0.5


@pytest.mark.parametrize(("module", "extra"), [("pymemcache", "memcached"), ("redis", "redis")])
def test_a_missing_driver_says_which_extra_to_install(module: str, extra: str) -> None:
    url = "memcached://127.0.0.1:11211" if module == "pymemcache" else "redis://127.0.0.1:6379/0"
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import wsgicache\n"
        f"assert {module!r} not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "from wsgicache.backends import get_backend\n"
        "from wsgicache import ConfigurationError\n"
        "try:\n"
        f"    get_backend({url!r})\n"
        "except ConfigurationError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"pip install 'wsgicache[{extra}]'" in result.stdout
    assert result.stdout.count("pip install") == 1


def test_importing_wsgicache_imports_no_driver() -> None:
    code = (
        "import sys, wsgicache, wsgicache.backends; print(sorted({'redis', 'pymemcache'} & set(sys.modules)))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "[]", result.stderr


@pytest.mark.parametrize("kind", ["memcached", "memcached-3", "redis"])
def test_a_forked_worker_gets_its_own_connections(kind: str, make_backend: Callable[..., Any]) -> None:
    """gunicorn --preload: the backend is built (and used) before the workers fork."""
    import multiprocessing

    backend = make_backend(kind, key_prefix="fork")
    backend.set("parent", b"p" * 5000, 60)
    assert backend.get("parent") == b"p" * 5000  # the parent's connections are open
    context = multiprocessing.get_context("fork")
    queue = context.Queue()

    def child(number: int) -> None:
        bad = 0
        for n in range(200):
            value = f"{number}-{n}".encode() * 50
            backend.set(f"c{number}", value, 60)
            if backend.get(f"c{number}") != value or backend.get("parent") != b"p" * 5000:
                bad += 1
        queue.put(bad)

    workers = [context.Process(target=child, args=(number,)) for number in range(3)]
    for worker in workers:
        worker.start()
    parent_bad = sum(backend.get("parent") != b"p" * 5000 for _ in range(300))
    results = [queue.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(10)
    assert results == [0, 0, 0] and parent_bad == 0
