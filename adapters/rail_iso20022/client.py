"""The I/O of the ISO 20022 rail adapter: one persistent TCP connection, multiplexed.

Every request gets a MsgId unique to this client and waits on a future keyed by
it; one reader task settles futures as answers arrive, in any order. An answer
must also carry its request's EndToEndId, so a stray answer cannot settle the
wrong transfer. A request not answered in time comes back as None (outcome
unknown); its late answer is logged masked and dropped. When the connection
drops, requests in flight become unknown and a background task reconnects with
exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable, Sequence

from switch.adapter import AdapterUnavailable

from . import framing, mapping
from .framing import Message

log = logging.getLogger(__name__)

Build = Callable[[str], Message]  # MsgId -> the request carrying it
_CONNECT_ERRORS = (OSError, TimeoutError)


class RailClient:
    def __init__(
        self, host: str, port: int, *, timeout: float = 2.0, backoff_initial: float = 0.05, backoff_max: float = 5.0
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.requests_sent = 0
        self.connects = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Message]]] = {}
        self._prefix = "SW" + secrets.token_hex(4).upper()
        self._sequence = itertools.count(1)
        self._lock = asyncio.Lock()
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def start(self) -> None:
        """Connect; if the rail is not there yet, keep trying in the background."""
        self._closing = False
        try:
            await self._connect()
        except _CONNECT_ERRORS as error:
            log.warning("cannot reach %s:%s (%s); retrying in the background", self.host, self.port, error)
            self._reconnect_soon()

    async def close(self) -> None:
        self._closing = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
            self._reconnect_task = None
        await self._disconnect()

    async def exchange(self, builds: Sequence[Build], time_left: float) -> list[Message | None]:
        """One answer per request, in order; None where none came in time (outcome unknown).

        Raises AdapterUnavailable, having sent nothing, when there is no connection
        and none can be made within the time left."""
        if time_left <= 0:
            raise AdapterUnavailable("no time left to send")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_left
        if not self.connected:
            try:
                await asyncio.wait_for(self._connect(), min(time_left, self.timeout))
            except _CONNECT_ERRORS as error:
                self._reconnect_soon()
                raise AdapterUnavailable(f"{self.host}:{self.port} unreachable: {error or 'timeout'}") from None
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AdapterUnavailable(f"{self.host}:{self.port} connection lost before sending")
        messages = [build(f"{self._prefix}{next(self._sequence):012d}") for build in builds]
        # Encode everything before registering anything: a bad message fails the batch unsent.
        payload = b"".join(framing.encode(message) for message in messages)
        futures: list[asyncio.Future[Message]] = []
        for message in messages:
            future: asyncio.Future[Message] = loop.create_future()
            msg_id, end_to_end = mapping.request_key(message)
            self._pending[msg_id] = (end_to_end, future)
            futures.append(future)
            log.debug("sending %s", mapping.describe(message))
        writer.write(payload)  # one write: the whole batch, or none of it
        self.requests_sent += len(messages)
        try:
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait(futures, timeout=remaining)
        finally:
            answers = [self._answer_or_forget(m, f) for m, f in zip(messages, futures, strict=True)]
        return answers

    def _answer_or_forget(self, message: Message, future: asyncio.Future[Message]) -> Message | None:
        if future.done() and not future.cancelled():
            return future.result()
        msg_id, _ = mapping.request_key(message)
        if self._pending.get(msg_id, ("", None))[1] is future:
            del self._pending[msg_id]
        future.cancel()
        log.info("no answer in time for %s; outcome unknown", mapping.describe(message))
        return None

    async def _connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_forever(reader, writer))
            self.connects += 1
            log.info("connected to %s:%s", self.host, self.port)

    async def _read_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    message = await framing.read_message(reader)
                except framing.FramingError as error:
                    log.warning("dropped an answer from %s:%s: %s", self.host, self.port, error)
                    continue
                self._settle(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            await self._lost(writer)

    def _settle(self, message: Message) -> None:
        msg_id, end_to_end = mapping.answer_key(message)
        expected, future = self._pending.get(msg_id, ("", None))
        if future is None or future.done():
            log.warning("late or unmatched answer dropped: %s", mapping.describe(message))
            return
        if end_to_end != expected:
            log.warning("answer with a foreign EndToEndId dropped: %s", mapping.describe(message))
            return
        del self._pending[msg_id]
        future.set_result(message)

    async def _lost(self, writer: asyncio.StreamWriter) -> None:
        if self._writer is writer:
            self._writer = None
            for _, future in self._pending.values():
                future.cancel()  # sent on this connection: the outcome is now unknown
            self._pending.clear()
            if not self._closing:
                log.warning("connection to %s:%s lost; reconnecting", self.host, self.port)
                self._reconnect_soon()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()

    async def _disconnect(self) -> None:
        writer, task = self._writer, self._reader_task
        self._writer = self._reader_task = None
        if writer is not None:
            writer.close()
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for _, future in self._pending.values():
            future.cancel()
        self._pending.clear()

    def _reconnect_soon(self) -> None:
        if self._closing or (self._reconnect_task is not None and not self._reconnect_task.done()):
            return
        self._reconnect_task = asyncio.create_task(self._reconnect_forever())

    async def _reconnect_forever(self) -> None:
        delay = self.backoff_initial
        while not self._closing and not self.connected:
            await asyncio.sleep(delay)
            try:
                await self._connect()
            except _CONNECT_ERRORS as error:
                log.info("reconnect to %s:%s failed (%s); next try in %.2fs", self.host, self.port, error, delay)
                delay = min(delay * 2, self.backoff_max)
