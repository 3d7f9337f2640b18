"""Tokens.Detokenize, the one way back to a card number, over real gRPC on both
store sets: only with the detokenize role, rate-limited per caller, and every call
(allowed, refused, malformed) in the audit trail before its answer, with the
token and the reason but never the card number. When the trail cannot be written
the call fails UNAVAILABLE and no card number leaves."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from switch import config
from switch.domain.audit import EventKind, SecurityEvent
from switch.security.audit.verify import verify
from switch.security.custody import verify_signature
from switch.stores.rows import event_from_row
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import drop_production_state, store_settings
from tests.e2e.support import VISA, Switch, card, expect, serve_settings

HEADER = "x-test-identity"
CLERK = "spiffe://switch.test/disputes"  # may detokenize
TELLER = "spiffe://switch.test/teller"  # may tokenize, not detokenize
CALLERS = [
    {"identity": CLERK, "roles": ["detokenize", "tokenize"]},
    {"identity": TELLER, "roles": ["tokenize"]},
]
REASON = "dispute case DC-1042"


@asynccontextmanager
async def detokenizing_switch(store_set: str, tmp_path: Path, **security: Any) -> AsyncIterator[Switch]:
    raw = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    raw.setdefault("security", {}).update(
        {"callers": CALLERS, "trusted_identity_header": HEADER, "detokenize_burst": 5, **security}
    )
    settings = config.from_mapping(raw)
    try:
        async with serve_settings(settings) as switch:
            yield switch
    finally:
        await drop_production_state(settings)


async def call(switch: Switch, caller: str, method: str, request: Any) -> Any:
    async with grpc.aio.insecure_channel(switch.target) as channel:
        stub = switch_pb2_grpc.TokensStub(channel)
        return await getattr(stub, method)(request, metadata=((HEADER, caller),), timeout=10)


async def events(switch: Switch) -> list[SecurityEvent]:
    """The Detokenize events (a worker also records the keys it started with)."""
    snapshot = await switch.running.journal.read_audit()
    found = (event_from_row(row) for row in snapshot.events)
    return [event for event in found if event.kind is EventKind.DETOKENIZE]


async def token_of(switch: Switch, pan: str = VISA) -> pb.TokenizeResponse:
    response: pb.TokenizeResponse = await call(switch, CLERK, "Tokenize", pb.TokenizeRequest(card=card(pan)))
    return response


def detokenize(token: str, key_id: str = "", reason: str = REASON) -> pb.DetokenizeRequest:
    return pb.DetokenizeRequest(token=token, key_id=key_id, reason=reason)


def no_card_number_in(found: Sequence[SecurityEvent]) -> None:
    for event in found:
        assert VISA not in repr(event), event


@pytest.fixture(params=["embedded", "production"])
def store_set(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def test_the_role_gets_the_card_back_and_the_call_is_audited(store_set: str, tmp_path: Path) -> None:
    async with detokenizing_switch(store_set, tmp_path) as switch:
        token = await token_of(switch)
        answer = await call(switch, CLERK, "Detokenize", detokenize(token.token, token.key_id))
        assert (answer.pan, answer.masked_pan) == (VISA, token.masked_pan)
        (event,) = await events(switch)  # durable before the answer: no flush needed
        assert (event.kind.value, event.caller, event.outcome) == ("detokenize", CLERK, "allowed")
        assert token.token in event.subject and REASON in event.detail
        no_card_number_in([event])
        report = verify(await switch.running.journal.read_audit(), verify_signature)
        assert report.intact, [str(f) for f in report.findings]


async def test_without_the_role_it_is_refused_and_audited(store_set: str, tmp_path: Path) -> None:
    async with detokenizing_switch(store_set, tmp_path) as switch:
        token = await token_of(switch)
        refused = call(switch, TELLER, "Detokenize", detokenize(token.token))
        seen = await expect(refused, grpc.StatusCode.PERMISSION_DENIED)
        assert VISA not in seen.details
        (event,) = await events(switch)
        assert (event.kind.value, event.caller, event.outcome) == ("detokenize", TELLER, "PERMISSION_DENIED")
        assert token.token in event.subject and REASON in event.detail


async def test_a_bad_request_is_refused_naming_the_field_and_audited(store_set: str, tmp_path: Path) -> None:
    async with detokenizing_switch(store_set, tmp_path) as switch:
        token = await token_of(switch)
        no_reason = await expect(
            call(switch, CLERK, "Detokenize", detokenize(token.token, reason=" ")), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert list(no_reason.violations) == ["reason"]
        a_card = await expect(call(switch, CLERK, "Detokenize", detokenize(VISA)), grpc.StatusCode.INVALID_ARGUMENT)
        assert list(a_card.violations) == ["token"] and VISA.encode() not in a_card.everything()
        unknown_key = await expect(
            call(switch, CLERK, "Detokenize", detokenize(token.token, key_id="k9")), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert list(unknown_key.violations) == ["key_id"]
        found = await events(switch)
        assert [event.outcome for event in found] == ["INVALID_ARGUMENT"] * 3
        no_card_number_in(found)
        assert "(not a token)" in found[1].subject


async def test_it_is_rate_limited_per_caller(store_set: str, tmp_path: Path) -> None:
    async with detokenizing_switch(store_set, tmp_path, detokenize_per_second=0.001, detokenize_burst=2) as switch:
        token = await token_of(switch)
        for _ in range(2):
            await call(switch, CLERK, "Detokenize", detokenize(token.token))
        await expect(call(switch, CLERK, "Detokenize", detokenize(token.token)), grpc.StatusCode.RESOURCE_EXHAUSTED)
        assert [event.outcome for event in await events(switch)] == ["allowed", "allowed", "RESOURCE_EXHAUSTED"]


async def test_no_card_number_leaves_when_the_trail_cannot_be_written(
    store_set: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with detokenizing_switch(store_set, tmp_path) as switch:
        token = await token_of(switch)

        async def journal_down(batch: object) -> None:
            raise ConnectionError("journal down")

        monkeypatch.setattr(switch.running.journal, "record_events", journal_down)
        seen = await expect(call(switch, CLERK, "Detokenize", detokenize(token.token)), grpc.StatusCode.UNAVAILABLE)
        assert VISA not in seen.details and "audit" in seen.details
        # Refusals too: a caller without the role hears UNAVAILABLE, not a denial that was never recorded.
        await expect(call(switch, TELLER, "Detokenize", detokenize(token.token)), grpc.StatusCode.UNAVAILABLE)
