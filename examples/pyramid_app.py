"""wsgicache in front of a Pyramid application.

    python examples/pyramid_app.py            # demo requests, then serve on http://127.0.0.1:8000
    python examples/pyramid_app.py --once     # demo requests, then exit

Wrap the WSGI application that ``Configurator.make_wsgi_app()`` returns.
"""

from __future__ import annotations

from _demo import SITE_DEMO, main
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from wsgicache import CacheMiddleware, Rule


def primes_below(limit: int) -> list[int]:
    """Some real work for the cache to save: a sieve of Eratosthenes."""
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\0\0"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return [n for n, is_prime in enumerate(sieve) if is_prime]


def primes(request: Request) -> dict[str, object]:
    limit = int(request.matchdict["limit"])
    found = primes_below(min(limit, 5_000_000))
    return {"below": limit, "count": len(found), "largest": found[-1] if found else None}


def hello(request: Request) -> Response:
    return Response(f"Hello {request.matchdict['name']}", content_type="text/plain")


def admin(request: Request) -> Response:
    return Response("admin page, never cached", content_type="text/plain")


def make_app() -> CacheMiddleware:
    with Configurator() as config:
        config.add_route("primes", r"/primes/{limit:\d+}")
        config.add_view(primes, route_name="primes", renderer="json")
        config.add_route("hello", "/hello/{name}")
        config.add_view(hello, route_name="hello")
        config.add_route("admin", "/admin/*rest")
        config.add_view(admin, route_name="admin")
        pyramid_app = config.make_wsgi_app()
    return CacheMiddleware(
        pyramid_app,
        backend="memory://",
        rules=[
            # wsgicache patterns use werkzeug syntax, whatever the framework's own.
            Rule("/admin/<path:rest>", cache=False),
            Rule("/primes/<int:limit>", timeout=3600, tags=["primes"]),
            Rule("/hello/<name>", timeout=60, tags=["hello:{name}"]),
        ],
    )


app = make_app()

if __name__ == "__main__":
    main(app, SITE_DEMO, __doc__)
