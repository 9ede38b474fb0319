from __future__ import annotations

import struct

import pytest

from wsgicache.errors import CorruptEntry
from wsgicache.storage import FORMAT_VERSION, Entry, decode, encode


def sample(body: bytes = b"hello", tags: tuple[tuple[str, bytes], ...] = ()) -> Entry:
    return Entry(
        "200 OK",
        [("Content-Type", "text/html; charset=utf-8"), ("X-Odd", "a:b:c"), ("Set-Thing", "")],
        body,
        stored_at=1700000000.25,
        fresh_until=1700000060.5,
        stale_until=1700000090.0,
        tags=tags,
    )


@pytest.mark.parametrize(
    "entry",
    [
        sample(),
        sample(b""),
        sample(bytes(range(256)) * 100),
        sample(b"x", tags=(("t:abc", b"0123456789abcdef"), ("t:{s3}:def", b"ffff"))),
        Entry("404 Not Found", [], b"", stored_at=0.0, fresh_until=1.0),
        Entry("200 OK", [("X-Latin", "caf\xe9")], b"b", stored_at=1.0, fresh_until=2.0),
    ],
)
def test_round_trip(entry: Entry) -> None:
    decoded = decode(encode(entry))
    assert decoded.status == entry.status
    assert decoded.headers == entry.headers
    assert decoded.body == entry.body
    assert decoded.stored_at == entry.stored_at
    assert decoded.fresh_until == entry.fresh_until
    assert decoded.stale_until == entry.stale_until
    assert decoded.tags == entry.tags


def test_stale_until_defaults_to_fresh_until() -> None:
    entry = Entry("200 OK", [], b"", stored_at=1.0, fresh_until=5.0)
    assert decode(encode(entry)).stale_until == 5.0


def test_no_pickle_in_format() -> None:
    data = encode(sample())
    assert data.startswith(b"WC" + bytes([FORMAT_VERSION]))
    assert b"\x80\x04" not in data[:4]


GOOD = encode(sample(b"body bytes", tags=(("t:abc", b"0011223344556677"),)))


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"WC",
        b"not an entry at all, just some bytes that are long enough to unpack" * 2,
        GOOD[:-1],  # truncated body
        GOOD + b"x",  # trailing garbage
        GOOD[:40],  # truncated header
        b"WC" + bytes([FORMAT_VERSION + 1]) + GOOD[3:],  # unknown version
        b"XX" + GOOD[2:],  # wrong magic
        flip(GOOD, 50),  # metadata byte flipped: checksum
        flip(GOOD, len(GOOD) - len(b"body bytes") - 3),  # flip inside the meta text
        GOOD[:28] + struct.pack(">H", 7) + GOOD[30:],  # wrong header count
        flip(GOOD, len(GOOD) - 1),  # last body byte flipped
        GOOD[: -len(b"body bytes")] + b"BODY BYTES",  # body replaced, same length
    ],
    ids=[
        "empty",
        "magic-only",
        "garbage",
        "truncated-body",
        "trailing",
        "truncated-head",
        "version",
        "magic",
        "flip-meta",
        "flip-meta-text",
        "header-count",
        "flip-body",
        "replace-body",
    ],
)
def test_corrupt_values_raise_corrupt_entry(raw: bytes) -> None:
    with pytest.raises(CorruptEntry):
        decode(raw)


@pytest.mark.parametrize(
    "headers",
    [[("Bad:Name", "v")], [("X", "line\nbreak")], [("", "empty name")], [("X\nY", "v")]],
)
def test_unstorable_headers_raise_value_error(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(ValueError):
        encode(Entry("200 OK", headers, b"", stored_at=0.0, fresh_until=1.0))


def test_non_latin1_header_is_rejected() -> None:
    with pytest.raises(UnicodeEncodeError):
        encode(Entry("200 OK", [("X", "\u2603")], b"", stored_at=0.0, fresh_until=1.0))
