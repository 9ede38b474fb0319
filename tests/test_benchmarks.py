"""Smoke tests of benchmarks/bench_hit.py and benchmarks/bench_backends.py: they run,
and the hits they time are real hits.

Timing ratios are deliberately not asserted: they belong to the benchmark's
own output, not to a pass/fail test on a shared CI machine.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_caching")

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "bench_hit.py"
BACKENDS_SCRIPT = BENCHMARKS / "bench_backends.py"

#: row key -> whether it times a cache hit (True) or an uncached app (False)
EXPECTED_ROWS = {
    "bare": False,
    "ours": True,
    "flask": False,
    "flask_caching": True,
    "django": True,
    "ours_flask": True,
    "ours_1000_urls": True,
    "ours_5000_urls": True,
}
OUR_ROWS = ("ours", "ours_flask", "ours_1000_urls", "ours_5000_urls")


def run_quick_json(script: Path) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(script), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    data: dict[str, Any] = json.loads(completed.stdout)
    return data


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    pytest.importorskip("django")
    return run_quick_json(SCRIPT)


def test_every_contender_produced_a_positive_time(report: dict[str, Any]) -> None:
    results = report["results"]
    assert set(results) == set(EXPECTED_ROWS)
    for key, row in results.items():
        assert row["best_us"] > 0, key
        assert row["median_us"] >= row["best_us"], key
        assert row["repeats"] >= 1, key
        assert len(row["samples_us"]) == row["repeats"], key
        assert all(sample > 0 for sample in row["samples_us"]), key
        assert row["iterations"] > 0, key


def test_hits_were_hits_and_uncached_rows_ran_their_view(report: dict[str, Any]) -> None:
    for key, is_hit in EXPECTED_ROWS.items():
        row = report["results"][key]
        assert row["hit"] is is_hit, key
        assert row["verified"] is True, key
        assert row["verified_batches"] >= row["repeats"], key
        if is_hit:
            # The view ran only to fill the cache, once per URL, never while timed.
            assert row["view_calls"] == row["urls"], key
        else:
            assert row["view_calls"] > row["iterations"] * row["repeats"], key


def test_our_middleware_counted_only_hits_after_priming(report: dict[str, Any]) -> None:
    for key in OUR_ROWS:
        row = report["results"][key]
        stats = row["stats"]
        assert stats["misses"] == row["urls"], key
        assert stats["stores"] == row["urls"], key
        assert stats["hits"] >= row["iterations"] * row["repeats"], key
        assert stats["errors"] == 0, key
        assert stats["bypasses"] == 0, key


def test_goals_and_ratios_are_reported(report: dict[str, Any]) -> None:
    # Reported, not asserted: only their presence and shape are checked here.
    for goal in report["goals"].values():
        assert isinstance(goal["met"], bool)
        assert set(goal["values"]) == {"best", "median"}
    for stat in ("best", "median"):
        for value in report["ratios"][stat].values():
            assert value > 0


# -- bench_backends.py ----------------------------------------------------------------

SIZES = ("2k", "200k")
OUR_BACKENDS = ("memory", "file", "memcached", "memcached3", "redis", "redis_cluster")
#: Flask-Caching MemcachedCache rows: row suffix -> the client module cachelib uses
MEMCACHED_CLIENTS = {"pylibmc": "pylibmc", "python_memcached": "memcache"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def backends_report() -> dict[str, Any]:
    pytest.importorskip("redis")
    pytest.importorskip("pymemcache")
    from servers import require_binary

    # Skips without the servers, fails under CI=true (as every backend test does).
    for binary in ("redis-server", "redis-cli", "memcached"):
        require_binary(binary)
    return run_quick_json(BACKENDS_SCRIPT)


def _expected_backend_rows() -> dict[str, str]:
    """Row key -> "ours" | "fc", for every row that must have run here."""
    rows: dict[str, str] = {}
    for size in SIZES:
        rows.update({f"ours_{backend}_{size}": "ours" for backend in OUR_BACKENDS})
        rows.update({f"fc_simple_{size}": "fc", f"fc_redis_{size}": "fc"})
        for suffix, module in MEMCACHED_CLIENTS.items():
            if _installed(module):
                rows[f"fc_memcached_{suffix}_{size}"] = "fc"
    return rows


def test_backends_every_row_ran_and_produced_a_positive_time(backends_report: dict[str, Any]) -> None:
    results = backends_report["results"]
    assert set(results) == set(_expected_backend_rows())
    for key, row in results.items():
        assert row["best_us"] > 0, key
        assert row["median_us"] >= row["best_us"], key
        assert row["repeats"] >= 1, key
        assert len(row["samples_us"]) == row["repeats"], key
        assert all(sample > 0 for sample in row["samples_us"]), key
        assert row["iterations"] > 0, key
        assert row["body_bytes"] == {"2k": 2048, "200k": 204800}[row["size"]], key


def test_backends_missing_memcached_clients_are_reported_not_faked(backends_report: dict[str, Any]) -> None:
    skipped = backends_report["skipped"]
    for suffix, module in MEMCACHED_CLIENTS.items():
        for size in SIZES:
            key = f"fc_memcached_{suffix}_{size}"
            if _installed(module):
                assert key in backends_report["results"] and key not in skipped, key
            else:
                assert key not in backends_report["results"], key
                assert "not installed" in skipped[key], key
    assert set(skipped) <= {f"fc_memcached_{s}_{size}" for s in MEMCACHED_CLIENTS for size in SIZES}


def test_backends_every_row_was_verified_as_a_hit(backends_report: dict[str, Any]) -> None:
    for key, kind in _expected_backend_rows().items():
        row = backends_report["results"][key]
        assert row["hit"] is True, key
        assert row["verified"] is True, key
        assert row["verified_batches"] >= row["repeats"], key
        # The view ran once, to fill the cache; never while timed.
        assert row["view_calls"] == 1, key
        if kind == "ours":
            stats = row["stats"]
            assert stats["misses"] == 1, key
            assert stats["stores"] == 1, key
            assert stats["hits"] >= row["iterations"] * row["repeats"], key
            assert stats["errors"] == 0, key
            assert stats["bypasses"] == 0, key


def test_backends_network_hits_were_one_command_on_the_server(backends_report: dict[str, Any]) -> None:
    for key, row in backends_report["results"].items():
        backend = row["backend"]
        per_hit = row["server_per_hit"]
        if backend in ("memory", "file", "simple"):
            assert per_hit is None, key
            continue
        assert per_hit is not None, key
        if backend.startswith("redis"):
            # Counted by the server (INFO commandstats): one command per request, nothing else.
            assert per_hit["commands"] == 1, key
            assert per_hit["command"] == ("MGET" if row["group"] == "wsgicache" else "GET"), key
        else:
            assert per_hit["command"] == "get", key
        if row["group"] == "wsgicache":
            # The entry and its three tag generations (and memcached's namespace generation).
            assert per_hit["keys"] >= 4, key
        else:
            assert per_hit["keys"] == 1, key


def test_backends_ratios_are_reported(backends_report: dict[str, Any]) -> None:
    # Reported, not asserted: only their presence and shape are checked here.
    names = set(backends_report["ratio_labels"])
    assert {"ours_redis_over_memory", "fc_redis_over_ours_redis", "ours_file_over_memory"} <= names
    for size in SIZES:
        for stat in ("best", "median"):
            values = backends_report["ratios"][size][stat]
            assert set(values) == names, (size, stat)
            assert all(value > 0 for value in values.values())
