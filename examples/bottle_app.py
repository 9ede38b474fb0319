"""wsgicache in front of a Bottle application.

    python examples/bottle_app.py            # demo requests, then serve on http://127.0.0.1:8000
    python examples/bottle_app.py --once     # demo requests, then exit

Bottle apps are WSGI callables: wrap the ``Bottle`` object itself.
"""

from __future__ import annotations

import bottle
from _demo import SITE_DEMO, main

from wsgicache import CacheMiddleware, Rule

bottle_app = bottle.Bottle()


def primes_below(limit: int) -> list[int]:
    """Some real work for the cache to save: a sieve of Eratosthenes."""
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\0\0"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return [n for n, is_prime in enumerate(sieve) if is_prime]


@bottle_app.get("/primes/<limit:int>")
def primes(limit: int) -> dict[str, object]:
    found = primes_below(min(limit, 5_000_000))
    return {"below": limit, "count": len(found), "largest": found[-1] if found else None}


@bottle_app.get("/hello/<name>")
def hello(name: str) -> str:
    return f"<h1>Hello {bottle.html_escape(name)}</h1>"


@bottle_app.get("/admin/<rest:path>")
def admin(rest: str) -> str:
    return f"admin page {bottle.html_escape(rest)}, never cached"


app = CacheMiddleware(
    bottle_app,
    backend="memory://",
    rules=[
        # wsgicache patterns use werkzeug syntax, whatever the framework's own.
        Rule("/admin/<path:rest>", cache=False),
        Rule("/primes/<int:limit>", timeout=3600, tags=["primes"]),
        Rule("/hello/<name>", timeout=60, tags=["hello:{name}"]),
    ],
)

if __name__ == "__main__":
    main(app, SITE_DEMO, __doc__)
