from __future__ import annotations

from collections.abc import Callable

import pytest

from wsgicache.variants import STAR, normalise_value, secondary_key, selecting_values, vary_names

H = list[tuple[str, str]]


def request(lines: H) -> Callable[[str], str | None]:
    """A ``get_header`` over request field lines: lower-case name in, lines joined with ", " out."""

    def get_header(name: str) -> str | None:
        values = [value for key, value in lines if key.lower() == name]
        return ", ".join(values) if values else None

    return get_header


# RFC 9110 12.5.5 (Vary = #( "*" / field-name )) and RFC 9111 4.1; cache-tests vary-parse.mjs.
@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], ()),
        ([("Content-Type", "text/plain")], ()),
        ([("Vary", "")], ()),
        ([("Vary", "Foo")], ("foo",)),
        ([("vary", "Foo, Bar, Baz")], ("bar", "baz", "foo")),
        ([("Vary", " Accept-Encoding ,accept-encoding,, ")], ("accept-encoding",)),
        ([("Vary", "Foo"), ("VARY", "Bar")], ("bar", "foo")),
        ([("Vary", "*")], STAR),  # vary-syntax-star
        ([("Vary", "*, *")], STAR),  # vary-syntax-star-star
        ([("Vary", "*"), ("Vary", "*")], STAR),  # vary-syntax-star-star-lines
        ([("Vary", ", *")], STAR),  # vary-syntax-empty-star
        ([("Vary", ""), ("Vary", "*")], STAR),  # vary-syntax-empty-star-lines
        ([("Vary", "*, Foo")], STAR),  # vary-syntax-star-foo
        ([("Vary", "Foo, *")], STAR),  # vary-syntax-foo-star
        ([("Vary", "Foo"), ("Vary", "Bar, *")], STAR),
        ([("Vary", '"Foo"')], STAR),  # not a field name: matches nothing, like "*"
        ([("Vary", "User Agent")], STAR),
    ],
)
def test_vary_names(headers: H, expected: tuple[str, ...] | str) -> None:
    assert vary_names(headers) == expected


# RFC 9111 4.1: whitespace where the syntax allows it, combined field lines and case-insensitive
# values may be normalised; RFC 9110 5.6.1 (lists), 12.5.1-12.5.4 (Accept-*), 5.6.4 (quoted strings).
@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("foo", "1", "1"),
        ("foo", " 1, 2 ", "1,2"),  # vary-normalise-space
        ("foo", "1,2", "1,2"),
        ("foo", "1,\t 2", "1,2"),
        ("foo", "A, b", "A,b"),  # unknown fields keep their case
        ("foo", '"a , b", c', '"a , b",c'),  # quoted strings are kept as they are
        ("foo", r'"a \", b" , c', r'"a \", b",c'),
        ("foo", "1,,2", "1,,2"),
        ("foo", "a ; b", "a ; b"),  # ";" is only a delimiter in the Accept family
        ("accept-language", " en ,   de", "en,de"),  # vary-normalise-lang-space
        ("Accept-Language", "eN, De", "en,de"),  # vary-normalise-lang-case
        ("accept-language", "de, en", "de,en"),  # order kept: a preference to some applications
        ("accept-language", "fr ; q=0.5, de;q=1.0", "fr;q=0.5,de;q=1.0"),
        ("accept-encoding", "GZIP , Br", "gzip,br"),
        (
            "accept",
            "Text/HTML ;q=0.9, */*",
            "Text/HTML;q=0.9,*/*",
        ),  # media type parameters may be case-sensitive
        ("user-agent", "Mozilla/5.0 (X11; Linux)", "Mozilla/5.0 (X11; Linux)"),
    ],
)
def test_normalise_value(name: str, value: str, expected: str) -> None:
    assert normalise_value(name, value) == expected


# RFC 9111 4.1: an absent selecting field only matches an absent one; an empty field is present.
@pytest.mark.parametrize(
    ("names", "lines", "expected"),
    [
        ((), [("Foo", "1")], ()),
        (("foo",), [], (None,)),
        (("foo",), [("Foo", "")], ("",)),
        (("foo",), [("FOO", " 1 ")], ("1",)),
        (("foo",), [("Foo", "1"), ("Foo", "2")], ("1,2",)),  # vary-normalise-combine
        (("bar", "foo"), [("Foo", "1"), ("Other", "3")], (None, "1")),
        (("accept-language",), [("Accept-Language", "EN")], ("en",)),
    ],
)
def test_selecting_values(names: tuple[str, ...], lines: H, expected: tuple[str | None, ...]) -> None:
    assert selecting_values(names, request(lines)) == expected


# RFC 9111 4.1 and cache-tests vary.mjs: does the stored request (with the response's Vary) select the
# same variant as the presented request? Row ids are the suite's test ids.
@pytest.mark.parametrize(
    ("vary", "stored", "presented", "same"),
    [
        pytest.param("Foo", [("Foo", "1")], [("Foo", "1")], True, id="vary-match"),
        pytest.param("Foo", [("Foo", "1")], [("Foo", "2")], False, id="vary-no-match"),
        pytest.param("Foo", [], [("Foo", "1")], False, id="vary-omit-stored"),
        pytest.param("Foo", [("Foo", "1")], [], False, id="vary-omit"),
        pytest.param(
            "Foo", [("Foo", "1"), ("Other", "2")], [("Foo", "1"), ("Other", "3")], True, id="vary-cache-key"
        ),
        pytest.param(
            "Foo, Bar",
            [("Foo", "1"), ("Bar", "abc")],
            [("Bar", "abc"), ("Foo", "1")],
            True,
            id="vary-2-match",
        ),
        pytest.param(
            "Foo, Bar",
            [("Foo", "1"), ("Bar", "abc")],
            [("Foo", "2"), ("Bar", "abc")],
            False,
            id="vary-2-no-match",
        ),
        pytest.param("Foo, Bar", [("Foo", "1"), ("Bar", "abc")], [], False, id="vary-2-match-omit"),
        pytest.param(
            "Foo, Bar, Baz",
            [("Foo", "1"), ("Bar", "abc"), ("Baz", "789")],
            [("Baz", "789"), ("Foo", "1"), ("Bar", "abc")],
            True,
            id="vary-3-match",
        ),
        pytest.param(
            "Foo, Bar, Baz",
            [("Foo", "1"), ("Bar", "abc"), ("Baz", "789")],
            [("Foo", "2"), ("Bar", "abc"), ("Baz", "789")],
            False,
            id="vary-3-no-match",
        ),
        pytest.param(
            "Foo, Bar, Baz",
            [("Foo", "1"), ("Bar", "abc"), ("Baz", "789")],
            [("Foo", "1"), ("Baz", "789"), ("Bar", "abcde")],
            False,
            id="vary-3-order",
        ),
        pytest.param(
            "Foo, Bar, Baz",
            [("Foo", "1"), ("Baz", "789")],
            [("Foo", "1"), ("Baz", "789")],
            True,
            id="vary-3-omit",
        ),
        pytest.param(
            "Foo", [("Foo", "1, 2")], [("Foo", "1"), ("Foo", "2")], True, id="vary-normalise-combine"
        ),
        pytest.param("Foo", [("Foo", "1,2")], [("Foo", " 1, 2 ")], True, id="vary-normalise-space"),
        pytest.param(
            "Accept-Language",
            [("Accept-Language", "en, de")],
            [("Accept-Language", "eN, De")],
            True,
            id="vary-normalise-lang-case",
        ),
        pytest.param(
            "Accept-Language",
            [("Accept-Language", "en, de")],
            [("Accept-Language", " en ,   de")],
            True,
            id="vary-normalise-lang-space",
        ),
        # optimal, not done: the order of equally weighted languages is a preference to some
        # applications (RFC 9110 12.5.4; Django picks the first supported one), so it is kept
        pytest.param(
            "Accept-Language",
            [("Accept-Language", "en, de")],
            [("Accept-Language", "de, en")],
            False,
            id="vary-normalise-lang-order",
        ),
        # optimal, not done: choosing among variants by Content-Language and qvalues
        pytest.param(
            "Accept-Language",
            [("Accept-Language", "en, de")],
            [("Accept-Language", "fr;q=0.5, de;q=1.0")],
            False,
            id="vary-normalise-lang-select",
        ),
        pytest.param("Foo", [("Foo", "a")], [("Foo", "A")], False, id="value-case-significant"),
        pytest.param("Foo", [("Foo", "")], [], False, id="empty-is-not-absent"),
        pytest.param("foo, FOO", [("Foo", "1")], [("fOO", "1")], True, id="name-case-insensitive"),
    ],
)
def test_vary_matching(vary: str, stored: H, presented: H, same: bool) -> None:
    names = vary_names([("Vary", vary)])
    assert names != STAR
    stored_key = secondary_key(names, selecting_values(names, request(stored)))
    presented_key = secondary_key(names, selecting_values(names, request(presented)))
    assert (stored_key == presented_key) is same


# The secondary key is unambiguous (keys.py's length-prefixing, applied to names and values).
@pytest.mark.parametrize(
    ("left", "right"),
    [
        ((("a",), ("b",)), (("ab",), (None,))),
        ((("a", "b"), ("1", "2")), (("a",), ("1,b2",))),
        ((("a", "b"), ("x", "")), (("a", "b"), ("x", None))),
        ((("a",), ("",)), (("a",), (None,))),
        ((("a",), ("1",)), (("b",), ("1",))),
        (((), ()), (("a",), (None,))),
    ],
)
def test_secondary_key_distinct(
    left: tuple[tuple[str, ...], tuple[str | None, ...]],
    right: tuple[tuple[str, ...], tuple[str | None, ...]],
) -> None:
    assert secondary_key(*left) != secondary_key(*right)


def test_secondary_key_stable() -> None:
    key = secondary_key(("foo",), ("1",))
    assert key == secondary_key(["foo"], ["1"])
    assert len(key) == 32
    assert int(key, 16) >= 0
    with pytest.raises(ValueError, match="1 names but 2 values"):
        secondary_key(("foo",), ("1", "2"))
