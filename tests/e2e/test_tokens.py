"""Tokens.Tokenize and card tokens in Authorize: format, determinism, token sources, key rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import grpc
import pytest

from switch.cards import ff1
from switch.cards.luhn import reference_luhn_valid
from switch.cards.tokenizer import KeyRing, Tokenizer
from switch.domain.models import Card
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import TOKEN_KEY, SwitchFactory
from tests.e2e.support import (
    AMEX,
    BAD_LUHN,
    DECLINE_CARD,
    MASTERCARD,
    MERCHANT,
    NO_FUNDS_CARD,
    VISA,
    Switch,
    approved,
    card,
    card_request,
    expect,
    get,
    new_key,
    serve,
)

if TYPE_CHECKING:
    from switch.v1.switch_pb2_grpc import TokensAsyncStub

INVALID = grpc.StatusCode.INVALID_ARGUMENT
HEX1 = "a1" * 32
HEX2 = "b2" * 16  # AES-128: rotation across key sizes
RING_K1 = {"active_key": "k1", "keys": {"k1": HEX1}}
RING_K2 = {"active_key": "k2", "keys": {"k1": HEX1, "k2": HEX2}}
LUHN_VALID_16 = "4242424242424242"


@asynccontextmanager
async def tokens_of(switch: Switch) -> AsyncIterator[TokensAsyncStub]:
    async with grpc.aio.insecure_channel(switch.target) as channel:
        yield switch_pb2_grpc.TokensStub(channel)


@pytest.fixture
async def tokens(switch: Switch) -> AsyncIterator[TokensAsyncStub]:
    async with tokens_of(switch) as stub:
        yield stub


async def tokenize(stub: TokensAsyncStub, pan: str) -> pb.TokenizeResponse:
    return await stub.Tokenize(pb.TokenizeRequest(card=card(pan)))


def reference_token(key_hex: str, pan: str) -> str:
    """The token the spec's FF1 (the plain-Python reference) makes for pan under key_hex."""
    tokenizer = Tokenizer(b"\x00" * 16, KeyRing({"k": bytes.fromhex(key_hex)}, "k"), cipher=ff1.ReferenceFF1)
    return tokenizer.tokenize(Card(pan, 12, 2099)).token


def token_request(token: str, key_id: str = "", amount: int = 1000) -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        idempotency_key=new_key(),
        merchant_id=MERCHANT,
        amount=pb.Money(minor_units=amount, currency="USD"),
        token=token,
        token_key_id=key_id,
    )


def leaked(blobs: tuple[bytes, ...], pans: tuple[str, ...]) -> list[str]:
    """The PANs found in any of the blobs."""
    return [pan for pan in pans if any(pan.encode() in blob for blob in blobs)]


async def test_tokenize_a_card(store_set: str, tokens: TokensAsyncStub) -> None:
    answer = await tokenize(tokens, VISA)

    token = answer.token
    assert len(token) == len(VISA)
    assert token.isdigit()
    assert token[:6] == VISA[:6]
    assert token[-4:] == VISA[-4:]
    assert token != VISA
    assert not reference_luhn_valid(token)
    assert answer.key_id == "k1"
    assert answer.masked_pan == "411111******1111"
    if store_set == "production":  # its key is known: the wire gives the spec's token
        assert token == reference_token(TOKEN_KEY, VISA)


async def test_tokenize_other_lengths(tokens: TokensAsyncStub) -> None:
    for pan, head in ((MASTERCARD, 6), (AMEX, 5)):
        answer = await tokenize(tokens, pan)
        assert len(answer.token) == len(pan)
        assert answer.token[:head] == pan[:head]
        assert answer.token[-4:] == pan[-4:]
        assert answer.token != pan
        assert not reference_luhn_valid(answer.token)
        assert answer.masked_pan == pan[:head] + "*" * (len(pan) - head - 4) + pan[-4:]


async def test_tokenize_is_deterministic(tokens: TokensAsyncStub) -> None:
    first = await tokenize(tokens, VISA)
    second = await tokens.Tokenize(pb.TokenizeRequest(card=card(VISA, month=3, year=2031, holder="Ada")))
    assert first == second
    assert (await tokenize(tokens, MASTERCARD)).token != first.token


async def test_tokenize_refuses_a_bad_luhn_pan(tokens: TokensAsyncStub) -> None:
    seen = await expect(tokenize(tokens, BAD_LUHN), INVALID)
    assert "card.pan" in seen.violations, seen.violations
    assert BAD_LUHN.encode() not in seen.everything()


async def test_tokenize_refuses_a_missing_card(tokens: TokensAsyncStub) -> None:
    seen = await expect(tokens.Tokenize(pb.TokenizeRequest()), INVALID)
    assert "card" in seen.violations, seen.violations


async def test_every_card_authorization_returns_the_token(switch: Switch, tokens: TokensAsyncStub) -> None:
    pans = (VISA, MASTERCARD, AMEX, DECLINE_CARD, NO_FUNDS_CARD)
    expected = {pan: (await tokenize(tokens, pan)).token for pan in pans}
    answers: list[tuple[str, pb.AuthorizeResponse]] = []

    for pan in pans:  # unary
        answers.append((pan, await switch.stub.Authorize(card_request(pan=pan))))
    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[card_request(pan=p) for p in pans]))
    answers.extend(zip(pans, batch.responses, strict=True))

    streamed = {}
    by_key = {}
    for pan in pans:
        request = card_request(pan=pan)
        by_key[request.idempotency_key] = pan
        streamed[request.idempotency_key] = request

    async def stream() -> AsyncIterator[pb.AuthorizeRequest]:
        for request in streamed.values():
            yield request

    async for response in switch.stub.AuthorizeStream(stream()):
        answers.append((by_key[response.idempotency_key], response))

    assert len(answers) == 3 * len(pans)
    for pan, response in answers:
        assert not response.HasField("error"), response
        assert response.token, (pan, response)
        assert response.token == expected[pan], pan
        transaction = await get(switch, response.transaction_id)
        record = await switch.running.journal.get_transaction(response.transaction_id)
        assert record is not None
        assert record.token == response.token
        entries = await switch.running.journal.find_entries([(MERCHANT, response.idempotency_key)])
        entry = entries[(MERCHANT, response.idempotency_key)]
        blobs = (
            transaction.SerializeToString(),
            str(transaction).encode(),
            repr(record).encode(),
            repr(entry).encode(),
            entry.response,
        )
        assert not leaked(blobs, pans), (pan, blobs)


async def test_a_token_authorizes_like_its_card(switch: Switch, tokens: TokensAsyncStub) -> None:
    token = (await tokenize(tokens, VISA)).token

    by_card = await approved(switch, card_request(pan=VISA))
    by_token = await approved(switch, token_request(token))
    assert by_token.route == by_card.route == "card"
    assert by_token.token == token
    transaction = await get(switch, by_token.transaction_id)
    assert transaction.status == pb.TRANSACTION_STATUS_AUTHORIZED
    assert transaction.masked_instrument == "411111******1111"
    assert transaction.route == "card"

    explicit = await approved(switch, token_request(token, key_id="k1"))
    assert explicit.token == token


@pytest.mark.parametrize(("pan", "code"), [(DECLINE_CARD, "05"), (NO_FUNDS_CARD, "51")], ids=["05", "51"])
async def test_a_decline_card_token_is_declined(switch: Switch, tokens: TokensAsyncStub, pan: str, code: str) -> None:
    token = (await tokenize(tokens, pan)).token
    response = await switch.stub.Authorize(token_request(token))

    assert response.decision == pb.DECISION_DECLINED
    assert response.response_code == code
    assert response.route == "card"
    assert response.token == token
    assert (await get(switch, response.transaction_id)).status == pb.TRANSACTION_STATUS_DECLINED


async def test_bad_tokens_are_refused(switch: Switch) -> None:
    luhn_valid = await expect(switch.stub.Authorize(token_request(LUHN_VALID_16)), INVALID)
    assert "source.token" in luhn_valid.violations, luhn_valid.violations
    assert LUHN_VALID_16.encode() not in luhn_valid.everything()

    unknown_key = await expect(switch.stub.Authorize(token_request("4111110000001111", key_id="k9")), INVALID)
    assert "source.token_key_id" in unknown_key.violations, unknown_key.violations

    short = await expect(switch.stub.Authorize(token_request("123")), INVALID)
    assert "source.token" in short.violations, short.violations


async def test_key_rotation(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, tokenization=RING_K1) as switch, tokens_of(switch) as tokens:
        old = await tokenize(tokens, VISA)
        assert old.key_id == "k1"
        assert old.token == reference_token(HEX1, VISA)
        old_decline = (await tokenize(tokens, DECLINE_CARD)).token
        assert (await approved(switch, token_request(old.token))).token == old.token

    async with serve(switch_factory, store_set, tokenization=RING_K2) as switch, tokens_of(switch) as tokens:
        new = await tokenize(tokens, VISA)
        assert new.key_id == "k2"
        assert new.token != old.token
        assert new.token == reference_token(HEX2, VISA)
        assert new.token[:6] == VISA[:6] and new.token[-4:] == VISA[-4:]
        assert not reference_luhn_valid(new.token)

        by_old = await approved(switch, token_request(old.token, key_id="k1"))
        assert by_old.route == "card"
        assert by_old.token == new.token  # answers carry the active key's token
        assert (await get(switch, by_old.transaction_id)).masked_instrument == "411111******1111"
        assert (await approved(switch, token_request(new.token))).token == new.token
        assert (await approved(switch, token_request(new.token, key_id="k2"))).token == new.token

        declined = await switch.stub.Authorize(token_request(old_decline, key_id="k1"))
        assert (declined.decision, declined.response_code) == (pb.DECISION_DECLINED, "05")

        unknown = await expect(switch.stub.Authorize(token_request(old.token, key_id="k9")), INVALID)
        assert "source.token_key_id" in unknown.violations, unknown.violations
        not_a_token = await expect(switch.stub.Authorize(token_request(LUHN_VALID_16, key_id="k1")), INVALID)
        assert "source.token" in not_a_token.violations, not_a_token.violations
        assert LUHN_VALID_16.encode() not in not_a_token.everything()


async def test_a_bad_token_fails_alone_in_a_batch(switch: Switch, tokens: TokensAsyncStub) -> None:
    token = (await tokenize(tokens, VISA)).token
    requests = [token_request(token), token_request(LUHN_VALID_16), token_request(token, key_id="k9")]
    good, luhn_valid, unknown_key = (
        await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests))
    ).responses

    assert good.decision == pb.DECISION_APPROVED
    assert good.token == token
    for failed, field in ((luhn_valid, "source.token"), (unknown_key, "source.token_key_id")):
        assert failed.error.code == INVALID.value[0]
        assert field in [violation.field for violation in failed.error.field_violations], failed
        assert not failed.transaction_id
    assert LUHN_VALID_16 not in str(luhn_valid)
