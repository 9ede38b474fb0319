"""Smoke test of benchmarks/bench_hit.py: it runs, and the hits it times are real hits.

Timing ratios are deliberately not asserted: they belong to the benchmark's
own output, not to a pass/fail test on a shared CI machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("flask")
pytest.importorskip("flask_caching")
pytest.importorskip("django")

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_hit.py"

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


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    data: dict[str, Any] = json.loads(completed.stdout)
    return data


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
