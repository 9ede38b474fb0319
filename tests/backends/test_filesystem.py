"""The filesystem backend: a directory shared by processes, safely."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from wsgicache import ConfigurationError
from wsgicache.backends import filesystem as fs
from wsgicache.backends import get_backend
from wsgicache.backends.filesystem import FileBackend


def _files(directory: str) -> list[Path]:
    return sorted(p for p in Path(directory).rglob("*") if p.is_file() and p.name != ".state")


def test_url_forms_and_errors(tmp_path: Path) -> None:
    backend = get_backend(f"file://{tmp_path}/c?max_entries=7&max_bytes=4096")
    assert isinstance(backend, FileBackend)
    assert (backend.max_entries, backend.max_bytes) == (7, 4096)
    assert backend.directory == str(tmp_path / "c" / "default")
    dict_config = get_backend({"BACKEND": "filesystem", "LOCATION": str(tmp_path / "d"), "KEY_PREFIX": "s1"})
    assert isinstance(dict_config, FileBackend)
    assert dict_config.directory == str(tmp_path / "d" / "p-s1")
    with pytest.raises(ConfigurationError, match="three slashes"):
        get_backend("file://tmp/cache")
    with pytest.raises(ConfigurationError, match="absolute"):
        FileBackend("relative/dir")
    with pytest.raises(ConfigurationError, match="max_entries"):
        get_backend(f"file://{tmp_path}?max_entries=0")


def test_names_are_hashed_and_permissions_private(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path / "cache", key_prefix="../../evil name/")
    evil = "../../../etc/passwd\x00 and /more"
    backend.set(evil, b"secret", 60)
    backend.set("e:{s0}:" + "a" * 32, b"entry", 60)
    assert backend.get(evil) == b"secret"
    root = tmp_path / "cache"
    everything = list(root.rglob("*"))
    assert all(root in p.parents for p in everything)
    namespace_dirs = list(root.iterdir())
    assert [p.name[:2] for p in namespace_dirs] == ["h-"]  # an unsafe prefix is hashed
    for path in everything:
        assert "passwd" not in str(path) and "evil" not in str(path)
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))
    assert stat.S_IMODE(root.stat().st_mode) == 0o700


def test_writes_are_atomic_renames_without_leftovers(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path)
    for size in (0, 10, 300_000):
        backend.set("k", b"x" * size, 60)
        assert backend.get("k") == b"x" * size
    names = [p.name for p in _files(backend.directory)]
    assert len(names) == 1 and not names[0].startswith(".")
    assert backend.stored() == (1, Path(_files(backend.directory)[0]).stat().st_size)


@pytest.mark.parametrize(
    "damage",
    ["truncate", "flip-value-byte", "garbage", "empty", "wrong-length"],
)
def test_a_damaged_file_is_a_miss_and_is_removed(tmp_path: Path, damage: str) -> None:
    backend = FileBackend(tmp_path)
    backend.set("k", bytes(range(256)) * 10, 60)
    backend.set("other", b"intact", 60)
    path = Path(backend._path("k"))
    data = bytearray(path.read_bytes())
    if damage == "truncate":
        data = data[: len(data) // 2]
    elif damage == "flip-value-byte":
        data[-5] ^= 0xFF
    elif damage == "garbage":
        data = bytearray(os.urandom(len(data)))
    elif damage == "empty":
        data = bytearray()
    else:
        data += b"tail"
    path.write_bytes(bytes(data))
    assert backend.get("k") is None
    assert not path.exists()
    assert backend.get("other") == b"intact"
    assert backend.stored()[0] == 1


def test_expired_files_are_removed_on_read_and_by_the_sweep(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path, sweep_interval=0.3)
    backend.set("read-me", b"v", 0.05)
    for n in range(20):
        backend.set(f"short{n}", b"v", 0.05)
    backend.set("long", b"v", 60)
    time.sleep(0.35)
    assert backend.get("read-me") is None  # expired: removed by the read itself
    backend.set("trigger", b"v", 60)  # a write after sweep_interval sweeps
    left = {p.name for p in _files(backend.directory)}
    assert len(left) == 2
    assert backend.stored()[0] == 2


def test_abandoned_temporary_files_are_swept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    backend = FileBackend(tmp_path, sweep_interval=0.05)
    backend.set("k", b"v", 60)
    shard = Path(backend._path("k")).parent
    (shard / ".t999-crashed").write_bytes(b"half a file")
    monkeypatch.setattr(fs, "_TEMP_MAX_AGE", 0.0)
    time.sleep(0.1)
    backend.set("k2", b"v", 60)
    assert not (shard / ".t999-crashed").exists()
    assert backend.get("k") == b"v"


def test_max_entries_evicts_the_soonest_to_expire(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path, max_entries=10)
    backend.set("keeper", b"v", 3600)
    for n in range(50):
        backend.set(f"k{n}", b"v", 60 + n)
        assert len(_files(backend.directory)) <= 10
    assert backend.get("keeper") == b"v"  # the longest-lived entry stays
    assert backend.get("k49") == b"v"  # the newest write is never evicted
    assert backend.get("k0") is None
    assert backend.evictions > 0
    assert backend.stored()[0] == len(_files(backend.directory))


def test_max_bytes_is_a_hard_limit(tmp_path: Path) -> None:
    backend = FileBackend(tmp_path, max_bytes=20_000)
    for n in range(40):
        backend.set(f"k{n}", os.urandom(1000 + n), 60)
        total = sum(p.stat().st_size for p in _files(backend.directory))
        assert total <= 20_000
        assert backend.stored() == (len(_files(backend.directory)), total)
    backend.set("k39", b"small", 60)
    backend.set("k39", os.urandom(30_000), 60)  # larger than max_bytes: not stored...
    assert backend.get("k39") is None  # ...and the older value is not served instead


def test_clear_removes_only_its_own_namespace(tmp_path: Path) -> None:
    first = FileBackend(tmp_path, key_prefix="one")
    second = FileBackend(tmp_path, key_prefix="two")
    (tmp_path / "unrelated.txt").write_text("keep me")
    first.set("k", b"1", 60)
    second.set("k", b"2", 60)
    first.clear()
    assert first.get("k") is None and first.stored() == (0, 0)
    assert second.get("k") == b"2"
    assert (tmp_path / "unrelated.txt").read_text() == "keep me"


# -- several processes ---------------------------------------------------------------


def _contend_for_locks(directory: str, worker: int, rounds: int, queue: Any) -> None:
    backend = FileBackend(directory)
    won = [n for n in range(rounds) if backend.add(f"lock{n}", str(worker).encode(), 60)]
    queue.put((worker, won))


def _hammer(directory: str, worker: int, queue: Any) -> None:
    """Write values of varying sizes and check every value read is whole."""
    backend = FileBackend(directory, max_entries=30)
    bad = 0
    for n in range(300):
        key = f"k{n % 40}"
        size = (n * 7919 + worker * 104729) % 50_000
        backend.set(key, key.encode() * (size // len(key)), 30)
        name = f"k{(n * 13) % 40}"
        value = backend.get(name)
        if value is not None and value != name.encode() * (len(value) // len(name)):
            bad += 1
    queue.put(bad)


@pytest.fixture
def spawn() -> Any:
    # fork: the children inherit this process's state, as gunicorn workers do
    return multiprocessing.get_context("fork")


def test_add_is_atomic_across_processes(tmp_path: Path, spawn: Any) -> None:
    parent = FileBackend(tmp_path)
    parent.set("warm", b"the parent used its lock before forking", 60)
    queue = spawn.Queue()
    workers = [spawn.Process(target=_contend_for_locks, args=(str(tmp_path), w, 40, queue)) for w in range(4)]
    for process in workers:
        process.start()
    results = [queue.get(timeout=60) for _ in workers]
    for process in workers:
        process.join(10)
    winners: dict[int, list[int]] = {}
    for worker, won in results:
        for n in won:
            winners.setdefault(n, []).append(worker)
    assert sorted(winners) == list(range(40))
    assert all(len(w) == 1 for w in winners.values()), winners
    for n, (worker,) in winners.items():
        assert parent.get(f"lock{n}") == str(worker).encode()


def test_processes_never_read_partial_values_and_respect_limits(tmp_path: Path, spawn: Any) -> None:
    queue = spawn.Queue()
    workers = [spawn.Process(target=_hammer, args=(str(tmp_path), w, queue)) for w in range(4)]
    for process in workers:
        process.start()
    bad = [queue.get(timeout=120) for _ in workers]
    for process in workers:
        process.join(10)
    assert bad == [0, 0, 0, 0]
    backend = FileBackend(tmp_path, max_entries=30)
    files = _files(backend.directory)
    assert len(files) <= 30
    assert not [p for p in files if p.name.startswith(".t")]
    assert backend.stored() == (len(files), sum(p.stat().st_size for p in files))
