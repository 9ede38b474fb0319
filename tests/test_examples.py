"""Every example runs: ``python examples/X.py --once`` serves itself over real HTTP
on a free loopback port, prints one line per demo request, and exits 0. A busy
port gives a one-line hint; the README shows what the blog really prints; the
blog runs under gunicorn with several workers sharing a real redis-server."""

from __future__ import annotations

import contextlib
import http.client
import importlib.util
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from secrets import token_hex
from typing import Any

import pytest
from servers import HOST, free_port, in_ci

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
ALL_EXAMPLES = ["flask_blog.py", "bottle_app.py", "pyramid_app.py", "django_app.py"]

#: What the blog's demo does: (method, path, status, X-Cache) of each request.
FLASK_BLOG_DEMO = [
    ("GET", "/recent_posts", "200", "MISS"),
    ("GET", "/recent_posts", "200", "HIT"),
    ("GET", "/recent_posts", "200", "HIT"),
    ("POST", "/posts", "201", "-"),
    ("GET", "/recent_posts", "200", "MISS"),  # the new post invalidated the "posts" tag
    ("GET", "/recent_posts", "200", "HIT"),
    ("GET", "/admin/stats", "200", "BYPASS"),
]

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
    assert requests == FLASK_BLOG_DEMO
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


def test_readme_shows_what_flask_blog_prints() -> None:
    """The sample output in the README has the demo's lines, columns and order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("The first command serves", 1)[1].split("```", 2)[1]
    lines = block.strip("\n").splitlines()
    assert lines[0] == "Serving on http://127.0.0.1:8000/"
    assert lines[-1] == "Serving until Ctrl-C; one line per request."
    shown = []
    for line in lines[1:-1]:
        match = LINE.match(line)
        assert match, f"README line not in the demo's format: {line!r}"
        shown.append((match["method"], match["path"], match["status"], match["cache"]))
    assert shown == FLASK_BLOG_DEMO


@pytest.mark.parametrize("name", ALL_EXAMPLES)
def test_busy_port_gives_a_one_line_hint(name: str, tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind((HOST, 0))
        taken.listen()
        port = taken.getsockname()[1]
        completed = subprocess.run(
            [sys.executable, str(EXAMPLES / name), "--once", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "BLOG_DATABASE": str(tmp_path / "blog.sqlite3")},
            check=False,
        )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert completed.stdout == ""
    assert completed.stderr == f"{name}: port {port} is in use; pass --port N\n"


# -- the blog under gunicorn, several workers sharing redis ------------------------


def _gunicorn_available() -> None:
    if importlib.util.find_spec("gunicorn") is None:
        message = "gunicorn is not installed (pip install -e '.[test]')"
        if in_ci():
            pytest.fail(message + " -- required when CI=true")
        pytest.skip(message)


def _get(port: int, path: str) -> tuple[int, str, str]:
    """(status, X-Cache, body) of a GET on a new connection."""
    connection = http.client.HTTPConnection(HOST, port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.getheader("X-Cache", "-"), response.read().decode()
    finally:
        connection.close()


def _hold_a_worker(port: int) -> socket.socket:
    """Half a request: the (sync) worker that accepts it waits for the rest, so
    that the next connection is served by another worker."""
    sock = socket.create_connection((HOST, port), timeout=30)
    sock.sendall(f"GET /recent_posts HTTP/1.1\r\nHost: {HOST}:{port}\r\n".encode())  # as http.client
    return sock


def _finish(sock: socket.socket) -> tuple[int, str, str]:
    with sock:
        sock.sendall(b"Connection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    cache = next((v for k, v in headers.items() if k.lower() == "x-cache"), "-")
    return int(lines[0].split()[1]), cache, body.decode()


def _log_lines(log: Path) -> list[str]:
    try:
        return log.read_text().splitlines()
    except FileNotFoundError:
        return []


def _wait_for(condition: Any, what: str, process: subprocess.Popen[bytes], errors: Path) -> Any:
    deadline = time.monotonic() + 60
    while True:
        result = condition()
        if result:
            return result
        if process.poll() is not None:
            pytest.fail(f"gunicorn exited ({process.returncode}) before {what}:\n{errors.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}:\n{errors.read_text()}")
        time.sleep(0.05)


def test_flask_blog_under_gunicorn_invalidates_across_workers(tmp_path: Path, redis_server: Any) -> None:
    """The README's gunicorn command with 2 workers and a real redis: a post
    added through one worker is on the list that every worker then serves."""
    _gunicorn_available()
    port = free_port()
    access, errors = tmp_path / "access.log", tmp_path / "error.log"
    env = {
        **os.environ,
        "WSGICACHE_BACKEND": f"redis://{HOST}:{redis_server.port}/0?key_prefix=blog-{token_hex(4)}",
        "BLOG_DATABASE": str(tmp_path / "blog.sqlite3"),
    }
    argv = [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"{HOST}:{port}"]
    argv += ["--access-logfile", str(access), "--access-logformat", "%(p)s %(m)s %(U)s %(s)s"]
    argv += ["--error-logfile", str(errors), "examples.flask_blog:app"]
    process = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:

        def first_page() -> tuple[int, str, str] | None:
            with contextlib.suppress(OSError):
                return _get(port, "/recent_posts")
            return None

        status, cache, body = _wait_for(first_page, "the first page", process, errors)
        assert (status, cache) == (200, "MISS")
        # Both workers now answer from the shared entry.
        for _ in range(3):
            held = _hold_a_worker(port)
            assert _get(port, "/recent_posts")[:2] == (200, "HIT")
            assert _finish(held)[:2] == (200, "HIT")

        title = f"Written through one worker {token_hex(4)}"
        assert title not in body
        connection = http.client.HTTPConnection(HOST, port, timeout=30)
        connection.request(
            "POST",
            "/posts",
            body=f"title={title.replace(' ', '+')}",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert connection.getresponse().status == 201
        connection.close()
        # The access log names the worker (pid) of each request; start reading after the POST.
        logged = _wait_for(
            lambda: [n for n, line in enumerate(_log_lines(access)) if " POST /posts " in line],
            "the POST's log line",
            process,
            errors,
        )
        after_post = logged[-1] + 1

        answers = []
        for _ in range(3):
            held = _hold_a_worker(port)
            answers.append(_get(port, "/recent_posts"))
            answers.append(_finish(held))
        for status, _cache, body in answers:
            assert status == 200
            assert title in body
        assert [cache for _status, cache, _body in answers][1:] == ["HIT"] * 5

        def gets_logged() -> list[str] | None:
            lines = [line for line in _log_lines(access)[after_post:] if " GET /recent_posts " in line]
            return lines if len(lines) == len(answers) else None

        served = _wait_for(gets_logged, "the log lines of the GETs", process, errors)
        assert len({line.split()[0] for line in served}) == 2, served  # both workers showed the new post
    finally:
        if process.poll() is None:
            process.terminate()  # gunicorn's master stops its workers
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(5)
    assert (tmp_path / "blog.sqlite3").stat().st_size > 1_000_000
    assert not list(tmp_path.glob("*.tmp"))  # the workers that lost the race cleaned up
