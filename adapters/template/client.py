"""The I/O of the template adapter: one persistent TCP connection, multiplexed.

The connection, multiplexing, unknown outcomes, loss and reconnection are the
shared client's (adapters/multiplexed_client.py); a protocol says only how a
message is framed, which ids it carries and how it appears in a log. Override
_on_connect for a sign-on, as the ISO 8583 client does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..multiplexed_client import MultiplexedClient
from . import framing, mapping
from .framing import Message

Build = Callable[[str], Message]  # request id -> the request carrying it


class TemplateClient(MultiplexedClient[Message]):
    framing_error = framing.FramingError
    id_prefix = "T"

    def _encode(self, message: Message) -> bytes:
        return framing.encode(message)

    async def _read(self, reader: asyncio.StreamReader) -> Message:
        return await framing.read_message(reader)

    def _request_key(self, message: Message) -> tuple[str, str]:
        return mapping.match_key(message)

    def _answer_key(self, message: Message) -> tuple[str, str]:
        return mapping.match_key(message)

    def _describe(self, message: Message) -> str:
        return mapping.describe(message)
