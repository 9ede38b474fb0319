"""A directory of files that several processes (gunicorn workers) share.

::

    CacheMiddleware(app, backend="file:///var/cache/mysite?max_entries=50000", rules=...)

Layout: ``<path>/<namespace>/<2 hex>/<30 hex>``. The file name is the
BLAKE2b hash of the key, so no part of a request ever reaches the file
system; the namespace directory is ``default`` (empty ``key_prefix``),
``p-<key_prefix>`` for a prefix of letters, digits and ``-_.``, else
``h-<hash of the prefix>``. Directories are created ``0700`` and files
``0600``.

A value is written to a temporary file in the same directory and renamed
over the final name (``os.replace``), so a reader sees either the old or
the new file, never a partial one. Each file holds a header (magic,
expiry time, lengths, CRC-32), the key and the value; a file that is
truncated, corrupt, or expired is a miss and is removed. The file's
modification time is set to its expiry time, so that expired files can be
found and evicted from ``stat`` alone.

Mutations (``set``, ``add``, ``delete``, ``clear``, removals) take an
exclusive ``flock`` on ``<namespace>/.state``, which also holds the number
of files and their total size. That makes ``add`` atomic across processes
(usable for locks) and ``max_entries`` / ``max_bytes`` hard limits: when a
write would exceed one, expired files are removed first, then the files
soonest to expire, until 10 % of the limit is free again. Every
``sweep_interval`` seconds a writer also removes expired files and
abandoned temporary files, and recounts the directory. Reads take no lock.

``flock`` is reliable on local file systems; do not put the directory on
NFS. POSIX only.
"""

from __future__ import annotations

import errno
import fcntl
import math
import os
import re
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from hashlib import blake2b
from secrets import token_hex
from time import time
from typing import Any
from urllib.parse import unquote, urlsplit
from zlib import crc32

from ..errors import ConfigurationError
from .base import Backend, construct, options_from_query

__all__ = ["FileBackend"]

#: magic, expires_at (Unix time), key length, value length, CRC-32 of key + value
_HEADER = struct.Struct(">4sdHII")
_MAGIC = b"WCF1"
#: entry count, total bytes, time of the last sweep
_STATE = struct.Struct(">QQd")
_STATE_FILE = ".state"
_TEMP_PREFIX = ".t"
#: Temporary files older than this (by ctime) belong to a crashed writer.
_TEMP_MAX_AGE = 3600.0
_SAFE_PREFIX = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}")
_OPEN_READ = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
_OPEN_STATE = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)


def namespace_dirname(key_prefix: str) -> str:
    """The directory name of a namespace (never derived unchecked from input)."""
    if not key_prefix:
        return "default"
    if _SAFE_PREFIX.fullmatch(key_prefix):
        return "p-" + key_prefix
    return "h-" + blake2b(key_prefix.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()


class _State:
    """The shared counters, read and written while the flock is held."""

    __slots__ = ("count", "last_sweep", "total", "valid")

    def __init__(self, count: int, total: int, last_sweep: float, valid: bool) -> None:
        self.count = count
        self.total = total
        self.last_sweep = last_sweep
        self.valid = valid


class FileBackend(Backend):
    """Files in a directory, shared safely by several processes.

    :param path: the cache directory (created ``0700`` if missing).
    :param max_entries: most files in this namespace (default 100,000).
    :param max_bytes: most bytes of files in this namespace (default 1 GiB);
        a file's size is its value plus its key plus a 22-byte header.
    :param sweep_interval: seconds between sweeps of expired files (default 300).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        max_entries: int = 100_000,
        max_bytes: int = 1024 * 1024 * 1024,
        sweep_interval: float = 300.0,
        key_prefix: str = "",
        default_timeout: float = 300,
    ) -> None:
        super().__init__(key_prefix=key_prefix, default_timeout=default_timeout)
        for name, value in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"FileBackend {name} must be a positive whole number, got {value!r}")
        if (
            isinstance(sweep_interval, bool)
            or not isinstance(sweep_interval, (int, float))
            or not math.isfinite(sweep_interval)
            or sweep_interval <= 0
        ):
            raise ConfigurationError(
                "FileBackend sweep_interval must be a positive number of seconds (not NaN or "
                f"infinity), such as 300; got {sweep_interval!r}"
            )
        try:
            root = os.path.abspath(os.fspath(path))
        except TypeError:
            raise ConfigurationError(
                f"FileBackend path must be a directory path such as '/var/cache/mysite', got {path!r}"
            ) from None
        if not os.path.isabs(os.fspath(path)):
            raise ConfigurationError(
                f"FileBackend needs an absolute directory path such as '/var/cache/mysite', got {path!r}"
            )
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.sweep_interval = float(sweep_interval)
        self.root = root
        self.directory = os.path.join(root, namespace_dirname(key_prefix))
        try:
            # Both levels private when created here (makedirs applies its mode to the leaf only).
            os.makedirs(root, mode=0o700, exist_ok=True)
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise ConfigurationError(
                f"FileBackend cannot create the directory {self.directory!r}: {exc}"
            ) from exc
        if not os.access(self.directory, os.R_OK | os.W_OK | os.X_OK):
            raise ConfigurationError(f"FileBackend directory {self.directory!r} is not readable and writable")
        self._state_path = os.path.join(self.directory, _STATE_FILE)
        self._state_fd = -1
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self.evictions = 0

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Backend:
        """``file:///absolute/path?max_entries=...``."""
        parts = urlsplit(url)
        if parts.netloc not in ("", "localhost"):
            raise ConfigurationError(
                f"file URL {url!r} names a host ({parts.netloc!r}); write an absolute path "
                "with three slashes, such as 'file:///var/cache/mysite'"
            )
        path = unquote(parts.path)
        if not path or not path.startswith("/"):
            raise ConfigurationError(
                f"file URL {url!r} needs an absolute directory path, such as 'file:///var/cache/mysite'"
            )
        merged: dict[str, Any] = dict(options_from_query(parts.query))
        merged.update(options)
        merged["path"] = path
        return construct(cls, url, merged)

    def __repr__(self) -> str:
        return f"<FileBackend {self.directory!r}>"

    # -- reading (no lock) ----------------------------------------------------

    def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            fd = os.open(path, _OPEN_READ)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            stat = os.fstat(fd)
            data = _read_all(fd, stat.st_size)
        finally:
            os.close(fd)
        usable, value = self._decode(key, data)
        if not usable:
            self._discard(path, stat)
        return value

    @staticmethod
    def _decode(key: str, data: bytes) -> tuple[bool, bytes | None]:
        """``(usable, value)``: not usable when expired, truncated or corrupt (to remove).

        A file of another key (a hash collision) is usable but holds no value.
        """
        size = _HEADER.size
        if len(data) < size:
            return False, None
        magic, expires_at, key_len, value_len, checksum = _HEADER.unpack_from(data)
        if magic != _MAGIC or size + key_len + value_len != len(data):
            return False, None
        if crc32(memoryview(data)[size:]) != checksum or expires_at <= time():
            return False, None
        if data[size : size + key_len] != key.encode("utf-8", "surrogatepass"):
            return True, None
        return True, data[size + key_len :]

    # -- writing --------------------------------------------------------------

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        return self._write(key, value, ttl, only_if_absent=False)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        return self._write(key, value, ttl, only_if_absent=True)

    def delete(self, key: str) -> None:
        path = self._path(key)
        with self._locked() as state:
            try:
                stat = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return
            os.unlink(path)
            self._forget(state, stat.st_size)

    def clear(self) -> None:
        """Remove every file of this namespace (other namespaces and unrelated files stay)."""
        with self._locked() as state:
            for entry in self._scan():
                _unlink_quietly(entry.path)
            state.count = 0
            state.total = 0
            state.valid = True

    def close(self) -> None:
        with self._lock:
            if self._state_fd >= 0:
                os.close(self._state_fd)
                self._state_fd = -1

    def _write(self, key: str, value: bytes, ttl: float, *, only_if_absent: bool) -> bool:
        encoded_key = key.encode("utf-8", "surrogatepass")
        if len(encoded_key) > 0xFFFF or len(value) > 0xFFFFFFFF:
            raise ValueError("key or value too long for the file format")
        path = self._path(key)
        size = _HEADER.size + len(encoded_key) + len(value)
        if ttl <= 0 or size > self.max_bytes:
            # Not storable: make sure an older value is not served in its place.
            if not only_if_absent:
                self.delete(key)
            return False
        now = time()
        expires_at = now + ttl
        checksum = crc32(value, crc32(encoded_key))
        header = _HEADER.pack(_MAGIC, expires_at, len(encoded_key), len(value), checksum)
        temp = self._write_temp(path, (header, encoded_key, value), expires_at)
        try:
            with self._locked() as state:
                try:
                    old: os.stat_result | None = os.lstat(path)
                except (FileNotFoundError, NotADirectoryError):
                    old = None
                if only_if_absent and old is not None and self._is_live(path, now):
                    return False
                old_size = 0 if old is None else old.st_size
                if (
                    state.count + (old is None) > self.max_entries
                    or state.total - old_size + size > self.max_bytes
                ):
                    self._make_room(state, path, size, now)
                    try:
                        old = os.lstat(path)
                    except (FileNotFoundError, NotADirectoryError):
                        old = None
                    old_size = 0 if old is None else old.st_size
                os.replace(temp, path)
                temp = ""
                state.count += old is None
                state.total += size - old_size
                if now - state.last_sweep >= self.sweep_interval:
                    self._sweep(state, now)
                return True
        finally:
            if temp:
                _unlink_quietly(temp)

    def _write_temp(self, path: str, chunks: tuple[bytes, ...], expires_at: float) -> str:
        shard_dir = os.path.dirname(path)
        temp = os.path.join(shard_dir, f"{_TEMP_PREFIX}{os.getpid()}-{token_hex(6)}")
        try:
            fd = os.open(temp, _OPEN_NEW, 0o600)
        except FileNotFoundError:
            os.makedirs(shard_dir, mode=0o700, exist_ok=True)
            fd = os.open(temp, _OPEN_NEW, 0o600)
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            # The modification time is the expiry time: sweeps and eviction
            # then need no more than a stat of each file.
            os.utime(fd, (expires_at, expires_at))
        except BaseException:
            os.close(fd)
            _unlink_quietly(temp)
            raise
        os.close(fd)
        return temp

    def _is_live(self, path: str, now: float) -> bool:
        """Whether ``path`` holds an unexpired entry whose size matches its header."""
        try:
            fd = os.open(path, _OPEN_READ)
        except (FileNotFoundError, NotADirectoryError):
            return False
        try:
            head = os.read(fd, _HEADER.size)
            size = os.fstat(fd).st_size
        finally:
            os.close(fd)
        if len(head) < _HEADER.size:
            return False
        magic, expires_at, key_len, value_len, _ = _HEADER.unpack(head)
        return bool(magic == _MAGIC and expires_at > now and _HEADER.size + key_len + value_len == size)

    def _discard(self, path: str, seen: os.stat_result) -> None:
        """Remove an expired or corrupt file, unless it was replaced meanwhile."""
        with self._locked() as state:
            try:
                current = os.lstat(path)
            except (FileNotFoundError, NotADirectoryError):
                return
            if (current.st_ino, current.st_dev) != (seen.st_ino, seen.st_dev):
                return
            os.unlink(path)
            self._forget(state, current.st_size)

    @staticmethod
    def _forget(state: _State, size: int) -> None:
        state.count = max(state.count - 1, 0)
        state.total = max(state.total - size, 0)

    # -- eviction and sweeping (lock held) --------------------------------------

    def _make_room(self, state: _State, incoming_path: str, incoming_size: int, now: float) -> None:
        """Evict so that one more file of ``incoming_size`` fits, with 10 % headroom."""
        files = []
        count = total = 0
        for entry in self._scan(now):
            if entry.path == incoming_path:
                continue  # replaced by the incoming file anyway
            if entry.expires_at <= now:
                _unlink_quietly(entry.path)
                continue
            files.append(entry)
            count += 1
            total += entry.size
        max_count = self.max_entries - 1 - self.max_entries // 10
        max_total = self.max_bytes - incoming_size - self.max_bytes // 10
        if count > max_count or total > max_total:
            files.sort(key=lambda entry: entry.expires_at)
            for entry in files:
                if count <= max_count and total <= max_total:
                    break
                _unlink_quietly(entry.path)
                count -= 1
                total -= entry.size
                self.evictions += 1
        # The incoming path's old file, if any, is counted by the caller.
        try:
            existing = os.lstat(incoming_path)
            count += 1
            total += existing.st_size
        except (FileNotFoundError, NotADirectoryError):
            pass
        state.count = count
        state.total = total
        state.last_sweep = now

    def _sweep(self, state: _State, now: float) -> None:
        """Remove expired files and abandoned temporary files; recount."""
        count = total = 0
        for entry in self._scan(now):
            if entry.expires_at <= now:
                _unlink_quietly(entry.path)
            else:
                count += 1
                total += entry.size
        state.count = count
        state.total = total
        state.last_sweep = now

    def _scan(self, now: float | None = None) -> Iterator[_FileInfo]:
        """Every entry file of the namespace; removes stale temporary files on the way."""
        try:
            shards = list(os.scandir(self.directory))
        except FileNotFoundError:
            return
        for shard in shards:
            if len(shard.name) != 2 or not shard.is_dir(follow_symlinks=False):
                continue
            try:
                files = list(os.scandir(shard.path))
            except FileNotFoundError:
                continue
            for item in files:
                try:
                    stat = item.stat(follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if item.name.startswith(_TEMP_PREFIX):
                    if now is not None and stat.st_ctime < now - _TEMP_MAX_AGE:
                        _unlink_quietly(item.path)
                    continue
                if len(item.name) != 30:
                    continue
                yield _FileInfo(item.path, stat.st_size, stat.st_mtime)

    # -- the shared lock and counters ------------------------------------------

    @contextmanager
    def _locked(self) -> Iterator[_State]:
        """Hold this namespace's lock (threads and processes) and its counters."""
        if self._pid != os.getpid():
            # Forked: the inherited descriptor shares its flock with the parent.
            self._pid = os.getpid()
            self._lock = threading.Lock()
            self._state_fd = -1
        with self._lock:
            fd = self._state_fd
            if fd < 0:
                os.makedirs(self.directory, mode=0o700, exist_ok=True)
                fd = self._state_fd = os.open(self._state_path, _OPEN_STATE, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                raw = os.pread(fd, _STATE.size, 0)
                if len(raw) == _STATE.size:
                    count, total, last_sweep = _STATE.unpack(raw)
                    state = _State(count, total, last_sweep, valid=True)
                else:
                    state = _State(0, 0, 0.0, valid=False)
                    self._sweep(state, time())
                before = (state.count, state.total, state.last_sweep)
                yield state
                if (state.count, state.total, state.last_sweep) != before or not state.valid:
                    os.pwrite(fd, _STATE.pack(state.count, state.total, state.last_sweep), 0)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)

    def stored(self) -> tuple[int, int]:
        """``(files, bytes)`` of this namespace as the shared counters say."""
        with self._locked() as state:
            return state.count, state.total

    def _path(self, key: str) -> str:
        name = blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
        return f"{self.directory}{os.sep}{name[:2]}{os.sep}{name[2:]}"


class _FileInfo:
    __slots__ = ("expires_at", "path", "size")

    def __init__(self, path: str, size: int, expires_at: float) -> None:
        self.path = path
        self.size = size
        self.expires_at = expires_at


def _read_all(fd: int, size: int) -> bytes:
    """Read a whole file whose size ``fstat`` gave (files are never written in place)."""
    data = os.read(fd, size)
    if len(data) < size:
        parts = [data]
        while True:
            chunk = os.read(fd, 1 << 20)
            if not chunk:
                break
            parts.append(chunk)
        data = b"".join(parts)
    return data


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            raise
