from __future__ import annotations

import pytest

from wsgicache.ranges import RangeAnswer, RangeOutcome, answer_range, if_range_holds

H = list[tuple[str, str]]
BODY = b"01234567890"  # cache-tests partial.mjs, 11 bytes
BODY_A = b"0123456789A"
STORED: H = [("Content-Type", "text/plain"), ("Content-Length", "11"), ("A", "1")]
LM = "Wed, 01 Jan 2020 00:00:00 GMT"
LM_RFC850 = "Wednesday, 01-Jan-20 00:00:00 GMT"
DATE_1S_LATER = "Wed, 01 Jan 2020 00:00:01 GMT"
LM_EPOCH = 1_577_836_800.0  # LM as a Unix time


# RFC 9110 14.1.1-14.1.3 (byte ranges: first-last, open end, suffix, clamping, satisfiability) and
# 14.2 (Range), 15.3.7 (206), 15.5.17 (416); cache-tests partial.mjs, the partial-store-complete-* rows.
@pytest.mark.parametrize(
    ("range_header", "body", "outcome", "content_range", "part"),
    [
        ("bytes=0-1", BODY, RangeOutcome.PARTIAL, "bytes 0-1/11", b"01"),  # ...-reuse-partial
        ("bytes=1-", BODY, RangeOutcome.PARTIAL, "bytes 1-10/11", b"1234567890"),  # ...-no-last
        ("bytes=-1", BODY_A, RangeOutcome.PARTIAL, "bytes 10-10/11", b"A"),  # ...-suffix
        ("bytes=5-5", BODY, RangeOutcome.PARTIAL, "bytes 5-5/11", b"5"),
        ("bytes=10-10", BODY, RangeOutcome.PARTIAL, "bytes 10-10/11", b"0"),
        ("bytes=3-1000", BODY, RangeOutcome.PARTIAL, "bytes 3-10/11", b"34567890"),  # last-pos clamped
        ("bytes=-500", BODY, RangeOutcome.PARTIAL, "bytes 0-10/11", BODY),  # suffix longer: all of it
        ("bytes=-11", BODY, RangeOutcome.PARTIAL, "bytes 0-10/11", BODY),
        ("bytes=0-", BODY, RangeOutcome.PARTIAL, "bytes 0-10/11", BODY),
        ("Bytes = 2-3", BODY, RangeOutcome.PARTIAL, "bytes 2-3/11", b"23"),  # range unit is case-insensitive
        ("bytes=11-", BODY, RangeOutcome.UNSATISFIABLE, "bytes */11", b""),
        ("bytes=11-20", BODY, RangeOutcome.UNSATISFIABLE, "bytes */11", b""),
        ("bytes=-0", BODY, RangeOutcome.UNSATISFIABLE, "bytes */11", b""),  # zero suffix-length
        ("bytes=99999999999999999999999-", BODY, RangeOutcome.UNSATISFIABLE, "bytes */11", b""),
    ],
)
def test_answer_range(
    range_header: str, body: bytes, outcome: RangeOutcome, content_range: str, part: bytes
) -> None:
    answer = answer_range(range_header, None, "200 OK", STORED, body)
    assert answer.outcome is outcome
    assert bytes(answer.body) == part
    assert ("Content-Range", content_range) in answer.headers
    if outcome is RangeOutcome.PARTIAL:
        assert answer.status == "206 Partial Content"
        assert isinstance(answer.body, memoryview)
        # partial-use-stored-headers: stored fields kept, Content-Length is the part's
        assert answer.headers == [
            ("Content-Type", "text/plain"),
            ("Content-Length", str(len(part))),
            ("A", "1"),
            ("Content-Range", content_range),
        ]
    else:
        assert answer.status == "416 Range Not Satisfiable"
        assert answer.headers == [
            ("Content-Range", content_range),
            ("Content-Length", "0"),
            ("Content-Type", "text/plain; charset=utf-8"),
        ]


# RFC 9110 14.2: Range is ignored (the whole stored response is sent) for methods other than GET,
# unknown units, invalid range sets; this cache also ignores several ranges (no multipart), empty
# content (14.2 allows it), responses that are not a complete 200, and Accept-Ranges: none.
@pytest.mark.parametrize(
    ("range_header", "status", "headers", "body", "method"),
    [
        ("bytes=0-1", "200 OK", STORED, BODY, "HEAD"),
        ("bytes=0-1", "200 OK", STORED, BODY, "POST"),
        ("bytes=0-1", "404 Not Found", STORED, BODY, "GET"),
        ("bytes=0-1", "203 Non-Authoritative Information", STORED, BODY, "GET"),
        ("bytes=0-1", "206 Partial Content", [("Content-Range", "bytes 0-10/20")], BODY, "GET"),
        ("bytes=0-1", "200 OK", [("Content-Range", "bytes 0-10/11")], BODY, "GET"),
        ("bytes=0-1", "200 OK", [("Accept-Ranges", "None")], BODY, "GET"),
        ("bytes=0-1", "200 OK", [], b"", "GET"),
        ("bytes=-5", "200 OK", [], b"", "GET"),
        ("items=0-1", "200 OK", STORED, BODY, "GET"),
        ("bytes=0-1,3-4", "200 OK", STORED, BODY, "GET"),
        ("bytes=0-0,-1", "200 OK", STORED, BODY, "GET"),
        ("bytes=1-0", "200 OK", STORED, BODY, "GET"),  # last-pos < first-pos: invalid
        ("bytes=a-b", "200 OK", STORED, BODY, "GET"),
        ("bytes=", "200 OK", STORED, BODY, "GET"),
        ("bytes 0-1", "200 OK", STORED, BODY, "GET"),
        ("", "200 OK", STORED, BODY, "GET"),
        ("bytes=+1-2", "200 OK", STORED, BODY, "GET"),
        ("bytes=20-30,40-50", "200 OK", STORED, BODY, "GET"),  # several ranges, even unsatisfiable ones
    ],
)
def test_answer_range_full(range_header: str, status: str, headers: H, body: bytes, method: str) -> None:
    answer = answer_range(range_header, None, status, headers, body, method=method)
    assert answer == RangeAnswer(RangeOutcome.FULL, status, headers, body)
    assert answer.body is body


# RFC 9110 13.1.5 (If-Range): an entity-tag matches by strong comparison only; an HTTP-date matches
# a Last-Modified exactly, and only if that is a strong validator (8.8.2.2: >= 1 s before Date).
@pytest.mark.parametrize(
    ("if_range", "headers", "generated_at", "holds"),
    [
        ('"abc"', [("ETag", '"abc"')], None, True),
        (' "abc" ', [("ETag", '"abc" ')], None, True),
        ('"abc"', [("ETag", '"abd"')], None, False),
        ('"abc"', [], None, False),
        ('W/"abc"', [("ETag", 'W/"abc"')], None, False),  # weak never matches
        ('"abc"', [("ETag", 'W/"abc"')], None, False),
        ("abc", [("ETag", "abc")], None, False),  # not an entity-tag, not a date
        ('"abc"', [("ETag", "abc")], None, False),
        (LM, [("Last-Modified", LM), ("Date", DATE_1S_LATER)], None, True),
        (LM_RFC850, [("Last-Modified", LM), ("Date", DATE_1S_LATER)], None, True),  # same instant
        (LM, [("Last-Modified", LM), ("Date", LM)], None, False),  # Date = Last-Modified: weak
        (LM, [("Last-Modified", LM)], None, False),  # no Date, no generation time: weak
        (LM, [("Last-Modified", LM)], LM_EPOCH + 1, True),
        (LM, [("Last-Modified", LM)], LM_EPOCH + 0.5, False),
        (DATE_1S_LATER, [("Last-Modified", LM), ("Date", "Thu, 02 Jan 2020 00:00:00 GMT")], None, False),
        (LM, [("ETag", '"abc"'), ("Date", DATE_1S_LATER)], None, False),
        ("not a date", [("Last-Modified", LM), ("Date", DATE_1S_LATER)], None, False),
    ],
)
def test_if_range_holds(if_range: str, headers: H, generated_at: float | None, holds: bool) -> None:
    assert if_range_holds(if_range, headers, generated_at=generated_at) is holds


# RFC 9110 13.1.5 and 13.2.2 step 5: If-Range false means the Range is ignored (200, even when
# the range is unsatisfiable); true means the Range is processed.
@pytest.mark.parametrize(
    ("range_header", "if_range", "outcome"),
    [
        ("bytes=0-1", '"v1"', RangeOutcome.PARTIAL),
        ("bytes=0-1", '"v2"', RangeOutcome.FULL),
        ("bytes=0-1", 'W/"v1"', RangeOutcome.FULL),
        ("bytes=50-", '"v1"', RangeOutcome.UNSATISFIABLE),
        ("bytes=50-", '"v2"', RangeOutcome.FULL),
        ("bytes=0-1", LM, RangeOutcome.PARTIAL),
        ("bytes=0-1", DATE_1S_LATER, RangeOutcome.FULL),
        ("bytes=0-1", "", RangeOutcome.FULL),
    ],
)
def test_answer_range_if_range(range_header: str, if_range: str, outcome: RangeOutcome) -> None:
    headers = [("ETag", '"v1"'), ("Last-Modified", LM), ("Date", DATE_1S_LATER)]
    assert answer_range(range_header, if_range, "200 OK", headers, BODY).outcome is outcome


# RFC 9110 15.3.7: a 206 carries Content-Range and the representation's other fields; the
# Content-Length is the part's (added when the stored response had none, a single line).
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], [("Content-Length", "2"), ("Content-Range", "bytes 0-1/11")]),
        (
            [("content-length", "11"), ("X", "1"), ("Content-Length", "11")],
            [("content-length", "2"), ("X", "1"), ("Content-Range", "bytes 0-1/11")],
        ),
        (
            [("ETag", '"v1"'), ("Cache-Control", "max-age=60")],
            [
                ("ETag", '"v1"'),
                ("Cache-Control", "max-age=60"),
                ("Content-Length", "2"),
                ("Content-Range", "bytes 0-1/11"),
            ],
        ),
    ],
)
def test_answer_range_partial_headers(headers: H, expected: H) -> None:
    answer = answer_range("bytes=0-1", None, "200 OK", headers, BODY)
    assert answer.headers == expected
    assert answer.status == "206 Partial Content"
