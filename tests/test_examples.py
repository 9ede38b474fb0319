"""Every example runs: ``python examples/X.py --once`` serves itself over real HTTP
on a free loopback port, prints one line per demo request, and exits 0."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# "GET  /recent_posts      200  MISS     69.0 ms   (round trip 70.6 ms)"
LINE = re.compile(
    r"^(?P<method>[A-Z]+)\s+(?P<path>/\S*)\s+(?P<status>\d{3})\s+(?P<cache>[A-Z]+|-)\s+"
    r"(?P<time>\d+(\.\d+)?) (?P<unit>ms|µs)\s+\(round trip \d+(\.\d+)? (ms|µs)\)$"
)


def run_example(name: str, *args: str) -> list[tuple[str, str, str, str]]:
    """Run ``examples/<name> --once --port 0 ...``; (method, path, status, cache) of each request."""
    completed = subprocess.run(
        [sys.executable, str(EXAMPLES / name), "--once", "--port", "0", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=120,
        env={**os.environ, "PYTHONIOENCODING": "utf-8"},
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert re.fullmatch(r"Serving on http://127\.0\.0\.1:\d+/", lines[0]), lines[0]
    requests = []
    for line in lines[1:]:
        match = LINE.match(line)
        assert match, f"unexpected output line: {line!r}"
        requests.append((match["method"], match["path"], match["status"], match["cache"]))
    return requests


def test_flask_blog_shows_miss_then_hit_and_invalidation(tmp_path: Path) -> None:
    requests = run_example("flask_blog.py", "--db", str(tmp_path / "blog.sqlite3"))
    assert requests == [
        ("GET", "/recent_posts", "200", "MISS"),
        ("GET", "/recent_posts", "200", "HIT"),
        ("GET", "/recent_posts", "200", "HIT"),
        ("POST", "/posts", "201", "-"),
        ("GET", "/recent_posts", "200", "MISS"),  # the new post invalidated the "posts" tag
        ("GET", "/recent_posts", "200", "HIT"),
        ("GET", "/admin/stats", "200", "BYPASS"),
    ]
    assert (tmp_path / "blog.sqlite3").stat().st_size > 1_000_000  # the real database was built


@pytest.mark.parametrize("name", ["bottle_app.py", "pyramid_app.py", "django_app.py"])
def test_framework_example_shows_miss_then_hit(name: str) -> None:
    assert run_example(name) == [
        ("GET", "/primes/2000000", "200", "MISS"),
        ("GET", "/primes/2000000", "200", "HIT"),
        ("GET", "/hello/world", "200", "MISS"),
        ("GET", "/hello/world", "200", "HIT"),
        ("GET", "/admin/users", "200", "BYPASS"),
    ]
