"""Messages on the wire: ISO 8583 bytes behind a 2-byte big-endian length header."""

from __future__ import annotations

import asyncio

import iso8583

from .spec import SPEC

Message = dict[str, str]
MAX_FRAME = 0xFFFF


class FramingError(Exception):
    """A peer sent bytes that are not a message of our specification."""


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
        raise FramingError(f"undecodable message: {error.args[0]}") from None
    return message


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message; asyncio.IncompleteReadError when the peer closed the connection."""
    length = int.from_bytes(await reader.readexactly(2), "big")
    return decode(await reader.readexactly(length))
