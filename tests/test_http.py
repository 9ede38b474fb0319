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
        ("206 Partial Content", [], {"statuses": frozenset({200, 206})}, "partial"),
        ("304 Not Modified", [], {"statuses": frozenset({200, 304})}, "partial"),
        ("200 OK", [("Content-Range", "bytes 0-1/10")], {}, "partial"),
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


SERVE, NOT_MODIFIED, FAILED = (
    http.Precondition.SERVE,
    http.Precondition.NOT_MODIFIED,
    http.Precondition.FAILED,
)
WEAK = [("ETag", 'W/"v1"'), ("Last-Modified", http_date(NOW))]
EARLIER, LATER = http_date(NOW - 10), http_date(NOW + 10)


# RFC 9110, section 13.2.2 (order of evaluation), 13.1.1-13.1.4 (each field),
# 13.2.1 (preconditions apply to 2xx responses only).
@pytest.mark.parametrize(
    ("method", "request_headers", "status", "stored", "expected"),
    [
        # 13.1.2 If-None-Match: weak comparison; "*" matches any representation.
        ("GET", {"HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", STORED, NOT_MODIFIED),
        ("GET", {"HTTP_IF_NONE_MATCH": 'W/"v1"'}, "200 OK", STORED, NOT_MODIFIED),
        ("GET", {"HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", WEAK, NOT_MODIFIED),
        ("GET", {"HTTP_IF_NONE_MATCH": '"v0", "v1"'}, "200 OK", STORED, NOT_MODIFIED),
        ("GET", {"HTTP_IF_NONE_MATCH": "*"}, "200 OK", STORED, NOT_MODIFIED),
        ("HEAD", {"HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", STORED, NOT_MODIFIED),
        ("GET", {"HTTP_IF_NONE_MATCH": '"v2"'}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", [("Content-Type", "text/html")], SERVE),
        ("POST", {"HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", STORED, FAILED),  # not GET/HEAD: 412
        # 13.1.3 If-Modified-Since: GET/HEAD only, ignored without Last-Modified or a valid date.
        ("GET", {"HTTP_IF_MODIFIED_SINCE": http_date(NOW)}, "200 OK", STORED, NOT_MODIFIED),
        ("GET", {"HTTP_IF_MODIFIED_SINCE": LATER}, "200 OK", STORED, NOT_MODIFIED),
        ("GET", {"HTTP_IF_MODIFIED_SINCE": EARLIER}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_MODIFIED_SINCE": "garbage"}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_MODIFIED_SINCE": LATER}, "200 OK", [("ETag", '"v1"')], SERVE),
        # RFC 9111 4.3.2: without Last-Modified, the stored Date stands in for it.
        ("GET", {"HTTP_IF_MODIFIED_SINCE": LATER}, "200 OK", [("Date", http_date(NOW))], NOT_MODIFIED),
        ("GET", {"HTTP_IF_MODIFIED_SINCE": EARLIER}, "200 OK", [("Date", http_date(NOW))], SERVE),
        ("POST", {"HTTP_IF_MODIFIED_SINCE": LATER}, "200 OK", STORED, SERVE),
        # 13.2.2 step 3 before 4: If-None-Match takes precedence over If-Modified-Since.
        ("GET", {"HTTP_IF_NONE_MATCH": '"v2"', "HTTP_IF_MODIFIED_SINCE": LATER}, "200 OK", STORED, SERVE),
        (
            "GET",
            {"HTTP_IF_NONE_MATCH": '"v1"', "HTTP_IF_MODIFIED_SINCE": EARLIER},
            "200 OK",
            STORED,
            NOT_MODIFIED,
        ),
        # 13.1.1 If-Match: strong comparison; a weak stored tag never matches; "*" does.
        ("GET", {"HTTP_IF_MATCH": '"v1"'}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_MATCH": '"v0", "v1"'}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_MATCH": '"v2"'}, "200 OK", STORED, FAILED),
        ("GET", {"HTTP_IF_MATCH": 'W/"v1"'}, "200 OK", STORED, FAILED),
        ("GET", {"HTTP_IF_MATCH": '"v1"'}, "200 OK", WEAK, FAILED),
        ("GET", {"HTTP_IF_MATCH": "*"}, "200 OK", WEAK, SERVE),
        ("GET", {"HTTP_IF_MATCH": '"v1"'}, "200 OK", [("Content-Type", "text/html")], FAILED),
        # 13.2.2 step 1 before 3: a failed If-Match is 412 even if If-None-Match would give 304.
        ("GET", {"HTTP_IF_MATCH": '"v2"', "HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", STORED, FAILED),
        ("GET", {"HTTP_IF_MATCH": '"v1"', "HTTP_IF_NONE_MATCH": '"v1"'}, "200 OK", STORED, NOT_MODIFIED),
        # 13.1.4 If-Unmodified-Since: only without If-Match; ignored without Last-Modified.
        ("GET", {"HTTP_IF_UNMODIFIED_SINCE": EARLIER}, "200 OK", STORED, FAILED),
        ("GET", {"HTTP_IF_UNMODIFIED_SINCE": LATER}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_UNMODIFIED_SINCE": "garbage"}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_IF_UNMODIFIED_SINCE": EARLIER}, "200 OK", [("ETag", '"v1"')], SERVE),
        ("GET", {"HTTP_IF_MATCH": '"v1"', "HTTP_IF_UNMODIFIED_SINCE": EARLIER}, "200 OK", STORED, SERVE),
        # 13.2.2 step 2 before 4.
        (
            "GET",
            {"HTTP_IF_UNMODIFIED_SINCE": EARLIER, "HTTP_IF_MODIFIED_SINCE": LATER},
            "200 OK",
            STORED,
            FAILED,
        ),
        # 13.2.1: a response that is not 2xx ignores every precondition.
        ("GET", {"HTTP_IF_NONE_MATCH": '"v1"'}, "404 Not Found", STORED, SERVE),
        ("GET", {"HTTP_IF_MATCH": '"v2"'}, "404 Not Found", STORED, SERVE),
        ("GET", {"HTTP_IF_MODIFIED_SINCE": LATER}, "301 Moved Permanently", STORED, SERVE),
        ("GET", {"HTTP_IF_NONE_MATCH": '"v1"'}, "203 Non-Authoritative Information", STORED, NOT_MODIFIED),
        # No precondition at all.
        ("GET", {}, "200 OK", STORED, SERVE),
        ("GET", {"HTTP_RANGE": "bytes=0-1"}, "200 OK", STORED, SERVE),
    ],
)
def test_evaluate_preconditions(
    method: str,
    request_headers: dict[str, str],
    status: str,
    stored: list[tuple[str, str]],
    expected: http.Precondition,
) -> None:
    environ = {"REQUEST_METHOD": method, **request_headers}
    assert http.evaluate_preconditions(environ, status, stored) is expected


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
        ({"HTTP_IF_NONE_MATCH": '"a"'}, True),
        ({"HTTP_IF_MODIFIED_SINCE": "x"}, True),
        ({"HTTP_IF_MATCH": "*"}, True),
        ({"HTTP_IF_UNMODIFIED_SINCE": "x"}, True),
        ({"HTTP_RANGE": "bytes=0-1", "HTTP_IF_RANGE": '"a"'}, False),
        ({}, False),
    ],
)
def test_has_preconditions(environ: dict[str, str], expected: bool) -> None:
    assert http.has_preconditions(environ) is expected
