from __future__ import annotations

import pytest
from werkzeug.http import http_date

from wsgicache import http

OK = frozenset({200})


@pytest.mark.parametrize(
    ("status", "headers", "options", "expected"),
    [
        ("200 OK", [], {}, None),
        ("404 Not Found", [], {}, "status"),
        ("404 Not Found", [], {"statuses": frozenset({200, 404})}, None),
        ("junk", [], {}, "status"),
        ("200 OK", [("Set-Cookie", "a=1")], {}, "set-cookie"),
        ("200 OK", [("set-cookie", "a=1")], {"allow_set_cookie": True}, None),
        ("200 OK", [("Cache-Control", "private")], {}, "private"),
        ("200 OK", [("Cache-Control", "max-age=60, PRIVATE")], {}, "private"),
        ("200 OK", [("Cache-Control", 'private="Set-Cookie"')], {}, "private"),
        ("200 OK", [("Cache-Control", "no-store")], {}, "no-store"),
        ("200 OK", [("Cache-Control", "public, max-age=60")], {}, None),
        ("200 OK", [("Cache-Control", "no-cache")], {}, None),
        ("200 OK", [("Vary", "*")], {}, "vary-star"),
        ("200 OK", [("Vary", "Accept-Encoding")], {}, "vary"),
        ("200 OK", [("Vary", "accept-encoding")], {"vary": frozenset({"accept-encoding"})}, None),
        (
            "200 OK",
            [("Vary", "Accept-Encoding, Accept-Language")],
            {"vary": frozenset({"accept-encoding"})},
            "vary",
        ),
        ("200 OK", [("Vary", "Cookie")], {}, "vary"),
        ("200 OK", [("Vary", "Cookie")], {"varies_on_cookies": True}, None),
        ("200 OK", [("Vary", "")], {}, None),
    ],
)
def test_why_not_storable(
    status: str, headers: list[tuple[str, str]], options: dict[str, object], expected: str | None
) -> None:
    arguments: dict[str, object] = {"statuses": OK, "vary": frozenset(), "varies_on_cookies": False}
    arguments.update(options)
    assert http.why_not_storable(status, headers, **arguments) == expected  # type: ignore[arg-type]


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], 300.0),
        ([("Cache-Control", "max-age=60")], 60.0),
        ([("Cache-Control", "max-age=60, s-maxage=10")], 10.0),
        ([("Cache-Control", "s-maxage=0, max-age=60")], 0.0),
        ([("Cache-Control", "max-age=0")], 0.0),
        ([("Cache-Control", "max-age=-5")], 0.0),
        ([("Cache-Control", "max-age=abc")], 0.0),
        ([("Cache-Control", "no-cache, max-age=60")], 0.0),
        ([("Expires", http_date(NOW + 120)), ("Date", http_date(NOW))], 120.0),
        ([("Expires", http_date(NOW - 120)), ("Date", http_date(NOW))], 0.0),
        ([("Expires", "0"), ("Date", http_date(NOW))], 0.0),
        ([("Expires", http_date(NOW + 120))], 0.0),
        (
            [("Cache-Control", "max-age=30"), ("Expires", http_date(NOW + 120)), ("Date", http_date(NOW))],
            30.0,
        ),
        ([("Cache-Control", "public")], 300.0),
    ],
)
def test_http_lifetime(headers: list[tuple[str, str]], expected: float) -> None:
    assert http.http_lifetime(headers, 300.0) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], 0.0),
        ([("Age", "30")], 30.0),
        ([("Age", "junk")], 0.0),
        ([("Age", "-3")], 0.0),
        ([("Age", "7, 9")], 7.0),
    ],
)
def test_initial_age(headers: list[tuple[str, str]], expected: float) -> None:
    assert http.initial_age(headers) == expected


def test_storable_headers_drop_age_and_hop_by_hop() -> None:
    headers = [
        ("Content-Type", "a"),
        ("Age", "3"),
        ("Connection", "close"),
        ("Transfer-Encoding", "x"),
        ("ETag", '"e"'),
    ]
    assert http.storable_headers(headers) == [("Content-Type", "a"), ("ETag", '"e"')]


STORED = [
    ("ETag", '"v1"'),
    ("Last-Modified", http_date(NOW)),
    ("Content-Type", "text/html"),
    ("Cache-Control", "max-age=5"),
]


@pytest.mark.parametrize(
    ("request_headers", "stored", "expected"),
    [
        ({"HTTP_IF_NONE_MATCH": '"v1"'}, STORED, True),
        ({"HTTP_IF_NONE_MATCH": 'W/"v1"'}, STORED, True),
        ({"HTTP_IF_NONE_MATCH": '"v0", "v1"'}, STORED, True),
        ({"HTTP_IF_NONE_MATCH": "*"}, STORED, True),
        ({"HTTP_IF_NONE_MATCH": '"v2"'}, STORED, False),
        ({"HTTP_IF_MODIFIED_SINCE": http_date(NOW)}, STORED, True),
        ({"HTTP_IF_MODIFIED_SINCE": http_date(NOW + 10)}, STORED, True),
        ({"HTTP_IF_MODIFIED_SINCE": http_date(NOW - 10)}, STORED, False),
        ({"HTTP_IF_MODIFIED_SINCE": "garbage"}, STORED, False),
        ({"HTTP_IF_NONE_MATCH": '"v1"'}, [("Content-Type", "text/html")], False),
        ({"HTTP_IF_NONE_MATCH": '"v2"', "HTTP_IF_MODIFIED_SINCE": http_date(NOW + 10)}, STORED, False),
    ],
)
def test_not_modified(request_headers: dict[str, str], stored: list[tuple[str, str]], expected: bool) -> None:
    environ = {"REQUEST_METHOD": "GET", **request_headers}
    assert http.not_modified(environ, stored) is expected


def test_not_modified_headers_keep_only_what_rfc_allows() -> None:
    kept = http.not_modified_headers([*STORED, ("Content-Length", "10"), ("Vary", "Accept")])
    assert [name for name, _ in kept] == ["ETag", "Last-Modified", "Cache-Control", "Vary"]


@pytest.mark.parametrize(
    ("status", "code"), [("200 OK", 200), ("404 Not Found", 404), ("", 0), ("abc", 0), ("20", 0)]
)
def test_status_code(status: str, code: int) -> None:
    assert http.status_code(status) == code


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"REQUEST_METHOD": "GET", "HTTP_IF_NONE_MATCH": '"a"'}, True),
        ({"REQUEST_METHOD": "HEAD", "HTTP_IF_MODIFIED_SINCE": "x"}, True),
        ({"REQUEST_METHOD": "POST", "HTTP_IF_NONE_MATCH": '"a"'}, False),
        ({"REQUEST_METHOD": "GET"}, False),
    ],
)
def test_is_conditional(environ: dict[str, str], expected: bool) -> None:
    assert http.is_conditional(environ) is expected
