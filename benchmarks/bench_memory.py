#!/usr/bin/env python
"""Memory held per stored 2 KiB response in the memory backend, measured with tracemalloc.

Issue 10, item 6: the bytes a process holds per stored 2 KiB entry should be
at most 1.5x the encoded entry (the value the middleware hands the backend).

For each configuration, a ``CacheMiddleware(app, backend="memory://?
max_entries=...&max_bytes=...", rules=[Rule("/items/<int:item>",
timeout=3600)])`` over a bare app answering a 2 KiB body, driven in process
by the harness of ``bench_hit.py`` (a fresh environ per request,
``start_response``, body iterated, ``close()``):

1. ten warm-up URLs are stored and hit (lazy imports, compiled patterns and
   first-use structures are then part of the baseline, not of the entries);
2. ``gc.collect()``, a tracemalloc snapshot: the baseline;
3. 100,000 [1,000 with ``--quick``] distinct URLs (``/items/0`` ...) are
   requested once each: 100,000 misses, each stored (checked: ``X-Cache:
   MISS`` on every one, ``stats()`` counting one store per URL, and the
   backend holding every entry, none evicted); ``gc.collect()``, snapshot
   ``stored``;
4. each URL is requested once more: 100,000 hits (checked: ``X-Cache: HIT``
   on every one, ``stats()`` one hit per request and no miss, the
   application not called). A hit fills the middleware's per-URL memos and,
   with an in-process backend, its memo of decoded entries, as a serving
   process does; ``gc.collect()``, snapshot ``hit once``.

Bytes held per entry = (traced bytes at the snapshot - baseline) / entries:
everything the process still holds because of them, the backend's values,
keys, tuples and dict slots, the tag generation of each URL, and the
middleware's memos (route matches, plans, key digests: at most 16,384 URLs
each; decoded entries: at most ``decoded_cache_bytes``, 16 MiB by default).

The encoded entry size is the length of the value stored for ``/items/0``,
read back from the backend under the key the middleware's planner gives
that URL; the mean over all entries (``current_bytes`` / entries, which
also counts the key) is shown next to it.

Two configurations: ``decoded_cache_bytes`` at its default (16 MiB) and at
0 (no decoded memo). Each row prints bytes per entry, the encoded size,
their ratio and whether it is within 1.5x; then the lines that hold the
memory (tracemalloc statistics by file:line against the baseline).

tracemalloc counts the bytes Python asks its allocators for; the allocators'
own overhead and fragmentation (what RSS adds) are not in these figures.

Usage::

    python benchmarks/bench_memory.py            # full run (about 5 minutes)
    python benchmarks/bench_memory.py --quick    # smoke test (a few seconds); numbers not meaningful
    python benchmarks/bench_memory.py --json     # machine-readable output
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import os
import sys
import time
import tracemalloc
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))  # the harness of bench_hit.py

from bench_hit import (  # noqa: E402
    BenchError,
    Counter,
    Recorder,
    machine,
    make_environ,
    package_version,
    run_batch,
)

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]

BODY_SIZE = 2048
BODY = (b"<!doctype html><title>bench</title><p>" + b"x" * BODY_SIZE)[: BODY_SIZE - 4] + b"</p>"
assert len(BODY) == BODY_SIZE
TIMEOUT = 3600
ENTRIES = 100_000
ENTRIES_QUICK = 1_000
WARM_URLS = 10
WARM_BASE = 10_000_000  # warm-up URLs: /items/10000000 ...
GOAL_RATIO = 1.5
TOP = 12
DEFAULT_DECODED = 16 * 1024 * 1024

#: (key, label, middleware options)
CONFIGS: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("decoded_default", "decoded_cache_bytes default (16 MiB)", {}),
    ("decoded_off", "decoded_cache_bytes=0", {"decoded_cache_bytes": 0}),
)
PHASES = (("stored", "after storing"), ("hit_once", "after one hit each"))


def bare_app(counter: Counter) -> WSGIApp:
    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        counter.calls += 1
        start_response(
            "200 OK",
            [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", str(BODY_SIZE))],
        )
        return [BODY]

    return app


def request_each(middleware: Any, urls: Iterable[str], recorder: Recorder, expect: str, label: str) -> int:
    """Request every URL once; each must answer 200, the whole body and ``X-Cache: expect``."""
    count = 0
    for url in urls:
        _, received = run_batch(middleware, iter((url,)), 1, recorder)
        cache = recorder.header("X-Cache")
        if recorder.status != "200 OK" or received != BODY_SIZE or cache != expect:
            raise BenchError(
                f"{label}: {url}: {recorder.status} X-Cache {cache!r} {received} bytes, expected {expect}"
            )
        count += 1
    return count


def where(stat: tracemalloc.StatisticDiff) -> str:
    """``file:line`` of a statistic, relative to the repository or to site-packages."""
    frame = stat.traceback[0]
    name = frame.filename
    for base in (str(ROOT) + os.sep, *(p + os.sep for p in sys.path if p.endswith("site-packages"))):
        if name.startswith(base):
            name = name[len(base) :]
            break
    else:
        if "/lib/python" in name:
            name = name.split("/lib/", 1)[1]
    return f"{name}:{frame.lineno}"


def traced() -> int:
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def measure_config(
    key: str, label: str, options: dict[str, Any], entries: int, recorder: Recorder
) -> dict[str, Any]:
    from wsgicache import CacheMiddleware, Rule
    from wsgicache.middleware import WSGIRequest

    counter = Counter()
    total = entries + WARM_URLS
    middleware = CacheMiddleware(
        bare_app(counter),
        backend=f"memory://?max_entries={total}&max_bytes={total * 8 * 1024}",
        rules=[Rule("/items/<int:item>", timeout=TIMEOUT)],
        **options,
    )
    backend = middleware.backends["default"]
    warm = [f"/items/{WARM_BASE + i}" for i in range(WARM_URLS)]
    request_each(middleware, warm, recorder, "MISS", label)
    request_each(middleware, warm, recorder, "HIT", label)

    baseline_bytes = traced()
    baseline = tracemalloc.take_snapshot()
    phases: dict[str, Any] = {}
    snapshots = {}
    started = time.perf_counter()
    for phase, expect in (("stored", "MISS"), ("hit_once", "HIT")):
        stats_before = middleware.stats()
        calls_before = counter.calls
        request_each(middleware, (f"/items/{i}" for i in range(entries)), recorder, expect, label)
        stats_after = middleware.stats()
        deltas = {name: stats_after[name] - stats_before[name] for name in ("hits", "misses", "stores")}
        calls = counter.calls - calls_before
        if phase == "stored":
            ok = deltas == {"hits": 0, "misses": entries, "stores": entries} and calls == entries
        else:
            ok = deltas == {"hits": entries, "misses": 0, "stores": 0} and calls == 0
        if not ok or stats_after["errors"] or stats_after["bypasses"]:
            raise BenchError(f"{label}, {phase}: stats {deltas}, application ran {calls} times")
        if len(backend) != total:
            raise BenchError(f"{label}, {phase}: the backend holds {len(backend)} entries, expected {total}")
        held = traced() - baseline_bytes
        snapshots[phase] = tracemalloc.take_snapshot()
        phases[phase] = {"held_bytes": held, "bytes_per_entry": held / entries}
    seconds = time.perf_counter() - started

    # The encoded entry, read back from the backend under the key the planner gives the URL.
    plan = middleware._planner.plan(WSGIRequest(make_environ("/items/0")))
    value = backend.get(plan.entry_key)
    if value is None:
        raise BenchError(f"{label}: no value stored under {plan.entry_key!r}")
    encoded = len(value)
    for phase in phases.values():
        phase["ratio"] = phase["bytes_per_entry"] / encoded
        phase["met"] = phase["ratio"] <= GOAL_RATIO

    top = []
    for stat in snapshots["hit_once"].compare_to(baseline, "lineno")[:TOP]:
        top.append(
            {
                "where": where(stat),
                "bytes": stat.size_diff,
                "blocks": stat.count_diff,
                "bytes_per_entry": stat.size_diff / entries,
            }
        )
    by_file = []
    for stat in snapshots["hit_once"].compare_to(baseline, "filename")[:8]:
        by_file.append(
            {
                "where": where(stat).rsplit(":", 1)[0],
                "bytes": stat.size_diff,
                "bytes_per_entry": stat.size_diff / entries,
            }
        )
    decoded = middleware.cache._decoded
    result = {
        "label": label,
        "options": options,
        "decoded_cache_bytes": options.get("decoded_cache_bytes", DEFAULT_DECODED),
        "entries": entries,
        "body_bytes": BODY_SIZE,
        "encoded_entry_bytes": encoded,
        "mean_stored_bytes": backend.current_bytes / len(backend),
        "stored_entries": len(backend),
        "internal_keys": backend.internal_keys,
        "decoded_memo_entries": len(decoded._data),
        "decoded_memo_bytes": decoded.used,
        "phases": phases,
        "top": top,
        "by_file": by_file,
        "stats": middleware.stats(),
        "view_calls": counter.calls,
        "warm_urls": WARM_URLS,
        "verified": True,
        "seconds": round(seconds, 1),
    }
    del snapshots, baseline, middleware, backend, decoded, plan, value
    gc.collect()
    return result


def summarize(results: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    met = all(phase["met"] for r in results.values() for phase in r["phases"].values())
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": machine(),
        "versions": {"wsgicache": package_version("wsgicache")},
        "config": {"quick": args.quick, "entries": args.entries, "body_bytes": BODY_SIZE},
        "results": results,
        "goal": {"limit": GOAL_RATIO, "met": met},
    }


def print_table(summary: dict[str, Any]) -> None:
    m, cfg = summary["machine"], summary["config"]
    print(f"wsgicache memory benchmark, {summary['date']}")
    print(f"Python {m['python']} ({m['implementation']}) on {m['platform']}, {m['cpus']} CPUs")
    print(
        f"{cfg['entries']:,} distinct {cfg['body_bytes']}-byte responses stored through the middleware "
        "(memory backend); traced bytes held (tracemalloc, after gc.collect()) / entries"
    )
    print()
    header = (
        f"{'configuration':<38} {'phase':<19} {'bytes/entry':>11} {'encoded':>8} {'ratio':>6}  goal <= 1.5x"
    )
    print(header)
    print("-" * len(header))
    for r in summary["results"].values():
        for phase, phase_label in PHASES:
            p = r["phases"][phase]
            print(
                f"{r['label']:<38} {phase_label:<19} {p['bytes_per_entry']:>11.0f} "
                f"{r['encoded_entry_bytes']:>8} {p['ratio']:>6.2f}  {'met' if p['met'] else 'NOT MET'}"
            )
    print()
    for r in summary["results"].values():
        print(
            f"{r['label']}: encoded entry {r['encoded_entry_bytes']} bytes (mean stored value + key "
            f"{r['mean_stored_bytes']:.0f}); {r['internal_keys']:,} tag generations; decoded memo "
            f"{r['decoded_memo_entries']:,} entries, {r['decoded_memo_bytes'] / 2**20:.1f} MiB"
        )
        print("  what holds the memory after one hit each (tracemalloc, by line, against the baseline):")
        for t in r["top"]:
            print(f"  {t['bytes_per_entry']:>9.1f} B/entry {t['bytes'] / 2**20:>8.1f} MiB  {t['where']}")
        print()
    rows = [p["met"] for r in summary["results"].values() for p in r["phases"].values()]
    print(
        f"goal: bytes held per stored 2 KiB entry <= {GOAL_RATIO}x the encoded entry: "
        f"{'met' if summary['goal']['met'] else 'NOT MET'} "
        f"({sum(rows)} of {len(rows)} configuration and phase rows within; the goal needs all)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few entries: a smoke test, not a measurement")
    parser.add_argument("--json", action="store_true", help="print machine-readable JSON instead of a table")
    parser.add_argument("--entries", type=int, default=None, help=f"entries stored (default {ENTRIES:,})")
    args = parser.parse_args(argv)
    if args.entries is None:
        args.entries = ENTRIES_QUICK if args.quick else ENTRIES
    if args.entries < 1:
        parser.error("--entries must be positive")
    recorder = Recorder()
    tracemalloc.start()
    results: dict[str, Any] = {}
    try:
        for key, label, options in CONFIGS:
            print(f"bench_memory: {label}: {args.entries:,} entries", file=sys.stderr, flush=True)
            results[key] = measure_config(key, label, options, args.entries, recorder)
    except BenchError as exc:
        print(f"bench_memory: {exc}", file=sys.stderr)
        return 1
    finally:
        tracemalloc.stop()
    summary = summarize(results, args)
    if args.json:
        json.dump(summary, sys.stdout, indent=2)
        print()
    else:
        print_table(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
