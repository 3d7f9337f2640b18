"""Tokenization is not an oracle: the enumeration guard, the per-caller rate, and the
attack itself through Tokenize and through Authorize, over real gRPC."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import pytest

from switch.cards.luhn import reference_luhn_valid
from switch.domain.audit import SecurityEvent
from switch.security.enumeration import EnumerationGuard
from switch.security.ratelimit import CallerRateLimit
from switch.server import RunningSwitch
from switch.stores.rows import event_from_row
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import SwitchFactory

VISA = "4111111111111111"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def candidates(pan: str) -> Iterator[str]:
    """Every Luhn-valid card number with pan's length, first 6 and last 4 digits: what
    an attacker holding pan's token would try."""
    middle = len(pan) - 10
    for number in range(10**middle):
        candidate = f"{pan[:6]}{number:0{middle}d}{pan[-4:]}"
        if reference_luhn_valid(candidate):
            yield candidate


async def trail_events(running: RunningSwitch, kind: str) -> list[SecurityEvent]:
    """The security events of a kind in the switch's audit trail, once the noted ones are written."""
    assert running.trail is not None
    await running.trail.flush()
    snapshot = await running.journal.read_audit()
    return [event for event in map(event_from_row, snapshot.events) if event.kind.value == kind]


def test_the_guard_refuses_past_the_limit_per_caller_and_pattern() -> None:
    clock = Clock()
    guard = EnumerationGuard(max_distinct=5, window_seconds=60, clock=clock)
    tried = candidates(VISA)
    first = [next(tried) for _ in range(5)]
    assert all(guard.allows("attacker", pan) for pan in first)
    assert not guard.allows("attacker", next(tried))
    assert all(guard.allows("attacker", pan) for pan in first)  # repeats of known ones still pass
    assert guard.allows("someone else", next(tried))  # per caller
    assert guard.allows("attacker", "5500005555555559")  # per pattern
    clock.now += 61
    assert guard.allows("attacker", next(tried))  # the window slid


def test_other_patterns_do_not_push_an_enumeration_out() -> None:
    guard = EnumerationGuard(max_distinct=3, window_seconds=60, clock=Clock())
    tried = candidates(VISA)
    for _ in range(3):
        assert guard.allows("attacker", next(tried))
        for junk in range(50):
            guard.allows("attacker", f"{400000 + junk}000000{junk:04d}")
    assert not guard.allows("attacker", next(tried))


def test_zero_turns_the_guard_off() -> None:
    guard = EnumerationGuard(max_distinct=0, window_seconds=60)
    assert all(guard.allows("c", pan) for pan, _ in zip(candidates(VISA), range(200), strict=False))


def test_the_rate_is_a_bucket_per_caller() -> None:
    clock = Clock()
    rate = CallerRateLimit(per_second=2, burst=3, clock=clock)
    assert [rate.allows("a") for _ in range(4)] == [True, True, True, False]
    assert rate.allows("b")
    clock.now += 0.5
    assert rate.allows("a") and not rate.allows("a")
    assert CallerRateLimit(per_second=0, burst=1).allows("a")


@pytest.fixture
def security_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="switch.security")
    return caplog


async def test_tokenize_stops_an_enumeration_long_before_the_candidates_run_out(
    switch_factory: SwitchFactory, security_log: pytest.LogCaptureFixture
) -> None:
    limits = {"enumeration_max_distinct": 20, "tokenize_per_second": 0}
    async with (
        switch_factory("embedded", security=limits) as (running, _),
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        tokens = switch_pb2_grpc.TokensStub(channel)
        target = await tokens.Tokenize(pb.TokenizeRequest(card=pb.Card(pan=VISA, expiry_month=12, expiry_year=2099)))
        refused_at = None
        for tried, pan in enumerate(candidates(VISA), start=1):
            card = pb.Card(pan=pan, expiry_month=12, expiry_year=2099)
            try:
                answer = await tokens.Tokenize(pb.TokenizeRequest(card=card))
            except grpc.aio.AioRpcError as error:
                assert error.code() is grpc.StatusCode.PERMISSION_DENIED
                assert pan not in (error.details() or "")
                refused_at = tried
                break
            assert pan == VISA or answer.token != target.token
        assert refused_at is not None and refused_at <= 20
        audited = await trail_events(running, "enumeration")
        assert len(audited) == 1 and audited[0].outcome == "PERMISSION_DENIED"
        assert "first 6 and last 4" in audited[0].detail and VISA not in repr(audited[0])
    events = [record.getMessage() for record in security_log.records if "security event" in record.getMessage()]
    assert events and "411111******1111" in events[0] and VISA not in events[0]


async def test_a_card_authorize_is_guarded_like_tokenize(switch_factory: SwitchFactory) -> None:
    async with (
        switch_factory("embedded", security={"enumeration_max_distinct": 10}) as (running, _),
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        stub = switch_pb2_grpc.SwitchStub(channel)
        codes = []
        for index, pan in zip(range(15), candidates(VISA), strict=False):
            request = pb.AuthorizeRequest(
                idempotency_key=f"enum-{index}",
                merchant_id="m-1",
                amount=pb.Money(minor_units=100, currency="USD"),
                card=pb.Card(pan=pan, expiry_month=12, expiry_year=2099),
            )
            try:
                await stub.Authorize(request)
                codes.append("answered")
            except grpc.aio.AioRpcError as error:
                codes.append(error.code().name)
        assert codes[:10] == ["answered"] * 10
        assert set(codes[10:]) == {"PERMISSION_DENIED"}
        assert len(await trail_events(running, "enumeration")) == 5  # each refusal is in the audit trail
        batch = pb.AuthorizeBatchRequest(
            requests=[
                pb.AuthorizeRequest(
                    idempotency_key=f"enum-batch-{index}",
                    merchant_id="m-1",
                    amount=pb.Money(minor_units=100, currency="USD"),
                    card=pb.Card(pan=pan, expiry_month=12, expiry_year=2099),
                )
                for index, pan in zip(range(3), candidates("5500005555555559"), strict=False)
            ]
        )
        answers = await stub.AuthorizeBatch(batch)
        assert all(not answer.HasField("error") for answer in answers.responses)  # another pattern: fine


async def test_tokenize_is_rate_limited_per_caller(switch_factory: SwitchFactory) -> None:
    limits = {"tokenize_per_second": 1, "tokenize_burst": 3}
    async with (
        switch_factory("embedded", security=limits) as (running, _),
        grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel,
    ):
        tokens = switch_pb2_grpc.TokensStub(channel)
        request = pb.TokenizeRequest(card=pb.Card(pan=VISA, expiry_month=12, expiry_year=2099))
        for _ in range(3):
            await tokens.Tokenize(request)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await tokens.Tokenize(request)
        assert refused.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        assert [event.outcome for event in await trail_events(running, "rate_limited")] == ["RESOURCE_EXHAUSTED"]
