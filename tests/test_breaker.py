"""The circuit breaker: opens after consecutive failures, probes at growing intervals.

A real memory store that fails on demand stands in for a backend that goes
down and comes back; a fake clock stands in for time, so nothing sleeps.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence

import pytest
from helpers import FakeClock, RecordingApp, cached

from wsgicache import CacheMiddleware, ConfigurationError, Rule
from wsgicache.backends.memory import MemoryBackend
from wsgicache.errors import TransientBackendError
from wsgicache.guard import GuardedBackend
from wsgicache.stats import Stats

KEY = "e:{s1}:page"
OTHER_SHARD_KEY = "e:{s2}:page"


class Killed(BaseException):
    """Ends a thread in the middle of a backend call (like gevent.Timeout)."""


class SwitchableBackend(MemoryBackend):
    """A real memory store that can be switched to fail like a server going down.

    ``dead``: every call raises ConnectionError. ``transient``: every call
    raises TransientBackendError (CLUSTERDOWN while another node fails over).
    ``hold``: calls block until ``release`` is set (a probe in flight).
    """

    key_shards = 4

    def __init__(self) -> None:
        super().__init__()
        self.dead = False
        self.transient = False
        self.killed = False
        self.hold = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self._calls_lock = threading.Lock()

    def _check(self) -> None:
        with self._calls_lock:
            self.calls += 1
        if self.hold:
            self.entered.set()
            assert self.release.wait(10), "the test never released the held call"
        if self.killed:
            raise Killed
        if self.transient:
            raise TransientBackendError("CLUSTERDOWN The cluster is down")
        if self.dead:
            raise ConnectionError("Connection refused")

    def get(self, key: str) -> bytes | None:
        self._check()
        return super().get(key)

    def get_many(self, keys: Sequence[str]) -> dict[str, bytes]:
        self._check()
        return super().get_many(keys)

    def set(self, key: str, value: bytes, ttl: float) -> bool:
        self._check()
        return super().set(key, value, ttl)

    def add(self, key: str, value: bytes, ttl: float) -> bool:
        self._check()
        return super().add(key, value, ttl)

    def delete(self, key: str) -> None:
        self._check()
        super().delete(key)

    def clear(self) -> None:
        self._check()
        super().clear()


def make_guard(
    *, failure_threshold: int = 3, retry_after: float = 1.0, probe_interval: float = 0.1
) -> tuple[GuardedBackend, SwitchableBackend, FakeClock, Stats]:
    backend = SwitchableBackend()
    clock = FakeClock()
    stats = Stats()
    guard = GuardedBackend(
        "default",
        backend,
        stats,
        failure_threshold=failure_threshold,
        retry_after=retry_after,
        probe_interval=probe_interval,
        clock=clock,
    )
    return guard, backend, clock, stats


def reaches_backend(guard: GuardedBackend, backend: SwitchableBackend, key: str = KEY) -> bool:
    """Ask for ``key``; whether the call got through to the backend."""
    before = backend.calls
    guard.get_many([key])
    return backend.calls > before


def open_circuit(guard: GuardedBackend, backend: SwitchableBackend, key: str = KEY) -> None:
    backend.dead = True
    for _ in range(guard.failure_threshold):
        assert reaches_backend(guard, backend, key)
    assert guard.is_open(key)


@pytest.mark.parametrize("threshold", [1, 3, 5])
def test_opens_after_threshold_consecutive_failures(threshold: int) -> None:
    guard, backend, _, stats = make_guard(failure_threshold=threshold)
    backend.dead = True
    for _ in range(threshold - 1):
        assert guard.get_many([KEY]) is None
        assert not guard.is_open(KEY)
    assert guard.get_many([KEY]) is None
    assert guard.is_open(KEY)
    calls = backend.calls
    for _ in range(10):
        assert guard.get_many([KEY]) is None
        assert guard.set(KEY, b"v", 60) is None
        assert guard.add(KEY, b"v", 60) is None
        assert guard.delete(KEY) is False
    assert backend.calls == calls  # nothing reaches the dead backend
    assert stats.snapshot()["errors"] == threshold
    assert stats.snapshot()["skipped"] == 40


def test_a_success_in_between_resets_the_count() -> None:
    guard, backend, _, _ = make_guard(failure_threshold=3)
    for _ in range(5):
        backend.dead = True
        guard.get_many([KEY])
        guard.get_many([KEY])
        backend.dead = False
        assert guard.get_many([KEY]) == {}
    assert not guard.is_open(KEY)


@pytest.mark.parametrize(
    ("probe_interval", "retry_after", "waits"),
    [
        (0.1, 1.0, [0.1, 0.2, 0.4, 0.8, 1.0, 1.0, 1.0]),
        (0.05, 10.0, [0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, 10.0, 10.0]),
        (0.25, 0.25, [0.25, 0.25, 0.25]),  # a constant interval
        (5.0, 0.5, [0.5, 0.5]),  # the first probe is never later than retry_after
    ],
    ids=["default", "long-outage", "constant", "capped-first"],
)
def test_probes_back_off_by_doubling_up_to_retry_after(
    probe_interval: float, retry_after: float, waits: list[float]
) -> None:
    guard, backend, clock, stats = make_guard(probe_interval=probe_interval, retry_after=retry_after)
    open_circuit(guard, backend)
    for wait in waits:
        failed_at = clock.now
        clock.now = failed_at + wait * 0.999
        assert not reaches_backend(guard, backend), f"probed before {wait} s"
        clock.now = failed_at + wait
        assert reaches_backend(guard, backend), f"no probe after {wait} s"  # the probe fails
        assert guard.is_open(KEY)
    assert stats.snapshot()["errors"] == guard.failure_threshold + len(waits)
    assert stats.snapshot()["skipped"] == len(waits)


@pytest.mark.parametrize("failed_probes", [0, 1, 6])
def test_a_successful_probe_closes_the_circuit_at_once(failed_probes: int) -> None:
    guard, backend, clock, _ = make_guard(probe_interval=0.1, retry_after=1.0)
    open_circuit(guard, backend)
    for _ in range(failed_probes):
        clock.advance(1.0)  # at least the interval, whatever it has grown to
        assert reaches_backend(guard, backend)
    backend.dead = False
    backend.set(KEY, b"value", 60)
    clock.advance(1.0)
    assert guard.get_many([KEY]) == {KEY: b"value"}  # the probe is a hit
    assert not guard.is_open(KEY)
    for _ in range(5):
        assert guard.get_many([KEY]) == {KEY: b"value"}


def test_the_next_outage_starts_again_from_the_short_interval() -> None:
    guard, backend, clock, _ = make_guard(probe_interval=0.1, retry_after=1.0)
    open_circuit(guard, backend)
    for _ in range(6):  # the interval grows to retry_after
        clock.advance(1.0)
        assert reaches_backend(guard, backend)
    backend.dead = False
    clock.advance(1.0)
    assert reaches_backend(guard, backend) and not guard.is_open(KEY)
    open_circuit(guard, backend)
    clock.advance(0.1)
    assert reaches_backend(guard, backend)


def test_recovery_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    guard, backend, clock, _ = make_guard()
    open_circuit(guard, backend)
    assert "failed 3 times in a row" in caplog.text and "first in 0.1 s" in caplog.text
    clock.advance(0.1)
    reaches_backend(guard, backend)
    assert "next probe in 0.2 s" in caplog.text
    backend.dead = False
    clock.advance(0.2)
    reaches_backend(guard, backend)
    assert "is answering again (circuit closed after 0.3 s)" in caplog.text


def _probe_in_thread(guard: GuardedBackend, results: list[object]) -> threading.Thread:
    def probe() -> None:
        try:
            results.append(guard.get_many([KEY]))
        except Killed:
            results.append("killed")

    thread = threading.Thread(target=probe)
    thread.start()
    return thread


@pytest.mark.parametrize("outcome", ["alive", "dead"])
def test_only_one_request_probes_at_a_time(outcome: str) -> None:
    guard, backend, clock, stats = make_guard(probe_interval=0.1, retry_after=1.0)
    open_circuit(guard, backend)
    MemoryBackend.set(backend, KEY, b"value", 60)  # stored behind the failing front
    clock.advance(0.1)
    backend.hold = True
    results: list[object] = []
    prober = _probe_in_thread(guard, results)
    assert backend.entered.wait(10)
    calls = backend.calls
    skipped = stats.snapshot()["skipped"]

    # While the probe is in flight, every other request skips the backend,
    # however much time passes (up to retry_after).
    others = [threading.Thread(target=guard.get_many, args=([KEY],)) for _ in range(8)]
    for thread in others:
        thread.start()
    for thread in others:
        thread.join()
    clock.advance(0.5)
    assert guard.get_many([KEY]) is None
    assert backend.calls == calls
    assert stats.snapshot()["skipped"] == skipped + 9

    backend.dead = outcome == "dead"
    backend.hold = False
    backend.release.set()
    prober.join()
    if outcome == "alive":
        assert results == [{KEY: b"value"}]
        assert not guard.is_open(KEY)
        assert guard.get_many([KEY]) == {KEY: b"value"}
    else:
        assert results == [None]
        assert guard.is_open(KEY)
        failed_at = clock.now
        assert not reaches_backend(guard, backend)
        clock.now = failed_at + 0.2  # doubled, counted from the probe's failure
        assert reaches_backend(guard, backend)


def test_a_probe_that_never_reports_gives_its_turn_after_retry_after() -> None:
    guard, backend, clock, _ = make_guard(probe_interval=0.1, retry_after=1.0)
    open_circuit(guard, backend)
    clock.advance(0.1)
    backend.killed = True
    with pytest.raises(Killed):  # not an Exception: the guard lets it through, unreported
        guard.get_many([KEY])
    backend.killed = False
    probed_at = clock.now
    clock.now = probed_at + 0.999
    assert not reaches_backend(guard, backend)
    clock.now = probed_at + 1.0
    assert reaches_backend(guard, backend)


@pytest.mark.parametrize(
    ("sequence", "opens"),
    [
        ("T" * 50, False),  # transient errors alone never open it
        ("FF" + "T" * 50, False),
        ("FFTF", True),  # ... nor reset the count of real failures
        ("FFTTTTF", True),
        ("FFTSF", False),  # a success does
        ("FTFTS" * 10, False),
    ],
)
def test_transient_errors_never_count_towards_opening(sequence: str, opens: bool) -> None:
    guard, backend, _, stats = make_guard(failure_threshold=3)
    for step in sequence:
        backend.dead = step == "F"
        backend.transient = step == "T"
        result = guard.get_many([KEY])
        assert (result is None) == (step != "S")  # a transient error is a miss too
    assert guard.is_open(KEY) is opens
    assert stats.snapshot()["errors"] == sum(step != "S" for step in sequence)
    assert stats.snapshot()["skipped"] == 0


def test_transient_errors_are_logged_as_warnings(caplog: pytest.LogCaptureFixture) -> None:
    guard, backend, _, _ = make_guard(failure_threshold=1)
    backend.transient = True
    guard.get_many([KEY])
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "CLUSTERDOWN" in record.getMessage() and "transient" in record.getMessage()
    assert "shard {s1}" in record.getMessage()


def test_a_transient_error_on_a_probe_keeps_the_interval() -> None:
    guard, backend, clock, _ = make_guard(probe_interval=0.1, retry_after=1.0)
    open_circuit(guard, backend)
    clock.advance(0.1)
    assert reaches_backend(guard, backend)  # fails: the next wait is 0.2
    for _ in range(3):
        clock.advance(0.2)
        backend.transient = True
        assert reaches_backend(guard, backend)  # inconclusive: wait 0.2 again
        backend.transient = False
        assert not reaches_backend(guard, backend)
    clock.advance(0.2)
    assert reaches_backend(guard, backend)  # fails: the next wait is 0.4
    failed_at = clock.now
    clock.now = failed_at + 0.3
    assert not reaches_backend(guard, backend)
    clock.now = failed_at + 0.4
    assert reaches_backend(guard, backend)


def test_each_shard_has_its_own_circuit() -> None:
    guard, backend, clock, _ = make_guard(failure_threshold=2, probe_interval=0.1)
    first_opened = clock.now
    open_circuit(guard, backend, KEY)
    backend.dead = False
    assert not guard.is_open(OTHER_SHARD_KEY)
    for _ in range(5):
        assert reaches_backend(guard, backend, OTHER_SHARD_KEY)  # the other shard is used
        assert not reaches_backend(guard, backend, KEY)
    # The other shard fails later; its schedule is its own.
    clock.now = second_opened = first_opened + 0.05
    open_circuit(guard, backend, OTHER_SHARD_KEY)
    clock.now = first_opened + 0.1
    assert reaches_backend(guard, backend, KEY)  # its probe, which fails
    assert not reaches_backend(guard, backend, OTHER_SHARD_KEY)  # 0.05 s after it opened
    backend.dead = False
    clock.now = second_opened + 0.1
    assert reaches_backend(guard, backend, OTHER_SHARD_KEY)
    assert not guard.is_open(OTHER_SHARD_KEY)
    assert guard.is_open(KEY)  # its probe failed; it waits 0.2 s from then
    assert not reaches_backend(guard, backend, KEY)


def test_hits_resume_one_probe_interval_after_the_backend_returns() -> None:
    backend = SwitchableBackend()
    app = RecordingApp()
    clock = FakeClock()
    client, cache = cached(app, [Rule("/p", timeout=300)], backend=backend, failure_threshold=3, clock=clock)
    client.get("/p")
    assert client.get("/p").headers["X-Cache"] == "HIT"

    backend.dead = True
    for _ in range(10):
        response = client.get("/p")
        assert response.status_int == 200 and response.body == b"GET localhost/p?"
        assert response.headers["X-Cache"] == "BYPASS"
    stats = cache.stats()
    assert stats["errors"] == 3 and stats["skipped"] == 7
    assert stats["hit_ratio"] == 0.5  # 1 hit, 1 miss: lookups that never happened do not count
    assert stats["served_from_cache_ratio"] == 1 / 12  # the outage shows

    backend.dead = False  # a replica promoted, a server restarted
    assert client.get("/p").headers["X-Cache"] == "BYPASS"  # not probed yet
    clock.advance(0.1)
    assert client.get("/p").headers["X-Cache"] == "HIT"  # the probe
    assert client.get("/p").headers["X-Cache"] == "HIT"
    assert app.count == 1 + 11


def test_the_default_breaker_probes_at_least_once_a_second() -> None:
    _, cache = cached(RecordingApp(), [Rule("/p")])
    guard = cache.cache.guards["default"]
    assert (guard.failure_threshold, guard.probe_interval, guard.retry_after) == (5, 0.1, 1.0)


@pytest.mark.parametrize("value", [0, -0.1, math.nan, math.inf, "0.1", True, None])
def test_probe_interval_must_be_a_positive_finite_number(value: object) -> None:
    with pytest.raises(ConfigurationError, match=r"probe_interval must be a positive number of seconds"):
        CacheMiddleware(RecordingApp(), rules=[Rule("/p")], probe_interval=value)


def test_probe_interval_from_config_options() -> None:
    cache = CacheMiddleware.from_config(
        RecordingApp(), {"RULES": [Rule("/p")], "OPTIONS": {"probe_interval": 0.05, "retry_after": 2}}
    )
    guard = cache.cache.guards["default"]
    assert (guard.probe_interval, guard.retry_after) == (0.05, 2.0)


@pytest.mark.parametrize(
    ("counts", "hit_ratio", "served_ratio"),
    [
        ({}, 0.0, 0.0),
        ({"hits": 3, "misses": 1}, 0.75, 0.75),
        ({"hits": 2, "stale": 1, "misses": 1, "bypasses": 4}, 0.75, 0.375),
        ({"bypasses": 10}, 0.0, 0.0),  # an outage from the start
    ],
)
def test_ratios(counts: dict[str, int], hit_ratio: float, served_ratio: float) -> None:
    stats = Stats()
    for name, amount in counts.items():
        stats.incr(name, amount)
    snapshot = stats.snapshot()
    assert snapshot["hit_ratio"] == hit_ratio
    assert snapshot["served_from_cache_ratio"] == served_ratio
    assert snapshot["invalidation_failures"] == 0
