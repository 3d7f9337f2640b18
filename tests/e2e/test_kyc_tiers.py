"""KYC tiers end to end, on both store sets: caps per tier declined 57 exactly under 200
concurrent callers, SetHolderTier over gRPC, durable across the state store's loss."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from switch import config
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory, drop_production_state, store_settings
from tests.e2e.support import (
    DECLINE_CARD,
    MASTERCARD,
    VISA,
    account_request,
    approved,
    card,
    card_request,
    decision_of,
    expect,
    get,
    serve,
    serve_settings,
)
from tests.e2e.test_state_loss import _forget_state
from tests.e2e.test_tokens import RING_K1, tokens_of

INVALID = grpc.StatusCode.INVALID_ARGUMENT
KYC: dict[str, Any] = {
    "default_tier": "class_i",
    "tiers": {
        "class_i": {"CNY": {"lifetime": 100_000}, "BRL": {"per_transaction": 5_000}},  # 1,000.00 CNY, ever
        "class_ii": {"CNY": {"yearly": 10_000_000, "daily": 70_000}},
        "class_iii": {"CNY": {"yearly": 20_000_000}},
        "frozen": {"CNY": {"per_transaction": 0}},
    },
}


# The plaintext sidecar's callers: everyone may authorize, read and set tiers here
# (tests/e2e/test_roles_matrix.py holds who may, over mTLS).
CALLERS = {"callers": [{"identity": "*", "roles": ["authorize", "read", "compliance", "tokenize"], "merchants": ["*"]}]}


def cny(pan: str = VISA, amount: int = 10_000) -> pb.AuthorizeRequest:
    return card_request(pan=pan, amount=amount, currency="CNY")


def set_tier(tier: str, pan: str = VISA, reason: str = "case KYC-1") -> pb.SetHolderTierRequest:
    return pb.SetHolderTierRequest(card=pb.Card(pan=pan), tier=tier, reason=reason)


async def test_caps_hold_exactly_under_200_concurrent_callers(store_set: str, switch_factory: SwitchFactory) -> None:
    """Two holders racing, 100 calls each: the default tier's lifetime cap lets exactly 10
    of 10,000 through, class_ii's daily cap exactly 7."""
    async with serve(switch_factory, store_set, kyc=KYC, security=CALLERS) as switch:
        await switch.stub.SetHolderTier(set_tier("class_ii", pan=MASTERCARD))
        requests = [cny(VISA if i % 2 else MASTERCARD) for i in range(200)]
        answers = await asyncio.gather(*(switch.stub.Authorize(request) for request in requests))
        codes: dict[str, list[str]] = {VISA: [], MASTERCARD: []}
        for request, answer in zip(requests, answers, strict=True):
            codes[request.card.pan].append(answer.response_code)
        assert (codes[VISA].count("00"), codes[VISA].count("57")) == (10, 90)
        assert (codes[MASTERCARD].count("00"), codes[MASTERCARD].count("57")) == (7, 93)

        capped = next(
            a for r, a in zip(requests, answers, strict=True) if r.card.pan == VISA and a.response_code == "57"
        )
        assert capped.decision == pb.DECISION_DECLINED
        assert "KYC tier default: lifetime cap reached" in capped.message
        assert await decision_of(switch, capped) == {"kyc": {"tier": "", "cap": "lifetime"}}
        stored = await get(switch, capped.transaction_id)
        assert (stored.status, stored.response_code) == (pb.TRANSACTION_STATUS_DECLINED, "57")
        daily = next(
            a for r, a in zip(requests, answers, strict=True) if r.card.pan == MASTERCARD and a.response_code == "57"
        )
        assert await decision_of(switch, daily) == {"kyc": {"tier": "class_ii", "cap": "daily"}}
        assert 'switch_kyc_declines_total{cap="lifetime"} 90' in switch.running.metrics.render()


async def test_a_decline_gives_the_amount_back(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, kyc=KYC, security=CALLERS) as switch:
        declined = await switch.stub.Authorize(cny(DECLINE_CARD, 100_000))
        assert declined.response_code == "05"  # the issuer's: nothing of the cap is used up
        await approved(switch, cny(DECLINE_CARD.replace("0002", "0010"), 100_000))  # another card, same cap size
        assert (await switch.stub.Authorize(cny(VISA, 100_000))).response_code == "00"
        assert (await switch.stub.Authorize(cny(VISA, 1))).response_code == "57"


async def test_a_tier_change_applies_to_the_next_authorization(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, kyc=KYC, security=CALLERS) as switch:
        await approved(switch, cny(amount=100_000))
        assert (await switch.stub.Authorize(cny(amount=1))).response_code == "57"

        changed = await switch.stub.SetHolderTier(set_tier("class_iii"))
        assert changed.tier == "class_iii" and changed.sequence > 0
        assert changed.masked_instrument == "411111******1111"
        await approved(switch, cny(amount=500_000))

        frozen = await switch.stub.SetHolderTier(set_tier("frozen"))
        assert frozen.sequence > changed.sequence
        refused = await switch.stub.Authorize(cny(amount=1))
        assert refused.response_code == "57"
        assert "KYC tier frozen: per_transaction cap reached" in refused.message
        await approved(switch, cny(MASTERCARD, 1))  # another holder: untouched


async def test_a_holder_is_named_by_token_or_by_account(store_set: str, switch_factory: SwitchFactory) -> None:
    async with (
        serve(switch_factory, store_set, kyc=KYC, tokenization=RING_K1, security=CALLERS) as switch,
        tokens_of(switch) as tokens,
    ):
        token = (await tokens.Tokenize(pb.TokenizeRequest(card=card(VISA)))).token
        by_token = await switch.stub.SetHolderTier(pb.SetHolderTierRequest(token=token, tier="frozen", reason="r"))
        assert by_token.masked_instrument == "411111******1111"
        assert (await switch.stub.Authorize(cny(VISA, 1))).response_code == "57"

        assert (await switch.stub.Authorize(account_request(amount=5_001))).response_code == "57"  # class_i's BRL cap
        account = pb.Account(rail="instant", id="acct-001122")
        await switch.stub.SetHolderTier(pb.SetHolderTierRequest(account=account, tier="class_iii", reason="r"))
        await approved(switch, account_request(amount=5_001))


async def test_bad_requests_name_the_field_and_change_nothing(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, kyc=KYC, security=CALLERS) as switch:
        seen = await expect(switch.stub.SetHolderTier(set_tier("platinum")), grpc.StatusCode.INVALID_ARGUMENT)
        assert "tier" in seen.violations
        nobody = await expect(
            switch.stub.SetHolderTier(pb.SetHolderTierRequest(tier="frozen", reason="r")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "holder" in nobody.violations
        bad_pan = VISA[:-1] + "2"
        luhn = await expect(
            switch.stub.SetHolderTier(set_tier("frozen", pan=bad_pan)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert "holder.card.pan" in luhn.violations
        assert bad_pan not in luhn.details
        no_reason = await expect(
            switch.stub.SetHolderTier(set_tier("frozen", reason="")), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert "reason" in no_reason.violations
        # A card number where a token goes (any other string may decrypt to a valid card
        # under the embedded default's random key).
        not_a_token = await expect(
            switch.stub.SetHolderTier(pb.SetHolderTierRequest(token=VISA, tier="frozen", reason="r")),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "holder.token" in not_a_token.violations
        assert VISA not in not_a_token.details
        await approved(switch, cny(amount=1))  # nothing was frozen


async def test_without_kyc_tiers_there_is_nothing_to_set(switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, "embedded", security=CALLERS) as switch:
        seen = await expect(switch.stub.SetHolderTier(set_tier("class_i")), grpc.StatusCode.FAILED_PRECONDITION)
        assert "[kyc]" in seen.details
        await approved(switch, cny(amount=10**9))  # and no cap


@pytest.fixture
async def settings(store_set: str, tmp_path: Path) -> Any:
    raw = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    raw["kyc"] = KYC
    raw.setdefault("security", {}).update(CALLERS)
    kept = config.from_mapping(raw)
    yield kept
    await drop_production_state(kept)


async def test_a_tier_outlives_the_state_store(settings: config.Settings) -> None:
    """The embedded store loses everything with its process; Redis loses the test's keys
    (as a restart without persistence would: tests/stores/test_kyc_caps.py restarts one)."""
    async with serve_settings(settings) as switch:
        await switch.stub.SetHolderTier(set_tier("frozen"))
        assert (await switch.stub.Authorize(cny(amount=1))).response_code == "57"
    await _forget_state(settings)
    async with serve_settings(settings) as switch:
        assert (await switch.stub.Authorize(cny(amount=1))).response_code == "57"
        await switch.stub.SetHolderTier(set_tier("class_iii"))
        await approved(switch, cny(amount=1))


async def test_the_change_is_in_the_audit_trail(switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, "embedded", kyc=KYC, security=CALLERS) as switch:
        await switch.stub.SetHolderTier(set_tier("frozen", reason="case KYC-77"))
        assert switch.running.trail is not None
        await switch.running.trail.flush()
        snapshot = await switch.running.journal.read_audit()
        (event,) = [row for row in snapshot.events if row[1] == "holder_tier"]
        assert event[4:6] == ("card 411111******1111", "tier frozen; reason: case KYC-77")
        assert VISA not in repr(snapshot.events)
