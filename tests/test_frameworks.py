"""wsgicache in front of real Flask, Bottle, Pyramid and Django applications.

Every framework serves the same small site, and every view counts its calls,
so that a hit is proven by the view *not* running:

- ``/posts`` and ``/post/<id>``: cached, tagged ``posts`` and ``post:<id>``;
- ``/admin/<path>``: excluded by a ``cache=False`` rule;
- ``/login``: covered by a rule, but answers with ``Set-Cookie``
  (and, in Flask, ``/profile``, which saves the session);
- ``/uncovered``: no rule at all.

Each body carries the view's call count, so a stale body would show too.
``wsgiref.validate.validator`` checks both sides of the middleware: what the
framework gives it and what it gives the server.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any
from wsgiref.validate import validator

import bottle
import django
import flask
import pytest
import webtest
from django.conf import settings
from django.core.wsgi import get_wsgi_application
from django.http import HttpRequest, HttpResponse
from django.test.utils import override_settings
from django.urls import path
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from wsgicache import CacheMiddleware, Rule

WSGIApp = Callable[..., Any]

RULES = [
    Rule("/admin/<path:rest>", cache=False),
    Rule("/posts", timeout=60, tags=["posts"]),
    Rule("/post/<int:post_id>", timeout=60, tags=["post:{post_id}"]),
    Rule("/login", timeout=60),
    Rule("/profile", timeout=60),  # Flask only
]


def cached(app: WSGIApp) -> CacheMiddleware:
    """The middleware under test, validating what the framework gives it."""
    return CacheMiddleware(validator(app), backend="memory://", rules=RULES)


# -- one site per framework ------------------------------------------------------
# Each builder returns (the WSGI app to serve, the CacheMiddleware inside it).


def flask_site(calls: Counter[str]) -> tuple[WSGIApp, CacheMiddleware]:
    app = flask.Flask(__name__)
    app.secret_key = "test"

    @app.get("/posts")
    def posts() -> str:
        calls["posts"] += 1
        return f"posts {calls['posts']}"

    @app.get("/post/<int:post_id>")
    def post(post_id: int) -> str:
        calls[f"post {post_id}"] += 1
        return f"post {post_id} {calls[f'post {post_id}']}"

    @app.get("/admin/<path:rest>")
    def admin(rest: str) -> str:
        calls["admin"] += 1
        return f"admin {calls['admin']}"

    @app.get("/login")
    def login() -> flask.Response:
        calls["login"] += 1
        response = flask.make_response(f"login {calls['login']}")
        response.set_cookie("session", f"user{calls['login']}")
        return response

    @app.get("/profile")
    def profile() -> str:
        calls["profile"] += 1
        flask.session["user"] = f"user{calls['profile']}"  # Set-Cookie (and Vary: Cookie)
        return f"profile {calls['profile']}"

    @app.get("/uncovered")
    def uncovered() -> str:
        calls["uncovered"] += 1
        return f"uncovered {calls['uncovered']}"

    cache = cached(app.wsgi_app)
    app.wsgi_app = cache  # type: ignore[method-assign]
    return app, cache


def bottle_site(calls: Counter[str]) -> tuple[WSGIApp, CacheMiddleware]:
    app = bottle.Bottle()

    @app.get("/posts")
    def posts() -> str:
        calls["posts"] += 1
        return f"posts {calls['posts']}"

    @app.get("/post/<post_id:int>")
    def post(post_id: int) -> str:
        calls[f"post {post_id}"] += 1
        return f"post {post_id} {calls[f'post {post_id}']}"

    @app.get("/admin/<rest:path>")
    def admin(rest: str) -> str:
        calls["admin"] += 1
        return f"admin {calls['admin']}"

    @app.get("/login")
    def login() -> str:
        calls["login"] += 1
        bottle.response.set_cookie("session", f"user{calls['login']}")
        return f"login {calls['login']}"

    @app.get("/uncovered")
    def uncovered() -> str:
        calls["uncovered"] += 1
        return f"uncovered {calls['uncovered']}"

    cache = cached(app)
    return cache, cache


def pyramid_site(calls: Counter[str]) -> tuple[WSGIApp, CacheMiddleware]:
    def posts(request: Request) -> Response:
        calls["posts"] += 1
        return Response(f"posts {calls['posts']}")

    def post(request: Request) -> Response:
        post_id = int(request.matchdict["post_id"])
        calls[f"post {post_id}"] += 1
        return Response(f"post {post_id} {calls[f'post {post_id}']}")

    def admin(request: Request) -> Response:
        calls["admin"] += 1
        return Response(f"admin {calls['admin']}")

    def login(request: Request) -> Response:
        calls["login"] += 1
        response = Response(f"login {calls['login']}")
        response.set_cookie("session", f"user{calls['login']}")
        return response

    def uncovered(request: Request) -> Response:
        calls["uncovered"] += 1
        return Response(f"uncovered {calls['uncovered']}")

    with Configurator() as config:
        for name, pattern, view in [
            ("posts", "/posts", posts),
            ("post", r"/post/{post_id:\d+}", post),
            ("admin", "/admin/*rest", admin),
            ("login", "/login", login),
            ("uncovered", "/uncovered", uncovered),
        ]:
            config.add_route(name, pattern)
            config.add_view(view, route_name=name, request_method="GET")
        app = config.make_wsgi_app()
    cache = cached(app)
    return cache, cache


class DjangoViews:
    """Django resolves views through a URLconf module: this one, with these views."""

    calls: Counter[str] = Counter()

    @classmethod
    def posts(cls, request: HttpRequest) -> HttpResponse:
        cls.calls["posts"] += 1
        return HttpResponse(f"posts {cls.calls['posts']}")

    @classmethod
    def post(cls, request: HttpRequest, post_id: int) -> HttpResponse:
        cls.calls[f"post {post_id}"] += 1
        return HttpResponse(f"post {post_id} {cls.calls[f'post {post_id}']}")

    @classmethod
    def admin(cls, request: HttpRequest, rest: str) -> HttpResponse:
        cls.calls["admin"] += 1
        return HttpResponse(f"admin {cls.calls['admin']}")

    @classmethod
    def login(cls, request: HttpRequest) -> HttpResponse:
        cls.calls["login"] += 1
        response = HttpResponse(f"login {cls.calls['login']}")
        response.set_cookie("session", f"user{cls.calls['login']}")
        return response

    @classmethod
    def uncovered(cls, request: HttpRequest) -> HttpResponse:
        cls.calls["uncovered"] += 1
        return HttpResponse(f"uncovered {cls.calls['uncovered']}")


urlpatterns = [
    path("posts", DjangoViews.posts),
    path("post/<int:post_id>", DjangoViews.post),
    path("admin/<path:rest>", DjangoViews.admin),
    path("login", DjangoViews.login),
    path("uncovered", DjangoViews.uncovered),
]


def django_site(calls: Counter[str], stack: ExitStack) -> tuple[WSGIApp, CacheMiddleware]:
    if not settings.configured:  # settings.configure() may run once per process
        settings.configure(SECRET_KEY="test", INSTALLED_APPS=[], DATABASES={})
        django.setup()
    # Whoever configured Django, this site uses its own URLconf and settings.
    stack.enter_context(
        override_settings(
            DEBUG=False, ROOT_URLCONF=__name__, ALLOWED_HOSTS=["localhost"], MIDDLEWARE=[], USE_I18N=False
        )
    )
    DjangoViews.calls = calls
    cache = cached(get_wsgi_application())
    return cache, cache


@dataclass
class Site:
    client: webtest.TestApp
    cache: CacheMiddleware
    calls: Counter[str]

    def get(self, url: str, cache: str | None) -> webtest.TestResponse:
        """GET ``url``, checking the ``X-Cache`` header (``None``: absent)."""
        response = self.client.get(url)
        assert response.headers.get("X-Cache") == cache, (url, response.headers)
        return response


@pytest.fixture(params=["flask", "bottle", "pyramid", "django"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    calls: Counter[str] = Counter()
    with ExitStack() as stack:
        if request.param == "django":
            app, cache = django_site(calls, stack)
        else:
            app, cache = {"flask": flask_site, "bottle": bottle_site, "pyramid": pyramid_site}[request.param](
                calls
            )
        # What the middleware hands the server is validated too.
        yield Site(webtest.TestApp(validator(app)), cache, calls)
        cache.close()


# -- the tests ---------------------------------------------------------------------


def test_first_request_misses_and_second_hits_without_running_the_view(site: Site) -> None:
    first = site.get("/posts", "MISS")
    assert first.status_int == 200
    assert first.text == "posts 1"
    assert site.calls["posts"] == 1

    second = site.get("/posts", "HIT")
    assert second.status_int == 200
    assert second.text == "posts 1"
    assert second.headers["Content-Type"] == first.headers["Content-Type"]
    assert second.headers["Age"].isdigit()
    assert site.calls["posts"] == 1  # the view did not run

    stats = site.cache.stats()
    assert (stats["hits"], stats["misses"], stats["stores"]) == (1, 1, 1)


def test_each_url_is_its_own_entry(site: Site) -> None:
    assert site.get("/post/1", "MISS").text == "post 1 1"
    assert site.get("/post/2", "MISS").text == "post 2 1"
    assert site.get("/post/1", "HIT").text == "post 1 1"
    assert site.get("/post/2", "HIT").text == "post 2 1"
    assert site.calls == Counter({"post 1": 1, "post 2": 1})


def test_exclusion_rule_passes_through_every_time(site: Site) -> None:
    for n in range(1, 4):
        assert site.get("/admin/users/7", "BYPASS").text == f"admin {n}"
    assert site.calls["admin"] == 3
    assert site.cache.stats()["stores"] == 0


def test_request_no_rule_covers_is_untouched(site: Site) -> None:
    for n in range(1, 3):
        response = site.get("/uncovered", None)
        assert response.text == f"uncovered {n}"
        assert "Age" not in response.headers
    assert site.calls["uncovered"] == 2


def test_invalidate_tags_makes_the_next_request_a_miss(site: Site) -> None:
    site.get("/posts", "MISS")
    site.get("/post/1", "MISS")
    site.get("/posts", "HIT")

    site.cache.invalidate(tags=["posts"])

    assert site.get("/posts", "MISS").text == "posts 2"
    assert site.get("/posts", "HIT").text == "posts 2"
    assert site.get("/post/1", "HIT").text == "post 1 1"  # another tag: still cached
    assert site.calls == Counter({"posts": 2, "post 1": 1})


def test_invalidate_url_makes_the_next_request_a_miss(site: Site) -> None:
    site.get("/post/1", "MISS")
    site.get("/post/2", "MISS")

    site.cache.invalidate(url="/post/1")

    assert site.get("/post/1", "MISS").text == "post 1 2"
    assert site.get("/post/1", "HIT").text == "post 1 2"
    assert site.get("/post/2", "HIT").text == "post 2 1"  # another URL: still cached
    assert site.calls == Counter({"post 1": 2, "post 2": 1})


def test_response_with_set_cookie_is_not_stored(site: Site) -> None:
    for n in range(1, 4):
        response = site.get("/login", "MISS")
        assert response.text == f"login {n}"
        assert "Set-Cookie" in response.headers
    assert site.calls["login"] == 3
    assert site.cache.stats()["stores"] == 0


def test_flask_session_response_is_not_stored() -> None:
    calls: Counter[str] = Counter()
    app, cache = flask_site(calls)
    client = webtest.TestApp(validator(app))
    for n in range(1, 4):
        response = client.get("/profile")
        assert response.headers["X-Cache"] == "MISS"
        assert response.text == f"profile {n}"
        assert "session=" in response.headers["Set-Cookie"]
    assert calls["profile"] == 3
    assert cache.stats()["stores"] == 0
