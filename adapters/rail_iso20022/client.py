"""The I/O of the ISO 20022 rail adapter: one persistent TCP connection, multiplexed.

The connection, multiplexing, loss and reconnection are the shared client's
(adapters/multiplexed_client.py). What is the rail's own: every request gets a
MsgId unique to this client, and an answer must carry its request's EndToEndId
too, so a stray answer cannot settle the wrong transfer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ..multiplexed_client import MultiplexedClient
from . import framing, mapping
from .framing import Message

Build = Callable[[str], Message]  # MsgId -> the request carrying it


class RailClient(MultiplexedClient[Message]):
    framing_error = framing.FramingError

    id_prefix = "SW"

    def _encode(self, message: Message) -> bytes:
        return framing.encode(message)

    async def _read(self, reader: asyncio.StreamReader) -> Message:
        return await framing.read_message(reader)

    def _request_key(self, message: Message) -> tuple[str, str]:
        return mapping.request_key(message)

    def _answer_key(self, message: Message) -> tuple[str, str]:
        return mapping.answer_key(message)

    def _describe(self, message: Message) -> str:
        return mapping.describe(message)
