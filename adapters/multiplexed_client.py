"""What every network client shares: one persistent TCP connection, multiplexed.

Each request carries an id the client picks and waits on a future keyed by it;
one reader task settles futures as answers arrive, in any order. An answer must
also carry its request's second reference (an RRN, an EndToEndId), so a stray
answer cannot settle the wrong request. A request not answered in time comes
back as None (outcome unknown) and its late answer is logged masked and dropped.
An answer that cannot be read is dropped with one log line and the connection
kept, so the other answers on it still arrive; if it still shows whose answer it
was, that request becomes unknown at once rather than at its deadline. When the
connection drops, requests in flight become unknown and a background task
reconnects with exponential backoff. A message the network sends on its own (not
an answer) goes to the protocol's _inbound, which may answer it on the connection.

A protocol subclasses MultiplexedClient and supplies its framing, its ids and keys,
how a message is described in logs, and what must happen right after connecting.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import secrets
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Generic, TypeVar

from switch.adapters.contract import AdapterUnavailable

log = logging.getLogger(__name__)

M = TypeVar("M")
Build = Callable[[Any], M]  # the request id -> the request carrying it


class MultiplexedClient(Generic[M]):
    # What a failed connect raises; a protocol may add its own (a refused sign-on).
    connect_errors: tuple[type[BaseException], ...] = (OSError, TimeoutError)
    framing_error: type[Exception] = ValueError

    def __init__(
        self, host: str, port: int, *, timeout: float = 2.0, backoff_initial: float = 0.05, backoff_max: float = 5.0
    ) -> None:
        self.host = host
        self.port = port
        self.timeout = timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.requests_sent = 0  # request messages written, network management excluded
        self.connects = 0
        self._writer: asyncio.StreamWriter | None = None
        self._reader_task: asyncio.Task[None] | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._pending: dict[str, tuple[str, asyncio.Future[M]]] = {}
        self._lock = asyncio.Lock()
        self._closing = False
        self._id_stem = self.id_prefix + secrets.token_hex(4).upper()
        self._sequence = itertools.count(1)
        self._inbound_tasks: set[asyncio.Task[None]] = set()

    # --- what a protocol supplies ----------------------------------------------------------------------------

    def _encode(self, message: M) -> bytes:
        raise NotImplementedError

    async def _read(self, reader: asyncio.StreamReader) -> M:
        raise NotImplementedError

    # Ids the default _next_id makes: this prefix, a random part per client (so ids stay
    # unique across reconnects and switch processes), then a sequence number.
    id_prefix = "SW"

    def _next_id(self) -> Any:
        """A request id no request in flight holds. A protocol with its own id space
        (an ISO 8583 STAN) overrides it."""
        return f"{self._id_stem}{next(self._sequence):012d}"

    def _request_key(self, message: M) -> tuple[str, str]:
        """(id, second reference) of a request."""
        raise NotImplementedError

    def _answer_key(self, message: M) -> tuple[str, str]:
        """(id, second reference) of an answer, matching its request's."""
        raise NotImplementedError

    def _describe(self, message: M) -> str:
        """A log line's view of a message: masked, never a card or account in clear."""
        raise NotImplementedError

    def _unreadable_key(self, error: Exception) -> tuple[str, str] | None:
        """(id, second reference) an unreadable answer still showed, if the protocol can tell."""
        return None

    async def _on_connect(self) -> None:
        """Runs once a connection is up, before it takes requests (e.g. a sign-on)."""

    def _inbound(self, message: M) -> bool:
        """Takes a message the network sent on its own, not an answer (a rail's return);
        False for an answer. Slow work belongs in a task (_in_background): this runs on
        the reader."""
        return False

    # --- the shared machinery ------------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._writer is not None and not self._writer.is_closing()

    @property
    def in_flight(self) -> int:
        """Requests sent and still waiting for their answer."""
        return len(self._pending)

    async def start(self) -> None:
        """Connects; if the network is not there yet, keeps trying in the background."""
        self._closing = False
        try:
            await self._connect()
        except self.connect_errors as error:
            log.warning("cannot reach %s:%s (%s); retrying in the background", self.host, self.port, error)
            self._reconnect_soon()

    async def close(self) -> None:
        self._closing = True
        for task in list(self._inbound_tasks):
            task.cancel()
        await asyncio.gather(*self._inbound_tasks, return_exceptions=True)
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reconnect_task
            self._reconnect_task = None
        await self._disconnect()

    async def exchange(self, builds: Sequence[Build[M]], time_left: float) -> list[M | None]:
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
            except self.connect_errors as error:
                self._reconnect_soon()
                raise AdapterUnavailable(f"{self.host}:{self.port} unreachable: {error or 'timeout'}") from None
        return await self._send(builds, deadline, count=True)

    async def _send(self, builds: Sequence[Build[M]], deadline: float, *, count: bool) -> list[M | None]:
        writer = self._writer
        if writer is None or writer.is_closing():
            raise AdapterUnavailable(f"{self.host}:{self.port} connection lost before sending")
        loop = asyncio.get_running_loop()
        messages = [build(self._next_id()) for build in builds]
        # Encode everything before registering anything: a bad message fails the batch unsent.
        payload = b"".join(self._encode(message) for message in messages)
        futures: list[asyncio.Future[M]] = []
        for message in messages:
            future: asyncio.Future[M] = loop.create_future()
            request_id, reference = self._request_key(message)
            self._pending[request_id] = (reference, future)
            futures.append(future)
            log.debug("sending %s", self._describe(message))
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
            # Also on cancellation: a request nobody waits for must not hold its id.
            answers = [
                self._answer_or_forget(message, future) for message, future in zip(messages, futures, strict=True)
            ]
        return answers

    def _answer_or_forget(self, message: M, future: asyncio.Future[M]) -> M | None:
        if future.done() and not future.cancelled():
            return future.result()
        request_id, _ = self._request_key(message)
        if request_id in self._pending and self._pending[request_id][1] is future:
            del self._pending[request_id]
        future.cancel()
        log.info("no answer in time for %s; outcome unknown", self._describe(message))
        return None

    async def _connect(self) -> None:
        async with self._lock:
            if self.connected:
                return
            reader, writer = await asyncio.wait_for(asyncio.open_connection(self.host, self.port), self.timeout)
            self._writer = writer
            self._reader_task = asyncio.create_task(self._read_forever(reader, writer))
            try:
                await self._on_connect()
            except BaseException:
                await self._disconnect()
                raise
            self.connects += 1
            log.info("connected to %s:%s", self.host, self.port)

    async def _read_forever(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    message = await self._read(reader)
                except self.framing_error as error:
                    # The length header still frames the stream: skip this message, keep the rest.
                    self._drop_unreadable(error)
                    continue
                self._settle(message)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        except Exception as error:
            # A fault in reading, not the network's doing: whether the stream is still framed is
            # unknowable, so the connection goes (its requests unknown), but with a log line
            # rather than a dead task whose exception surfaces in close(). The type only: an
            # exception's text may quote the message.
            log.error(
                "reading from %s:%s failed (%s); dropping the connection", self.host, self.port, type(error).__name__
            )
        finally:
            await self._lost(writer)

    def _drop_unreadable(self, error: Exception) -> None:
        """One log line per unreadable answer. One that still shows whose answer it was settles that
        request as unknown now: it will get no other answer, so waiting out its deadline only delays
        the reversal. Never as approved or declined on a half-read message."""
        key = self._unreadable_key(error)
        expected, future = self._pending.get(key[0], ("", None)) if key is not None else ("", None)
        if key is None or future is None or future.done() or key[1] != expected:
            log.warning("dropped an answer from %s:%s: %s", self.host, self.port, error)
            return
        del self._pending[key[0]]
        future.cancel()
        log.warning(
            "dropped an answer from %s:%s: %s; the outcome of request %s (reference %s) is unknown",
            self.host,
            self.port,
            error,
            *key,
        )

    def _in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Runs a protocol's handling of an inbound message off the reader, until close()."""
        task = asyncio.create_task(work)
        self._inbound_tasks.add(task)
        task.add_done_callback(self._inbound_tasks.discard)

    def _write(self, message: M) -> bool:
        """Writes a message outside any exchange (an answer to the network's own request);
        whether a connection was there to take it."""
        writer = self._writer
        if writer is None or writer.is_closing():
            return False
        writer.write(self._encode(message))
        return True

    def _settle(self, message: M) -> None:
        if self._inbound(message):
            return
        request_id, reference = self._answer_key(message)
        expected, future = self._pending.get(request_id, ("", None))
        if future is None or future.done():
            log.warning("late or unmatched answer dropped: %s", self._describe(message))
            return
        if reference != expected:
            log.warning("answer with a foreign reference dropped: %s", self._describe(message))
            return
        del self._pending[request_id]
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
            except self.connect_errors as error:
                log.info("reconnect to %s:%s failed (%s); next try in %.2fs", self.host, self.port, error, delay)
                delay = min(delay * 2, self.backoff_max)
