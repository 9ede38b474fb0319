"""Fail-open access to a backend: errors are logged and counted, never raised.

After ``failure_threshold`` consecutive failures a circuit opens: no call
reaches the backend (requests go straight to the application) so that a dead
or hanging store is not waited on by every request. While it is open, one
request at a time probes the backend: the first probe goes
``probe_interval`` seconds (default 0.1) after the circuit opened, and each
probe that fails doubles the wait before the next, up to ``retry_after``
seconds (default 1). The first call that succeeds closes the circuit at
once, so hits resume within ``retry_after`` of the backend answering again
(a replica promoted, a node restarted), however long it was down. Only the
probe reaches the backend; the other requests skip it (``skipped``).

A :class:`~wsgicache.errors.TransientBackendError` (a Redis Cluster answering
``CLUSTERDOWN`` or ``TRYAGAIN`` while another node fails over) is counted and
logged like any failure and is a miss, but it says nothing about the shard's
own health: it neither counts towards opening the circuit nor resets the
count, and a probe that meets one is retried after the same interval.

There is one circuit per shard of the key space (the ``{sN}`` hash tag of
keys on a backend with ``key_shards > 1``): when one node of a Redis Cluster
or one of several memcached servers is down, only the shards it holds are
skipped, and the others keep hitting.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import NamedTuple

from .backends.base import Backend
from .backends.memory import MemoryBackend
from .errors import TransientBackendError
from .stats import Stats

logger = logging.getLogger("wsgicache")

#: Default seconds from a circuit opening to its first probe.
PROBE_INTERVAL = 0.1


class _Circuit:
    """The breaker state of one shard; changed under :attr:`GuardedBackend._lock`."""

    __slots__ = ("failures", "interval", "last_failure", "next_probe", "open", "opened_at", "prober")

    def __init__(self) -> None:
        self.failures = 0  # consecutive failures (transient ones not counted)
        self.open = False
        self.opened_at = 0.0
        self.interval = 0.0  # wait after the last probe before the next one
        self.next_probe = 0.0  # clock time from which one caller may probe
        self.prober: int | None = None  # thread ident of the probe in flight
        self.last_failure = -1e18  # clock time of the last failure, transient ones included


def shard_of(key: str) -> str:
    """The shard marker of a middleware key (``"{s3}"`` of ``"e:{s3}:..."``), or ``""``."""
    if key[2:3] == "{":
        end = key.find("}", 3)
        if end != -1:
            return key[2 : end + 1]
    return ""


class GuardedBackend:
    """A backend behind error counting, logging and a circuit breaker.

    :param failure_threshold: consecutive failures of a shard that open its circuit.
    :param retry_after: the longest wait, in seconds, between two probes of an
        open circuit (and how long a probe that never reports holds the
        half-open slot).
    :param probe_interval: seconds from the circuit opening to the first
        probe (capped at ``retry_after``); doubled after each failed probe.
    :param clock: seconds, the cache's one clock (tests pass a fake one).
    """

    def __init__(
        self,
        alias: str,
        backend: Backend,
        stats: Stats,
        *,
        failure_threshold: int = 5,
        retry_after: float = 1.0,
        probe_interval: float = PROBE_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.alias = alias
        self.backend = backend
        self.stats = stats
        self.failure_threshold = failure_threshold
        self.retry_after = retry_after
        self.probe_interval = min(probe_interval, retry_after)
        self.clock = clock
        self._circuits: dict[str, _Circuit] = {}
        # The built-in memory backend returns only bytes, only for the keys
        # asked: its answers skip the check (it is on every hit's path).
        self._trusted = type(backend) is MemoryBackend
        self._lock = threading.Lock()

    def _circuit(self, key: str) -> _Circuit:
        shard = shard_of(key)
        circuit = self._circuits.get(shard)
        if circuit is None:
            with self._lock:
                circuit = self._circuits.setdefault(shard, _Circuit())
        return circuit

    def available(self, key: str) -> bool:
        """False while the circuit of ``key``'s shard is open (the call would be skipped).

        When a probe is due, the one caller that gets ``True`` is the probe
        (half-open); it must then call the backend and report through
        ``_succeeded`` or ``_failed``. The others keep skipping meanwhile.
        """
        circuit = self._circuit(key)
        if not circuit.open or self._may_probe(circuit):
            return True
        self.stats.incr("skipped")
        return False

    def _may_probe(self, circuit: _Circuit) -> bool:
        """Whether the caller may call the backend of an open circuit (as its one probe)."""
        now = self.clock()
        with self._lock:
            if not circuit.open:  # closed meanwhile
                return True
            if now < circuit.next_probe:
                return False
            circuit.prober = threading.get_ident()
            # A probe that never reports (a BaseException in its thread)
            # gives its turn to another caller after retry_after.
            circuit.next_probe = now + self.retry_after
            return True

    def is_open(self, key: str) -> bool:
        """Whether the circuit of ``key``'s shard is open (for tests and diagnostics)."""
        return self._circuit(key).open

    def failed_within(self, key: str, seconds: float) -> bool:
        """Whether a call for ``key``'s shard failed in the last ``seconds``."""
        return self.clock() - self._circuit(key).last_failure < seconds

    def _succeeded(self, key: str) -> None:
        circuit = self._circuit(key)
        if circuit.failures or circuit.open:
            with self._lock:
                was_open = circuit.open
                opened_at = circuit.opened_at
                circuit.failures = 0
                circuit.open = False
                circuit.prober = None
            if was_open:
                logger.warning(
                    "wsgicache: backend %r%s is answering again (circuit closed after %.1f s)",
                    self.alias,
                    _where(key),
                    self.clock() - opened_at,
                )

    def _failed(self, operation: str, exc: BaseException, key: str) -> None:
        self.stats.incr("errors")
        transient = isinstance(exc, TransientBackendError)
        circuit = self._circuit(key)
        now = self.clock()
        opened = probed = False
        with self._lock:
            circuit.last_failure = now
            if circuit.open:
                if circuit.prober == threading.get_ident():
                    # This call was the probe: try again later, later each time.
                    probed = True
                    circuit.prober = None
                    if not transient:
                        circuit.interval = min(circuit.interval * 2, self.retry_after)
                    circuit.next_probe = now + circuit.interval
            elif not transient:
                circuit.failures += 1
                if circuit.failures >= self.failure_threshold:
                    opened = True
                    circuit.open = True
                    circuit.opened_at = now
                    circuit.interval = self.probe_interval
                    circuit.next_probe = now + circuit.interval
                    circuit.prober = None
            failures = circuit.failures
            interval = circuit.interval
        if transient:
            note = " (transient: the circuit is not affected)"
        elif probed:
            note = f" (probe of the open circuit; next probe in {interval:g} s)"
        else:
            note = ""
        logger.warning(
            "wsgicache: backend %r%s failed on %s%s: %s: %s",
            self.alias,
            _where(key),
            operation,
            note,
            type(exc).__name__,
            exc,
        )
        if opened:
            logger.error(
                "wsgicache: backend %r%s failed %d times in a row; not used until a probe succeeds "
                "(first in %g s, then at doubling intervals up to %g s)",
                self.alias,
                _where(key),
                failures,
                interval,
                self.retry_after,
            )

    def _probe_inconclusive(self, key: str) -> None:
        """Give back the probe slot this thread holds, if any, without changing the interval."""
        circuit = self._circuit(key)
        if circuit.open and circuit.prober == threading.get_ident():
            with self._lock:
                if circuit.prober == threading.get_ident():
                    circuit.prober = None
                    circuit.next_probe = self.clock() + circuit.interval

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes] | None:
        """The values found, or ``None`` when the backend could not be asked.

        The answer is checked against the contract: only ``bytes`` values
        (``bytearray`` and ``memoryview`` are converted) of keys that were
        asked for are kept. Anything else is logged, counted as an error and
        dropped, so that it is a miss; an answer that is not a mapping at all
        counts as "nothing found".
        """
        circuit = self._circuit(keys[0])
        if circuit.open and not self._may_probe(circuit):
            self.stats.incr("skipped")
            return None
        try:
            if len(keys) == 1:
                value = self.backend.get(keys[0])
                if value is None:
                    found = {}
                elif type(value) is bytes:
                    found = {keys[0]: value}
                else:
                    found = self._usable({keys[0]: value}, keys, "get")
            elif self._trusted:
                found = self.backend.get_many(keys)
            else:
                found = self._usable(self.backend.get_many(keys), keys, "get_many")
        except Exception as exc:
            self._failed("get", exc, keys[0])
            return None
        if circuit.failures or circuit.open:
            self._succeeded(keys[0])
        return found

    def _usable(self, answer: object, keys: Sequence[str], operation: str) -> dict[str, bytes]:
        """The ``bytes`` values of ``keys`` in a backend's answer; wrong types are reported."""
        if not isinstance(answer, Mapping):
            self._wrong_type(operation, f"a {type(answer).__name__} instead of a dict", keys[0])
            return {}
        found: dict[str, bytes] = {}
        for key in keys:
            value = answer.get(key)
            if value is None:
                continue
            if type(value) is not bytes:
                if not isinstance(value, (bytes, bytearray, memoryview)):
                    self._wrong_type(operation, f"a {type(value).__name__} value instead of bytes", key)
                    continue
                value = bytes(value)
            found[key] = value
        return found

    def _wrong_type(self, operation: str, what: str, key: str) -> None:
        """A backend answered outside its contract: count it as an error and log it."""
        self.stats.incr("errors")
        logger.warning(
            "wsgicache: backend %r%s answered %s with %s; treated as a miss "
            "(a backend returns bytes values, see wsgicache.backends.Backend)",
            self.alias,
            _where(key),
            operation,
            what,
        )

    def set(self, key: str, value: bytes, ttl: float, *, force: bool = False) -> bool | None:
        """Whether the value was stored; ``None`` when the backend could not be asked.

        ``force`` tries even while the circuit is open.
        """
        if not force and not self.available(key):
            return None
        try:
            stored = self.backend.set(key, value, ttl)
        except Exception as exc:
            self._failed("set", exc, key)
            return None
        self._succeeded(key)
        return stored is not False

    def add(self, key: str, value: bytes, ttl: float) -> bool | None:
        """Whether the key was added; ``None`` when the backend could not be asked."""
        if not self.available(key):
            return None
        try:
            added: object = self.backend.add(key, value, ttl)
        except Exception as exc:
            self._failed("add", exc, key)
            return None
        self._succeeded(key)
        if type(added) is not bool:
            self._wrong_type("add", f"a {type(added).__name__} instead of True or False", key)
            return None
        return added

    def delete(self, key: str, *, force: bool = False) -> bool:
        if not force and not self.available(key):
            return False
        try:
            self.backend.delete(key)
        except Exception as exc:
            self._failed("delete", exc, key)
            return False
        self._succeeded(key)
        return True

    def clear(self) -> bool:
        try:
            self.backend.clear()
        except Exception as exc:
            self._failed("clear", exc, "")
            return False
        self._succeeded("")
        return True

    def set_many(self, items: Mapping[str, bytes], ttl: float, *, force: bool = False) -> Written:
        """Write ``items`` (an invalidation's new tag generations) in one backend call.

        Returns whether they were written and how many replicas acknowledged
        them (``None`` when the backend does not wait for replicas). With
        ``force`` it is tried even while a circuit is open; a failure is
        logged and counted but, since the keys span every shard, counts
        towards no shard's circuit.
        """
        if not items:
            return Written(True, None)
        first = next(iter(items))
        if not force and not self.available(first):
            return Written(False, None)
        try:
            replicas: object = self.backend.set_many(items, ttl)
        except Exception as exc:
            self.stats.incr("errors")
            logger.warning(
                "wsgicache: backend %r failed on set_many: %s: %s", self.alias, type(exc).__name__, exc
            )
            self._probe_inconclusive(first)
            return Written(False, None)
        self._succeeded(first)
        if replicas is not None and (isinstance(replicas, bool) or not isinstance(replicas, int)):
            self._wrong_type("set_many", f"a {type(replicas).__name__} instead of a replica count", first)
            replicas = None
        return Written(True, replicas)


class Written(NamedTuple):
    """The outcome of :meth:`GuardedBackend.set_many`."""

    ok: bool
    replicas: int | None  # replicas that acknowledged, when the backend waits for them


def _where(key: str) -> str:
    shard = shard_of(key)
    return f" (shard {shard})" if shard else ""
