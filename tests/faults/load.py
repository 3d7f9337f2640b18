"""The client side of the fault suite: payments driven through the switch, every answer recorded.

A few asyncio tasks share several channels (SO_REUSEPORT spreads connections, not
calls, so there are more channels than workers). Each task runs payment stories
one after another: an authorization, then on an approval one of

    0  nothing more                       3  capture, three small refunds at once
    1  void                               4  capture, two large refunds at once (both cannot fit)
    2  capture, three small refunds       5  capture and void at once (both cannot happen)

where "at once" sends the calls together on different channels, so they race on
the transaction from different workers. Every tenth authorization uses a card the
network declines. Stories start on a common beat, so authorizations (retries
included) arrive together and are batched together.

Every idempotency key moves a unique amount, so the checker can tell from the
network's log (which sees amounts, not keys) which key an operation belongs to:
authorization n moves BASE + 10n, its capture BASE + 10n - 5, its void BASE + 10n,
its small refunds 10n + k (k = 1..3) and its large refunds BASE + 10n - 5 - k
(k = 1, 2), unique within each kind.

UNAVAILABLE, ABORTED and DEADLINE_EXCEEDED are retried with the same key, with
backoff, for a bounded time; every attempt's status is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import grpc

from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.faults.records import Attempt, ClientOp

if TYPE_CHECKING:
    from switch.v1.switch_pb2_grpc import SwitchAsyncStub as Stub

BASE = 100_000_000
CURRENCY = "USD"
APPROVING_CARDS = ("4111111111111111", "5555555555554444", "4242424242424242")
DECLINED_CARD = "4000000000000002"  # the network answers "05"
STORIES = 6
RETRYABLE = frozenset({"UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED"})
CHANNEL_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),  # a connection of its own per channel
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]

Response = TypeVar("Response")


@dataclass(frozen=True)
class LoadSettings:
    tasks: int = 6
    channels: int = 8
    # Tasks start their stories on a common beat of this many seconds, so authorizations
    # arrive together and the switch batches them (a retry then shares a batch with others).
    pause: float = 0.05
    timeout: float = 8.0  # each attempt's deadline
    retry_seconds: float = 40.0  # how long one operation keeps retrying
    max_stories: int = 100_000


def authorization_amount(n: int) -> int:
    return BASE + 10 * n


def capture_amount(n: int) -> int:
    return authorization_amount(n) - 5


def small_refund_amount(n: int, k: int) -> int:
    return 10 * n + k


def large_refund_amount(n: int, k: int) -> int:
    return capture_amount(n) - k


class Load:
    def __init__(self, address: str, run: str, settings: LoadSettings) -> None:
        self.address = address
        self.run = run
        self.settings = settings
        self.ops: list[ClientOp] = []
        self.stories = 0
        self.finish_by: float | None = None  # monotonic: retries end by then (set when stopping)
        self._numbers = itertools.count()

    async def drive(self, stop: asyncio.Event) -> None:
        """Runs stories on every task until stop is set (each finishes its story)."""
        channels = [
            grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS) for _ in range(self.settings.channels)
        ]
        try:
            stubs: list[Stub] = [switch_pb2_grpc.SwitchStub(channel) for channel in channels]
            await asyncio.gather(*(self._task(index, stubs, stop) for index in range(self.settings.tasks)))
        finally:
            for channel in channels:
                await channel.close(None)

    async def _task(self, index: int, stubs: list[Stub], stop: asyncio.Event) -> None:
        while not stop.is_set():
            n = next(self._numbers)
            if n >= self.settings.max_stories:
                return
            self.stories += 1
            await self._story(n, [stubs[(index + i) % len(stubs)] for i in range(len(stubs))])
            beat = self.settings.pause
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), beat - asyncio.get_running_loop().time() % beat)

    async def _story(self, n: int, stubs: list[Stub]) -> None:
        transaction = await self._authorize(n, stubs[0])
        if transaction is None:
            return
        story = n % STORIES
        if story == 1:
            await self._void(n, transaction, stubs[1])
            return
        if story == 5:  # capture and void race: one of them wins
            await asyncio.gather(
                self._capture(n, transaction, stubs[1], contended=True),
                self._void(n, transaction, stubs[2], contended=True),
            )
            return
        if story == 0 or not await self._capture(n, transaction, stubs[1]):
            return
        if story == 2:
            for k in (1, 2, 3):
                if not await self._refund(n, transaction, stubs[k], f"r{k}", small_refund_amount(n, k)):
                    return
        elif story == 3:
            await asyncio.gather(
                *(self._refund(n, transaction, stubs[k], f"r{k}", small_refund_amount(n, k)) for k in (1, 2, 3))
            )
        else:  # story 4: together they exceed what is captured
            await asyncio.gather(
                *(
                    self._refund(n, transaction, stubs[k], f"R{k}", large_refund_amount(n, k), contended=True)
                    for k in (1, 2)
                )
            )

    def _op(
        self, kind: str, key: str, n: int, amount: int, transaction_id: str, *, contended: bool = False
    ) -> ClientOp:
        op = ClientOp(
            kind=kind,
            key=f"{self.run}-{key}",
            merchant_id=f"faults-m{n % 3}",
            amount=amount,
            currency=CURRENCY,
            transaction_id=transaction_id,
            started_at=time.time(),
            timeout=self.settings.timeout,
            contended=contended,
        )
        self.ops.append(op)
        return op

    async def _authorize(self, n: int, stub: Stub) -> str | None:
        """The transaction id of an approval, else None."""
        op = self._op("authorize", f"a{n}", n, authorization_amount(n), "")
        pan = DECLINED_CARD if n % 10 == 7 else APPROVING_CARDS[n % len(APPROVING_CARDS)]
        request = pb.AuthorizeRequest(
            idempotency_key=op.key,
            merchant_id=op.merchant_id,
            amount=pb.Money(minor_units=op.amount, currency=CURRENCY),
            card=pb.Card(pan=pan, expiry_month=12, expiry_year=2031, holder_name="FAULT TEST"),
        )
        answer = await self._call(op, lambda timeout: stub.Authorize(request, timeout=timeout))
        if answer is None:
            return None
        approved = answer.decision == pb.DECISION_APPROVED
        op.transaction_id = answer.transaction_id
        op.answer = {
            "decision": "approved" if approved else "declined",
            "response_code": answer.response_code,
            "transaction_id": answer.transaction_id,
            "replayed": answer.replayed,
        }
        return answer.transaction_id if approved else None

    async def _capture(self, n: int, transaction_id: str, stub: Stub, *, contended: bool = False) -> bool:
        op = self._op("capture", f"c{n}", n, capture_amount(n), transaction_id, contended=contended)
        request = pb.CaptureRequest(
            transaction_id=transaction_id,
            idempotency_key=op.key,
            amount=pb.Money(minor_units=op.amount, currency=CURRENCY),
        )
        return await self._follow_up(op, lambda timeout: stub.Capture(request, timeout=timeout))

    async def _void(self, n: int, transaction_id: str, stub: Stub, *, contended: bool = False) -> bool:
        op = self._op("void", f"v{n}", n, authorization_amount(n), transaction_id, contended=contended)
        request = pb.VoidRequest(transaction_id=transaction_id, idempotency_key=op.key)
        return await self._follow_up(op, lambda timeout: stub.Void(request, timeout=timeout))

    async def _refund(
        self, n: int, transaction_id: str, stub: Stub, name: str, amount: int, *, contended: bool = False
    ) -> bool:
        op = self._op("refund", f"{name}-{n}", n, amount, transaction_id, contended=contended)
        request = pb.RefundRequest(
            transaction_id=transaction_id,
            idempotency_key=op.key,
            amount=pb.Money(minor_units=amount, currency=CURRENCY),
        )
        return await self._follow_up(op, lambda timeout: stub.Refund(request, timeout=timeout))

    async def _follow_up(self, op: ClientOp, send: Callable[[float], Awaitable[pb.Transaction]]) -> bool:
        answer = await self._call(op, send)
        if answer is None:
            return False
        op.answer = {
            "status": pb.TransactionStatus.Name(answer.status).removeprefix("TRANSACTION_STATUS_").lower(),
            "captured": answer.captured.minor_units,
            "refunded": answer.refunded.minor_units,
            "replayed": answer.replayed,
        }
        return True

    async def _call(self, op: ClientOp, send: Callable[[float], Awaitable[Response]]) -> Response | None:
        """The answer, retrying retryable statuses with the same key; None when there is none."""
        give_up = time.monotonic() + self.settings.retry_seconds
        backoff = 0.05
        while True:
            started = time.monotonic()
            try:
                answer = await send(op.timeout)
            except grpc.aio.AioRpcError as error:
                code = error.code().name
                op.attempts.append(Attempt(code, time.monotonic() - started, time.time()))
                limit = give_up if self.finish_by is None else min(give_up, self.finish_by)
                if code not in RETRYABLE or time.monotonic() + backoff > limit:
                    return None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 1.0)
                continue
            op.attempts.append(Attempt("OK", time.monotonic() - started, time.time()))
            return answer


__all__ = [
    "BASE",
    "Load",
    "LoadSettings",
    "authorization_amount",
    "capture_amount",
    "large_refund_amount",
    "small_refund_amount",
]
