"""The binary format of a stored response (no pickle, versioned).

Layout of format version 3 (integers big-endian)::

    "WC"  version:u8  flags:u8                             (see the ``FLAG_`` constants)
    stored_at:f64  fresh_until:f64  stale_until:f64      (Unix time, seconds)
    n_headers:u16  n_tags:u16  meta_len:u32  body_len:u32  crc32:u32
    meta: latin-1 text, lines joined by "\n":
        the status line                       "200 OK"
        n_headers header lines                "Content-Type:text/html"
        n_tags tag lines                      "<generation key> <generation>"
    body

``crc32`` covers the meta text and the body, so a value changed in the
store (a flipped bit, a truncated or overwritten body) is caught, not
served. Anything that does not match this layout raises
:class:`~wsgicache.errors.CorruptEntry`: the middleware then treats the
value as a miss and deletes it. A future format gets a new version number;
values of other versions are misses too.
"""

from __future__ import annotations

import struct
from zlib import crc32

from .errors import CorruptEntry

FORMAT_VERSION = 3
MAGIC = b"WC"

#: The response must be revalidated before every reuse (``no-cache``, RFC 9111 5.2.2.4).
FLAG_NO_CACHE = 1
#: Once stale, the response is never served without revalidation (``must-revalidate``,
#: ``proxy-revalidate``, ``s-maxage``: RFC 9111 5.2.2.2, 5.2.2.8, 5.2.2.10).
FLAG_MUST_REVALIDATE = 2
#: Not a response but the index of a URL's variants: its headers hold the
#: ``Vary`` field names whose request values select the variant (RFC 9111 4.1).
FLAG_VARIANTS = 4
_HEAD = struct.Struct(">2sBBdddHHIII")
_HEAD_SIZE = _HEAD.size


class Entry:
    """A cached response and what is needed to judge it.

        ``stored_at`` is the Unix time at which the response's age was zero
    (RFC 9111 4.2.3: the time it was received minus its corrected initial age);
    ``fresh_until`` is ``stored_at`` plus its freshness lifetime;
    ``stale_until`` ends the window in which it may still be served stale.
    ``flags`` holds the ``FLAG_`` bits. ``tags`` pairs each tag-generation key the entry depends on with the
        generation it was stored under; the entry is valid while every one of
        those keys still holds that generation.
    """

    __slots__ = ("body", "flags", "fresh_until", "headers", "stale_until", "status", "stored_at", "tags")

    def __init__(
        self,
        status: str,
        headers: list[tuple[str, str]],
        body: bytes,
        *,
        stored_at: float,
        fresh_until: float,
        stale_until: float | None = None,
        tags: tuple[tuple[str, bytes], ...] = (),
        flags: int = 0,
    ) -> None:
        self.status = status
        self.flags = flags
        self.headers = headers
        self.body = body
        self.stored_at = stored_at
        self.fresh_until = fresh_until
        self.stale_until = fresh_until if stale_until is None else stale_until
        self.tags = tags

    def __repr__(self) -> str:
        return f"<Entry {self.status!r} {len(self.body)} bytes tags={len(self.tags)}>"


def encode(entry: Entry) -> bytes:
    """Serialize ``entry``. Raises ``ValueError`` for values the format cannot hold."""
    lines = [entry.status]
    for name, value in entry.headers:
        if not name or ":" in name or "\n" in name or "\n" in value:
            raise ValueError(f"header {name!r} cannot be stored (empty, line break or colon)")
        lines.append(f"{name}:{value}")
    for key, generation in entry.tags:
        if " " in key or "\n" in key or b"\n" in generation:
            raise ValueError(f"tag key {key!r} cannot be stored")
        lines.append(f"{key} {generation.decode('latin-1')}")
    if "\n" in entry.status or len(entry.headers) > 0xFFFF or len(entry.tags) > 0xFFFF:
        raise ValueError("invalid status line, or too many headers or tags")
    meta = "\n".join(lines).encode("latin-1")
    head = _HEAD.pack(
        MAGIC,
        FORMAT_VERSION,
        entry.flags,
        entry.stored_at,
        entry.fresh_until,
        entry.stale_until,
        len(entry.headers),
        len(entry.tags),
        len(meta),
        len(entry.body),
        crc32(entry.body, crc32(meta)),
    )
    return b"".join((head, meta, entry.body))


def decode(data: bytes) -> Entry:
    """Parse a stored value; raise :class:`CorruptEntry` if it is not one."""
    try:
        (
            magic,
            version,
            flags,
            stored_at,
            fresh_until,
            stale_until,
            n_headers,
            n_tags,
            meta_len,
            body_len,
            checksum,
        ) = _HEAD.unpack_from(data)
    except (struct.error, TypeError) as exc:
        raise CorruptEntry(f"truncated header: {exc}") from None
    if magic != MAGIC or version != FORMAT_VERSION:
        raise CorruptEntry(f"not a format {FORMAT_VERSION} entry")
    body_start = _HEAD_SIZE + meta_len
    if body_start + body_len != len(data):
        raise CorruptEntry(f"length mismatch: expected {body_start + body_len} bytes, got {len(data)}")
    meta = data[_HEAD_SIZE:body_start]
    body = data[body_start:]
    if crc32(body, crc32(meta)) != checksum:
        raise CorruptEntry("checksum mismatch")
    lines = meta.decode("latin-1").split("\n")
    if len(lines) != 1 + n_headers + n_tags:
        raise CorruptEntry("wrong number of header or tag lines")
    headers = []
    for line in lines[1 : 1 + n_headers]:
        name, _, value = line.partition(":")
        headers.append((name, value))
    tags = []
    for line in lines[1 + n_headers :]:
        key, _, generation = line.partition(" ")
        tags.append((key, generation.encode("latin-1")))
    return Entry(
        lines[0],
        headers,
        body,
        stored_at=stored_at,
        fresh_until=fresh_until,
        stale_until=stale_until,
        tags=tuple(tags),
        flags=flags,
    )
