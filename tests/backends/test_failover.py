"""Redis Sentinel and Cluster failovers under load, with real processes (issue 8, item 6).

Two "processes" (two CacheMiddleware instances, each with its own backend
client and its own waitress server on a free 127.0.0.1 port) share one
Redis topology, like two web servers of a fleet. Eight client threads send
GETs for 40 pages to both, non-stop, while a master is killed or stalled.
The app's body names the URL and a version that the test bumps before each
``invalidate(tags=["pages"])`` (issued through the first process, as a
deploy hook or admin view would). Every request is recorded, and at the end:

- no body names another URL than the one asked for;
- no status other than the app's 200, and no failed request;
- no page older than an invalidation is served to a request that started
  after that invalidation returned success, or (when it returned failure)
  after it was re-applied (``invalidate()`` of an unrelated tag returns
  ``pending == 0``). One invalidation is made just before each fault (the
  master dies milliseconds later: it must survive through the replica, and
  its result must say a replica acknowledged it); in the split-brain window
  after a stalled master returns, one is made every half second;
- hits resume within ``RECOVERY_LIMIT`` seconds of the promotion (seen by
  polling the sentinels' ``get-master-addr-by-name`` / the live nodes'
  ``CLUSTER NODES``) — the target is one second; on the Cluster, every page
  of the healthy shards too, and none of their requests sleeps on
  CLUSTERDOWN while the cluster is down;
- no request waits anywhere near ``lock_wait`` (5 s by default).

The middleware runs with its defaults (``failure_threshold``,
``retry_after``, ``lock_wait``) so the recovery time measures the product,
not a test setting; only the socket timeouts are short (0.2 s). The
measured numbers are printed at the end of the run (conftest's
``failover_report``), and as they happen with ``pytest -s -m failover``.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from servers import HOST, RedisClusterServers, RedisSentinelServers

from wsgicache import CacheMiddleware, Rule

pytestmark = pytest.mark.failover

StartResponse = Callable[..., Any]

PAGES = [f"/page/{n}" for n in range(40)]
RULES = [Rule("/<path:p>", timeout=60, tags=["pages"])]
BACKEND_QUERY = "socket_timeout=0.2&socket_connect_timeout=0.2"
CLIENTS = 8
#: Hits must resume within this many seconds of the promotion (the target is 1 s; CI noise).
RECOVERY_LIMIT = 1.5
#: How long the test waits for the first hit after a promotion before giving up (to measure).
HIT_DEADLINE = 12.0
#: No request may take this long (the default lock_wait is 5 s).
LATENCY_LIMIT = 2.0
#: redis-py sleeps this long per call on CLUSTERDOWN; a healthy shard's request must not.
CLUSTERDOWN_SLEEP = 0.25
#: Requests allowed over CLUSTERDOWN_SLEEP anyway (scheduling noise on 2 busy cores).
SLOW_ALLOWED = 3
_BODY = re.compile(r"(\S+) v(\d+)")
_NUMBER = re.compile(r"[0-9]+(?:\.[0-9]+)?")


class VersionedApp:
    """The body names the URL and the current version, like a page rendered from a database row."""

    def __init__(self) -> None:
        self.version = 1
        self.calls = 0
        self._lock = threading.Lock()

    def bump(self) -> int:
        with self._lock:
            self.version += 1
            return self.version

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        with self._lock:
            self.calls += 1
            version = self.version
        body = f"{environ['PATH_INFO']} v{version}".encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]


@dataclass(slots=True)
class Record:
    site: int
    path: str
    start: float
    end: float
    status: int = 0
    cache: str = ""
    body: bytes = b""
    error: str = ""

    @property
    def version(self) -> int | None:
        match = _BODY.fullmatch(self.body.decode("latin-1"))
        return int(match.group(2)) if match and match.group(1) == self.path else None

    @property
    def wrong_body(self) -> bool:
        return self.status == 200 and self.version is None


@dataclass
class Invalidation:
    label: str
    version: int  # the app's version from just before invalidate() was called
    started: float
    returned: float
    acknowledged: bool
    replicated: bool | None
    pending: int | None
    error: str = ""
    reapplied: float | None = None  # when a later call reported nothing pending
    expect_replica: bool = False  # made while every master had an attached replica

    @property
    def effective(self) -> float | None:
        """From when no older page may be served (None: never confirmed)."""
        return self.returned if self.acknowledged else self.reapplied


class LogTally(logging.Handler):
    """Counts wsgicache's log messages (numbers masked) instead of letting pytest keep
    thousands of them: the report lists the most frequent."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self._logger = logging.getLogger("wsgicache")
        self._propagate = self._logger.propagate

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[f"{record.levelname} {_NUMBER.sub('N', record.getMessage())[:150]}"] += 1

    def install(self) -> None:
        self._logger.addHandler(self)
        self._logger.propagate = False

    def remove(self) -> None:
        self._logger.removeHandler(self)
        self._logger.propagate = self._propagate


class Site:
    """One web process: the middleware with its own backend client, behind waitress."""

    def __init__(self, app: VersionedApp, backend_url: str) -> None:
        from waitress.server import create_server

        self.cache = CacheMiddleware(app, backend=backend_url, rules=RULES)
        self.server: Any = create_server(self.cache, host=HOST, port=0, threads=8, channel_timeout=30)
        self.port = int(self.server.socket.getsockname()[1])
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()

    def get(self, path: str) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request("GET", path, headers={"Host": "localhost"})
            response = connection.getresponse()
            return response.status, response.getheader("X-Cache") or "", response.read()
        finally:
            connection.close()

    def close(self) -> None:
        self.server.close()
        self.thread.join(timeout=5)
        self.cache.close()


class Fleet:
    """Two sites sharing a backend topology, the app they serve, load and the invalidations made."""

    def __init__(self, backend_url: str, report: list[str]) -> None:
        self.report = report
        self.app = VersionedApp()
        self.records: list[Record] = []
        self.invalidations: list[Invalidation] = []
        self.events: dict[str, float] = {}
        self.stalls: list[str] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.t0 = time.monotonic()
        self.logs = LogTally()
        self.logs.install()
        self.sites: list[Site] = []
        try:
            for _ in range(2):
                self.sites.append(Site(self.app, f"{backend_url}?{BACKEND_QUERY}"))
        except BaseException:
            self.close()
            raise

    # -- load ----------------------------------------------------------------

    def fill(self) -> None:
        """Before the load: every page stored, and a hit on both sites."""
        for site in self.sites:
            for path in PAGES:
                deadline = time.monotonic() + 10
                while site.get(path)[1] != "HIT":
                    assert time.monotonic() < deadline, f"{path} never became a HIT on port {site.port}"
                    time.sleep(0.01)

    def start_load(self) -> None:
        self.t0 = time.monotonic()
        for number in range(CLIENTS):
            thread = threading.Thread(target=self._client, args=(number,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _client(self, number: int) -> None:
        rng = random.Random(number)
        connections: dict[int, http.client.HTTPConnection] = {}
        while not self._stop.is_set():
            index = rng.randrange(len(self.sites))
            site = self.sites[index]
            path = rng.choice(PAGES)
            record = Record(index, path, time.monotonic(), 0.0)
            try:
                connection = connections.get(index)
                if connection is None:
                    connection = connections[index] = http.client.HTTPConnection(HOST, site.port, timeout=10)
                connection.request("GET", path, headers={"Host": "localhost"})
                response = connection.getresponse()
                record.body = response.read()
                record.status = response.status
                record.cache = response.getheader("X-Cache") or ""
            except Exception as exc:
                record.error = f"{type(exc).__name__}: {exc}"
                stale = connections.pop(index, None)
                if stale is not None:
                    stale.close()
            record.end = time.monotonic()
            self.records.append(record)
        for connection in connections.values():
            connection.close()

    def stop_load(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)
        self._threads = []

    def wait_for(self, what: str, predicate: Callable[[Record], bool], timeout: float) -> Record | None:
        """The first record (in completion order) that matches, waiting for it up to ``timeout``."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            upto = len(self.records)
            for record in self.records[seen:upto]:
                if predicate(record):
                    return record
            seen = upto
            if time.monotonic() >= deadline:
                if timeout:
                    print(f"  (no {what} within {timeout:g} s)")
                return None
            time.sleep(0.005)

    def first_hit(
        self, after: float, paths: Iterable[str] = PAGES, timeout: float = HIT_DEADLINE
    ) -> Record | None:
        wanted = set(paths)
        return self.wait_for(
            "HIT", lambda r: r.cache == "HIT" and r.start >= after and r.path in wanted, timeout
        )

    def wait_for_coverage(self, after: float, per_page: int = 2, timeout: float = 10.0) -> bool:
        """Wait until each site answered every page ``per_page`` times to requests started after
        ``after``; False when that did not happen within ``timeout`` (the load stalled)."""
        deadline = time.monotonic() + timeout
        while True:
            counts = Counter((r.site, r.path) for r in list(self.records) if r.start >= after and r.end)
            if all(counts[(site, path)] >= per_page for site in range(len(self.sites)) for path in PAGES):
                return True
            if time.monotonic() > deadline:
                self.stalls.append(
                    f"not every page answered {per_page}x by both sites within {timeout:g} s "
                    f"of {self.at(after)} ({sum(counts.values())} answers)"
                )
                print("  " + self.stalls[-1])
                return False
            time.sleep(0.02)

    # -- invalidation --------------------------------------------------------------

    def invalidate(self, label: str, *, replicas: bool = False) -> Invalidation:
        """Bump the app's version, then ``invalidate(tags=["pages"])`` through the first site.

        ``replicas``: every master has a replica now, so the result must say one acknowledged it.
        """
        version = self.app.bump()
        started = time.monotonic()
        error = ""
        try:
            result: Any = self.sites[0].cache.invalidate(tags=["pages"])
        except Exception as exc:  # a non-strict invalidate() must not raise; recorded, asserted later
            result, error = False, f"{type(exc).__name__}: {exc}"
        returned = time.monotonic()
        invalidation = Invalidation(
            label,
            version,
            started,
            returned,
            bool(result),
            getattr(result, "replicated", None),
            getattr(result, "pending", None),
            error,
            expect_replica=replicas,
        )
        self.invalidations.append(invalidation)
        print(
            f"  invalidate {label}: v{version} -> {'acknowledged' if invalidation.acknowledged else 'FAILED'}"
            f" in {returned - started:.3f}s (replicated={invalidation.replicated},"
            f" pending={invalidation.pending}) at {self.at(returned)}{' ' + error if error else ''}"
        )
        return invalidation

    def wait_until_reapplied(self, timeout: float = 10.0) -> float | None:
        """Poll until nothing is pending (an ``invalidate()`` of an unused tag reports ``pending == 0``).

        Marks every unacknowledged invalidation as re-applied at that moment.
        Returns it, or None when it never happened (or the result has no ``pending``).
        """
        unconfirmed = [inv for inv in self.invalidations if not inv.acknowledged]
        if not unconfirmed:
            return None
        deadline = time.monotonic() + timeout
        while True:
            result: Any = self.sites[0].cache.invalidate(tags=["failover-probe"])
            pending = getattr(result, "pending", None)
            if pending is None:
                print("  (invalidate() reports no pending count: re-application not observable)")
                return None
            if result and pending == 0:
                now = time.monotonic()
                for invalidation in unconfirmed:
                    invalidation.reapplied = now
                print(f"  nothing pending at {self.at(now)}")
                return now
            if time.monotonic() > deadline:
                print(f"  still {pending} invalidation(s) pending {timeout:g} s later")
                return None
            time.sleep(0.25)

    # -- reporting ---------------------------------------------------------------

    def mark(self, event: str) -> float:
        now = self.events[event] = time.monotonic()
        return now

    def at(self, moment: float) -> str:
        return f"t={moment - self.t0:.2f}s"

    def close(self) -> None:
        self.stop_load()
        for site in self.sites:
            site.close()
        self.logs.remove()


@dataclass
class Outcome:
    """What the records show; ``problems`` are the failed requirements."""

    name: str
    lines: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    def check(self, ok: bool, problem: str) -> None:
        if not ok:
            self.problems.append(problem)

    def report(self, collected: list[str]) -> None:
        lines = [
            f"== {self.name}: {'FAILED' if self.problems else 'passed'}",
            *("  " + line for line in self.lines),
            *("  FAIL: " + problem for problem in self.problems),
        ]
        print("\n" + "\n".join(lines))
        collected.extend(lines)


def analyse(fleet: Fleet, name: str, window: tuple[float, float]) -> Outcome:
    """Count, and check the requirements every scenario shares. ``window``: the outage, for latencies."""
    records = [r for r in list(fleet.records) if r.end]
    outcome = Outcome(name)
    outcome.lines.append(
        f"{len(records)} requests in {records[-1].end - fleet.t0:.1f}s; X-Cache "
        + ", ".join(f"{k or '-'}={v}" for k, v in sorted(Counter(r.cache for r in records).items()))
        + "; per site "
        + ", ".join(
            f"{site}: " + "/".join(f"{k or '-'}={v}" for k, v in sorted(counts.items()))
            for site, counts in sorted(
                {s: Counter(r.cache for r in records if r.site == s) for s in range(len(fleet.sites))}.items()
            )
        )
        + f"; app calls {fleet.app.calls}"
    )
    for site, instance in enumerate(fleet.sites):
        stats = instance.cache.stats()
        outcome.lines.append(
            f"site {site} stats: "
            + ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in stats.items() if v)
        )
    latencies = sorted(r.end - r.start for r in records)
    in_window = sorted(r.end - r.start for r in records if window[0] <= r.start <= window[1]) or [0.0]
    outcome.lines.append(
        f"latency: p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, p99 "
        f"{latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms; "
        f"during the outage p99 {in_window[int(len(in_window) * 0.99)] * 1000:.0f} ms, "
        f"max {in_window[-1] * 1000:.0f} ms"
    )
    events = ", ".join(f"{event} {fleet.at(moment)}" for event, moment in fleet.events.items())
    outcome.lines.append(f"events: {events}")

    timeline = []
    for second in range(int(records[-1].end - fleet.t0) + 1):
        bucket = [r for r in records if second <= r.end - fleet.t0 < second + 1]
        hits = sum(r.cache == "HIT" for r in bucket)
        timeline.append(f"{len(bucket)}/{100 * hits // max(len(bucket), 1)}%")
    outcome.lines.append("per second, answers/HIT share: " + " ".join(timeline))
    for stall in fleet.stalls:
        outcome.check(False, f"the load stalled: {stall}")

    for message, count in fleet.logs.counts.most_common(8):
        outcome.lines.append(f"log x{count}: {message}")

    wrong = [r for r in records if r.wrong_body]
    outcome.check(
        not wrong,
        f"{len(wrong)} responses with a body for another URL, e.g. "
        + "; ".join(f"{r.path} got {r.body[:40]!r} ({r.cache}, site {r.site})" for r in wrong[:3]),
    )
    failed = [r for r in records if r.error or r.status != 200]
    outcome.check(
        not failed,
        f"{len(failed)} requests failed or got a status the app did not send, e.g. "
        + "; ".join(f"{r.path}: {r.error or r.status} at {fleet.at(r.start)}" for r in failed[:3]),
    )
    slow = [r for r in records if r.end - r.start >= LATENCY_LIMIT]
    outcome.check(
        not slow,
        f"{len(slow)} requests took {LATENCY_LIMIT:g} s or more (max {latencies[-1]:.2f}s), e.g. "
        + "; ".join(
            f"{r.path} {r.cache} {r.end - r.start:.2f}s site {r.site} at {fleet.at(r.start)}"
            for r in slow[:3]
        ),
    )
    for invalidation in fleet.invalidations:
        outcome.check(
            not invalidation.error, f"invalidate() {invalidation.label} raised {invalidation.error}"
        )
        if invalidation.expect_replica:
            outcome.check(
                invalidation.replicated is True,
                f"invalidation {invalidation.label} on a healthy topology with replicas: "
                f"replicated={invalidation.replicated} (a replica must acknowledge it, Redis WAIT)",
            )
        effective = invalidation.effective
        older = [
            r
            for r in records
            if (version := r.version) is not None
            and version < invalidation.version
            and r.start > invalidation.returned
        ]
        state = (
            "acknowledged"
            if invalidation.acknowledged
            else ("re-applied " + fleet.at(effective) if effective is not None else "never confirmed")
        )
        served = ", ".join(f"{k}={v}" for k, v in Counter(r.cache for r in older).items()) or "-"
        outcome.lines.append(
            f"invalidation {invalidation.label} v{invalidation.version} {fleet.at(invalidation.returned)}: "
            f"{state}, replicated={invalidation.replicated}; older pages served after it returned: "
            f"{len(older)} ({served})"
        )
        if effective is None:
            continue
        violations = [r for r in older if r.start > effective]
        outcome.check(
            not violations,
            f"{len(violations)} pages older than invalidation {invalidation.label} (v{invalidation.version}, "
            f"{state}) served after it took effect at {fleet.at(effective)}: "
            + "; ".join(
                f"{r.path} v{r.version} {r.cache} site {r.site} at {fleet.at(r.start)}"
                for r in violations[:3]
            )
            + f"; last at {fleet.at(violations[-1].start) if violations else '-'}",
        )
    return outcome


def recovery(
    fleet: Fleet, outcome: Outcome, label: str, since: float, after: float, paths: Iterable[str] = PAGES
) -> float | None:
    """Seconds from ``since`` (the promotion) to the first HIT of a request started after ``after``.

    Looks at the records only: the test waited for the hit (``first_hit``) while the load ran.
    """
    hit = fleet.first_hit(after, paths, timeout=0)
    if hit is None:
        outcome.lines.append(f"{label}: no HIT within {HIT_DEADLINE:g} s")
        outcome.check(False, f"{label}: no HIT within {HIT_DEADLINE:g} s (limit {RECOVERY_LIMIT:g} s)")
        return None
    seconds = hit.end - since
    outcome.lines.append(f"{label}: first HIT {seconds:.2f}s after (site {hit.site}, {hit.path})")
    outcome.check(
        seconds < RECOVERY_LIMIT, f"{label}: first HIT {seconds:.2f}s after (limit {RECOVERY_LIMIT:g} s)"
    )
    return seconds


@pytest.fixture
def sentinel_fleet(
    sentinel_failover: RedisSentinelServers, failover_report: list[str]
) -> Iterator[tuple[RedisSentinelServers, Fleet]]:
    fleet = Fleet(sentinel_failover.url, failover_report)
    try:
        fleet.fill()
        fleet.start_load()
        yield sentinel_failover, fleet
    finally:
        fleet.close()


@pytest.fixture
def cluster_fleet(
    cluster_failover: RedisClusterServers, failover_report: list[str]
) -> Iterator[tuple[RedisClusterServers, Fleet]]:
    fleet = Fleet(cluster_failover.url, failover_report)
    try:
        yield cluster_failover, fleet
    finally:
        fleet.close()


def _healthy_start(fleet: Fleet) -> None:
    """Under load, an invalidation is acknowledged and hits come back (the baseline); then one
    more invalidation, which the fault follows within milliseconds (it must survive the failover)."""
    before = fleet.invalidate("healthy", replicas=True)
    assert before.acknowledged, "an invalidation on a healthy topology must be acknowledged"
    assert fleet.first_hit(before.returned, timeout=5.0) is not None, (
        "no hits under load on a healthy topology"
    )
    fleet.wait_for_coverage(before.returned, per_page=1)
    fleet.invalidate("just before the fault", replicas=True)


def _finish(
    fleet: Fleet, outcome_name: str, window: tuple[float, float], checks: Callable[[Outcome], None]
) -> None:
    fleet.wait_until_reapplied()
    after = fleet.invalidate("after recovery")
    fleet.wait_for_coverage(after.returned)
    fleet.stop_load()
    outcome = analyse(fleet, outcome_name, window)
    outcome.check(after.acknowledged, "the invalidation after recovery was not acknowledged")
    checks(outcome)
    outcome.report(fleet.report)
    assert not outcome.problems, "\n".join(outcome.problems)


def test_sentinel_master_killed(sentinel_fleet: tuple[RedisSentinelServers, Fleet]) -> None:
    topology, fleet = sentinel_fleet
    old = topology.current_master()
    _healthy_start(fleet)
    old.kill()
    killed = fleet.mark("master SIGKILL")
    fleet.invalidate("master dead")
    promotion = topology.wait_for_promotion(old, timeout=30)
    fleet.events["promotion"] = promotion.at
    print(f"  promotion {promotion.waited:.2f}s after the kill")

    def checks(outcome: Outcome) -> None:
        outcome.lines.append(f"promotion {promotion.at - killed:.2f}s after the kill")
        recovery(fleet, outcome, "recovery from the promotion", promotion.at, killed)

    fleet.first_hit(killed)  # wait for it here, under load, before finishing
    _finish(fleet, "Sentinel: master SIGKILL", (killed, promotion.at + 1), checks)


def test_sentinel_master_stalled_briefly(sentinel_fleet: tuple[RedisSentinelServers, Fleet]) -> None:
    """SIGSTOP for half of down-after-milliseconds: read timeouts, no failover."""
    topology, fleet = sentinel_fleet
    old = topology.current_master()
    _healthy_start(fleet)
    stall = topology.sentinel.down_after_ms / 2000
    old.pause()
    paused = fleet.mark("master SIGSTOP")
    try:
        fleet.invalidate("master stalled")
        while time.monotonic() < paused + stall:  # the stall itself, not an assertion
            time.sleep(0.01)
    finally:
        old.resume()
    resumed = fleet.mark("master SIGCONT")
    print(f"  stalled {resumed - paused:.2f}s (down-after {topology.sentinel.down_after_ms} ms)")
    fleet.first_hit(paused)

    def checks(outcome: Outcome) -> None:
        masters = topology.master_ports()
        outcome.lines.append(f"sentinels name {sorted(set(masters.values()))} (master was {old.port})")
        outcome.check(
            set(masters.values()) == {old.port},
            f"a failover happened after a stall shorter than down-after: {masters}",
        )
        recovery(fleet, outcome, "recovery from SIGCONT", resumed, paused)

    _finish(fleet, f"Sentinel: master SIGSTOP {stall:.1f}s (no failover)", (paused, resumed + 1), checks)


def test_sentinel_master_stalled_past_failover(sentinel_fleet: tuple[RedisSentinelServers, Fleet]) -> None:
    """SIGSTOP until a replica is promoted, then SIGCONT: the old master returns and is demoted."""
    topology, fleet = sentinel_fleet
    old = topology.current_master()
    _healthy_start(fleet)
    old.pause()
    try:
        paused = fleet.mark("master SIGSTOP")
        fleet.invalidate("master stalled")
        promotion = topology.wait_for_promotion(old, timeout=30)
        fleet.events["promotion"] = promotion.at
        print(f"  promotion {promotion.waited:.2f}s after SIGSTOP")
        fleet.first_hit(paused)
    finally:
        old.resume()
    resumed = fleet.mark("old master SIGCONT")
    # Until Sentinel demotes it (about 10 s), the old master believes it is master: invalidate
    # every half second meanwhile, so connections still pointing at it are given writes.
    demoted = 0.0
    for number in range(60):
        fleet.invalidate(f"old master back #{number}")
        with contextlib.suppress(TimeoutError):
            demoted = topology.wait_for_role(old, "slave", timeout=0.5)
            break
    assert demoted, "the old master was not demoted within 30 s"
    fleet.events["old master demoted"] = demoted
    print(f"  old master demoted {demoted - resumed:.2f}s after SIGCONT")
    fleet.wait_for_coverage(demoted)

    def checks(outcome: Outcome) -> None:
        outcome.lines.append(
            f"promotion {promotion.at - paused:.2f}s after SIGSTOP; old master demoted "
            f"{demoted - resumed:.2f}s after SIGCONT"
        )
        recovery(fleet, outcome, "recovery from the promotion", promotion.at, paused)

    _finish(fleet, "Sentinel: master SIGSTOP past down-after, then SIGCONT", (paused, demoted), checks)


def _entry_keys(fleet: Fleet) -> dict[str, str]:
    """The entry key the first site's backend is asked for, per page (one sequential request each)."""
    backend = fleet.sites[0].cache.backends["default"]
    asked: list[str] = []
    real_get, real_get_many = backend.get, backend.get_many

    def get(key: str) -> Any:
        asked.append(key)
        return real_get(key)

    def get_many(keys: Any) -> Any:
        asked.extend(keys)
        return real_get_many(keys)

    backend.get, backend.get_many = get, get_many
    found = {}
    try:
        for path in PAGES:
            asked.clear()
            fleet.sites[0].get(path)
            found[path] = next(key for key in asked if key.startswith("e:"))
    finally:
        del backend.get, backend.get_many
    return found


def test_cluster_master_killed(cluster_fleet: tuple[RedisClusterServers, Fleet]) -> None:
    from redis.crc import key_slot

    cluster, fleet = cluster_fleet
    namespace = fleet.sites[0].cache.backends["default"].namespace
    placement: dict[int, list[str]] = {}
    for path, key in _entry_keys(fleet).items():
        owner = cluster.slot_owner(key_slot(f"{namespace}:{key}".encode()))
        placement.setdefault(owner.port, []).append(path)
    victim = cluster.node_on(max(placement, key=lambda port: len(placement[port])))
    on_victim = placement[victim.port]
    elsewhere = [path for path in PAGES if path not in on_victim]
    assert on_victim and elsewhere, placement
    print(f"  {len(on_victim)} pages on {victim.address}, {len(elsewhere)} elsewhere")
    fleet.fill()
    fleet.start_load()
    _healthy_start(fleet)

    victim.kill()
    killed = fleet.mark("master SIGKILL")
    fleet.invalidate("master dead")
    promotion = cluster.wait_for_promotion(victim, timeout=30)
    fleet.events["promotion"] = promotion.at
    print(f"  promotion {promotion.waited:.2f}s after the kill")
    fleet.first_hit(killed, on_victim)

    def checks(outcome: Outcome) -> None:
        outcome.lines.append(f"promotion {promotion.at - killed:.2f}s after the kill")
        recovery(
            fleet,
            outcome,
            "recovery of the dead master's pages from the promotion",
            promotion.at,
            killed,
            on_victim,
        )
        # Healthy shards: CLUSTERDOWN while the cluster is incomplete must not
        # keep their circuits open: every one of their pages hits again soon.
        records = [r for r in list(fleet.records) if r.end]
        slowest = 0.0
        for path in elsewhere:
            hit = next(
                (r for r in records if r.path == path and r.cache == "HIT" and r.start >= promotion.at), None
            )
            slowest = max(slowest, (hit.end - promotion.at) if hit else float("inf"))
        outcome.lines.append(f"healthy shards: every page hit again {slowest:.2f}s after the promotion")
        outcome.check(
            slowest < RECOVERY_LIMIT,
            f"healthy shards: not every page hit again within {RECOVERY_LIMIT:g} s of the promotion "
            f"({slowest:.2f}s)",
        )
        # Fail fast: no request of a healthy shard sleeps on CLUSTERDOWN (redis-py's 0.25 s per call).
        down_from = promotion.failed_at if promotion.failed_at is not None else killed
        healthy = sorted(
            r.end - r.start for r in records if r.path in elsewhere and down_from <= r.start <= promotion.at
        )
        slow = [seconds for seconds in healthy if seconds >= CLUSTERDOWN_SLEEP]
        outcome.lines.append(
            f"healthy shards while the cluster was down ({promotion.at - down_from:.2f}s): {len(healthy)} "
            f"requests, {len(slow)} took {CLUSTERDOWN_SLEEP * 1000:.0f} ms or more, "
            f"max {max(healthy, default=0) * 1000:.0f} ms"
        )
        outcome.check(
            len(slow) <= SLOW_ALLOWED,
            f"healthy shards: {len(slow)} requests took {CLUSTERDOWN_SLEEP * 1000:.0f} ms or more while "
            f"another master failed over (max {max(healthy, default=0) * 1000:.0f} ms)",
        )

    _finish(fleet, "Cluster: master SIGKILL", (killed, promotion.at + 1), checks)
