"""Request bodies: detecting them and reading them for the key without losing a byte."""

from __future__ import annotations

import io
from typing import Any

import pytest

from wsgicache.body import ReplayInput, content_length, has_body, read_body


def environ(body: bytes = b"", **extra: Any) -> dict[str, Any]:
    return {"wsgi.input": io.BytesIO(body), "SERVER_PROTOCOL": "HTTP/1.1", **extra}


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, 0),
        ({"CONTENT_LENGTH": ""}, 0),
        ({"CONTENT_LENGTH": "12"}, 12),
        ({"CONTENT_LENGTH": " 7 "}, 7),
        ({"CONTENT_LENGTH": "-1"}, None),
        ({"CONTENT_LENGTH": "1e3"}, None),
    ],
)
def test_content_length(extra: dict[str, str], expected: int | None) -> None:
    assert content_length(environ(**extra)) == expected


@pytest.mark.parametrize(
    ("body", "extra", "expected"),
    [
        (b"", {}, False),
        (b"", {"CONTENT_LENGTH": "0"}, False),
        (b"x", {"CONTENT_LENGTH": "1"}, True),
        (b"", {"CONTENT_LENGTH": "abc"}, True),  # malformed: treated as a body
        (b"", {"HTTP_TRANSFER_ENCODING": "chunked"}, True),
        (b"x", {"wsgi.input_terminated": True}, True),  # de-chunked, header dropped
        (b"x", {"wsgi.input_terminated": True, "SERVER_PROTOCOL": "HTTP/2"}, True),
        (b"", {"wsgi.input_terminated": True, "SERVER_PROTOCOL": "HTTP/2"}, False),
        (b"", {"wsgi.input_terminated": True}, False),
        (b"x", {"SERVER_PROTOCOL": "HTTP/2"}, False),  # not terminated: nothing may be read
    ],
)
def test_has_body(body: bytes, extra: dict[str, Any], expected: bool) -> None:
    env = environ(body, **extra)
    assert has_body(env) is expected
    assert env["wsgi.input"].read() == body  # a peeked byte is put back


@pytest.mark.parametrize(
    ("body", "extra", "limit", "expected", "left"),
    [
        (b"q=1", {"CONTENT_LENGTH": "3"}, 10, b"q=1", b"q=1"),
        (b"q=1&more", {"CONTENT_LENGTH": "3"}, 10, b"q=1", b"q=1"),  # never past the length
        (b"q=1", {"CONTENT_LENGTH": "30"}, 10, None, b"q=1"),  # over the limit: not read
        (b"q", {"CONTENT_LENGTH": "3"}, 10, None, b"q"),  # cut short
        (b"q=1", {"HTTP_TRANSFER_ENCODING": "chunked", "CONTENT_LENGTH": "3"}, 10, None, b"q=1"),
        (b"", {}, 10, b"", b""),
        (b"abc", {"wsgi.input_terminated": True, "SERVER_PROTOCOL": "HTTP/2"}, 10, b"abc", b"abc"),
        (b"a" * 11, {"wsgi.input_terminated": True, "SERVER_PROTOCOL": "HTTP/2"}, 10, None, b"a" * 11),
        (b"a" * 10, {"wsgi.input_terminated": True, "SERVER_PROTOCOL": "HTTP/2"}, 10, b"a" * 10, b"a" * 10),
    ],
)
def test_read_body(
    body: bytes, extra: dict[str, Any], limit: int, expected: bytes | None, left: bytes
) -> None:
    env = environ(body, **extra)
    assert read_body(env, limit) == expected
    assert env["wsgi.input"].read() == left  # what the application reads


def test_replay_input_reads_like_the_stream_it_replaces() -> None:
    data = b"first line\nsecond line\nthird"
    for split in range(len(data) + 1):
        replay = ReplayInput(data[:split], io.BytesIO(data[split:]))
        assert list(replay) == [b"first line\n", b"second line\n", b"third"]
        replay = ReplayInput(data[:split], io.BytesIO(data[split:]))
        assert replay.read(5) + replay.read(7) + replay.read() == data
        replay = ReplayInput(data[:split], io.BytesIO(data[split:]))
        assert replay.readline(4) == b"firs"
        assert replay.readlines() == [b"t line\n", b"second line\n", b"third"]
