"""Smoke tests of the scripts in benchmarks/ (bench_hit.py, bench_backends.py,
bench_scaling.py, bench_memory.py): they run, and the hits they time are real hits.

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

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
SCRIPT = BENCHMARKS / "bench_hit.py"
BACKENDS_SCRIPT = BENCHMARKS / "bench_backends.py"
SCALING_SCRIPT = BENCHMARKS / "bench_scaling.py"
MEMORY_SCRIPT = BENCHMARKS / "bench_memory.py"

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
    # bench_hit.py and bench_backends.py compare with Flask, Flask-Caching and Django;
    # bench_scaling.py and bench_memory.py need only wsgicache.
    pytest.importorskip("flask")
    pytest.importorskip("flask_caching")
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
#: the network backends that get a "driver only" row: the call our backend makes on a hit
DRIVER_BACKENDS = ("memcached", "memcached3", "redis", "redis_cluster")
#: Flask-Caching MemcachedCache rows: row suffix -> the client module cachelib uses
MEMCACHED_CLIENTS = {"pylibmc": "pylibmc", "python_memcached": "memcache"}


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@pytest.fixture(scope="module")
def backends_report() -> dict[str, Any]:
    pytest.importorskip("flask")
    pytest.importorskip("flask_caching")
    pytest.importorskip("redis")
    pytest.importorskip("pymemcache")
    from servers import require_binary

    # Skips without the servers, fails under CI=true (as every backend test does).
    for binary in ("redis-server", "redis-cli", "memcached"):
        require_binary(binary)
    return run_quick_json(BACKENDS_SCRIPT)


def _expected_backend_rows() -> dict[str, str]:
    """Row key -> "ours" | "driver" | "combined" | "fc", for every row that must have run here."""
    rows: dict[str, str] = {}
    for size in SIZES:
        rows.update({f"ours_{backend}_{size}": "ours" for backend in OUR_BACKENDS})
        rows.update({f"driver_{backend}_{size}": "driver" for backend in DRIVER_BACKENDS})
        rows.update({f"combined_{backend}_{size}": "combined" for backend in DRIVER_BACKENDS})
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
        # The view ran once, to fill the cache; never while timed (a driver row has no view).
        assert row["view_calls"] == (0 if kind == "driver" else 1), key
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
            assert per_hit["command"] == ("GET" if row["group"] == "flask_caching" else "MGET"), key
        else:
            assert per_hit["command"] == "get", key
        if row["group"] in ("wsgicache", "driver", "combined"):
            # The entry and its three tag generations (and memcached's namespace generation).
            assert per_hit["keys"] >= 4, key
        else:
            assert per_hit["keys"] == 1, key


def test_backends_driver_rows_make_the_call_of_our_hit(backends_report: dict[str, Any]) -> None:
    results = backends_report["results"]
    for backend in DRIVER_BACKENDS:
        for size in SIZES:
            ours, driver = results[f"ours_{backend}_{size}"], results[f"driver_{backend}_{size}"]
            combined = results[f"combined_{backend}_{size}"]
            assert driver["group"] == "driver" and driver["backend"] == backend
            assert combined["group"] == "combined" and combined["backend"] == backend
            assert driver["body_bytes"] == combined["body_bytes"] == ours["body_bytes"]
            # The same server work as our hit: command, number of keys, all of them hits.
            assert driver["server_per_hit"] == ours["server_per_hit"], (backend, size)
            assert combined["server_per_hit"] == ours["server_per_hit"], (backend, size)
            # The combined row serves memory:// hits (its middleware's stats) and makes the driver call.
            assert combined["driver"] == driver["driver"]
            assert combined["stats"]["hits"] >= combined["iterations"] * combined["repeats"]
            call = driver["driver"]
            keys = call["server_keys"]
            assert len(keys) == ours["server_per_hit"]["keys"] == len(set(keys)), (backend, size)
            if backend.startswith("redis"):
                client = "redis.cluster.RedisCluster" if backend == "redis_cluster" else "redis.client.Redis"
                assert call["client"] == client, call
                assert call["call"].endswith(".mget"), call
                assert all(key.startswith("wsgicache:") for key in keys), keys
            else:
                if backend == "memcached":
                    assert call["client"] == "pymemcache.client.base.PooledClient", call
                # pymemcache's HashClient (the backend's subclass of it) for several servers
                assert ("HashClient" in call["call"]) is (backend == "memcached3"), call
                assert call["call"].endswith(".get_many"), call
                # The namespace generation is read in the same get_many.
                assert any("#ns" in key for key in keys), keys


def test_backends_ratios_are_reported(backends_report: dict[str, Any]) -> None:
    # Reported, not asserted: only their presence and shape are checked here.
    names = set(backends_report["ratio_labels"])
    assert {"ours_redis_over_memory", "fc_redis_over_ours_redis", "ours_file_over_memory"} <= names
    assert {f"ours_{backend}_over_memory_plus_driver" for backend in DRIVER_BACKENDS} <= names
    assert {f"ours_{backend}_over_combined" for backend in DRIVER_BACKENDS} <= names
    assert "ours_redis_over_fc_redis" in names
    for size in SIZES:
        for stat in ("best", "median"):
            values = backends_report["ratios"][size][stat]
            assert set(values) == names, (size, stat)
            assert all(value > 0 for value in values.values())


def test_backends_goals_are_judged_on_the_median(backends_report: dict[str, Any]) -> None:
    # Reported, not asserted: only their presence and shape are checked here.
    goals = backends_report["goals"]
    expected = {
        f"{name}_{size}": (name, limit)
        for size in SIZES
        for name, limit in [
            *((f"ours_{backend}_over_memory_plus_driver", 1.15) for backend in DRIVER_BACKENDS),
            ("ours_redis_over_fc_redis", 0.5),
        ]
    }
    assert set(goals) == set(expected)
    for key, (name, limit) in expected.items():
        goal = goals[key]
        assert goal["ratio"] == name and goal["limit"] == limit and goal["judged_on"] == "median", key
        assert set(goal["values"]) == {"best", "median"}
        assert goal["met"] is (goal["values"]["median"] <= limit), key
        if name == "ours_redis_over_fc_redis":
            # The lowest ratio a hit making redis-py's MGET could reach: (memory + driver) / FC.
            assert set(goal["floor"]) == {"best", "median"}, key
            assert all(value > 0 for value in goal["floor"].values()), key
        else:
            assert goal["floor"] is None, key


# -- bench_scaling.py -----------------------------------------------------------------

KIB = 1024
#: curve -> column -> the points a quick run measures, smallest first
SCALING_POINTS = {
    "rules": {"hot": [1, 10, 100, 1000], "cold": [1, 10, 100, 1000]},
    "entries": {"hot": [1_000, 10_000]},
    "tags": {"hot": [0, 1, 3, 10]},
    "body": {
        "hot": [KIB, 16 * KIB, 256 * KIB, 1024 * KIB],
        "cold": [KIB, 16 * KIB, 256 * KIB, 1024 * KIB],
        "copy": [KIB, 16 * KIB, 256 * KIB, 1024 * KIB],
    },
}


@pytest.fixture(scope="module")
def scaling_report() -> dict[str, Any]:
    return run_quick_json(SCALING_SCRIPT)


def test_scaling_every_curve_has_its_points(scaling_report: dict[str, Any]) -> None:
    results = scaling_report["results"]
    found: dict[str, dict[str, list[int]]] = {}
    for row in results.values():
        found.setdefault(row["curve"], {}).setdefault(row["variant"], []).append(row["x"])
    assert {curve: {v: sorted(xs) for v, xs in columns.items()} for curve, columns in found.items()} == (
        SCALING_POINTS
    )
    for key, row in results.items():
        assert row["best_us"] > 0, key
        assert row["median_us"] >= row["best_us"], key
        assert row["repeats"] >= 1, key
        assert len(row["samples_us"]) == row["repeats"], key
        assert all(sample > 0 for sample in row["samples_us"]), key
        assert row["iterations"] > 0, key
        assert row["verified"] is True, key
        assert row["verified_batches"] >= row["repeats"], key


def test_scaling_hits_were_hits(scaling_report: dict[str, Any]) -> None:
    for key, row in scaling_report["results"].items():
        if row["variant"] == "copy":
            assert row["hit"] is False, key
            continue
        assert row["hit"] is True, key
        stats = row["stats"]
        # The application ran only to fill the cache (the rules rows share a backend
        # filled by another middleware: filled 0), never while timed.
        assert row["view_calls"] == row["filled"], key
        assert stats["misses"] == row["filled"], key
        assert stats["stores"] == row["filled"], key
        assert stats["hits"] >= row["iterations"] * row["repeats"], key
        for counter in ("errors", "bypasses", "stale", "corrupt"):
            assert stats[counter] == 0, (key, counter)
        if row["curve"] == "entries":
            assert row["stored_entries"] == row["x"], key
            assert row["filled"] == row["x"], key
        if row["curve"] == "body":
            assert row["body_bytes"] == row["x"], key


def test_scaling_verdicts_are_reported(scaling_report: dict[str, Any]) -> None:
    # Reported, not asserted: only their presence and shape are checked here.
    curves = scaling_report["curves"]
    assert set(curves) == set(SCALING_POINTS)
    assert set(scaling_report["goals"]) == set(SCALING_POINTS)
    for curve, columns in curves.items():
        assert set(columns) == set(SCALING_POINTS[curve]) - {"copy"}, curve
        for variant, verdict in columns.items():
            assert isinstance(verdict["met"], bool), (curve, variant)
            assert verdict["judged"] is (variant == "hot"), (curve, variant)
            assert [p["x"] for p in verdict["points"]] == SCALING_POINTS[curve][variant]
            assert verdict["points"][0]["ratio"] == 1.0
            assert all(p["ratio"] > 0 for p in verdict["points"]), (curve, variant)
            if curve == "body":
                assert all(p["copy_us"] > 0 for p in verdict["points"]), variant
        assert scaling_report["goals"][curve] is columns["hot"]["met"], curve


# -- bench_memory.py ------------------------------------------------------------------


@pytest.fixture(scope="module")
def memory_report() -> dict[str, Any]:
    return run_quick_json(MEMORY_SCRIPT)


def test_memory_both_configurations_stored_and_hit_every_entry(memory_report: dict[str, Any]) -> None:
    results = memory_report["results"]
    assert set(results) == {"decoded_default", "decoded_off"}
    assert results["decoded_off"]["decoded_cache_bytes"] == 0
    assert results["decoded_off"]["decoded_memo_entries"] == 0
    assert results["decoded_default"]["decoded_cache_bytes"] > 0
    for key, row in results.items():
        entries, warm = row["entries"], row["warm_urls"]
        assert entries == memory_report["config"]["entries"], key
        assert row["verified"] is True, key
        assert row["stored_entries"] == entries + warm, key
        stats = row["stats"]
        # Each URL (and warm-up URL) once a miss that stored it, then once a hit.
        assert stats["misses"] == entries + warm, key
        assert stats["stores"] == entries + warm, key
        assert stats["hits"] == entries + warm, key
        assert stats["errors"] == 0, key
        assert stats["bypasses"] == 0, key
        assert row["view_calls"] == entries + warm, key


def test_memory_figures_are_reported(memory_report: dict[str, Any]) -> None:
    # Reported, not asserted: only their presence and shape are checked here.
    for key, row in memory_report["results"].items():
        assert row["encoded_entry_bytes"] > row["body_bytes"] == 2048, key
        assert set(row["phases"]) == {"stored", "hit_once"}, key
        for phase in row["phases"].values():
            assert phase["bytes_per_entry"] > 0, key
            assert phase["ratio"] == pytest.approx(phase["bytes_per_entry"] / row["encoded_entry_bytes"])
            assert isinstance(phase["met"], bool), key
        assert row["top"], key
        assert all(":" in t["where"] and t["bytes"] != 0 for t in row["top"]), key
    assert isinstance(memory_report["goal"]["met"], bool)
