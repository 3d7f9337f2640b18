"""The gRPC surface of switch.v1.Switch: proto in, domain call, proto out.

Thin on purpose: parsing lives in switch.api.convert, the work in the batcher,
pipeline and transaction service; what every call goes through (request ids,
errors mapped to statuses once) in switch.decorators.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from switch.api import convert, decorators
from switch.api.decoding import Undecodable
from switch.api.status import as_switch_error
from switch.cards.tokenizer import Tokenizer
from switch.domain.alerts import AlertQuery, RiskAlert
from switch.domain.audit import EventKind
from switch.domain.errors import (
    EnumerationRefused,
    InvalidRequest,
    PermissionDenied,
    RateLimited,
    SwitchError,
    Violation,
)
from switch.domain.models import Authorization, Card, MoneyOverflow, OperationKind, mask_pan
from switch.flow.batcher import Answer, MicroBatcher
from switch.flow.kyc import HolderTiers
from switch.flow.promotion import Promotions
from switch.flow.transactions import TransactionService
from switch.money.fees import FeeEngine, FxRateMissing
from switch.risk.travel_rule import TravelRule
from switch.security.access import Access, check_merchant, current_grant
from switch.security.enumeration import EnumerationGuard
from switch.security.policy import Grant, Role
from switch.security.ratelimit import CallerRateLimit
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc

Context = grpc.aio.ServicerContext[Any, Any]

STREAM_WINDOW = 2048  # authorizations one stream may have in the pipeline at once
ENUMERATION_REFUSED = "too many different card numbers sharing their first 6 and last 4 digits"


class SwitchServicer(switch_pb2_grpc.SwitchServicer):
    def __init__(
        self,
        batcher: MicroBatcher,
        transactions: TransactionService,
        fees: FeeEngine,
        access: Access,
        guard: EnumerationGuard,
        *,
        alerts: Callable[[AlertQuery], Awaitable[list[RiskAlert]]],
        holder_tiers: HolderTiers,
        promotions: Promotions,
        travel_rule: TravelRule | None = None,
    ) -> None:
        """alerts: the journal's list of risk alerts (Journal.list_alerts); travel_rule: the
        names a cross-border transfer must carry, checked as it is admitted."""
        self.access = access
        self._holder_tiers = holder_tiers
        self._promotions = promotions
        self._guard = guard
        self._alerts = alerts
        self._travel_rule = travel_rule
        self._batcher = batcher
        self._transactions = transactions
        self._fees = fees

    @decorators.unary(Role.AUTHORIZE)
    async def Authorize(self, request: pb.AuthorizeRequest, context: Context) -> pb.AuthorizeResponse:
        authorization = self._admitted(current_grant.get(), request, _deadline(context))
        result = await self._batcher.submit(authorization)
        return convert.result_to_proto(result)

    @decorators.unary(Role.AUTHORIZE)
    async def AuthorizeBatch(self, request: pb.AuthorizeBatchRequest, context: Context) -> pb.AuthorizeBatchResponse:
        responses: list[pb.AuthorizeResponse] = [pb.AuthorizeResponse()] * convert.batch_size(request)
        valid: list[tuple[int, Authorization]] = []
        deadline = _deadline(context)
        grant = current_grant.get()
        for index, item in enumerate(request.requests):
            try:
                valid.append((index, self._admitted(grant, item, deadline)))  # or this item alone is refused
            except SwitchError as error:
                self.access.refused(grant.caller, "SwitchServicer.AuthorizeBatch", error)
                responses[index] = convert.error_to_proto(item.idempotency_key, error)
        answers = await self._batcher.submit_many([authorization for _, authorization in valid])
        for (index, authorization), answer in zip(valid, answers, strict=True):
            responses[index] = _to_response(authorization.idempotency_key, answer)
        return pb.AuthorizeBatchResponse(responses=responses)

    @decorators.streaming(Role.AUTHORIZE)
    async def AuthorizeStream(  # type: ignore[override]  # grpc.aio also takes a handler that writes
        self, requests: AsyncIterator[pb.AuthorizeRequest | Undecodable], context: Context
    ) -> None:
        """Answers as they complete (not in request order); each carries its idempotency_key.
        Written with context.write rather than yielded: a generator would cost every
        answer one more hop through gRPC's iteration.

        A message whose bytes do not decode (switch.api.decoding) fails alone, like any bad
        item: its answer has an empty idempotency_key and an INVALID_ARGUMENT error, and
        the stream goes on. Ending the stream instead would lose the answers of the
        authorizations still in flight."""
        answers: asyncio.Queue[pb.AuthorizeResponse | None] = asyncio.Queue()
        window = asyncio.Semaphore(STREAM_WINDOW)
        reader = asyncio.create_task(
            self._read_stream(requests, answers, window, _deadline(context), current_grant.get())
        )
        try:
            while (answer := await answers.get()) is not None:
                await context.write(answer)
        finally:
            reader.cancel()
            await asyncio.gather(reader, return_exceptions=True)

    async def _read_stream(
        self,
        requests: AsyncIterator[pb.AuthorizeRequest | Undecodable],
        answers: asyncio.Queue[pb.AuthorizeResponse | None],
        window: asyncio.Semaphore,
        deadline: float | None,
        grant: Grant,
    ) -> None:
        # One batcher future per request, answered by a callback: no task per request.
        pending: set[asyncio.Future[list[Answer]]] = set()
        try:
            async for request in requests:
                await window.acquire()
                if isinstance(request, Undecodable):
                    window.release()
                    answers.put_nowait(_to_response("", request.error()))
                    continue
                key = request.idempotency_key
                try:
                    future = self._batcher.enqueue_many([self._admitted(grant, request, deadline)])
                except Exception as exc:
                    window.release()
                    error = as_switch_error(exc)
                    self.access.refused(grant.caller, "SwitchServicer.AuthorizeStream", error)
                    answers.put_nowait(_to_response(key, error))
                    continue
                pending.add(future)
                future.add_done_callback(functools.partial(_answer_streamed, key, answers, window, pending))
            if pending:
                await asyncio.wait(pending)
        finally:
            for future in pending:  # the stream ended early: withdraw what no batch has taken
                future.cancel()
            answers.put_nowait(None)

    @decorators.unary(Role.OPERATE)
    async def Capture(self, request: pb.CaptureRequest, context: Context) -> pb.Transaction:
        return await self._operate(convert.operation(OperationKind.CAPTURE, request))

    @decorators.unary(Role.OPERATE)
    async def Void(self, request: pb.VoidRequest, context: Context) -> pb.Transaction:
        return await self._operate(convert.operation(OperationKind.VOID, request))

    @decorators.unary(Role.OPERATE)
    async def Refund(self, request: pb.RefundRequest, context: Context) -> pb.Transaction:
        return await self._operate(convert.operation(OperationKind.REFUND, request))

    @decorators.unary(Role.READ)
    async def GetTransaction(self, request: pb.GetTransactionRequest, context: Context) -> pb.Transaction:
        transaction_id = convert.transaction_id(request)
        record = await self._transactions.get(transaction_id, may_act_for=current_grant.get().may_act_for)
        return convert.record_to_proto(record)

    @decorators.unary(Role.COMPLIANCE)
    async def ListAlerts(self, request: pb.ListAlertsRequest, context: Context) -> pb.ListAlertsResponse:
        query = convert.alert_query(request)
        grant = current_grant.get()
        if query.merchant_id:
            check_merchant(grant, query.merchant_id)
        elif not grant.every_merchant:
            raise PermissionDenied("this caller may act for some merchants only: name one in merchant_id")
        return convert.alerts_to_proto(await self._alerts(query), query)

    @decorators.unary(Role.COMPLIANCE, audit=(EventKind.HOLDER_TIER, convert.describe_holder_tier))
    async def SetHolderTier(self, request: pb.SetHolderTierRequest, context: Context) -> pb.SetHolderTierResponse:
        holder, tier = convert.holder_tier_request(request)
        try:
            changed, instrument = await self._holder_tiers.set(holder, tier)
        except InvalidRequest as error:
            raise convert.holder_error(error) from None
        return pb.SetHolderTierResponse(tier=changed.tier, sequence=changed.seq, masked_instrument=instrument.masked)

    @decorators.unary(Role.COMPLIANCE, audit=(EventKind.FRAUD_REPORT, convert.describe_fraud_report))
    async def ReportFraud(self, request: pb.ReportFraudRequest, context: Context) -> pb.ReportFraudResponse:
        transaction_id, fraud = convert.fraud_report(request)
        await self._transactions.label(transaction_id, fraud, may_act_for=current_grant.get().may_act_for)
        return pb.ReportFraudResponse(transaction_id=transaction_id, fraud=fraud)

    @decorators.unary(Role.ADMIN, audit=(EventKind.MODEL_PROMOTION, convert.describe_model_promotion))
    async def PromoteModel(self, request: pb.PromoteModelRequest, context: Context) -> pb.PromoteModelResponse:
        policy_version, model_version, reason = convert.model_promotion(request)
        caller = current_grant.get().caller
        models = await self._promotions.promote(policy_version, model_version, caller, reason)
        return pb.PromoteModelResponse(
            policy_version=models.policy_version,
            live_model=models.live_model,
            challenger_model=models.challenger_model,
        )

    @decorators.unary(Role.QUOTE)
    async def QuoteFee(self, request: pb.QuoteFeeRequest, context: Context) -> pb.FeeQuote:
        check_merchant(current_grant.get(), request.merchant_id)
        quote = convert.quote_request(request)
        try:
            (answer,) = self._fees.quote_many([quote])
        except MoneyOverflow:
            raise InvalidRequest([Violation("amount.minor_units", "too large: its fee does not fit")]) from None
        except FxRateMissing:
            violation = Violation("settlement_currency", f"no FX rate is configured from {quote.amount.currency}")
            raise InvalidRequest([violation]) from None
        return convert.quote_to_proto(answer)

    def _admitted(self, grant: Grant, request: pb.AuthorizeRequest, deadline: float | None) -> Authorization:
        """The request as an Authorization, once the caller may act for its merchant and,
        for a card, once the card is no step of an enumeration (the answer carries the
        card's token, as Tokenize's does), and for a cross-border transfer once it carries the
        names the travel rule asks for; PERMISSION_DENIED or INVALID_ARGUMENT otherwise."""
        check_merchant(grant, request.merchant_id)
        authorization = convert.authorization(request, deadline)
        if self._travel_rule is not None and (missing := self._travel_rule.violations(authorization)):
            raise InvalidRequest(missing)
        source = authorization.source
        if isinstance(source, Card) and not self._guard.allows(grant.caller, source.pan):
            raise EnumerationRefused(ENUMERATION_REFUSED)
        return authorization

    async def _operate(self, operation: Any) -> pb.Transaction:
        record, replayed = await self._transactions.execute(operation, may_act_for=current_grant.get().may_act_for)
        return convert.record_to_proto(record, replayed=replayed)


class TokensServicer(switch_pb2_grpc.TokensServicer):
    """switch.v1.Tokens: cards in, tokens out; and the one audited way back."""

    def __init__(
        self,
        tokenizer: Tokenizer,
        access: Access,
        guard: EnumerationGuard,
        rate: CallerRateLimit,
        detokenize_rate: CallerRateLimit,
    ) -> None:
        self.access = access
        self._tokenizer = tokenizer
        self._guard = guard
        self._rate = rate
        self._detokenize_rate = detokenize_rate

    @decorators.unary(Role.TOKENIZE)
    async def Tokenize(self, request: pb.TokenizeRequest, context: Context) -> pb.TokenizeResponse:
        caller = current_grant.get().caller
        if not self._rate.allows(caller):
            raise RateLimited("this caller is over its Tokenize rate; retry later")
        card = convert.card_to_tokenize(request)
        if not self._guard.allows(caller, card.pan):
            raise EnumerationRefused(ENUMERATION_REFUSED)
        token = self._tokenizer.tokenize(card)
        return pb.TokenizeResponse(token=token.token, key_id=token.key_id, masked_pan=token.masked)

    @decorators.unary(Role.DETOKENIZE, audit=(EventKind.DETOKENIZE, convert.describe_detokenize))
    async def Detokenize(self, request: pb.DetokenizeRequest, context: Context) -> pb.DetokenizeResponse:
        if not self._detokenize_rate.allows(current_grant.get().caller):
            raise RateLimited("this caller is over its Detokenize rate; retry later")
        token, _ = convert.detokenize_request(request)
        try:
            card = self._tokenizer.detokenize(token, token.key_id)
        except InvalidRequest as error:
            raise convert.detokenize_error(error) from None
        return pb.DetokenizeResponse(pan=card.pan, masked_pan=mask_pan(card.pan))


def _deadline(context: Context) -> float | None:
    """The call's deadline in event-loop time, or None when the caller set none."""
    remaining = context.time_remaining()
    return None if remaining is None else asyncio.get_running_loop().time() + remaining


def _answer_streamed(
    key: str,
    answers: asyncio.Queue[pb.AuthorizeResponse | None],
    window: asyncio.Semaphore,
    pending: set[asyncio.Future[list[Answer]]],
    future: asyncio.Future[list[Answer]],
) -> None:
    """A stream's request answered (or withdrawn): its response is queued for writing."""
    pending.discard(future)
    window.release()
    if future.cancelled():
        return
    error = future.exception()
    answer = as_switch_error(error) if error is not None else future.result()[0]
    answers.put_nowait(_to_response(key, answer))


def _to_response(idempotency_key: str, answer: Any) -> pb.AuthorizeResponse:
    if isinstance(answer, SwitchError):
        return convert.error_to_proto(idempotency_key, answer)
    return convert.result_to_proto(answer)
