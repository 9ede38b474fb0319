"""A small Flask blog behind wsgicache: the seed use case.

    python examples/flask_blog.py            # demo requests, then serve on http://127.0.0.1:8000
    python examples/flask_blog.py --once     # demo requests, then exit

    # several processes, from the root of the checkout, sharing one Redis:
    WSGICACHE_BACKEND=redis://127.0.0.1:6379/0 gunicorn -w 4 examples.flask_blog:app

``/recent_posts`` shows the 10 newest of 5,000 posts with their comment
counts, read from a real SQLite database by a deliberately slow query: the
comments table has no index on ``post_id`` and the posts are sorted on a
computed expression, so every uncached request does tens of milliseconds
of real work. The cache answers the following requests in microseconds,
until ``POST /posts`` adds a post and invalidates the ``posts`` tag.

Environment:

- ``WSGICACHE_BACKEND``: the cache backend URL (default ``memory://``). With
  several worker processes use a shared backend (``redis://...``,
  ``memcached://...``): with ``memory://`` each worker has its own cache, and
  a new post invalidates only the cache of the worker that received it (the
  others show the old list until their entry expires, up to 300 s).
- ``BLOG_DATABASE``: the SQLite file (default ``blog.sqlite3`` next to this
  file). It is created, once, when the module is imported (by gunicorn's
  workers, say), or by ``python examples/flask_blog.py`` (``--db`` to put
  it elsewhere).
"""

from __future__ import annotations

import contextlib
import os
import random
import sqlite3
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

from flask import Flask, abort, current_app, g, render_template_string, request

from wsgicache import CacheMiddleware, Rule

app = Flask(__name__)
app.config["DATABASE"] = os.environ.get("BLOG_DATABASE") or str(Path(__file__).with_name("blog.sqlite3"))


# -- the database -------------------------------------------------------------

SCHEMA = """
CREATE TABLE posts (
    id INTEGER PRIMARY KEY,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    published TEXT NOT NULL,          -- 'YYYY-MM-DD HH:MM:SS', UTC
    body TEXT NOT NULL
);
CREATE TABLE comments (
    id INTEGER PRIMARY KEY,
    post_id INTEGER NOT NULL,         -- deliberately not indexed
    author TEXT NOT NULL,
    body TEXT NOT NULL
);
"""

# The slow part of the blog: SQLite builds a temporary index over all the
# comments and sorts all the posts on a computed expression, every time.
RECENT_POSTS = """
SELECT p.id, p.title, p.author, p.published, count(c.id) AS comments
FROM posts AS p LEFT JOIN comments AS c ON c.post_id = p.id
GROUP BY p.id
ORDER BY datetime(p.published) DESC
LIMIT 10
"""

WORDS = ["cache", "response", "header", "request", "backend", "memory", "latency", "query", "index"]
WORDS += ["server", "python", "flask", "sqlite", "speed", "fresh", "stale", "tag", "key", "rule"]


def create_database(path: Path, posts: int = 5000, comments_per_post: int = 10) -> None:
    """Create and fill the blog database at ``path`` unless it exists."""
    if path.exists():
        return
    rng = random.Random(42)
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    building = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        with sqlite3.connect(building) as db:
            db.executescript(SCHEMA)
            db.executemany(
                "INSERT INTO posts VALUES (?, ?, ?, ?, ?)",
                (
                    (
                        n,
                        " ".join(rng.choices(WORDS, k=5)).capitalize(),
                        rng.choice(["ana", "bo", "chen", "dora"]),
                        (start + timedelta(hours=n, minutes=rng.randrange(60))).strftime("%Y-%m-%d %H:%M:%S"),
                        " ".join(rng.choices(WORDS, k=80)),
                    )
                    for n in range(1, posts + 1)
                ),
            )
            db.executemany(
                "INSERT INTO comments (post_id, author, body) VALUES (?, ?, ?)",
                (
                    (rng.randint(1, posts), "reader", " ".join(rng.choices(WORDS, k=12)))
                    for _ in range(posts * comments_per_post)
                ),
            )
        db.close()
        # Several workers importing this module at once each build a copy; the
        # first to link its copy wins, and a database in use is never replaced
        # (a concurrent run never sees half a database either).
        with contextlib.suppress(FileExistsError):
            os.link(building, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(building)


def get_db() -> sqlite3.Connection:
    if "db" not in g:
        g.db = sqlite3.connect(current_app.config["DATABASE"])
        g.db.row_factory = sqlite3.Row
    return g.db  # type: ignore[no-any-return]


@app.teardown_appcontext
def close_db(_exc: BaseException | None) -> None:
    db = g.pop("db", None)
    if db is not None:
        db.close()


# -- the views ----------------------------------------------------------------

PAGE = """<!doctype html>
<title>{{ title }}</title>
<h1>{{ title }}</h1>
<ul>
{% for post in posts %}
  <li><a href="/post/{{ post.id }}">{{ post.title }}</a> by {{ post.author }},
      {{ post.published }} ({{ post.comments }} comments)</li>
{% endfor %}
</ul>
"""


@app.get("/recent_posts")
def recent_posts() -> str:
    posts = get_db().execute(RECENT_POSTS).fetchall()
    return render_template_string(PAGE, title="Recent posts", posts=posts)


@app.get("/post/<int:post_id>")
def show_post(post_id: int) -> str:
    post = get_db().execute("SELECT * FROM posts WHERE id = ?", (post_id,)).fetchone()
    if post is None:
        abort(404)
    return render_template_string(
        "<!doctype html><title>{{ p.title }}</title><h1>{{ p.title }}</h1><p>{{ p.body }}</p>", p=post
    )


@app.post("/posts")
def add_post() -> tuple[dict[str, int], int, dict[str, str]]:
    db = get_db()
    with db:
        cursor = db.execute(
            "INSERT INTO posts (title, author, published, body) VALUES (?, ?, datetime('now'), ?)",
            (request.form["title"], request.form.get("author", "anonymous"), request.form.get("body", "")),
        )
    post_id = cursor.lastrowid
    assert post_id is not None
    cache.invalidate(tags=["posts"])  # every cached page listing posts is now a miss
    return {"id": post_id}, 201, {"Location": f"/post/{post_id}"}


@app.get("/admin/stats")
def admin_stats() -> dict[str, float]:
    return cache.stats()  # never cached: see the exclusion rule below


# -- the cache ----------------------------------------------------------------

cache = CacheMiddleware(
    app.wsgi_app,
    backend=os.environ.get("WSGICACHE_BACKEND", "memory://"),  # memory://: one cache per process
    rules=[
        Rule("/admin/<path:rest>", cache=False),  # always passed straight to Flask
        Rule("/recent_posts", timeout=300, tags=["posts"]),
        Rule("/post/<int:post_id>", timeout=3600, tags=["posts", "post:{post_id}"]),
    ],
)
app.wsgi_app = cache  # type: ignore[method-assign]

if __name__ != "__main__":
    # Imported by a WSGI server (gunicorn, waitress-serve, ...): ready to serve.
    # Run as a script, main() creates it, where --db says.
    create_database(Path(app.config["DATABASE"]))


def main() -> int:
    from _demo import DemoRequest, make_parser, run  # the demo's own plumbing (waitress)

    demo = [
        DemoRequest("GET", "/recent_posts", expect="MISS"),
        DemoRequest("GET", "/recent_posts", expect="HIT"),
        DemoRequest("GET", "/recent_posts", expect="HIT"),
        DemoRequest("POST", "/posts", form={"title": "Hello from the demo", "body": "A new post."}),
        DemoRequest("GET", "/recent_posts", expect="MISS"),
        DemoRequest("GET", "/recent_posts", expect="HIT"),
        DemoRequest("GET", "/admin/stats", expect="BYPASS"),
    ]
    parser = make_parser(__doc__)
    parser.add_argument("--db", type=Path, default=Path(app.config["DATABASE"]), help="SQLite file")
    args = parser.parse_args()
    create_database(args.db)
    app.config["DATABASE"] = str(args.db)
    return run(app, demo, port=args.port, once=args.once)


if __name__ == "__main__":
    sys.exit(main())
