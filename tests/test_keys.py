from __future__ import annotations

import re
from typing import Any

import pytest

from wsgicache.keys import (
    KeySpace,
    RequestHost,
    cookie_values,
    digest,
    ignore_matcher,
    key_material,
    normalize_query,
    pack,
    request_host,
    wsgi_str,
)


@pytest.mark.parametrize(
    ("environ", "match", "key"),
    [
        ({"HTTP_HOST": "Example.COM"}, "example.com", "Example.COM"),
        ({"HTTP_HOST": "example.com:80"}, "example.com", "example.com:80"),
        ({"HTTP_HOST": "example.com:080"}, "example.com", "example.com:080"),
        ({"HTTP_HOST": "example.com:443", "wsgi.url_scheme": "https"}, "example.com", "example.com:443"),
        ({"HTTP_HOST": "example.com:443"}, "example.com:443", "example.com:443"),
        ({"HTTP_HOST": "example.com:8080"}, "example.com:8080", "example.com:8080"),
        ({"HTTP_HOST": "example.com."}, "example.com", "example.com."),
        ({"HTTP_HOST": "[::1]:8000"}, "[::1]:8000", "[::1]:8000"),
        ({"HTTP_HOST": "[::1]"}, "[::1]", "[::1]"),
        ({"HTTP_HOST": "127.0.0.1"}, "127.0.0.1", "127.0.0.1"),
        ({"SERVER_NAME": "Srv.local", "SERVER_PORT": "80"}, "srv.local", "@Srv.local:80"),
        ({"SERVER_NAME": "srv.local", "SERVER_PORT": "8000"}, "srv.local:8000", "@srv.local:8000"),
        ({"HTTP_HOST": ""}, None, None),
        ({"HTTP_HOST": "evil.com/path"}, None, None),
        ({"HTTP_HOST": "a b"}, None, None),
        ({"HTTP_HOST": "host:port"}, None, None),
        ({"HTTP_HOST": "host:123456"}, None, None),
        ({"HTTP_HOST": "exa\r\nmple.com"}, None, None),
        ({"HTTP_HOST": "example.com@evil.com"}, None, None),
        ({"HTTP_HOST": "-leading.dash"}, None, None),
        ({"HTTP_HOST": "example.com.."}, None, None),
        ({"HTTP_HOST": " example.com"}, None, None),
    ],
)
def test_request_host(environ: dict[str, str], match: str | None, key: str | None) -> None:
    host = request_host(environ)
    if match is None:
        assert host is None
    else:
        assert host == RequestHost(match, key)


def test_every_host_spelling_has_its_own_key() -> None:
    spellings = ["example.com", "Example.com", "example.com.", "example.com:80", "example.com:080"]
    keys = {request_host({"HTTP_HOST": spelling}) for spelling in spellings}
    assert len({host.key for host in keys if host is not None}) == len(spellings)
    assert {host.match for host in keys if host is not None} == {"example.com"}
    # A request without Host (HTTP/1.0) never shares with one that sends the same text.
    assert request_host({"SERVER_NAME": "example.com", "SERVER_PORT": "80"}) != request_host(
        {"HTTP_HOST": "example.com:80"}
    )


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("", [None, None]),
        ("session=abc", ["abc", None]),
        ("session=abc; theme=dark", ["abc", "dark"]),
        ("theme=dark;session=abc", ["abc", "dark"]),
        ('session="abc"', ['"abc"', None]),
        ("other=1; session=", ["", None]),
        ("session=a; session=b", None),  # duplicated: frameworks disagree on which wins
        ("session=a, session=b", None),  # comma-joined Cookie headers
        ("a=1,session=b", None),  # name after a comma
        ("session=a,b", ["a,b", None]),  # a comma inside the value, no other name
        ("sessionx=1; xsession=2", [None, None]),
    ],
)
def test_cookie_values(header: str, expected: list[str | None] | None) -> None:
    assert cookie_values(header, ("session", "theme")) == expected


@pytest.mark.parametrize(
    ("query", "keep", "ignore", "expected"),
    [
        ("", None, (), ""),
        ("b=2&a=1", None, (), "a=1&b=2"),
        ("a=1&b=2", None, (), "a=1&b=2"),
        ("a=2&a=1", None, (), "a=2&a=1"),
        ("a=&b", None, (), "a=&b="),
        ("q=x%20y&page=2&utm_source=z", frozenset({"q", "page"}), (), "page=2&q=x%20y"),
        ("q=x&utm_source=z&utm_medium=m&fbclid=1", None, ("utm_*", "fbclid"), "q=x"),
        ("q=a%26b", None, (), "q=a%26b"),
        ("q=%7C", None, (), "q=%7C"),
        ("q=a+b", None, (), "q=a%20b"),
        ("q=%FF", None, (), "q=%FF"),
        ("q=%FE", None, (), "q=%FE"),
        ("q=%C3%A9", None, (), "q=%C3%A9"),
        ("q=%C3%A9&caf%C3%A9=1", frozenset({wsgi_str("caf\u00e9")}), (), "caf%C3%A9=1"),
    ],
)
def test_normalize_query(
    query: str, keep: frozenset[str] | None, ignore: tuple[str, ...], expected: str
) -> None:
    assert normalize_query(query, keep, ignore_matcher(ignore)) == expected


def test_invalid_utf8_query_values_never_share() -> None:
    values = ["%FF", "%FE", "%EF%BF%BD", "%C3%28", "%C3"]
    assert len({normalize_query(f"q={value}", None, None) for value in values}) == len(values)


def test_ignore_matcher_is_none_without_patterns() -> None:
    assert ignore_matcher([]) is None


def test_pack_is_injective_for_tricky_values() -> None:
    candidates = [
        ["a|b", "c"],
        ["a", "b|c"],
        ["a", "b", "c"],
        ["1:a", None],
        [None, "1:a"],
        ["", None],
        [None, ""],
        ["-", None],
        [None, "-"],
    ]
    packed = [pack(c) for c in candidates]
    assert len(set(packed)) == len(packed)


def test_digest_is_fixed_length_hex() -> None:
    for material in ["", "x" * 10000, "\udcff surrogate", "caf\xe9"]:
        assert re.fullmatch(r"[0-9a-f]{32}", digest(material))


def test_keys_are_backend_safe() -> None:
    space = KeySpace("site1")
    key, shard = space.entry_key("GET|http|localhost||5:/path")
    assert shard == ""
    assert re.fullmatch(r"e:[0-9a-f]{32}", key)
    assert re.fullmatch(r"t:[0-9a-f]{32}", space.tag_key("user:1", shard))


def test_key_prefix_and_kind_separate_keys() -> None:
    a, b = KeySpace("a"), KeySpace("b")
    assert a.entry_key("m")[0] != b.entry_key("m")[0]
    assert a.tag_key("x", "") != a.path_tag_key("x", "") != a.custom_key_tag_key("x", "")
    assert a.tag_key("x", "") != b.tag_key("x", "")


def test_sharded_keys_carry_a_hash_tag_shared_with_their_tags() -> None:
    space = KeySpace("", shards=16)
    shards = set()
    for n in range(200):
        key, shard = space.entry_key(f"material {n}")
        assert re.fullmatch(r"\{s\d+\}:", shard)
        assert key.startswith("e:" + shard)
        assert space.tag_key("posts", shard).startswith("t:" + shard)
        shards.add(shard)
    assert len(shards) == 16
    all_copies = space.tag_keys_all_shards("posts")
    assert len(set(all_copies)) == 16
    assert space.tag_key("posts", "{s3}:") in all_copies


BASE: dict[str, Any] = {"wsgi.url_scheme": "http", "HTTP_USER_AGENT": "x"}


def material(environ: dict[str, Any] = BASE, **changes: Any) -> str:
    arguments: dict[str, Any] = {
        "method": "GET",
        "host": "example.com",
        "path": "/a",
        "query": "q=1",
        "variant": [],
        "custom_key": None,
    }
    arguments.update(changes)
    return key_material(environ, **arguments)


def test_key_material_separates_every_component() -> None:
    materials = [
        material(),
        material(method="POST"),
        material({**BASE, "wsgi.url_scheme": "https"}),
        material(host="example.org"),
        material(host="example.com:8080"),
        material(path="/b"),
        material(path="/a|x"),
        material({**BASE, "SCRIPT_NAME": "/a"}, path=""),
        material({**BASE, "SCRIPT_NAME": "/x"}, path="/a"),
        material({**BASE, "RAW_URI": "/%61"}),
        material({**BASE, "HTTP_X_FORWARDED_SSL": "on"}),
        material({**BASE, "HTTP_FRONT_END_HTTPS": "on"}),
        material({**BASE, "HTTP_X_URL_SCHEME": "https"}),
        material({**BASE, "HTTP_X_FORWARDED_PORT": "8443"}),
        material({**BASE, "HTTP_X_FORWARDED_PREFIX": "/app"}),
        material(query=""),
        material(variant=["en"]),
        material(variant=[None]),
        material(variant=[""]),
        material(custom_key="k"),
        material(variant=["k"]),
        material({**BASE, "HTTP_X_FORWARDED_HOST": "evil.example"}),
        material({**BASE, "HTTP_X_FORWARDED_PROTO": "https"}),
    ]
    assert len(set(materials)) == len(materials)


def test_script_name_path_info_split_is_in_the_key() -> None:
    # /a + /b/c and /a/b + /c are different requests to the application.
    first = material({**BASE, "SCRIPT_NAME": "/a"}, path="/b/c")
    second = material({**BASE, "SCRIPT_NAME": "/a/b"}, path="/c")
    assert first != second


def test_raw_uri_path_joins_the_key_but_not_its_query() -> None:
    # "/a%2Fb" and "/a/b" both arrive as PATH_INFO "/a/b".
    assert material({**BASE, "RAW_URI": "/a%2Fb"}) != material({**BASE, "RAW_URI": "/a/b"})
    assert material({**BASE, "RAW_URI": "/a?x=1"}) == material({**BASE, "REQUEST_URI": "/a?y=2"})


def test_key_material_ignores_headers_outside_the_key() -> None:
    assert material({**BASE, "HTTP_USER_AGENT": "other", "HTTP_ACCEPT": "*/*"}) == material()
