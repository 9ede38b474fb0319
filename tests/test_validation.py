from __future__ import annotations

import pytest

from wsgicache.validation import (
    Freshening,
    conditional_headers,
    has_validator,
    select_for_update,
    storable_headers,
    updated_headers,
)

H = list[tuple[str, str]]
NONE: frozenset[str] = frozenset()
LM = "Wed, 01 Jan 2020 00:00:00 GMT"
LM_RFC850 = "Wednesday, 01-Jan-20 00:00:00 GMT"
LM_LATER = "Thu, 02 Jan 2020 00:00:00 GMT"


# RFC 9111 3.1 (storing header fields) and cache-tests headers.mjs: Connection and the fields it
# names, hop-by-hop and proxy-specific fields, Age, and fields named by private="..." / no-cache="..."
# are not stored; everything else is, in order and spelling.
@pytest.mark.parametrize(
    ("headers", "private", "no_cache", "expected"),
    [
        (
            [("Content-Type", "text/plain"), ("X-A", "1")],
            NONE,
            NONE,
            [("Content-Type", "text/plain"), ("X-A", "1")],
        ),
        ([("Connection", "close"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        # headers-omit-headers-listed-in-Connection: Connection: a, b
        ([("Connection", "a, b"), ("a", "1"), ("b", "2"), ("c", "3")], NONE, NONE, [("c", "3")]),
        ([("connection", "X-Foo"), ("connection", "x-bar"), ("X-FOO", "1"), ("X-Bar", "2")], NONE, NONE, []),
        ([("Keep-Alive", "timeout=5"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Proxy-Connection", "keep-alive"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("TE", "trailers"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Transfer-Encoding", "chunked"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Upgrade", "h2c"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Trailer", "Expires"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Proxy-Authenticate", "Basic"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Proxy-Authentication-Info", "a=b"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Proxy-Authorization", "Basic x"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("Age", "10"), ("X-A", "1")], NONE, NONE, [("X-A", "1")]),
        ([("set-cookie", "a=1"), ("X-A", "1")], frozenset({"set-cookie"}), NONE, [("X-A", "1")]),
        ([("X-Secret", "s"), ("X-A", "1")], NONE, frozenset({"x-secret"}), [("X-A", "1")]),
        # a store-X header from headers.mjs that must be kept, with repeats and spelling
        (
            [("Set-Cookie", "a=b"), ("set-cookie", "c=d"), ("Content-MD5", "x")],
            NONE,
            NONE,
            [("Set-Cookie", "a=b"), ("set-cookie", "c=d"), ("Content-MD5", "x")],
        ),
        ([("X-B", "2"), ("Age", "1"), ("X-A", "1")], NONE, NONE, [("X-B", "2"), ("X-A", "1")]),
    ],
)
def test_storable_headers(headers: H, private: frozenset[str], no_cache: frozenset[str], expected: H) -> None:
    assert storable_headers(headers, private_fields=private, no_cache_fields=no_cache) == expected


# RFC 9110 8.8 (validators): ETag, or a Last-Modified that is an HTTP-date.
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], False),
        ([("ETag", '"a"')], True),
        ([("etag", 'W/"a"')], True),
        ([("ETag", "")], False),
        ([("Last-Modified", LM)], True),
        ([("Last-Modified", "yesterday")], False),
        ([("Date", LM), ("Expires", LM)], False),
    ],
)
def test_has_validator(headers: H, expected: bool) -> None:
    assert has_validator(headers) is expected


# RFC 9111 4.3.1 (sending a validation request) and RFC 9110 13.1.3; cache-tests
# conditional-etag.mjs (strong, weak, unquoted ETag generate) and update304.mjs (Last-Modified).
@pytest.mark.parametrize(
    ("stored", "expected"),
    [
        ([], []),
        ([("ETag", '"abcdef"')], [("If-None-Match", '"abcdef"')]),
        ([("ETag", 'W/"abcdef"')], [("If-None-Match", 'W/"abcdef"')]),
        ([("ETag", "abcdef")], [("If-None-Match", '"abcdef"')]),  # conditional-etag-strong-generate-unquoted
        ([("ETag", ' "x" ')], [("If-None-Match", '"x"')]),
        ([("Last-Modified", LM)], [("If-Modified-Since", LM)]),
        ([("Last-Modified", LM_RFC850)], [("If-Modified-Since", LM_RFC850)]),
        ([("Last-Modified", "not a date")], []),
        ([("Last-Modified", LM), ("ETag", '"e"')], [("If-None-Match", '"e"'), ("If-Modified-Since", LM)]),
        ([("ETag", '"first"'), ("ETag", '"second"')], [("If-None-Match", '"first"')]),
    ],
)
def test_conditional_headers(stored: H, expected: H) -> None:
    assert conditional_headers(stored) == expected


# RFC 9111 4.3.4 (freshening stored responses upon validation): strong validators in the 304 must
# be in the stored response; else weak validators must correspond; else neither has a validator.
@pytest.mark.parametrize(
    ("stored", "new", "expected"),
    [
        ([("ETag", '"a"')], [("ETag", '"a"')], Freshening.UPDATE),
        ([("ETag", '"a"')], [("ETag", '"b"')], Freshening.NO_MATCH),  # 304-etag-update-response-ETag (check)
        ([("ETag", 'W/"a"')], [("ETag", '"a"')], Freshening.NO_MATCH),  # strong comparison
        ([], [("ETag", '"a"')], Freshening.NO_MATCH),
        (
            [("ETag", '"a"'), ("Last-Modified", LM)],
            [("ETag", '"a"'), ("Last-Modified", LM_LATER)],
            Freshening.UPDATE,
        ),
        ([("ETag", 'W/"a"')], [("ETag", 'W/"a"')], Freshening.UPDATE),
        ([("ETag", '"a"')], [("ETag", 'W/"a"')], Freshening.UPDATE),  # weak comparison
        ([("ETag", 'W/"a"')], [("ETag", 'W/"b"')], Freshening.NO_MATCH),
        (
            [("ETag", 'W/"a"'), ("Last-Modified", LM)],
            [("ETag", 'W/"a"'), ("Last-Modified", LM_LATER)],
            Freshening.NO_MATCH,
        ),
        (
            [("Last-Modified", LM)],
            [("Last-Modified", LM)],
            Freshening.UPDATE,
        ),  # 304-lm-use-stored-Test-Header
        ([("Last-Modified", LM)], [("Last-Modified", LM_RFC850)], Freshening.UPDATE),
        ([("Last-Modified", LM)], [("Last-Modified", LM_LATER)], Freshening.NO_MATCH),
        ([], [("Last-Modified", LM)], Freshening.NO_MATCH),
        ([], [("Cache-Control", "max-age=5")], Freshening.UPDATE),
        ([("ETag", '"a"')], [("Cache-Control", "max-age=5")], Freshening.NO_MATCH),
        ([("Last-Modified", LM)], [], Freshening.NO_MATCH),
        # a Content-Length in a 304 is not compared (it is not applied either)
        (
            [("ETag", '"a"'), ("Content-Length", "36")],
            [("ETag", '"a"'), ("Content-Length", "10")],
            Freshening.UPDATE,
        ),
    ],
)
def test_select_for_update(stored: H, new: H, expected: Freshening) -> None:
    assert select_for_update(stored, new) is expected


# RFC 9111 4.3.4 and RFC 9110 15.4.5: a 304 without validators that answers the cache's own
# revalidation of the one stored response (cache-tests cc-resp-no-cache-revalidate: the origin
# sends no ETag on its 304) applies to it; validators it does carry must still match.
@pytest.mark.parametrize(
    ("stored", "new", "expected"),
    [
        ([("ETag", '"a"')], [("Cache-Control", "max-age=5")], Freshening.UPDATE),
        ([("Last-Modified", LM)], [], Freshening.UPDATE),
        ([("ETag", '"a"')], [("ETag", '"b"')], Freshening.NO_MATCH),
        ([("Last-Modified", LM)], [("Last-Modified", LM_LATER)], Freshening.NO_MATCH),
    ],
)
def test_select_for_update_answering_own_revalidation(stored: H, new: H, expected: Freshening) -> None:
    assert select_for_update(stored, new, answers_revalidation=True) is expected


# RFC 9111 4.3.5 (freshening responses with HEAD): validators as for a 304, and a Content-Length in
# the HEAD response must equal the stored response's; cache-tests updateHead.mjs (no validators).
@pytest.mark.parametrize(
    ("stored", "new", "stored_length", "expected"),
    [
        (
            [("Template-A", "1")],
            [("Template-A", "2"), ("Cache-Control", "max-age=1000")],
            None,
            Freshening.UPDATE,
        ),
        (
            [("ETag", '"a"'), ("Content-Length", "5")],
            [("ETag", '"a"'), ("Content-Length", "5")],
            None,
            Freshening.UPDATE,
        ),
        (
            [("ETag", '"a"'), ("Content-Length", "5")],
            [("ETag", '"a"'), ("Content-Length", "6")],
            None,
            Freshening.NO_MATCH,
        ),
        ([("ETag", '"a"')], [("ETag", '"a"'), ("Content-Length", "5")], 5, Freshening.UPDATE),
        ([("ETag", '"a"')], [("ETag", '"a"'), ("Content-Length", "5")], 4, Freshening.NO_MATCH),
        ([("ETag", '"a"')], [("ETag", '"a"'), ("Content-Length", "5")], None, Freshening.NO_MATCH),
        (
            [("ETag", '"a"'), ("Content-Length", "5")],
            [("ETag", '"a"'), ("Content-Length", "five")],
            None,
            Freshening.NO_MATCH,
        ),
        (
            [("ETag", '"a"'), ("Content-Length", "5")],
            [("ETag", '"b"'), ("Content-Length", "5")],
            None,
            Freshening.NO_MATCH,
        ),
        ([("ETag", '"a"')], [("Content-Length", "5")], 5, Freshening.NO_MATCH),
    ],
)
def test_select_for_update_head(stored: H, new: H, stored_length: int | None, expected: Freshening) -> None:
    assert select_for_update(stored, new, head=True, stored_length=stored_length) is expected


# RFC 9111 3.2 (updating stored header fields): fields of the new response replace all stored
# lines of the same name, except fields not stored (3.1), Content-Length and Content-Range.
@pytest.mark.parametrize(
    ("stored", "new", "expected"),
    [
        ([("A", "1"), ("B", "2")], [], [("A", "1"), ("B", "2")]),
        ([("A", "1"), ("B", "2")], [("a", "3")], [("a", "3"), ("B", "2")]),
        (
            [("A", "1"), ("B", "2"), ("A", "4")],
            [("A", "5"), ("A", "6")],
            [("A", "5"), ("A", "6"), ("B", "2")],
        ),
        ([("A", "1")], [("C", "3"), ("B", "2")], [("A", "1"), ("C", "3"), ("B", "2")]),
        ([("Content-Length", "36")], [("Content-Length", "10")], [("Content-Length", "36")]),
        ([("A", "1")], [("Content-Length", "10")], [("A", "1")]),
        ([("A", "1")], [("Content-Range", "bytes 0-1/2")], [("A", "1")]),
        ([("A", "1")], [("Age", "5"), ("Transfer-Encoding", "chunked"), ("Keep-Alive", "5")], [("A", "1")]),
        ([("A", "1"), ("B", "2")], [("Connection", "B"), ("B", "3")], [("A", "1"), ("B", "2")]),
        (
            [("Content-Type", "text/plain")],
            [("Content-Type", "text/plain;charset=utf-8")],
            [("Content-Type", "text/plain;charset=utf-8")],
        ),
        (
            [("Date", LM), ("Cache-Control", "max-age=1")],
            [("Date", LM_LATER), ("Cache-Control", "max-age=3600")],
            [("Date", LM_LATER), ("Cache-Control", "max-age=3600")],
        ),
    ],
)
def test_updated_headers(stored: H, new: H, expected: H) -> None:
    assert updated_headers(stored, new) == expected


# cache-tests update304.mjs with tests/lib/header-list.mjs: store a 200 with value A and an ETag, answer
# the revalidation with a 304 carrying value B; "required" rows must come out as the suite says,
# "check" rows as RFC 9111 3.2 says (update, except Content-Range, which 3.2 lets a cache omit).
# Headers the suite marks noStore (Connection, Keep-Alive, TE, ...) are skipped by the suite here.
@pytest.mark.parametrize(
    ("name", "value_a", "value_b", "expected"),
    [
        ("Test-Header", "A", "B", "B"),  # required
        ("X-Test-Header", "A", "B", "B"),  # required
        ("Content-Foo", "A", "B", "B"),  # required
        ("X-Content-Foo", "A", "B", "B"),  # required
        ("Cache-Control", "max-age=1", "max-age=3600", "max-age=3600"),  # required
        ("Content-Length", "36", "10", "36"),  # required: must not update
        ("Content-Encoding", "A", "B", "B"),  # check
        ("Content-Location", "/foo", "/bar", "/bar"),  # check
        (
            "Content-MD5",
            "rL0Y20zC+Fzt72VPzMSk2A==",
            "N7UdGUp1E+RbVvZSTy1R8g==",
            "N7UdGUp1E+RbVvZSTy1R8g==",
        ),  # check
        ("Content-Range", "A", "B", "A"),  # check: not updated (RFC 9111 3.2 "automatically processed")
        (
            "Content-Security-Policy",
            "default-src 'self'",
            "default-src 'self' cdn.example.com",
            "default-src 'self' cdn.example.com",
        ),  # check
        ("Content-Type", "text/plain", "text/plain;charset=utf-8", "text/plain;charset=utf-8"),  # check
        ("Clear-Site-Data", "cache", "cookies", "cookies"),  # check
        (
            "Expires",
            "Fri, 01 Jan 2038 01:01:01 GMT",
            "Mon, 11 Jan 2038 11:11:11 GMT",
            "Mon, 11 Jan 2038 11:11:11 GMT",
        ),  # check
        ("Public-Key-Pins", "A", "B", "B"),  # check
        ("Set-Cookie", "a=b", "a=c", "a=c"),  # check
        ("Set-Cookie2", "a=b", "a=c", "a=c"),  # check
        ("X-Frame-Options", "deny", "sameorigin", "sameorigin"),  # check
        ("X-XSS-Protection", "1", "1; mode=block", "1; mode=block"),  # check
    ],
)
def test_update304_suite(name: str, value_a: str, value_b: str, expected: str) -> None:
    def response(value: str) -> H:
        headers = [("Date", LM), (name, value)]
        if name != "Cache-Control":
            headers.append(("Cache-Control", "max-age=2"))
        return [*headers, ("ETag", '"etag-1"')]

    stored = storable_headers(response(value_a))
    new = response(value_b)
    assert select_for_update(stored, new) is Freshening.UPDATE
    assert [value for key, value in updated_headers(stored, new) if key == name] == [expected]


# cache-tests update304.mjs, 304-etag-update-response-ETag (check): a 304 with another strong ETag
# selects no stored response (RFC 9111 4.3.4), so the stored ETag stays.
def test_update304_suite_etag() -> None:
    stored = [("Date", LM), ("ETag", '"abcdef"'), ("Cache-Control", "max-age=2")]
    assert select_for_update(stored, [("Date", LM), ("ETag", '"ghijkl"')]) is Freshening.NO_MATCH
