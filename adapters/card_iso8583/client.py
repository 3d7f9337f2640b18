"""The I/O of the ISO 8583 adapter: one persistent TCP connection, multiplexed.

The connection, multiplexing, loss and reconnection are the shared client's
(adapters/multiplexed_client.py). What is ISO 8583's own: every request gets a
STAN (1..999999, wrapping; an 0100's is derived from its transaction id, see
original.py) and requests in flight are told apart by STAN and RRN together, so
a stray answer for a reused STAN cannot settle the wrong request; each
connection signs on (0800/001) before it takes requests; and an echo
(0800/301) every echo_interval seconds finds a connection that died silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from switch.adapters.contract import AdapterUnavailable

from ..multiplexed_client import MultiplexedClient
from . import framing, mapping, spec
from .framing import Message

log = logging.getLogger(__name__)

Build = Callable[[int], Message]  # STAN -> the request carrying it


class Iso8583Client(MultiplexedClient[Message]):
    # AdapterUnavailable: the connection died in the middle of its sign-on.
    connect_errors = (OSError, TimeoutError, AdapterUnavailable)
    framing_error = framing.FramingError

    def __init__(
        self,
        host: str,
        port: int,
        *,
        timeout: float = 2.0,
        echo_interval: float = 30.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 5.0,
    ) -> None:
        super().__init__(host, port, timeout=timeout, backoff_initial=backoff_initial, backoff_max=backoff_max)
        self.echo_interval = echo_interval
        self.sign_ons = 0
        self._stan = 0
        self._echo_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect and sign on (or keep trying in the background), then echo now and then."""
        await super().start()
        self._echo_task = self._echo_task or asyncio.create_task(self._echo_forever())

    async def close(self) -> None:
        if self._echo_task is not None:
            self._echo_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._echo_task
            self._echo_task = None
        await super().close()

    def _encode(self, message: Message) -> bytes:
        return framing.encode(message)

    async def _read(self, reader: asyncio.StreamReader) -> Message:
        return await framing.read_message(reader)

    def _next_id(self) -> int:
        # Requests in flight are keyed by STAN and RRN, so a STAN repeating is never ambiguous; a
        # counter that wraps after 999,999 messages keeps repeats far apart. Network messages have
        # no RRN: one still waiting for its answer keeps its STAN.
        for _ in range(mapping.MAX_STAN):
            self._stan = mapping.next_stan(self._stan)
            if mapping.pair_key(f"{self._stan:06d}", "")[0] not in self._pending:
                return self._stan
        raise AdapterUnavailable("every STAN is in flight")

    def _request_key(self, message: Message) -> tuple[str, str]:
        return mapping.match_key(message)

    def _answer_key(self, message: Message) -> tuple[str, str]:
        return mapping.match_key(message)

    def _describe(self, message: Message) -> str:
        return mapping.describe(message)

    def _unreadable_key(self, error: Exception) -> tuple[str, str] | None:
        if isinstance(error, framing.FramingError) and error.key is not None:
            return mapping.pair_key(*error.key)
        return None

    async def _on_connect(self) -> None:
        answer = await self._network(spec.SIGN_ON)
        if answer is None or answer.get("39") != "00":
            raise ConnectionRefusedError(f"sign-on refused: {answer.get('39') if answer else 'no answer'}")
        self.sign_ons += 1
        log.info("signed on to %s:%s", self.host, self.port)

    async def _network(self, code: str) -> Message | None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        now = datetime.now(UTC)
        build: Build = lambda stan: mapping.network_message(code, stan=stan, now=now)  # noqa: E731
        (answer,) = await self._send([build], deadline, count=False)
        return answer

    async def _echo_forever(self) -> None:
        while True:
            await asyncio.sleep(self.echo_interval)
            if not self.connected:
                continue  # the reconnect task owns a dead connection
            try:
                answer = await self._network(spec.ECHO)
            except AdapterUnavailable:
                continue
            if answer is None:
                # No echo answer: the connection is dead even if TCP has not noticed. Drop it.
                log.warning("no echo answer from %s:%s; dropping the connection", self.host, self.port)
                if self._writer is not None:
                    self._writer.close()
