"""What every network simulator shares: a TCP server, its client connections, the
answers in flight, and how the simulated network misbehaves (latency, lost and
late answers, as `switch sim` sets them). A simulator subclasses it and says how
one connection's messages are read and answered (_session); everything else is
here, once."""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections import Counter
from collections.abc import Coroutine
from typing import Any, Self


class SimulatorServer:
    def __init__(
        self,
        *,
        latency: float = 0.0,
        drop_rate: float = 0.0,
        slow_rate: float = 0.0,
        late_delay: float = 5.0,
        seed: int | None = None,
    ) -> None:
        """latency: seconds before every answer; drop_rate: the share of requests never
        answered; slow_rate: the share answered late_delay seconds late; seed: repeatable."""
        self.latency = latency
        self.drop_rate = drop_rate
        self.slow_rate = slow_rate
        self.late_delay = late_delay
        self._random = random.Random(seed)
        self.received: Counter[str] = Counter()  # messages by kind, for tests and operators
        self.server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @classmethod
    async def listening(cls, host: str = "127.0.0.1", port: int = 0, **options: Any) -> tuple[Self, int]:
        """A running simulator of this class and the port it listens on (port 0: any free
        port); options go to the class. Each simulator module exposes it as its
        `start_simulator`, the `switch.simulators` entry point."""
        simulator = cls(**options)
        return simulator, await simulator.start(host, port)

    async def start(self, host: str, port: int) -> int:
        """Listens on host:port (0: any free port); returns the port."""
        self.server = await asyncio.start_server(self._serve, host, port)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.disconnect_all()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.server is not None:
            await self.server.wait_closed()

    def disconnect_all(self) -> None:
        """Drops every client connection, as a network restart would."""
        for writer in list(self._writers):
            writer.close()

    @property
    def connections(self) -> int:
        return len(self._writers)

    def drops(self) -> bool:
        """Whether the network loses this request: it is never answered."""
        return self._random.random() < self.drop_rate

    def delay(self, late: bool = False) -> float:
        """Seconds before answering: the latency, plus late_delay for a request that
        must be late (a test instrument) or, at slow_rate, for any request."""
        return self.latency + (self.late_delay if late or self._random.random() < self.slow_rate else 0.0)

    async def reply(self, writer: asyncio.StreamWriter, answer: bytes, delay: float) -> bool:
        """Writes an answer after delay seconds, unless the client went away meanwhile;
        whether it was written."""
        if delay:
            await asyncio.sleep(delay)
        if writer.is_closing():
            return False
        writer.write(answer)
        return True

    def answer_later(self, answering: Coroutine[Any, Any, None]) -> None:
        """Answers without holding up the next request on the connection."""
        task = asyncio.create_task(answering)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Reads one connection's requests until it ends; raising ends it too."""
        raise NotImplementedError

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        try:
            await self._session(reader, writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(ConnectionError, OSError):
                await writer.wait_closed()
