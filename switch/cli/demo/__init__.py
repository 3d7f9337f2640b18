"""`switch demo`: start the switch in this process on the embedded default and drive it.

The demo forces the embedded stores (memory + a fresh SQLite file in a temporary
folder), listens on 127.0.0.1 with a free port, adds an instrument velocity limit
so that a "65" decline can be shown, uses DEMO_FEES when no fee schedule is
configured (so fees and revenue shares show), and sends a fixed script of calls followed by
a deterministic mix of filler calls up to `calls` RPCs in all. Every call has an
expected outcome; the summary table on stdout lists, per RPC and outcome, the
count and the median latency, then a few example lines. Instruments are printed
masked only, never in clear.

Returns 0 when every expectation held, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from pathlib import Path
from typing import TypeVar, cast

import grpc
import uvloop
from google.rpc import error_details_pb2, status_pb2

from switch.cards import luhn
from switch.config import Settings, StoreSettings, from_mapping
from switch.domain.currency import exponent
from switch.domain.limits import Limit, LimitScope
from switch.domain.models import mask_account, mask_pan
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc

T = TypeVar("T")

MERCHANT = "merchant-demo"
CURRENCY = "USD"
EXPIRY_MONTH, EXPIRY_YEAR = 12, 2030
APPROVE_CARD = "4111111111111111"
DO_NOT_HONOR_CARD = "4000000000000002"
INSUFFICIENT_CARD = "4000000000009995"
BAD_LUHN_CARD = "4111111111111112"
RAIL = "instant"

# Every instrument may authorize VELOCITY_MAX times per (very long) window; the demo
# uses each approving instrument at most that often except the one that shows "65".
VELOCITY_MAX = 3
VELOCITY = Limit(LimitScope.INSTRUMENT, window_seconds=365 * 86_400, max_count=VELOCITY_MAX, max_amount=None)
FILLER_CONCURRENCY = VELOCITY_MAX  # repeated decline cards never hold more claims than the limit
CALL_TIMEOUT = 5.0
DEMO_TIMEOUT = 60.0
MAX_EXAMPLES = 16

RPC_ORDER = (
    "Authorize",
    "AuthorizeBatch",
    "AuthorizeStream",
    "Capture",
    "Refund",
    "Void",
    "GetTransaction",
    "Tokenize",
    "QuoteFee",
)

# Cards pay 2.9 % + 0.30, shared platform / partner, the partner passing 40 % of its
# half to an agent; the instant rail pays 0.5 %. Settlement in EUR is quoted once.
DEMO_FEES = {
    "fee_schedule": [
        {
            "name": "cards",
            "rail": "card",
            "percent": "2.9",
            "fixed": 30,
            "shares": [
                {"party": "platform", "percent": "50"},
                {"party": "partner", "percent": "50", "shares": [{"party": "agent", "percent": "40"}]},
            ],
        },
        {"name": "instant", "rail": "instant", "percent": "0.5", "fixed": 0},
    ],
    "fx": {"USD/EUR": "0.9231"},
}


def main(settings: Settings, calls: int = 300) -> int:
    """Runs the demo on a private embedded switch; 0 when every expectation held."""
    with tempfile.TemporaryDirectory(prefix="switch-demo-") as folder:
        fees = settings if settings.fee_schedules else from_mapping(DEMO_FEES)
        demo_settings = replace(
            settings,
            server=replace(settings.server, host="127.0.0.1", port=0, workers=1),
            stores=StoreSettings(sqlite_path=str(Path(folder) / "journal.sqlite3")),
            limits=(*settings.limits, VELOCITY),
            tokenization=None,  # the embedded default makes its own key ring in the folder
            fee_schedules=fees.fee_schedules,
            fx=fees.fx,
        )
        return uvloop.run(_run(demo_settings, calls))


async def _run(settings: Settings, calls: int) -> int:
    from switch import server

    running = await server.build(settings)
    demo = _Demo()
    started = time.perf_counter()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            stub = switch_pb2_grpc.SwitchStub(channel)
            tokens = switch_pb2_grpc.TokensStub(channel)
            async with asyncio.timeout(DEMO_TIMEOUT):
                await _Script(stub, tokens, demo).run(calls)
    except TimeoutError:
        demo.fail(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
    finally:
        await running.stop(1.0)
    demo.print_summary(calls, time.perf_counter() - started)
    return 1 if demo.failures else 0


# --- what happened ---------------------------------------------------------------------------------


@dataclass(slots=True)
class _Demo:
    """Latencies per (RPC, outcome), example lines and failed expectations."""

    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    examples: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rpcs: int = 0

    def record(self, rpc: str, outcome: str, latency_ms: float) -> None:
        self.latencies[(rpc, outcome)].append(latency_ms)

    def expect(self, what: str, got: str, expected: str) -> bool:
        if got != expected:
            self.fail(f"{what}: expected {expected}, got {got}")
            return False
        return True

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def example(self, line: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(line)

    def print_summary(self, calls: int, seconds: float) -> None:
        rows = sorted(self.latencies.items(), key=lambda kv: (_rpc_rank(kv[0][0]), kv[0][0], kv[0][1]))
        table = [("RPC", "outcome", "count", "p50 ms")]
        for (rpc, outcome), values in rows:
            table.append((rpc, outcome, str(len(values)), f"{statistics.median(values):.2f}"))
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        rule = "  ".join("-" * w for w in widths)
        print(f"switch demo: {self.rpcs} RPCs on the embedded default (asked for {calls}) in {seconds:.2f} s")
        print()
        for index, row in enumerate(table):
            left = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:2]))
            right = "  ".join(cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:]))
            print(f"{left}  {right}")
            if index == 0:
                print(rule)
        print(rule)
        items = sum(len(values) for values in self.latencies.values())
        print(f"total: {self.rpcs} RPCs, {items} outcomes (batch and stream items counted one by one)")
        print()
        print("examples:")
        for line in self.examples:
            print(f"  {line}")
        print()
        if self.failures:
            print(f"FAILED: {len(self.failures)} expectation(s) did not hold:")
            for failure in self.failures:
                print(f"  - {failure}")
        else:
            print("all expectations held")


def _rpc_rank(rpc: str) -> int:
    base = rpc.split(" ", 1)[0]
    return RPC_ORDER.index(base) if base in RPC_ORDER else len(RPC_ORDER)


def _authorize_outcome(response: pb.AuthorizeResponse) -> str:
    if response.HasField("error"):
        return f"error {_status_name(response.error.code)}"
    outcome = "approved" if response.decision == pb.DECISION_APPROVED else f"declined {response.response_code}"
    return f"{outcome} (replayed)" if response.replayed else outcome


def _transaction_outcome(transaction: pb.Transaction) -> str:
    status = pb.TransactionStatus.Name(transaction.status).removeprefix("TRANSACTION_STATUS_").lower()
    return f"ok {status} (replayed)" if transaction.replayed else f"ok {status}"


def _status_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return f"code {code}"


def _violations(error: grpc.aio.AioRpcError) -> str:
    """The field violations of an INVALID_ARGUMENT, from its google.rpc.BadRequest detail."""
    found: list[str] = []
    # At run time grpc.aio hands back an aio.Metadata of (key, value) pairs; grpc-stubs says otherwise.
    trailing = cast(Iterable[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in trailing:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                found.extend(f"{v.field}: {v.description}" for v in bad_request.field_violations)
    return "; ".join(found) or "(no field violations)"


# --- what to send ----------------------------------------------------------------------------------


def _luhn_pan(serial: int) -> str:
    """A distinct, valid 16-digit test PAN for each serial."""
    body = f"424242{serial:09d}"
    for check in "0123456789":
        if luhn.reference_luhn_valid(body + check):
            return body + check
    raise AssertionError("unreachable: one check digit always fits")


def _money(minor_units: int) -> pb.Money:
    return pb.Money(minor_units=minor_units, currency=CURRENCY)


def _display(minor_units: int) -> str:
    return f"{minor_units / 100:.2f} {CURRENCY}"


@dataclass(frozen=True, slots=True)
class _Instrument:
    """A card or a rail account, with how the demo may print it."""

    pan: str = ""
    account_id: str = ""

    @property
    def masked(self) -> str:
        return mask_pan(self.pan) if self.pan else f"{RAIL}:{mask_account(self.account_id)}"


def _card(pan: str) -> _Instrument:
    return _Instrument(pan=pan)


def _account(account_id: str) -> _Instrument:
    return _Instrument(account_id=account_id)


class _Script:
    """The calls, in order: a fixed script that shows every feature, then fillers."""

    def __init__(
        self, stub: switch_pb2_grpc.SwitchAsyncStub, tokens: switch_pb2_grpc.TokensAsyncStub, demo: _Demo
    ) -> None:
        self._stub = stub
        self._tokens = tokens
        self._demo = demo
        self._serial = 0

    def _key(self, what: str) -> str:
        self._serial += 1
        return f"demo-{what}-{self._serial:05d}"

    def _fresh_pan(self) -> str:
        self._serial += 1
        return _luhn_pan(self._serial)

    def _request(self, instrument: _Instrument, amount: int, key: str | None = None) -> pb.AuthorizeRequest:
        request = pb.AuthorizeRequest(
            idempotency_key=key or self._key("auth"), merchant_id=MERCHANT, amount=_money(amount)
        )
        if instrument.pan:
            request.card.CopyFrom(
                pb.Card(pan=instrument.pan, expiry_month=EXPIRY_MONTH, expiry_year=EXPIRY_YEAR, holder_name="DEMO")
            )
        else:
            request.account.CopyFrom(pb.Account(rail=RAIL, id=instrument.account_id, country="BR"))
        return request

    # --- one call, timed and classified -------------------------------------------------------------

    async def _timed(self, invoke: Callable[[], Awaitable[T]]) -> tuple[T | grpc.aio.AioRpcError, float]:
        self._demo.rpcs += 1
        started = time.perf_counter()
        try:
            result: T | grpc.aio.AioRpcError = await invoke()
        except grpc.aio.AioRpcError as error:
            result = error
        return result, (time.perf_counter() - started) * 1000.0

    async def authorize(
        self, instrument: _Instrument, amount: int, expected: str, *, key: str | None = None, note: str = ""
    ) -> pb.AuthorizeResponse | grpc.aio.AioRpcError:
        request = self._request(instrument, amount, key)
        answer, latency = await self._timed(lambda: self._stub.Authorize(request, timeout=CALL_TIMEOUT))
        outcome = (
            f"error {answer.code().name}" if isinstance(answer, grpc.aio.AioRpcError) else (_authorize_outcome(answer))
        )
        self._demo.record("Authorize", outcome, latency)
        what = f"Authorize {instrument.masked} {_display(amount)}{note}"
        if self._demo.expect(what, outcome, expected) and note:
            detail = answer.details() if isinstance(answer, grpc.aio.AioRpcError) else answer.transaction_id
            self._demo.example(f"{what} -> {outcome}: {detail}")
        return answer

    async def _transaction_call(
        self, rpc: str, invoke: Callable[[], Awaitable[pb.Transaction]], expected: str, what: str
    ) -> pb.Transaction | grpc.aio.AioRpcError:
        answer, latency = await self._timed(invoke)
        if isinstance(answer, grpc.aio.AioRpcError):
            outcome = f"error {answer.code().name}"
        else:
            outcome = _transaction_outcome(answer)
        self._demo.record(rpc, outcome, latency)
        self._demo.expect(f"{rpc} {what}", outcome, expected)
        return answer

    async def capture(self, transaction_id: str, amount: int, expected: str, key: str | None = None) -> object:
        request = pb.CaptureRequest(
            transaction_id=transaction_id, amount=_money(amount), idempotency_key=key or self._key("capture")
        )
        return await self._transaction_call(
            "Capture", lambda: self._stub.Capture(request, timeout=CALL_TIMEOUT), expected, transaction_id
        )

    async def refund(self, transaction_id: str, amount: int, expected: str) -> object:
        request = pb.RefundRequest(
            transaction_id=transaction_id, amount=_money(amount), idempotency_key=self._key("refund")
        )
        return await self._transaction_call(
            "Refund", lambda: self._stub.Refund(request, timeout=CALL_TIMEOUT), expected, transaction_id
        )

    async def void(self, transaction_id: str, expected: str) -> object:
        request = pb.VoidRequest(transaction_id=transaction_id, idempotency_key=self._key("void"))
        return await self._transaction_call(
            "Void", lambda: self._stub.Void(request, timeout=CALL_TIMEOUT), expected, transaction_id
        )

    async def get(self, transaction_id: str, expected: str) -> pb.Transaction | grpc.aio.AioRpcError:
        request = pb.GetTransactionRequest(transaction_id=transaction_id)
        return await self._transaction_call(
            "GetTransaction",
            lambda: self._stub.GetTransaction(request, timeout=CALL_TIMEOUT),
            expected,
            transaction_id,
        )

    # --- the script ---------------------------------------------------------------------------------

    async def run(self, calls: int) -> None:
        first = await self._script()
        await self._fillers(calls - self._demo.rpcs, first)

    async def _script(self) -> str:
        """One call of every kind; returns an approved transaction id for later reads."""
        demo = self._demo
        approve = _card(APPROVE_CARD)
        key = self._key("auth")
        answer = await self.authorize(approve, 10_000, "approved", key=key, note="")
        if not isinstance(answer, pb.AuthorizeResponse) or not answer.transaction_id:
            demo.fail("the first approval returned no transaction; the rest of the script depends on it")
            return ""
        first = answer.transaction_id
        demo.example(
            f"Authorize {approve.masked} {_display(10_000)} -> approved {answer.response_code}: {first}, "
            f"token {answer.token}, fee {_display(answer.fee.minor_units)}"
        )
        await self.authorize(_card(DO_NOT_HONOR_CARD), 2_500, "declined 05", note=" (test card)")
        await self.authorize(_card(INSUFFICIENT_CARD), 2_500, "declined 51", note=" (test card)")
        await self.authorize(_account("acct-demo-0001"), 1_999, "approved", note=" (rail account)")
        await self.authorize(_account("acct-demo-0002-insufficient"), 1_999, "declined 51", note=" (rail account)")

        replay = await self.authorize(approve, 10_000, "approved (replayed)", key=key)
        if isinstance(replay, pb.AuthorizeResponse) and demo.expect(
            "replay transaction id", replay.transaction_id, first
        ):
            demo.example(f"Authorize again with key {key} -> replayed=true, same transaction {first}")
        await self.authorize(approve, 12_345, "error ALREADY_EXISTS", key=key, note=" (key reused)")
        bad = await self.authorize(_card(BAD_LUHN_CARD), 1_000, "error INVALID_ARGUMENT")
        if isinstance(bad, grpc.aio.AioRpcError):
            fields = _violations(bad)
            demo.expect("bad Luhn field", fields.split(":", 1)[0], "source.card.pan")
            demo.example(f"Authorize {mask_pan(BAD_LUHN_CARD)} (bad Luhn) -> {bad.code().name}: {fields}")

        await self._batch()
        await self._stream()
        await self._lifecycle(first)
        await self._void_flow()
        await self._velocity()
        await self.get("tx_DOESNOTEXIST0000000000000000", "error NOT_FOUND")
        await self._pay_by_token(approve)
        await self._quote_fee()
        return first

    async def _pay_by_token(self, card: _Instrument) -> None:
        """Tokenize a card, then pay with the token alone."""
        request = pb.TokenizeRequest(card=pb.Card(pan=card.pan, expiry_month=EXPIRY_MONTH, expiry_year=EXPIRY_YEAR))
        token, latency = await self._timed(lambda: self._tokens.Tokenize(request, timeout=CALL_TIMEOUT))
        if isinstance(token, grpc.aio.AioRpcError):
            self._demo.record("Tokenize", f"error {token.code().name}", latency)
            self._demo.fail(f"Tokenize {card.masked}: {token.code().name}")
            return
        self._demo.record("Tokenize", "ok", latency)
        self._demo.expect(
            "token keeps BIN and last 4", token.token[:6] + token.token[-4:], card.pan[:6] + card.pan[-4:]
        )
        self._demo.expect("token is no card number", str(luhn.luhn_valid(token.token)), "False")
        pay = pb.AuthorizeRequest(
            idempotency_key=self._key("token"), merchant_id=MERCHANT, amount=_money(4_200), token=token.token
        )
        answer, latency = await self._timed(lambda: self._stub.Authorize(pay, timeout=CALL_TIMEOUT))
        outcome = (
            f"error {answer.code().name}" if isinstance(answer, grpc.aio.AioRpcError) else _authorize_outcome(answer)
        )
        self._demo.record("Authorize", outcome, latency)
        if self._demo.expect(f"Authorize with token {token.token}", outcome, "approved"):
            self._demo.example(
                f"Tokenize {token.masked_pan} -> token {token.token} (key {token.key_id}, fails Luhn); "
                f"Authorize with the token {_display(4_200)} -> {outcome}"
            )

    async def _quote_fee(self) -> None:
        """The fee, its revenue shares and a settlement amount, as a quote."""
        request = pb.QuoteFeeRequest(
            merchant_id=MERCHANT, amount=_money(10_000), rail="card", settlement_currency="EUR"
        )
        quote, latency = await self._timed(lambda: self._stub.QuoteFee(request, timeout=CALL_TIMEOUT))
        if isinstance(quote, grpc.aio.AioRpcError):
            self._demo.record("QuoteFee", f"error {quote.code().name}", latency)
            self._demo.fail(f"QuoteFee: {quote.code().name} {quote.details()}")
            return
        self._demo.record("QuoteFee", f"ok schedule {quote.schedule or '(none)'}", latency)
        total = sum(share.amount.minor_units for share in quote.shares)
        self._demo.expect("shares sum to the fee", str(total), str(quote.fee.minor_units))
        shares = ", ".join(f"{share.party} {_display(share.amount.minor_units)}" for share in quote.shares)
        settlement = quote.settlement_amount
        self._demo.example(
            f"QuoteFee {_display(10_000)} on card -> fee {_display(quote.fee.minor_units)} [{shares}], "
            f"settles as {Decimal(settlement.minor_units).scaleb(-exponent(settlement.currency))} {settlement.currency}"
        )

    async def _batch(self) -> None:
        plan: list[tuple[_Instrument, int, str]] = [
            (_card(self._fresh_pan()), 1_100, "approved"),
            (_card(self._fresh_pan()), 1_200, "approved"),
            (_card(DO_NOT_HONOR_CARD), 1_300, "declined 05"),
            (_card(INSUFFICIENT_CARD), 1_400, "declined 51"),
            (_account("acct-demo-0003"), 1_500, "approved"),
            (_account("acct-demo-0004-insufficient"), 1_600, "declined 51"),
            (_card(BAD_LUHN_CARD), 1_700, "error INVALID_ARGUMENT"),
            (_card(self._fresh_pan()), 1_800, "approved"),
            (_card(self._fresh_pan()), 1_900, "approved"),
            (_card(self._fresh_pan()), 2_000, "approved"),
        ]
        request = pb.AuthorizeBatchRequest(requests=[self._request(i, amount) for i, amount, _ in plan])
        answer, latency = await self._timed(lambda: self._stub.AuthorizeBatch(request, timeout=CALL_TIMEOUT))
        if isinstance(answer, grpc.aio.AioRpcError):
            outcome = f"error {answer.code().name}"
            self._demo.record("AuthorizeBatch", outcome, latency)
            self._demo.expect("AuthorizeBatch", outcome, "ok")
            return
        self._demo.record("AuthorizeBatch", f"ok ({len(plan)} items)", latency)
        if not self._demo.expect("AuthorizeBatch size", str(len(answer.responses)), str(len(plan))):
            return
        counts: dict[str, int] = defaultdict(int)
        for (instrument, amount, expected), response, sent in zip(
            plan, answer.responses, request.requests, strict=True
        ):
            outcome = _authorize_outcome(response)
            counts[outcome] += 1
            self._demo.record("AuthorizeBatch item", outcome, latency)
            self._demo.expect(f"AuthorizeBatch item {instrument.masked} {_display(amount)}", outcome, expected)
            self._demo.expect("AuthorizeBatch order", response.idempotency_key, sent.idempotency_key)
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        self._demo.example(f"AuthorizeBatch of {len(plan)} -> in request order: {summary}")

    async def _stream(self) -> None:
        plan: list[tuple[_Instrument, int, str]] = [
            (_card(self._fresh_pan()), 2_100, "approved"),
            (_card(DO_NOT_HONOR_CARD), 2_200, "declined 05"),
            (_card(self._fresh_pan()), 2_300, "approved"),
            (_card(INSUFFICIENT_CARD), 2_400, "declined 51"),
            (_account("acct-demo-0005"), 2_500, "approved"),
            (_card(self._fresh_pan()), 2_600, "approved"),
            (_card(BAD_LUHN_CARD), 2_700, "error INVALID_ARGUMENT"),
            (_card(self._fresh_pan()), 2_800, "approved"),
        ]
        requests = [self._request(i, amount) for i, amount, _ in plan]
        expected = {r.idempotency_key: (plan[n][0], plan[n][1], plan[n][2]) for n, r in enumerate(requests)}
        sent_at: dict[str, float] = {}

        async def send() -> AsyncIterator[pb.AuthorizeRequest]:
            for request in requests:
                sent_at[request.idempotency_key] = time.perf_counter()
                yield request

        self._demo.rpcs += 1
        started = time.perf_counter()
        received: list[str] = []
        try:
            call = self._stub.AuthorizeStream(send(), timeout=CALL_TIMEOUT)
            async for response in call:
                latency = (time.perf_counter() - sent_at.get(response.idempotency_key, started)) * 1000.0
                outcome = _authorize_outcome(response)
                self._demo.record("AuthorizeStream item", outcome, latency)
                plan_item = expected.get(response.idempotency_key)
                if plan_item is None:
                    self._demo.fail(f"AuthorizeStream answered an unknown key {response.idempotency_key!r}")
                    continue
                instrument, amount, wanted = plan_item
                self._demo.expect(f"AuthorizeStream item {instrument.masked} {_display(amount)}", outcome, wanted)
                received.append(response.idempotency_key)
        except grpc.aio.AioRpcError as error:
            self._demo.record("AuthorizeStream", f"error {error.code().name}", (time.perf_counter() - started) * 1e3)
            self._demo.fail(f"AuthorizeStream failed: {error.code().name}")
            return
        self._demo.record("AuthorizeStream", f"ok ({len(received)} items)", (time.perf_counter() - started) * 1e3)
        self._demo.expect("AuthorizeStream answers", str(sorted(received)), str(sorted(expected)))
        self._demo.example(f"AuthorizeStream of {len(plan)} -> {len(received)} answers, each with its key")

    async def _lifecycle(self, transaction_id: str) -> None:
        """10,000 authorized -> 6,000 captured (partial) -> refunded in two parts."""
        key = self._key("capture")
        await self.capture(transaction_id, 6_000, "ok captured", key=key)
        await self.capture(transaction_id, 6_000, "ok captured (replayed)", key=key)
        await self.refund(transaction_id, 2_000, "ok partially_refunded")
        await self.refund(transaction_id, 4_000, "ok refunded")
        final = await self.get(transaction_id, "ok refunded")
        if isinstance(final, pb.Transaction):
            self._demo.expect("refunded amount", str(final.refunded.minor_units), "6000")
            self._demo.example(
                f"{transaction_id} ({final.masked_instrument}): authorized {_display(10_000)}, captured "
                f"{_display(final.captured.minor_units)}, refunded {_display(2_000)} + {_display(4_000)}"
            )

    async def _void_flow(self) -> None:
        answer = await self.authorize(_card(self._fresh_pan()), 3_000, "approved")
        if not isinstance(answer, pb.AuthorizeResponse):
            return
        transaction_id = answer.transaction_id
        await self.void(transaction_id, "ok voided")
        late = await self.capture(transaction_id, 3_000, "error FAILED_PRECONDITION")
        await self.get(transaction_id, "ok voided")
        if isinstance(late, grpc.aio.AioRpcError):
            self._demo.example(f"Capture of voided {transaction_id} -> FAILED_PRECONDITION: {late.details()}")

    async def _velocity(self) -> None:
        card = _card(self._fresh_pan())
        for _ in range(VELOCITY_MAX):
            await self.authorize(card, 500, "approved")
        await self.authorize(card, 500, "declined 65", note=f" (call {VELOCITY_MAX + 1} within the limit's window)")

    # --- fillers ------------------------------------------------------------------------------------

    async def _fillers(self, budget: int, read_id: str) -> None:
        """A repeating, deterministic mix until `budget` more RPCs are sent, a few at a time."""
        units: list[tuple[int, Callable[[], Awaitable[None]]]] = []
        cycle = (
            "card",
            "do-not-honor",
            "card",
            "insufficient",
            "account",
            "account-insufficient",
            "capture-refund",
            "void",
            "read",
        )
        position = 0
        while budget > 0:
            kind = cycle[position % len(cycle)]
            position += 1
            cost, unit = self._filler(kind, read_id)
            if cost > budget:
                cost, unit = self._filler("card", read_id)
            units.append((cost, unit))
            budget -= cost
        queue = iter(units)

        async def worker() -> None:
            for _, unit in queue:
                await unit()

        await asyncio.gather(*(worker() for _ in range(FILLER_CONCURRENCY)))

    def _filler(self, kind: str, read_id: str) -> tuple[int, Callable[[], Awaitable[None]]]:
        serial = self._serial
        self._serial += 1

        async def single(instrument: _Instrument, amount: int, expected: str) -> None:
            await self.authorize(instrument, amount, expected)

        if kind == "do-not-honor":
            return 1, lambda: single(_card(DO_NOT_HONOR_CARD), 1_000 + serial, "declined 05")
        if kind == "insufficient":
            return 1, lambda: single(_card(INSUFFICIENT_CARD), 1_000 + serial, "declined 51")
        if kind == "account":
            return 1, lambda: single(_account(f"acct-fill-{serial:05d}"), 700 + serial, "approved")
        if kind == "account-insufficient":
            return 1, lambda: single(_account(f"acct-fill-{serial:05d}-insufficient"), 700, "declined 51")
        if kind == "capture-refund":
            return 5, lambda: self._capture_refund(_card(_luhn_pan(serial)))
        if kind == "void":
            return 3, lambda: self._void_and_read(_card(_luhn_pan(serial)))
        if kind == "read" and read_id:
            return 1, lambda: self._read(read_id)
        return 1, lambda: single(_card(_luhn_pan(serial)), 1_000 + serial, "approved")

    async def _capture_refund(self, card: _Instrument) -> None:
        answer = await self.authorize(card, 5_000, "approved")
        if isinstance(answer, pb.AuthorizeResponse) and answer.transaction_id:
            await self.capture(answer.transaction_id, 3_000, "ok captured")
            await self.refund(answer.transaction_id, 1_000, "ok partially_refunded")
            await self.refund(answer.transaction_id, 2_000, "ok refunded")
            await self.get(answer.transaction_id, "ok refunded")

    async def _void_and_read(self, card: _Instrument) -> None:
        answer = await self.authorize(card, 4_000, "approved")
        if isinstance(answer, pb.AuthorizeResponse) and answer.transaction_id:
            await self.void(answer.transaction_id, "ok voided")
            await self.get(answer.transaction_id, "ok voided")

    async def _read(self, transaction_id: str) -> None:
        await self.get(transaction_id, "ok refunded")
