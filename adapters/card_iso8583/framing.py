"""Messages on the wire: ISO 8583 bytes behind a 2-byte big-endian length header."""

from __future__ import annotations

import asyncio

import iso8583

from .spec import SPEC

Message = dict[str, str]
MAX_FRAME = 0xFFFF


class FramingError(Exception):
    """A peer sent bytes that are not a message of our specification.

    key: the (STAN, RRN) the message still showed ahead of what broke it, else None."""

    def __init__(self, text: str, key: tuple[str, str] | None = None) -> None:
        super().__init__(text)
        self.key = key


def encode(message: Message) -> bytes:
    # pyiso8583 fills in the bitmaps in the dict it is given: work on a copy.
    raw, _ = iso8583.encode(dict(message), SPEC)
    if len(raw) > MAX_FRAME:
        raise FramingError(f"message of {len(raw)} bytes does not fit the 2-byte length header")
    return len(raw).to_bytes(2, "big") + bytes(raw)


def decode(raw: bytes) -> Message:
    try:
        message, _ = iso8583.decode(raw, SPEC)
    except iso8583.DecodeError as error:
        # The error names a field and position, never the field's value.
        raise FramingError(f"undecodable message: {error.args[0]}", salvage_key(raw)) from None
    except Exception as error:
        # pyiso8583 raises more than DecodeError on hostile bytes: KeyError for a field no spec
        # defines (a tertiary bitmap), IndexError... The frame was read whole, so the stream is
        # intact: this is one bad message, not a broken connection. The type only: the text may
        # quote the bytes.
        raise FramingError(f"undecodable message: {type(error).__name__}", salvage_key(raw)) from None
    return message


def salvage_key(raw: bytes) -> tuple[str, str] | None:
    """(STAN, RRN) from the front of a message that did not decode, or None.

    Fields follow each other in bitmap order, so 11 and 37 are readable when every field up to 37
    is, whatever comes after. Decoding the message again with only those bits of its bitmap set
    reads them with the same rules; the RRN must be there if the bitmap says so, so a pair read
    off a broken message matches only the request that truly carried both."""
    try:
        if len(raw) < 12:
            return None
        primary = int.from_bytes(raw[4:12], "big")
        start = 12
        if primary >> 63:  # a secondary bitmap, and a tertiary one where its first bit says so
            start += 16 if raw[12] & 0x80 else 8
        wanted = {field for field in range(2, 38) if primary >> (64 - field) & 1}
        if 11 not in wanted:
            return None
        bitmap = sum(1 << (64 - field) for field in wanted).to_bytes(8, "big")
        try:
            front, _ = iso8583.decode(raw[:4] + bitmap + raw[start:], SPEC)
        except iso8583.DecodeError as error:  # "extra data after last field" when anything follows 37
            front = error.doc_dec
        if not all(str(field) in front for field in wanted):
            return None
        return front["11"], front.get("37", "")
    except Exception:  # best effort: without a key the request simply times out unknown
        return None


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message; asyncio.IncompleteReadError when the peer closed the connection."""
    length = int.from_bytes(await reader.readexactly(2), "big")
    return decode(await reader.readexactly(length))
