"""The load driver: the gRPC client every benchmark drives a server with (capacity.py and
scaling.py run it in load generator processes, loadtests/loadgen.py).

One run follows its Plan against one target, on `channels` channels (one TCP connection
each; mutual TLS with a `switch tls init` folder's client files when the plan names one,
plaintext otherwise) and in one of three modes: unary Authorize (`concurrency` calls in flight),
AuthorizeBatch (`concurrency` calls of `batch_items` in flight) or AuthorizeStream
(`concurrency` streams, answers matched to requests by idempotency key). Two phases:

    max     closed loop: every slot sends its next request when its last answer arrives
            (a stream keeps `window` requests in flight).
    load    open loop at `rate` authorizations a second: request i is due at
            start + i / rate whatever the answers do, and its latency runs from that
            due time, so a stalled server is not hidden by a client that waited for
            it (coordinated omission).

The run starts at an instant its caller gives (so several generators start together),
warms up for `warmup` seconds and measures `duration` seconds. A call counts when it was
sent (or due) inside that window, however late its answer comes; no call is sent after
it. Requests come from payloads.source: pre-built ones, which a run may use up (it is
then "count-bound"), or ones built per call. Every `sample_every`-th answer is read item by
item (approved, declined, error): reading them all costs the generator CPU that a
many-worker run needs for its calls.

grpc is imported when a run starts, so the orchestrators can import this module's Plan.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from loadtests import harness, payloads

MODES = ("unary", "batch", "stream")
PHASES = ("max", "load")
CALL_TIMEOUT = 30.0
CONNECT_TIMEOUT = 30.0
OPEN_SENDERS_PER_SLOT = 4  # open loop: senders per closed-loop slot, so calls can pile up 4x deep
HISTOGRAM_STEPS = 100.0  # latency buckets per e-fold of microseconds: about 1% wide


@dataclass(frozen=True)
class Plan:
    target: str  # host:port
    mode: str  # unary | batch | stream
    phase: str = "max"  # max (closed loop) | load (open loop at rate)
    rate: float = 0.0  # load: authorizations a second
    duration: float = 5.0  # measured seconds
    warmup: float = 0.5  # seconds before them
    concurrency: int = 64  # unary and batch: calls in flight; stream: streams
    window: int = 256  # stream, closed loop: requests in flight per stream
    channels: int = 4
    batch_items: int = 100
    requests: str = "pool"  # payloads.source: pool | ring | fresh
    pool: int = 0  # pool and ring: calls to build before the run
    run_id: str = ""  # the idempotency keys' prefix: unique per run
    sample_every: int = 1  # read every n-th answer item by item
    tls_dir: str = ""  # a `switch tls init` folder: mutual TLS with its client files; empty: plaintext

    def check(self) -> None:
        if self.mode not in MODES or self.phase not in PHASES or self.requests not in payloads.SOURCES:
            raise ValueError(f"a plan of mode {self.mode!r}, phase {self.phase!r}, requests {self.requests!r}")
        if self.phase == "load" and self.rate <= 0:
            raise ValueError("an open-loop run needs a rate")
        if min(self.concurrency, self.window, self.channels, self.batch_items, self.sample_every) < 1:
            raise ValueError("concurrency, window, channels, batch_items and sample_every must be positive")


class Driver:
    """One run of a Plan: open() connects, run(start) drives and reports, close() disconnects."""

    def __init__(self, plan: Plan, source: Callable[[], bytes | None]) -> None:
        plan.check()
        self.plan = plan
        self.source = source
        self.per_call = plan.batch_items if plan.mode == "batch" else 1
        self.channels: list[Any] = []
        self.latencies: list[float] = []
        self.failed: dict[str, int] = {}
        self.counts = {"calls": 0, "authorizations": 0, "approved": 0, "declined": 0, "item_errors": 0}
        self.start = self.measure_from = self.deadline = self.last_done = 0.0
        self.sent = 0  # calls (stream: requests) taken from the source
        self.ran_out = False

    async def open(self) -> None:
        import grpc

        plan = self.plan
        if plan.tls_dir:
            from switch.cli.demo.tls import TlsFolder

            credentials = TlsFolder.open(plan.tls_dir).credentials()
            self.channels = [
                grpc.aio.secure_channel(plan.target, credentials, options=harness.CHANNEL_OPTIONS)
                for _ in range(plan.channels)
            ]
        else:
            self.channels = [
                grpc.aio.insecure_channel(plan.target, options=harness.CHANNEL_OPTIONS) for _ in range(plan.channels)
            ]
        await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in self.channels)), CONNECT_TIMEOUT)

    async def close(self) -> None:
        await asyncio.gather(*(c.close(None) for c in self.channels))
        self.channels = []

    async def run(self, start: float) -> dict[str, Any]:
        """Drives from `start` (time.perf_counter) through the window; the run's report."""
        plan = self.plan
        self.start = start
        self.measure_from = start + plan.warmup
        self.deadline = self.measure_from + plan.duration
        self.last_done = self.measure_from
        await asyncio.sleep(max(0.0, start - time.perf_counter()))  # every generator of the run starts at once
        work = asyncio.ensure_future(self._work())
        await asyncio.sleep(max(0.0, self.measure_from - time.perf_counter()))
        own_cpu = harness.own_cpu_seconds()
        await work
        own_cpu = harness.own_cpu_seconds() - own_cpu
        self.latencies.sort()
        counted = self.counts["calls"] > 0
        return {
            **self.counts,
            "failed_calls": self.failed,
            # the window in which the counted calls were answered (all of it when none was)
            "elapsed": self.last_done - self.measure_from if counted else plan.duration,
            "p50_ms": percentile(self.latencies, 0.50) * 1000.0,
            "p99_ms": percentile(self.latencies, 0.99) * 1000.0,
            "histogram": histogram(self.latencies),
            "count_bound": self.ran_out and self.last_done < self.deadline and plan.phase == "max",
            "client_cpu_s": own_cpu,
        }

    def _next(self) -> bytes | None:
        payload = self.source()
        if payload is None:
            self.ran_out = True
        else:
            self.sent += 1
        return payload

    async def _work(self) -> None:
        plan, opened = self.plan, self.channels
        raw: dict[str, None] = {"request_serializer": None, "response_deserializer": None}
        if plan.mode == "stream":
            method = f"/{harness.SERVICE}/AuthorizeStream"
            streams = [c.stream_stream(method, **raw) for c in opened]
            count = plan.concurrency
            if plan.phase == "max":
                await asyncio.gather(*(self._closed_stream(streams[n % len(streams)]) for n in range(count)))
            else:
                await asyncio.gather(*(self._open_stream(streams[n % len(streams)], n, count) for n in range(count)))
            return
        method = f"/{harness.SERVICE}/{'Authorize' if plan.mode == 'unary' else 'AuthorizeBatch'}"
        calls = [c.unary_unary(method, **raw) for c in opened]
        if plan.phase == "max":
            await asyncio.gather(*(self._closed_slot(calls[n % len(calls)]) for n in range(plan.concurrency)))
        else:
            await self._open_dispatch(calls)

    def _fail(self, error: BaseException) -> None:
        import grpc

        name = error.code().name if isinstance(error, grpc.aio.AioRpcError) else type(error).__name__
        self.failed[name] = self.failed.get(name, 0) + 1

    # --- unary and batch ---------------------------------------------------------------------------

    async def _closed_slot(self, call: Any) -> None:
        clock = time.perf_counter
        while True:
            began = clock()
            if began >= self.deadline:
                return
            payload = self._next()
            if payload is None:
                return
            await self._send(call, payload, began)

    async def _open_dispatch(self, calls: Sequence[Any]) -> None:
        """A pool of senders (OPEN_SENDERS_PER_SLOT for each closed-loop slot) takes the
        calls in order: each sleeps until its call is due, sends it and waits for the
        answer. A call that found every sender busy (the server stalled) counts its wait,
        while the generator pays about what the closed loop pays per call: no task per call."""
        plan = self.plan
        interval = self.per_call / plan.rate
        total = int((self.deadline - self.start) / interval)
        senders = max(1, plan.concurrency * OPEN_SENDERS_PER_SLOT)
        await asyncio.gather(*(self._open_sender(calls[n % len(calls)], interval, total) for n in range(senders)))

    async def _open_sender(self, call: Any, interval: float, total: int) -> None:
        clock = time.perf_counter
        while self.sent < total:
            due = self.start + self.sent * interval
            payload = self._next()
            if payload is None:
                return
            wait = due - clock()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._send(call, payload, due)

    async def _send(self, call: Any, payload: bytes, began: float) -> None:
        """One unary or batch call; its latency runs from began."""
        import grpc

        try:
            raw = await call(payload, timeout=CALL_TIMEOUT)
        except grpc.aio.AioRpcError as error:
            self._fail(error)
            return
        self._answered(raw, began, time.perf_counter())

    def _answered(self, raw: bytes, began: float, ended: float, answer: Any = None) -> None:
        """Counts one answer (stream: already parsed) of a call that began inside the window."""
        if began < self.measure_from:
            return  # warm-up
        self.latencies.append(ended - began)
        self.last_done = max(self.last_done, ended)
        counts = self.counts
        counts["calls"] += 1
        if counts["calls"] % self.plan.sample_every:
            counts["authorizations"] += self.per_call
            return
        from switch.v1 import switch_pb2 as pb

        if self.plan.mode == "batch":
            answers = list(pb.AuthorizeBatchResponse.FromString(raw).responses)
            counts["item_errors"] += max(0, self.per_call - len(answers))  # items the server dropped
        else:
            answers = [answer if answer is not None else pb.AuthorizeResponse.FromString(raw)]
        counts["authorizations"] += len(answers)
        for item in answers:
            payloads.tally(counts, item)

    # --- stream ------------------------------------------------------------------------------------

    async def _closed_stream(self, open_stream: Any) -> None:
        """One stream with up to `window` requests in flight; a slot frees when its answer arrives."""
        window = asyncio.Semaphore(self.plan.window)
        sent: dict[bytes, float] = {}
        call = open_stream(timeout=self.plan.warmup + self.plan.duration + CALL_TIMEOUT)
        clock = time.perf_counter
        reader = asyncio.ensure_future(self._read_stream(call, sent, window))
        try:
            while not reader.done():
                await window.acquire()
                if clock() >= self.deadline or reader.done():
                    break
                payload = self._next()
                if payload is None:
                    break
                sent[payload[2 : 2 + payloads.KEY_LENGTH]] = clock()
                await call.write(payload)
            if not reader.done():
                await call.done_writing()
        except Exception as error:  # the stream failed: the reader reports it
            if not reader.done():
                self._fail(error)
                call.cancel()
        await reader

    async def _open_stream(self, open_stream: Any, offset: int, streams: int) -> None:
        """One of `streams` streams; request i (offset, offset + streams, ...) is due at start + i / rate."""
        interval = 1.0 / self.plan.rate
        total = int((self.deadline - self.start) / interval)
        sent: dict[bytes, float] = {}
        call = open_stream(timeout=self.plan.warmup + self.plan.duration + CALL_TIMEOUT)
        clock = time.perf_counter
        reader = asyncio.ensure_future(self._read_stream(call, sent, None))
        try:
            for index in range(offset, total, streams):
                if reader.done():
                    break
                due = self.start + index * interval
                wait = due - clock()
                if wait > 0.0005:
                    await asyncio.sleep(wait)
                payload = self._next()
                if payload is None:
                    break
                sent[payload[2 : 2 + payloads.KEY_LENGTH]] = max(due, clock())  # never earlier than sent
                await call.write(payload)
            if not reader.done():
                await call.done_writing()
        except Exception as error:
            if not reader.done():
                self._fail(error)
                call.cancel()
        await reader

    async def _read_stream(self, call: Any, sent: dict[bytes, float], window: asyncio.Semaphore | None) -> None:
        import grpc
        from grpc.aio import EOF  # type: ignore[attr-defined]  # missing from grpc-stubs

        from switch.v1 import switch_pb2 as pb

        clock, tag, length = time.perf_counter, payloads.KEY_TAG, payloads.KEY_LENGTH
        try:
            while True:
                raw = await call.read()
                if raw is EOF:
                    break
                ended = clock()
                answer = None
                if raw[:2] == tag:
                    key = raw[2 : 2 + length]
                else:  # the key is not the answer's first field: read it
                    answer = pb.AuthorizeResponse.FromString(raw)
                    key = answer.idempotency_key.encode()
                began = sent.pop(key, None)
                if window is not None:
                    window.release()
                if began is None:
                    self.failed["unknown key"] = self.failed.get("unknown key", 0) + 1
                    continue
                self._answered(raw, began, ended, answer)
        except grpc.aio.AioRpcError as error:
            self._fail(error)
        finally:
            if sent:
                self.failed["unanswered"] = self.failed.get("unanswered", 0) + len(sent)
            if window is not None:
                for _ in range(self.plan.window):
                    window.release()


# --- latency ---------------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], fraction: float) -> float:
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def histogram(latencies: Sequence[float]) -> dict[str, int]:
    """Latencies (seconds) in buckets of 1/HISTOGRAM_STEPS of an e-fold of microseconds, so
    the runs of several generators add up (keys are strings: the report travels as JSON)."""
    counted = Counter(int(math.log(max(latency, 1e-6) * 1e6) * HISTOGRAM_STEPS) for latency in latencies)
    return {str(bucket): n for bucket, n in counted.items()}


def histogram_ms(buckets: Counter[int], fraction: float) -> float:
    """The latency (ms) at `fraction` of a histogram, or 0 when it is empty."""
    total = sum(buckets.values())
    rank, seen = fraction * total, 0
    for bucket in sorted(buckets):
        seen += buckets[bucket]
        if seen >= rank:
            return math.exp((bucket + 0.5) / HISTOGRAM_STEPS) / 1000.0  # microseconds -> ms
    return 0.0
