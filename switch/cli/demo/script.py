"""The calls the demo sends, in order: a fixed script that shows every feature
(approvals, test-card declines, replays, a reused key, a bad card number, a batch, a
stream, capture / refund / void, a velocity decline, a token payment, a fee quote),
then a deterministic mix of filler calls up to the number asked for. Every call
carries its expected outcome; the Report records what came back.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from decimal import Decimal
from typing import TypeVar

import grpc

from switch.cards import luhn
from switch.cli.demo.cards import (
    APPROVE_CARD,
    BAD_LUHN_CARD,
    DO_NOT_HONOR_CARD,
    EXPIRY_MONTH,
    EXPIRY_YEAR,
    INSUFFICIENT_CARD,
    RAIL,
    Instrument,
    luhn_pan,
)
from switch.cli.demo.report import Report, authorize_outcome, transaction_outcome, violations
from switch.domain.currency import exponent
from switch.domain.limits import Limit, LimitScope
from switch.domain.models import mask_pan
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc

T = TypeVar("T")

MERCHANT = "merchant-demo"
CURRENCY = "USD"

# Every instrument may authorize VELOCITY_MAX times per (very long) window; the demo
# uses each approving instrument at most that often except the one that shows "65".
VELOCITY_MAX = 3
VELOCITY = Limit(LimitScope.INSTRUMENT, window_seconds=365 * 86_400, max_count=VELOCITY_MAX, max_amount=None)
FILLER_CONCURRENCY = VELOCITY_MAX  # repeated decline cards never hold more claims than the limit
CALL_TIMEOUT = 5.0
DEMO_LIMITED_TIER = "limited"  # run.py's [kyc]: 50.00 USD over a holder's lifetime
CARD_TESTING_TRIES = 40
_RISK_CODES = ("57", "59", "93")  # declines whose message says which risk rule decided them


def money(minor_units: int) -> pb.Money:
    return pb.Money(minor_units=minor_units, currency=CURRENCY)


def display(minor_units: int) -> str:
    return f"{minor_units / 100:.2f} {CURRENCY}"


class Script:
    """The calls, in order: a fixed script that shows every feature, then fillers."""

    def __init__(
        self, stub: switch_pb2_grpc.SwitchAsyncStub, tokens: switch_pb2_grpc.TokensAsyncStub, report: Report
    ) -> None:
        self._stub = stub
        self._tokens = tokens
        self._report = report
        self._serial = 0

    def _key(self, what: str) -> str:
        self._serial += 1
        return f"demo-{what}-{self._serial:05d}"

    def _fresh_pan(self) -> str:
        self._serial += 1
        return luhn_pan(self._serial)

    def _request(self, instrument: Instrument, amount: int, key: str | None = None) -> pb.AuthorizeRequest:
        request = pb.AuthorizeRequest(
            idempotency_key=key or self._key("auth"), merchant_id=MERCHANT, amount=money(amount)
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
        self._report.rpcs += 1
        started = time.perf_counter()
        try:
            result: T | grpc.aio.AioRpcError = await invoke()
        except grpc.aio.AioRpcError as error:
            result = error
        return result, (time.perf_counter() - started) * 1000.0

    async def authorize(
        self,
        instrument: Instrument,
        amount: int,
        expected: str,
        *,
        key: str | None = None,
        note: str = "",
        destination: pb.Account | None = None,
    ) -> pb.AuthorizeResponse | grpc.aio.AioRpcError:
        request = self._request(instrument, amount, key)
        if destination is not None:
            request.destination.CopyFrom(destination)
        answer, latency = await self._timed(lambda: self._stub.Authorize(request, timeout=CALL_TIMEOUT))
        outcome = _authorized(answer)
        self._report.record("Authorize", outcome, latency)
        what = f"Authorize {instrument.masked} {display(amount)}{note}"
        if self._report.expect(what, outcome, expected) and note:
            if isinstance(answer, grpc.aio.AioRpcError):
                detail = answer.details() or ""
            else:
                detail = answer.message if answer.response_code in _RISK_CODES else answer.transaction_id
            self._report.example(f"{what} -> {outcome}: {detail}")
        return answer

    async def _transaction_call(
        self, rpc: str, invoke: Callable[[], Awaitable[pb.Transaction]], expected: str, what: str
    ) -> pb.Transaction | grpc.aio.AioRpcError:
        answer, latency = await self._timed(invoke)
        if isinstance(answer, grpc.aio.AioRpcError):
            outcome = f"error {answer.code().name}"
        else:
            outcome = transaction_outcome(answer)
        self._report.record(rpc, outcome, latency)
        self._report.expect(f"{rpc} {what}", outcome, expected)
        return answer

    async def capture(self, transaction_id: str, amount: int, expected: str, key: str | None = None) -> object:
        request = pb.CaptureRequest(
            transaction_id=transaction_id, amount=money(amount), idempotency_key=key or self._key("capture")
        )
        return await self._transaction_call(
            "Capture", lambda: self._stub.Capture(request, timeout=CALL_TIMEOUT), expected, transaction_id
        )

    async def refund(self, transaction_id: str, amount: int, expected: str) -> object:
        request = pb.RefundRequest(
            transaction_id=transaction_id, amount=money(amount), idempotency_key=self._key("refund")
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
        await self._fillers(calls - self._report.rpcs, first)

    async def _script(self) -> str:
        """One call of every kind; returns an approved transaction id for later reads."""
        report = self._report
        approve = Instrument.card(APPROVE_CARD)
        key = self._key("auth")
        answer = await self.authorize(approve, 10_000, "approved", key=key, note="")
        if not isinstance(answer, pb.AuthorizeResponse) or not answer.transaction_id:
            report.fail("the first approval returned no transaction; the rest of the script depends on it")
            return ""
        first = answer.transaction_id
        report.example(
            f"Authorize {approve.masked} {display(10_000)} -> approved {answer.response_code}: {first}, "
            f"token {answer.token}, fee {display(answer.fee.minor_units)}"
        )
        await self.authorize(Instrument.card(DO_NOT_HONOR_CARD), 2_500, "declined 05", note=" (test card)")
        await self.authorize(Instrument.card(INSUFFICIENT_CARD), 2_500, "declined 51", note=" (test card)")
        await self.authorize(Instrument.account("acct-demo-0001"), 1_999, "approved", note=" (rail account)")
        await self.authorize(
            Instrument.account("acct-demo-0002-insufficient"), 1_999, "declined 51", note=" (rail account)"
        )

        replay = await self.authorize(approve, 10_000, "approved (replayed)", key=key)
        if isinstance(replay, pb.AuthorizeResponse) and report.expect(
            "replay transaction id", replay.transaction_id, first
        ):
            report.example(f"Authorize again with key {key} -> replayed=true, same transaction {first}")
        await self.authorize(approve, 12_345, "error ALREADY_EXISTS", key=key, note=" (key reused)")
        bad = await self.authorize(Instrument.card(BAD_LUHN_CARD), 1_000, "error INVALID_ARGUMENT")
        if isinstance(bad, grpc.aio.AioRpcError):
            fields = violations(bad)
            report.expect("bad Luhn field", fields.split(":", 1)[0], "source.card.pan")
            report.example(f"Authorize {mask_pan(BAD_LUHN_CARD)} (bad Luhn) -> {bad.code().name}: {fields}")

        await self._batch()
        await self._stream()
        await self._lifecycle(first)
        await self._void_flow()
        await self._velocity()
        await self.get("tx_DOESNOTEXIST0000000000000000", "error NOT_FOUND")
        await self._pay_by_token(approve)
        await self._quote_fee()
        await self._risk()
        return first

    async def _risk(self) -> None:
        """The risk step: a sanctioned party (93), a KYC tier's cap (57), card testing (59)."""
        report = self._report
        listed = pb.Account(rail=RAIL, id="acct-demo-bnc", country="CH", holder_name="Banco Nacional de Cuba")
        await self.authorize(
            Instrument.account("acct-demo-0003"), 2_000, "declined 93", destination=listed, note=" to a listed bank"
        )
        card = Instrument.card(self._fresh_pan())
        tier = pb.SetHolderTierRequest(card=pb.Card(pan=card.pan), tier=DEMO_LIMITED_TIER, reason="demo: KYC pending")
        answer, latency = await self._timed(lambda: self._stub.SetHolderTier(tier, timeout=CALL_TIMEOUT))
        outcome = f"error {answer.code().name}" if isinstance(answer, grpc.aio.AioRpcError) else f"ok {answer.tier}"
        report.record("SetHolderTier", outcome, latency)
        if report.expect(f"SetHolderTier {card.masked}", outcome, f"ok {DEMO_LIMITED_TIER}"):
            report.example(f"SetHolderTier {card.masked} -> {DEMO_LIMITED_TIER} (a lifetime cap of {display(5_000)})")
        await self.authorize(card, 4_000, "approved")
        await self.authorize(card, 2_000, "declined 57", note=" (over its tier's lifetime cap)")
        # Card testing: one card tried again and again, the issuer declining each time.
        tester = Instrument.card(DO_NOT_HONOR_CARD)
        for attempt in range(CARD_TESTING_TRIES):
            if await self._stub_authorize(tester, 100 + attempt) == "declined 59":
                report.example(
                    f"Authorize {tester.masked} {display(100 + attempt)}, declined by its issuer again and again "
                    f"(card testing) -> declined 59: suspected fraud"
                )
                break
        else:
            report.fail(f"card testing was not declined 59 within {CARD_TESTING_TRIES} tries")
        alerts, latency = await self._timed(lambda: self._stub.ListAlerts(pb.ListAlertsRequest(), timeout=CALL_TIMEOUT))
        if isinstance(alerts, grpc.aio.AioRpcError):
            report.record("ListAlerts", f"error {alerts.code().name}", latency)
            report.fail(f"ListAlerts failed: {alerts.code().name}")
            return
        report.record("ListAlerts", "ok", latency)
        kinds = sorted({alert.kind for alert in alerts.alerts})
        report.example(f"ListAlerts -> {len(alerts.alerts)} alerts: {', '.join(kinds)}")

    async def _stub_authorize(self, instrument: Instrument, amount: int) -> str:
        """One authorization whose outcome may be any (recorded, not expected)."""
        request = self._request(instrument, amount)
        answer, latency = await self._timed(lambda: self._stub.Authorize(request, timeout=CALL_TIMEOUT))
        outcome = (
            f"error {answer.code().name}" if isinstance(answer, grpc.aio.AioRpcError) else authorize_outcome(answer)
        )
        self._report.record("Authorize", outcome, latency)
        return outcome

    async def _pay_by_token(self, card: Instrument) -> None:
        """Tokenize a card, then pay with the token alone."""
        request = pb.TokenizeRequest(card=pb.Card(pan=card.pan, expiry_month=EXPIRY_MONTH, expiry_year=EXPIRY_YEAR))
        token, latency = await self._timed(lambda: self._tokens.Tokenize(request, timeout=CALL_TIMEOUT))
        if isinstance(token, grpc.aio.AioRpcError):
            self._report.record("Tokenize", f"error {token.code().name}", latency)
            self._report.fail(f"Tokenize {card.masked}: {token.code().name}")
            return
        self._report.record("Tokenize", "ok", latency)
        self._report.expect(
            "token keeps BIN and last 4", token.token[:6] + token.token[-4:], card.pan[:6] + card.pan[-4:]
        )
        self._report.expect("token is no card number", str(luhn.luhn_valid(token.token)), "False")
        pay = pb.AuthorizeRequest(
            idempotency_key=self._key("token"), merchant_id=MERCHANT, amount=money(4_200), token=token.token
        )
        answer, latency = await self._timed(lambda: self._stub.Authorize(pay, timeout=CALL_TIMEOUT))
        outcome = (
            f"error {answer.code().name}" if isinstance(answer, grpc.aio.AioRpcError) else authorize_outcome(answer)
        )
        self._report.record("Authorize", outcome, latency)
        if self._report.expect(f"Authorize with token {token.token}", outcome, "approved"):
            self._report.example(
                f"Tokenize {token.masked_pan} -> token {token.token} (key {token.key_id}, fails Luhn); "
                f"Authorize with the token {display(4_200)} -> {outcome}"
            )

    async def _quote_fee(self) -> None:
        """The fee, its revenue shares and a settlement amount, as a quote."""
        request = pb.QuoteFeeRequest(merchant_id=MERCHANT, amount=money(10_000), rail="card", settlement_currency="EUR")
        quote, latency = await self._timed(lambda: self._stub.QuoteFee(request, timeout=CALL_TIMEOUT))
        if isinstance(quote, grpc.aio.AioRpcError):
            self._report.record("QuoteFee", f"error {quote.code().name}", latency)
            self._report.fail(f"QuoteFee: {quote.code().name} {quote.details()}")
            return
        self._report.record("QuoteFee", f"ok schedule {quote.schedule or '(none)'}", latency)
        total = sum(share.amount.minor_units for share in quote.shares)
        self._report.expect("shares sum to the fee", str(total), str(quote.fee.minor_units))
        shares = ", ".join(f"{share.party} {display(share.amount.minor_units)}" for share in quote.shares)
        settlement = quote.settlement_amount
        self._report.example(
            f"QuoteFee {display(10_000)} on card -> fee {display(quote.fee.minor_units)} [{shares}], "
            f"settles as {Decimal(settlement.minor_units).scaleb(-exponent(settlement.currency))} {settlement.currency}"
        )

    async def _batch(self) -> None:
        plan: list[tuple[Instrument, int, str]] = [
            (Instrument.card(self._fresh_pan()), 1_100, "approved"),
            (Instrument.card(self._fresh_pan()), 1_200, "approved"),
            (Instrument.card(DO_NOT_HONOR_CARD), 1_300, "declined 05"),
            (Instrument.card(INSUFFICIENT_CARD), 1_400, "declined 51"),
            (Instrument.account("acct-demo-0003"), 1_500, "approved"),
            (Instrument.account("acct-demo-0004-insufficient"), 1_600, "declined 51"),
            (Instrument.card(BAD_LUHN_CARD), 1_700, "error INVALID_ARGUMENT"),
            (Instrument.card(self._fresh_pan()), 1_800, "approved"),
            (Instrument.card(self._fresh_pan()), 1_900, "approved"),
            (Instrument.card(self._fresh_pan()), 2_000, "approved"),
        ]
        request = pb.AuthorizeBatchRequest(requests=[self._request(i, amount) for i, amount, _ in plan])
        answer, latency = await self._timed(lambda: self._stub.AuthorizeBatch(request, timeout=CALL_TIMEOUT))
        if isinstance(answer, grpc.aio.AioRpcError):
            outcome = f"error {answer.code().name}"
            self._report.record("AuthorizeBatch", outcome, latency)
            self._report.expect("AuthorizeBatch", outcome, "ok")
            return
        self._report.record("AuthorizeBatch", f"ok ({len(plan)} items)", latency)
        if not self._report.expect("AuthorizeBatch size", str(len(answer.responses)), str(len(plan))):
            return
        counts: dict[str, int] = defaultdict(int)
        for (instrument, amount, expected), response, sent in zip(
            plan, answer.responses, request.requests, strict=True
        ):
            outcome = authorize_outcome(response)
            counts[outcome] += 1
            self._report.record("AuthorizeBatch item", outcome, latency)
            self._report.expect(f"AuthorizeBatch item {instrument.masked} {display(amount)}", outcome, expected)
            self._report.expect("AuthorizeBatch order", response.idempotency_key, sent.idempotency_key)
        summary = ", ".join(f"{count} {outcome}" for outcome, count in sorted(counts.items()))
        self._report.example(f"AuthorizeBatch of {len(plan)} -> in request order: {summary}")

    async def _stream(self) -> None:
        plan: list[tuple[Instrument, int, str]] = [
            (Instrument.card(self._fresh_pan()), 2_100, "approved"),
            # A rail account, not a test card again: the fraud model sees a card declined
            # three times in minutes as card testing (59); the script shows that below.
            (Instrument.account("acct-demo-0006-insufficient"), 2_200, "declined 51"),
            (Instrument.card(self._fresh_pan()), 2_300, "approved"),
            (Instrument.account("acct-demo-0005"), 2_500, "approved"),
            (Instrument.card(self._fresh_pan()), 2_600, "approved"),
            (Instrument.card(BAD_LUHN_CARD), 2_700, "error INVALID_ARGUMENT"),
            (Instrument.card(self._fresh_pan()), 2_800, "approved"),
        ]
        requests = [self._request(i, amount) for i, amount, _ in plan]
        expected = {r.idempotency_key: (plan[n][0], plan[n][1], plan[n][2]) for n, r in enumerate(requests)}
        sent_at: dict[str, float] = {}

        async def send() -> AsyncIterator[pb.AuthorizeRequest]:
            for request in requests:
                sent_at[request.idempotency_key] = time.perf_counter()
                yield request

        self._report.rpcs += 1
        started = time.perf_counter()
        received: list[str] = []
        try:
            call = self._stub.AuthorizeStream(send(), timeout=CALL_TIMEOUT)
            async for response in call:
                latency = (time.perf_counter() - sent_at.get(response.idempotency_key, started)) * 1000.0
                outcome = authorize_outcome(response)
                self._report.record("AuthorizeStream item", outcome, latency)
                plan_item = expected.get(response.idempotency_key)
                if plan_item is None:
                    self._report.fail(f"AuthorizeStream answered an unknown key {response.idempotency_key!r}")
                    continue
                instrument, amount, wanted = plan_item
                self._report.expect(f"AuthorizeStream item {instrument.masked} {display(amount)}", outcome, wanted)
                received.append(response.idempotency_key)
        except grpc.aio.AioRpcError as error:
            self._report.record("AuthorizeStream", f"error {error.code().name}", (time.perf_counter() - started) * 1e3)
            self._report.fail(f"AuthorizeStream failed: {error.code().name}")
            return
        self._report.record("AuthorizeStream", f"ok ({len(received)} items)", (time.perf_counter() - started) * 1e3)
        self._report.expect("AuthorizeStream answers", str(sorted(received)), str(sorted(expected)))
        self._report.example(f"AuthorizeStream of {len(plan)} -> {len(received)} answers, each with its key")

    async def _lifecycle(self, transaction_id: str) -> None:
        """10,000 authorized -> 6,000 captured (partial) -> refunded in two parts."""
        key = self._key("capture")
        await self.capture(transaction_id, 6_000, "ok captured", key=key)
        await self.capture(transaction_id, 6_000, "ok captured (replayed)", key=key)
        await self.refund(transaction_id, 2_000, "ok partially_refunded")
        await self.refund(transaction_id, 4_000, "ok refunded")
        final = await self.get(transaction_id, "ok refunded")
        if isinstance(final, pb.Transaction):
            self._report.expect("refunded amount", str(final.refunded.minor_units), "6000")
            self._report.example(
                f"{transaction_id} ({final.masked_instrument}): authorized {display(10_000)}, captured "
                f"{display(final.captured.minor_units)}, refunded {display(2_000)} + {display(4_000)}"
            )

    async def _void_flow(self) -> None:
        answer = await self.authorize(Instrument.card(self._fresh_pan()), 3_000, "approved")
        if not isinstance(answer, pb.AuthorizeResponse):
            return
        transaction_id = answer.transaction_id
        await self.void(transaction_id, "ok voided")
        late = await self.capture(transaction_id, 3_000, "error FAILED_PRECONDITION")
        await self.get(transaction_id, "ok voided")
        if isinstance(late, grpc.aio.AioRpcError):
            self._report.example(f"Capture of voided {transaction_id} -> FAILED_PRECONDITION: {late.details()}")

    async def _velocity(self) -> None:
        card = Instrument.card(self._fresh_pan())
        for _ in range(VELOCITY_MAX):
            await self.authorize(card, 500, "approved")
        await self.authorize(card, 500, "declined 65", note=f" (call {VELOCITY_MAX + 1} within the limit's window)")

    # --- fillers ------------------------------------------------------------------------------------

    async def _fillers(self, budget: int, read_id: str) -> None:
        """A repeating, deterministic mix until `budget` more RPCs are sent, a few at a time."""
        units: list[tuple[int, Callable[[], Awaitable[None]]]] = []
        # The declining test cards are not repeated here: the fraud model would take a
        # card declined again and again for card testing (the script shows it, on purpose).
        cycle = (
            "card",
            "account",
            "card",
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

        async def single(instrument: Instrument, amount: int, expected: str) -> None:
            await self.authorize(instrument, amount, expected)

        if kind == "account":
            return 1, lambda: single(Instrument.account(f"acct-fill-{serial:05d}"), 700 + serial, "approved")
        if kind == "account-insufficient":
            return 1, lambda: single(Instrument.account(f"acct-fill-{serial:05d}-insufficient"), 700, "declined 51")
        if kind == "capture-refund":
            return 5, lambda: self._capture_refund(Instrument.card(luhn_pan(serial)))
        if kind == "void":
            return 3, lambda: self._void_and_read(Instrument.card(luhn_pan(serial)))
        if kind == "read" and read_id:
            return 1, lambda: self._read(read_id)
        return 1, lambda: single(Instrument.card(luhn_pan(serial)), 1_000 + serial, "approved")

    async def _capture_refund(self, card: Instrument) -> None:
        answer = await self.authorize(card, 5_000, "approved")
        if isinstance(answer, pb.AuthorizeResponse) and answer.transaction_id:
            await self.capture(answer.transaction_id, 3_000, "ok captured")
            await self.refund(answer.transaction_id, 1_000, "ok partially_refunded")
            await self.refund(answer.transaction_id, 2_000, "ok refunded")
            await self.get(answer.transaction_id, "ok refunded")

    async def _void_and_read(self, card: Instrument) -> None:
        answer = await self.authorize(card, 4_000, "approved")
        if isinstance(answer, pb.AuthorizeResponse) and answer.transaction_id:
            await self.void(answer.transaction_id, "ok voided")
            await self.get(answer.transaction_id, "ok voided")

    async def _read(self, transaction_id: str) -> None:
        await self.get(transaction_id, "ok refunded")


def _authorized(answer: pb.AuthorizeResponse | grpc.aio.AioRpcError) -> str:
    return f"error {answer.code().name}" if isinstance(answer, grpc.aio.AioRpcError) else authorize_outcome(answer)
