"""Trust, on real frameworks: what Flask, Django and Pyramid read is what the cache keys on.

Each case is a way an application's answer depends on the request that a
cache keyed on less would get wrong: a JSON body on GET, the Host spelling
in an absolute URL, duplicated cookies, a method the framework upper-cases.
"""

from __future__ import annotations

from typing import Any
from wsgiref.validate import validator

import flask
import webtest
from pyramid.config import Configurator
from pyramid.request import Request
from pyramid.response import Response

from wsgicache import CacheMiddleware, Rule


def client_for(app: Any, rules: list[Rule]) -> tuple[webtest.TestApp, CacheMiddleware]:
    cache = CacheMiddleware(validator(app), rules=rules)
    return webtest.TestApp(validator(cache), extra_environ={"HTTP_HOST": "localhost"}), cache


def test_flask_json_body_on_get_is_never_shared() -> None:
    app = flask.Flask(__name__)

    @app.get("/api/search")
    def search() -> Any:
        query = flask.request.get_json(silent=True) or {}
        return {"results": [f"match for {query.get('q', 'everything')}"]}

    client, cache = client_for(app.wsgi_app, [Rule("/api/search", timeout=60)])
    everything = client.get("/api/search")
    assert everything.json == {"results": ["match for everything"]}
    cats = client.request("/api/search", method="GET", body=b'{"q": "cats"}', content_type="application/json")
    assert cats.headers["X-Cache"] == "BYPASS"
    assert cats.json == {"results": ["match for cats"]}
    dogs = client.request("/api/search", method="GET", body=b'{"q": "dogs"}', content_type="application/json")
    assert dogs.json == {"results": ["match for dogs"]}
    hit = client.get("/api/search")
    assert hit.headers["X-Cache"] == "HIT" and hit.json == everything.json
    assert cache.stats()["stores"] == 1


def test_flask_post_search_api_reads_the_body_it_was_keyed_on() -> None:
    app = flask.Flask(__name__)
    calls: list[str] = []

    @app.post("/api/search")
    def search() -> Any:
        calls.append(flask.request.get_data(as_text=True))
        return {"q": flask.request.get_json()["q"]}

    client, _ = client_for(app.wsgi_app, [Rule("/api/search", methods=["POST"], timeout=60)])
    assert client.post_json("/api/search", {"q": "cats"}).json == {"q": "cats"}
    hit = client.post_json("/api/search", {"q": "cats"})
    assert hit.headers["X-Cache"] == "HIT" and hit.json == {"q": "cats"}
    assert client.post_json("/api/search", {"q": "dogs"}).json == {"q": "dogs"}
    assert calls == ['{"q": "cats"}', '{"q": "dogs"}']


def test_flask_absolute_urls_under_odd_host_spellings() -> None:
    app = flask.Flask(__name__)

    @app.get("/feed")
    def feed() -> str:
        return flask.url_for("feed", _external=True)

    client, _ = client_for(app.wsgi_app, [Rule("/feed", timeout=60)])
    uncached = webtest.TestApp(app.wsgi_app)
    hosts = ["example.com", "example.com.", "example.com:80", "example.com:8080", "example.com:08080"]
    for host in hosts:
        response = client.get("/feed", extra_environ={"HTTP_HOST": host})
        assert response.text == uncached.get("/feed", extra_environ={"HTTP_HOST": host}).text, host
        again = client.get("/feed", extra_environ={"HTTP_HOST": host})
        assert again.headers["X-Cache"] == "HIT" and again.text == response.text
    forwarded = client.get("/feed", headers={"X-Forwarded-Proto": "https"})
    assert forwarded.headers["X-Cache"] == "MISS"


def test_flask_reads_a_lower_case_delete_and_the_cache_invalidates() -> None:
    app = flask.Flask(__name__)
    posts = {"1": "first post"}

    @app.route("/post/<n>", methods=["GET", "DELETE"])
    def post(n: str) -> Any:
        if flask.request.method == "DELETE":
            posts.pop(n, None)
            return "", 204
        return posts.get(n, "gone"), 200 if n in posts else 404

    cache = CacheMiddleware(app.wsgi_app, rules=[Rule("/post/<n>", timeout=60, statuses=[200, 404])])
    # lint=False: webtest warns about the lower-case method this test sends on purpose.
    client = webtest.TestApp(cache, extra_environ={"HTTP_HOST": "localhost"}, lint=False)
    assert client.get("/post/1").text == "first post"
    assert client.get("/post/1").headers["X-Cache"] == "HIT"
    client.request("/post/1", method="delete", status=204)
    after = client.get("/post/1", status=404)
    assert after.headers["X-Cache"] == "MISS" and after.text == "gone"


def test_pyramid_duplicated_cookies_bypass() -> None:
    def whoami(request: Request) -> Response:
        return Response(f"hello {request.cookies.get('session', 'anonymous')}")

    with Configurator() as config:
        config.add_route("me", "/me")
        config.add_view(whoami, route_name="me")
        app = config.make_wsgi_app()

    client, _ = client_for(app, [Rule("/me", timeout=60, vary_cookies=["session"])])
    assert client.get("/me", headers={"Cookie": "session=alice"}).text == "hello alice"
    assert client.get("/me", headers={"Cookie": "session=alice"}).headers["X-Cache"] == "HIT"
    for cookie in ["session=alice; session=mallory", "session=mallory; session=alice", "a=1, session=alice"]:
        response = client.get("/me", headers={"Cookie": cookie})
        assert response.headers["X-Cache"] == "BYPASS", cookie
    mallory = client.get("/me", headers={"Cookie": "session=mallory"})
    assert mallory.headers["X-Cache"] == "MISS" and mallory.text == "hello mallory"
