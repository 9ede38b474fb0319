"""Answering ``Range`` requests from a stored complete response: RFC 9110 section 14 and 13.1.5.

Pure decision, no I/O, no state: given the request's ``Range`` and
``If-Range`` and a stored response, :func:`answer_range` says whether to send
the whole response (``200``, the ``Range`` ignored), one part of it (``206``)
or ``416``, with the status, headers and body to send. Range parsing is
werkzeug's.

Only complete stored ``200`` responses to ``GET`` are ranged. A cache MAY
also store ``206`` parts and combine them (RFC 9111, 3.3 and 3.4); this one
never stores them, so those rules do not arise here.

Usage::

    answer = answer_range("bytes=0-1", None, "200 OK", [("Content-Length", "11")], b"01234567890")
    answer.outcome   # RangeOutcome.PARTIAL
    answer.status    # "206 Partial Content"
    answer.headers   # [("Content-Length", "2"), ("Content-Range", "bytes 0-1/11")]
    bytes(answer.body)  # b"01"
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

from werkzeug.datastructures import ContentRange
from werkzeug.http import parse_date, parse_range_header

from .http import header_value, status_code

#: Response headers as WSGI gives them: names in any case, repeats allowed.
Headers: TypeAlias = Sequence[tuple[str, str]]

PARTIAL_STATUS = "206 Partial Content"
UNSATISFIABLE_STATUS = "416 Range Not Satisfiable"


class RangeOutcome(enum.Enum):
    """What to send for a ``Range`` request."""

    FULL = "full"  # the stored response unchanged: Range ignored (or If-Range false)
    PARTIAL = "partial"  # 206 with one part
    UNSATISFIABLE = "unsatisfiable"  # 416


@dataclass(frozen=True, slots=True)
class RangeAnswer:
    """The response to send: status line, headers and body."""

    outcome: RangeOutcome
    status: str  # the stored status for FULL, "206 Partial Content" or "416 Range Not Satisfiable"
    headers: list[tuple[str, str]]
    body: bytes | memoryview  # the stored body for FULL, a view of it (no copy) for PARTIAL, b"" for 416


def _first(headers: Headers, name: str) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.strip()
    return None


def if_range_holds(if_range: str, headers: Headers, *, generated_at: float | None = None) -> bool:
    """Whether an ``If-Range`` condition holds for a stored response (RFC 9110, 13.1.5).

    An entity-tag (a ``"`` among its first three characters) must equal the
    stored ``ETag`` exactly, and both must be strong: a weak tag never
    matches. An HTTP-date must be the very instant of the stored
    ``Last-Modified``, which must moreover be a strong validator (RFC 9110,
    8.8.2.2): at least one second before the stored ``Date``, or, without
    ``Date``, before ``generated_at`` (the Unix time the response was
    generated, when the caller knows it). Anything else is false.
    """
    if_range = if_range.strip()
    if '"' in if_range[:3]:
        etag = _first(headers, "etag")
        # Equal, and strong: a tag that opens with its quote has no W/ weakness prefix.
        return etag is not None and etag == if_range and etag.startswith('"')
    wanted = parse_date(if_range)
    last_modified = parse_date(_first(headers, "last-modified") or "")
    if wanted is None or last_modified is None or wanted != last_modified:
        return False
    date = parse_date(_first(headers, "date") or "")
    generated = date.timestamp() if date is not None else generated_at
    return generated is not None and last_modified.timestamp() <= generated - 1


def _full(status: str, headers: Headers, body: bytes) -> RangeAnswer:
    return RangeAnswer(RangeOutcome.FULL, status, list(headers), body)


def answer_range(
    range_header: str,
    if_range: str | None,
    status: str,
    headers: Headers,
    body: bytes,
    *,
    method: str = "GET",
    generated_at: float | None = None,
) -> RangeAnswer:
    """The answer to a request with ``Range: range_header`` from a stored response (RFC 9110, 14.2).

    ``FULL`` (the stored response as it is; RFC 9110 14.2 lets a server
    ignore ``Range``) unless the method is ``GET``, the stored status ``200``,
    the stored response has a non-empty body, no ``Content-Range`` and no
    ``Accept-Ranges: none``, ``range_header`` is a valid ``bytes`` range set
    of exactly one range (several ranges are ignored rather than answered
    with ``multipart/byteranges``), and ``if_range``, when given, holds
    (:func:`if_range_holds`; ``generated_at`` is passed on). Then:

    - ``PARTIAL`` when the range is satisfiable (RFC 9110, 14.1.1): a last
      position past the end is clamped, a suffix longer than the body means
      all of it. ``206`` with the stored headers in their order, the first
      ``Content-Length`` set to the part's length (added if absent, repeats
      dropped) and ``Content-Range: bytes first-last/length`` added last.
    - ``UNSATISFIABLE`` otherwise (first position at or past the end, or a
      suffix of length 0): ``416`` with ``Content-Range: bytes */length``.
    """
    length = len(body)
    if (
        method.upper() != "GET"
        or status_code(status) != 200
        or length == 0  # RFC 9110, 14.2: a server MAY ignore Range on empty content
        or header_value(headers, "content-range") is not None
        or (header_value(headers, "accept-ranges") or "").strip().lower() == "none"
    ):
        return _full(status, headers, body)
    parsed = parse_range_header(range_header)
    if parsed is None or parsed.units != "bytes" or len(parsed.ranges) != 1:
        return _full(status, headers, body)
    if if_range is not None and not if_range_holds(if_range, headers, generated_at=generated_at):
        return _full(status, headers, body)

    begin, end = parsed.ranges[0]
    stop = length if end is None else min(end, length)  # werkzeug's end is exclusive
    if range_header.split("=", 1)[1].strip().startswith("-"):
        # A suffix: werkzeug gives (-n, None), and "-0" as (0, None), which is unsatisfiable.
        start = max(length + begin, 0) if begin < 0 else length
    else:
        start = begin
    if start >= length:
        return RangeAnswer(
            RangeOutcome.UNSATISFIABLE,
            UNSATISFIABLE_STATUS,
            [
                ("Content-Range", ContentRange("bytes", None, None, length).to_header()),
                ("Content-Length", "0"),
                ("Content-Type", "text/plain; charset=utf-8"),  # PEP 3333 servers want one
            ],
            b"",
        )
    part_length = str(stop - start)
    partial_headers: list[tuple[str, str]] = []
    for name, value in headers:
        if name.lower() != "content-length":
            partial_headers.append((name, value))
        elif all(key.lower() != "content-length" for key, _ in partial_headers):
            partial_headers.append((name, part_length))
    if all(key.lower() != "content-length" for key, _ in partial_headers):
        partial_headers.append(("Content-Length", part_length))
    partial_headers.append(("Content-Range", ContentRange("bytes", start, stop, length).to_header()))
    return RangeAnswer(RangeOutcome.PARTIAL, PARTIAL_STATUS, partial_headers, memoryview(body)[start:stop])
