"""Messages on the wire: a UTF-8 JSON object behind a 4-byte big-endian length header.

Replace this file with your network's framing. Keep its promises: a frame is
bounded, and an error names a position, never the content, so a card number in
a bad message cannot reach a log.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

Message = dict[str, Any]
MAX_FRAME = 1 << 16


class FramingError(Exception):
    """A peer sent a frame that is not a message of this protocol."""


def encode(message: Message) -> bytes:
    raw = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode()
    if len(raw) > MAX_FRAME:
        raise FramingError(f"message of {len(raw)} bytes exceeds the {MAX_FRAME}-byte frame limit")
    return len(raw).to_bytes(4, "big") + raw


def decode(raw: bytes) -> Message:
    try:
        message = json.loads(raw)
    except UnicodeDecodeError as error:
        raise FramingError(f"not UTF-8 at byte {error.start}") from None
    except json.JSONDecodeError as error:
        raise FramingError(f"malformed JSON at byte {error.pos}") from None
    if not isinstance(message, dict) or not isinstance(message.get("id"), str):
        raise FramingError("not a JSON object with a string id")
    return message


async def read_message(reader: asyncio.StreamReader) -> Message:
    """The next message; asyncio.IncompleteReadError when the peer closed the connection."""
    length = int.from_bytes(await reader.readexactly(4), "big")
    if length > MAX_FRAME:
        # Skipping it would mean trusting its length: the stream is lost, drop the connection.
        raise ConnectionError(f"frame of {length} bytes exceeds the limit; the stream cannot be trusted")
    return decode(await reader.readexactly(length))
