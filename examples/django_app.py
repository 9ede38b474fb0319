"""wsgicache in front of a Django project (in one file).

    python examples/django_app.py            # demo requests, then serve on http://127.0.0.1:8000
    python examples/django_app.py --once     # demo requests, then exit

In a real project, wrap the application in ``wsgi.py``::

    application = CacheMiddleware(get_wsgi_application(), backend="redis://...", rules=[...])

and invalidate from your views or signals, e.g. ``application.invalidate(tags=["primes"])``.
"""

from __future__ import annotations

from _demo import SITE_DEMO, main
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import path

from wsgicache import CacheMiddleware, Rule

settings.configure(
    DEBUG=False,
    SECRET_KEY="only-for-this-example",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,  # the urlpatterns below
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)


def primes_below(limit: int) -> list[int]:
    """Some real work for the cache to save: a sieve of Eratosthenes."""
    sieve = bytearray([1]) * limit
    sieve[:2] = b"\0\0"
    for n in range(2, int(limit**0.5) + 1):
        if sieve[n]:
            sieve[n * n :: n] = bytes(len(range(n * n, limit, n)))
    return [n for n, is_prime in enumerate(sieve) if is_prime]


def primes(request: HttpRequest, limit: int) -> JsonResponse:
    found = primes_below(min(limit, 5_000_000))
    return JsonResponse({"below": limit, "count": len(found), "largest": found[-1] if found else None})


def hello(request: HttpRequest, name: str) -> HttpResponse:
    return HttpResponse(f"Hello {name}", content_type="text/plain")


def admin(request: HttpRequest, rest: str) -> HttpResponse:
    return HttpResponse("admin page, never cached", content_type="text/plain")


urlpatterns = [
    path("primes/<int:limit>", primes),
    path("hello/<str:name>", hello),
    path("admin/<path:rest>", admin),
]

app = CacheMiddleware(
    get_wsgi_application(),
    backend="memory://",
    rules=[
        Rule("/admin/<path:rest>", cache=False),
        Rule("/primes/<int:limit>", timeout=3600, tags=["primes"]),
        Rule("/hello/<name>", timeout=60, tags=["hello:{name}"]),
    ],
)

if __name__ == "__main__":
    main(app, SITE_DEMO, __doc__)
