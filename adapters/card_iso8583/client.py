"""The I/O of the ISO 8583 adapter: one persistent TCP connection, multiplexed.

Every request gets a STAN (1..999999, wrapping, never one still in flight) and
waits on a future keyed by it; one reader task resolves futures as answers
arrive, in whatever order the network sends them. An answer must also carry the
request's RRN, so a stray answer for a reused STAN cannot settle the wrong request.

A request not answered within its time is returned as None (outcome unknown);
its late answer is logged masked and dropped, and reversing it is the caller's
job. When the connection drops, requests in flight become unknown and a
background task reconnects with exponential backoff, signing on each time. An
echo every echo_interval seconds finds a connection that died silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from switch.adapter import AdapterUnavailable

from . import framing, mapping, spec
from .framing import Message

log = logging.getLogger(__name__)

Build = Callable[[int], Message]  # STAN -> the request carrying it
# What a failed connect or sign-on raises; AdapterUnavailable when the connection dies mid sign-on.
_CONNECT_ERRORS = (OSError, TimeoutError, AdapterUnavailable)


class Iso8583Client:
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
        self.host = host
        self.port = port
        self.timeout = timeout
        self.echo_interval = echo_interval
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.requests_sent = 0  # request messages written, network management excluded
        self.sign_ons = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._echo_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[Message]]] = {}
        self._stan = 0
        self._lock = asyncio.Lock()
        self._closing = False

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @property
    def in_flight(self) -> int:
        """Requests sent and still waiting for their answer."""
        return len(self._pending)

    async def start(self) -> None:
        """Connect and sign on; if the network is not there yet, keep trying in the background."""
        self._closing = False
        try:
            await self._connect()
        except _CONNECT_ERRORS as error:
            log.warning("cannot reach %s:%s (%s); retrying in the background", self.host, self.port, error)
            self._reconnect_soon()
        self._echo_task = self._echo_task or asyncio.create_task(self._echo_forever())

    async def close(self) -> None:
        self._closing = True
        for task in (self._echo_task, self._reconnect_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._echo_task = self._reconnect_task = None
        await self._disconnect()

    async def exchange(self, builds: Sequence[Build], time_left: float) -> list[Message | None]:
        """One answer per request, in order; None where none came in time (outcome unknown).

        Raises AdapterUnavailable, having sent nothing, when there is no connection
        and none can be made within the time left."""
        if time_left <= 0:
            raise AdapterUnavailable("no time left to send")  # sending now could only make unknown outcomes
        loop = asyncio.get_running_loop()
        deadline = loop.time() + time_left
        if not self.connected:
            try:
                await asyncio.wait_for(self._connect(), min(time_left, self.timeout))
            except _CONNECT_ERRORS as error:
                self._reconnect_soon()
                raise AdapterUnavailable(f"{self.host}:{self.port} unreachable: {error or 'timeout'}") from None
        return await self._send(builds, deadline, count=True)

    async def _send(self, builds: Sequence[Build], deadline: float, *, count: bool) -> list[Message | None]:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AdapterUnavailable(f"{self.host}:{self.port} connection lost before sending")
        loop = asyncio.get_running_loop()
        messages = [build(self._allocate_stan()) for build in builds]
        # Encode everything before registering anything: a bad message fails the batch unsent.
        payload = b"".join(framing.encode(message) for message in messages)
        futures: list[asyncio.Future[Message]] = []
        for message in messages:
            future: asyncio.Future[Message] = loop.create_future()
            stan, rrn = mapping.match_key(message)
            self._pending[stan] = (rrn, future)
            futures.append(future)
            log.debug("sending %s", mapping.describe(message))
        # One write: the whole batch reaches the transport's buffer, or none of it does.
        writer.write(payload)
        if count:
            self.requests_sent += len(messages)
        try:
            with contextlib.suppress(ConnectionError):
                await writer.drain()  # a failure here leaves the outcomes unknown: the reader settles them
            remaining = deadline - loop.time()
            if remaining > 0:
                await asyncio.wait(futures, timeout=remaining)
        finally:
            # Also on cancellation: a request nobody waits for must not hold its STAN.
            answers = [
                self._answer_or_forget(message, future) for message, future in zip(messages, futures, strict=True)
            ]
        return answers

    def _answer_or_forget(self, message: Message, future: asyncio.Future[Message]) -> Message | None:
        if future.done() and not future.cancelled():
            return future.result()
        stan, _ = mapping.match_key(message)
        if self._pending.get(stan, ("", None))[1] is future:
            del self._pending[stan]
        future.cancel()
        log.info("no answer in time for %s; outcome unknown", mapping.describe(message))
        return None

    def _allocate_stan(self) -> int:
        # A STAN still waiting for its answer is skipped, so no two requests in flight share one.
        for _ in range(mapping.MAX_STAN):
            self._stan = mapping.next_stan(self._stan)
            if f"{self._stan:06d}" not in self._pending:
                return self._stan
        raise AdapterUnavailable("every STAN is in flight")

    async def _connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_forever(reader, writer))
            try:
                answer = await self._network(spec.SIGN_ON)
            except BaseException:
                await self._disconnect()
                raise
            if answer is None or answer.get("39") != "00":
                await self._disconnect()
                raise ConnectionRefusedError(f"sign-on refused: {answer.get('39') if answer else 'no answer'}")
            self.sign_ons += 1
            log.info("signed on to %s:%s", self.host, self.port)

    async def _network(self, code: str) -> Message | None:
        deadline = asyncio.get_running_loop().time() + self.timeout
        now = datetime.now(UTC)
        build: Build = lambda stan: mapping.network_message(code, stan=stan, now=now)  # noqa: E731
        (answer,) = await self._send([build], deadline, count=False)
        return answer

    async def _read_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    message = await framing.read_message(reader)
                except framing.FramingError as error:
                    # The length header still frames the stream: skip this message, keep the rest.
                    log.warning("dropped an answer from %s:%s: %s", self.host, self.port, error)
                    continue
                self._settle(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            await self._lost(writer)

    def _settle(self, message: Message) -> None:
        stan, rrn = mapping.match_key(message)
        rrn_expected, future = self._pending.get(stan, ("", None))
        if future is None or future.done():
            log.warning("late or unmatched answer dropped: %s", mapping.describe(message))
            return
        if rrn != rrn_expected:
            log.warning("answer with a foreign RRN dropped: %s", mapping.describe(message))
            return
        del self._pending[stan]
        future.set_result(message)

    async def _lost(self, writer: asyncio.StreamWriter) -> None:
        if self._writer is writer:
            self._writer = None
            # Whatever was in flight on this connection was sent: its outcome is now unknown.
            for _, future in self._pending.values():
                future.cancel()
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
