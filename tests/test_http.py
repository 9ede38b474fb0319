from __future__ import annotations

import pytest
from werkzeug.http import http_date

from wsgicache import http

NOW = 1_700_000_000.0


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
