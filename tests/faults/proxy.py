"""A TCP fault proxy: listens on a free loopback port and forwards to a target.

It runs its own event loop in a background thread, so processes elsewhere (the
switch's workers) connect through it while a test, on its own loop or none,
injects faults by calling its methods from any thread:

- cut(): resets every connection and refuses (accepts, then resets) new ones
  until heal();
- hold(seconds): forwards no byte for a while, then resumes; connections stay open;
- delay(seconds): every chunk is forwarded that long after it arrived, until heal();
- reset(): resets the current connections once; new ones are accepted.

heal() ends a cut, a hold and a delay. A reset is an RST (SO_LINGER 0), not a FIN:
the peer sees ECONNRESET, as when a network path or a server dies.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

CHUNK = 65536
CONNECT_SECONDS = 2.0
CONTROL_SECONDS = 5.0

Result = TypeVar("Result")


@dataclass
class ProxyStats:
    accepted: int = 0
    refused: int = 0  # connections reset at once: cut, or the target refused
    reset: int = 0  # open connections reset by cut() or reset()
    bytes_up: int = 0  # client -> target
    bytes_down: int = 0


class FaultProxy:
    def __init__(self, target_host: str, target_port: int, *, name: str = "proxy") -> None:
        self.target = (target_host, target_port)
        self.name = name
        self.port = 0
        self.stats = ProxyStats()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._cut = False
        self._latency = 0.0
        self._gate: asyncio.Event | None = None  # set: bytes flow; clear: held
        self._hold_timer: asyncio.TimerHandle | None = None

    # -- control, from any thread -------------------------------------------------

    def start(self) -> int:
        """Starts listening; returns the port."""
        ready = threading.Event()
        failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, args=(ready, failure), name=f"fault-proxy-{self.name}")
        self._thread.daemon = True
        self._thread.start()
        if not ready.wait(CONTROL_SECONDS):
            raise RuntimeError(f"fault proxy {self.name} did not start")
        if failure:
            raise failure[0]
        return self.port

    def close(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is None or thread is None or not thread.is_alive():
            return
        with contextlib.suppress(RuntimeError):
            self._in_loop(self._shut)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(CONTROL_SECONDS)

    def cut(self) -> None:
        self._in_loop(self._do_cut)

    def heal(self) -> None:
        self._in_loop(self._do_heal)

    def hold(self, seconds: float) -> None:
        """Stops forwarding now; resumes after seconds (or at heal())."""
        self._in_loop(lambda: self._do_hold(seconds))

    def delay(self, seconds: float) -> None:
        self._in_loop(lambda: self._set_latency(seconds))

    def reset(self) -> None:
        self._in_loop(self._reset_links)

    @property
    def connections(self) -> int:
        return len(self._links)

    def __enter__(self) -> FaultProxy:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def _in_loop(self, action: Callable[[], Result]) -> Result:
        """Runs action on the proxy's loop and returns its result."""
        if self._loop is None:
            raise RuntimeError(f"fault proxy {self.name} is not started")

        async def run() -> Result:
            return action()

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(CONTROL_SECONDS)

    # -- the proxy's own thread ---------------------------------------------------

    def _run(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)  # this thread's own
        self._loop = loop
        try:
            self._gate = asyncio.Event()
            self._gate.set()
            self._server = loop.run_until_complete(asyncio.start_server(self._accept, "127.0.0.1", 0))
            self.port = int(self._server.sockets[0].getsockname()[1])
        except BaseException as error:
            failure.append(error)
            ready.set()
            loop.close()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _shut(self) -> None:
        if self._server is not None:
            self._server.close()
        self._reset_links()

    def _do_cut(self) -> None:
        self._cut = True
        self._reset_links()

    def _do_heal(self) -> None:
        self._cut = False
        self._latency = 0.0
        self._open_gate()

    def _do_hold(self, seconds: float) -> None:
        assert self._gate is not None and self._loop is not None
        if self._hold_timer is not None:
            self._hold_timer.cancel()
        self._gate.clear()
        self._hold_timer = self._loop.call_later(seconds, self._open_gate)

    def _open_gate(self) -> None:
        assert self._gate is not None
        if self._hold_timer is not None:
            self._hold_timer.cancel()
            self._hold_timer = None
        self._gate.set()

    def _set_latency(self, seconds: float) -> None:
        self._latency = seconds

    def _reset_links(self) -> None:
        for link in list(self._links):
            link.abort()
            self.stats.reset += 1

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._cut:
            self.stats.refused += 1
            _rst(writer)
            return
        try:
            upstream = await asyncio.wait_for(asyncio.open_connection(*self.target), CONNECT_SECONDS)
        except (OSError, TimeoutError):
            self.stats.refused += 1
            _rst(writer)
            return
        if self._cut:  # cut while connecting
            self.stats.refused += 1
            _rst(writer)
            _rst(upstream[1])
            return
        self.stats.accepted += 1
        link = _Link(self, (reader, writer), upstream)
        self._links.add(link)
        try:
            await link.run()
        finally:
            self._links.discard(link)

    async def forward(self, source: asyncio.StreamReader, target: asyncio.StreamWriter, up: bool) -> None:
        """One direction of a link, chunk by chunk, each no earlier than its arrival plus
        the latency and never while held."""
        assert self._gate is not None
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue()
        reading = asyncio.create_task(_read_into(source, queue))
        try:
            while (item := await queue.get()) is not None:
                arrived, chunk = item
                await self._gate.wait()
                wait = arrived + self._latency - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                    await self._gate.wait()  # a hold may have begun meanwhile
                target.write(chunk)
                await target.drain()
                if up:
                    self.stats.bytes_up += len(chunk)
                else:
                    self.stats.bytes_down += len(chunk)
        finally:
            reading.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reading


Streams = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _Link:
    """One client connection and its connection to the target."""

    def __init__(self, proxy: FaultProxy, client: Streams, upstream: Streams) -> None:
        self._proxy = proxy
        self._client = client
        self._upstream = upstream
        self._tasks: list[asyncio.Task[None]] = []
        self._aborted = False

    async def run(self) -> None:
        self._tasks = [
            asyncio.create_task(self._proxy.forward(self._client[0], self._upstream[1], up=True)),
            asyncio.create_task(self._proxy.forward(self._upstream[0], self._client[1], up=False)),
        ]
        try:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in self._tasks:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if not self._aborted:  # one side ended: end the other the same way
                for _, writer in (self._client, self._upstream):
                    writer.close()

    def abort(self) -> None:
        self._aborted = True
        _rst(self._client[1])
        _rst(self._upstream[1])
        for task in self._tasks:
            task.cancel()


async def _read_into(source: asyncio.StreamReader, queue: asyncio.Queue[tuple[float, bytes] | None]) -> None:
    loop = asyncio.get_running_loop()
    try:
        while chunk := await source.read(CHUNK):
            queue.put_nowait((loop.time(), chunk))
    except OSError:
        pass
    finally:
        queue.put_nowait(None)


def _rst(writer: asyncio.StreamWriter) -> None:
    """Closes with an RST: the peer reads ECONNRESET, not an orderly end."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


__all__ = ["FaultProxy", "ProxyStats"]
