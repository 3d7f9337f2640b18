"""Hostile input: bytes that are not protobuf, errors too large to deliver, and card
numbers where an identifier or free text belongs.

Each answer must be INVALID_ARGUMENT that a default client can read, with no
traceback in the logs and no card number in the reply, the logs or the stores.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, cast

import grpc
import pytest
from google.rpc import error_details_pb2

from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import SwitchFactory
from tests.e2e.support import (
    MERCHANT,
    VISA,
    Failure,
    Switch,
    approved,
    card_request,
    decode,
    expect,
    failure,
    money,
    new_key,
    serve,
)

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NO_CARD_NUMBER = "must not contain a card number"
NOT_PROTOBUF = b"\xff\xff\xff"  # a varint that never ends
DEFAULT_MAX_METADATA = 8 * 1024  # grpc.max_metadata_size when a client sets nothing
DASHED = "4111-1111-1111-1111"
SPACED = "5555 5555 5555 4444"
PANS = (VISA, DASHED, SPACED, "5555555555554444", "4111111111111111")
WIDE = "\U0001f600"  # four bytes of UTF-8, and percent-encoded in grpc-message: the costliest character


def _no_pan(blob: bytes | str) -> None:
    text = blob if isinstance(blob, str) else blob.decode(errors="replace")
    for pan in PANS:
        assert pan not in text, f"card number {pan} in {text[:300]!r}"


def _logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join([caplog.text, *(str(record.__dict__) for record in caplog.records)])


def _trailer_bytes(error: grpc.aio.AioRpcError) -> int:
    """What grpc counts against max_metadata_size: name + value + 32 per entry, plus the status."""
    size = len("grpc-message") + len((error.details() or "").encode()) + 32
    for key, value in cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ()):
        size += len(key) + len(value if isinstance(value, bytes) else value.encode()) + 32
    return size


# --- a message that does not decode -------------------------------------------------------

UNARY_METHODS = [
    "/switch.v1.Switch/Authorize",
    "/switch.v1.Switch/AuthorizeBatch",
    "/switch.v1.Switch/Capture",
    "/switch.v1.Switch/Void",
    "/switch.v1.Switch/Refund",
    "/switch.v1.Switch/GetTransaction",
    "/switch.v1.Switch/QuoteFee",
    "/switch.v1.Tokens/Tokenize",
]


async def test_bytes_that_are_not_protobuf_are_invalid_argument_on_every_method(
    switch_factory: SwitchFactory, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.INFO)
    async with serve(switch_factory, "embedded") as switch, grpc.aio.insecure_channel(switch.target) as channel:
        for method in UNARY_METHODS:
            call = channel.unary_unary(method, None, None)  # no serializers: the bytes go out as they are
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await call(NOT_PROTOBUF, metadata=(("x-request-id", "req-bytes"),))
            seen = decode(raised.value)
            assert seen.code is INVALID, (method, seen.code, seen.details)
            assert ("x-request-id", "req-bytes") in seen.raw_trailers
            assert "protobuf" in seen.details
        # The switch still answers well-formed calls afterwards.
        await approved(switch, card_request())

        # Checked before the switch stops (its simulators' shutdown has noise of its own).
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
        quiet = [r for r in caplog.records if "does not decode" in r.getMessage()]
        assert len(quiet) == len(UNARY_METHODS)
        assert {r.levelno for r in quiet} <= {logging.INFO, logging.WARNING}
        assert "Traceback" not in "".join(capfd.readouterr())


async def test_a_stream_answers_a_message_that_does_not_decode_with_an_item_error(
    switch_factory: SwitchFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """The stream goes on: the bad message gets its own error answer, with an empty key."""
    caplog.set_level(logging.INFO)
    first, last = card_request(), card_request()

    async def frames() -> AsyncIterator[bytes]:
        yield first.SerializeToString()
        yield NOT_PROTOBUF
        yield last.SerializeToString()

    async with serve(switch_factory, "embedded") as switch, grpc.aio.insecure_channel(switch.target) as channel:
        stream = channel.stream_stream("/switch.v1.Switch/AuthorizeStream", None, pb.AuthorizeResponse.FromString)
        answers: list[pb.AuthorizeResponse] = [answer async for answer in stream(frames())]
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text

    by_key = {answer.idempotency_key: answer for answer in answers}
    assert len(answers) == 3 and set(by_key) == {first.idempotency_key, last.idempotency_key, ""}
    assert by_key[first.idempotency_key].decision == pb.DECISION_APPROVED
    assert by_key[last.idempotency_key].decision == pb.DECISION_APPROVED
    bad = by_key[""]
    assert bad.error.code == INVALID.value[0]
    assert "protobuf" in bad.error.message


# --- errors small enough to deliver -------------------------------------------------------


def _many_bad_fields() -> pb.AuthorizeRequest:
    """150 bad metadata entries, long and non-ASCII keys, a huge value: ~300 violations."""
    request = card_request()
    request.idempotency_key = "k" * 5000
    request.merchant_id = "m" * 5000
    for n in range(150):
        request.metadata[f"{WIDE * 70}{n:03d}"] = "bad\x00value" + "v" * 600
    request.metadata["huge"] = "x" * 200_000
    return request


async def test_an_error_with_hundreds_of_bad_fields_fits_a_default_clients_metadata_limit(
    switch_factory: SwitchFactory,
) -> None:
    async with serve(switch_factory, "embedded") as switch, grpc.aio.insecure_channel(switch.target) as channel:
        default_client = switch_pb2_grpc.SwitchStub(channel)  # no channel options: 8 KiB of metadata
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await default_client.Authorize(_many_bad_fields())
        seen = decode(raised.value)
        assert seen.code is INVALID, (seen.code, seen.details[:200])
        assert _trailer_bytes(raised.value) < DEFAULT_MAX_METADATA // 2
        assert seen.status is not None
        bad_request = error_details_pb2.BadRequest()
        seen.status.details[0].Unpack(bad_request)
        reported = bad_request.field_violations
        assert len(reported) == 11  # ten, then how many more were left out
        assert [v.field for v in reported[:2]] == ["idempotency_key", "merchant_id"]
        assert reported[-1].description.endswith("more violations left out")


async def test_a_batch_of_bad_items_answers_each_in_less_than_it_was_sent(switch: Switch) -> None:
    items = [_many_bad_fields() for _ in range(3)] + [card_request()]
    for item in items[:3]:
        del item.metadata["huge"]
    request = pb.AuthorizeBatchRequest(requests=items)
    batch = await switch.stub.AuthorizeBatch(request)

    assert len(batch.responses) == 4
    for response in batch.responses[:3]:
        assert response.error.code == INVALID.value[0]
        assert 2 <= len(response.error.field_violations) <= 11
        assert response.ByteSize() < 4096
    assert batch.responses[3].decision == pb.DECISION_APPROVED
    assert batch.ByteSize() < request.ByteSize()


# --- card numbers where identifiers and free text belong ----------------------------------


def _key_is(pan: str) -> pb.AuthorizeRequest:
    return card_request(key=pan)


def _merchant_is(pan: str) -> pb.AuthorizeRequest:
    return card_request(merchant=pan)


def _in_metadata_value(pan: str) -> pb.AuthorizeRequest:
    request = card_request()
    request.metadata["note"] = f"card {pan} exp 12/29"
    return request


def _in_metadata_key(pan: str) -> pb.AuthorizeRequest:
    request = card_request()
    request.metadata[pan] = "x"
    return request


def _in_holder_name(pan: str) -> pb.AuthorizeRequest:
    request = card_request()
    request.card.holder_name = f"Ada {pan}"
    return request


def _as_token(pan: str) -> pb.AuthorizeRequest:
    request = card_request()
    request.ClearField("card")
    request.token = pan
    return request


PAN_FIELDS = [
    pytest.param(_key_is, VISA, "idempotency_key", id="key"),
    pytest.param(_key_is, f"order-{DASHED}", "idempotency_key", id="key-dashed"),
    pytest.param(_merchant_is, VISA, "merchant_id", id="merchant"),
    pytest.param(_merchant_is, SPACED, "merchant_id", id="merchant-spaced"),
    pytest.param(_in_metadata_value, VISA, "metadata[note]", id="metadata-value"),
    pytest.param(_in_metadata_key, VISA, None, id="metadata-key"),
    pytest.param(_in_holder_name, SPACED, "source.card.holder_name", id="holder-name"),
    pytest.param(_as_token, VISA, "source.token", id="token"),  # refused as ever, by the tokenizer
]


@pytest.mark.parametrize(("build", "pan", "field"), PAN_FIELDS)
async def test_a_card_number_in_an_identifier_is_rejected_and_never_echoed(
    switch: Switch,
    caplog: pytest.LogCaptureFixture,
    build: Callable[[str], pb.AuthorizeRequest],
    pan: str,
    field: str | None,
) -> None:
    caplog.set_level(logging.DEBUG)
    request = build(pan)
    seen = await expect(switch.stub.Authorize(request), INVALID)
    if field is None:  # the field's name would be the card number: it is named without it
        (field,) = seen.violations
        assert field.startswith("metadata[")
    expected = "passes the Luhn check: a card number, not a token" if field == "source.token" else NO_CARD_NUMBER
    assert seen.violations.get(field) == expected, seen.violations
    _no_pan(seen.everything())
    for violation in seen.violations.items():
        _no_pan(" ".join(violation))

    # Nothing was claimed: the same key (when it is not the card number) is still free.
    if request.idempotency_key != pan:
        retry = card_request(key=request.idempotency_key)
        response = await approved(switch, retry)
        assert not response.replayed
    _no_pan(_logged(caplog))


async def _fails(call: Awaitable[Any]) -> Failure:
    seen = await failure(call)
    assert seen.code is INVALID, (seen.code, seen.details)
    return seen


async def test_a_card_number_as_a_transaction_id_or_key_of_a_follow_up_call_is_rejected(
    switch: Switch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    stub = switch.stub
    authorized = await approved(switch, card_request())
    tx = authorized.transaction_id
    key = new_key()
    calls: list[tuple[str, Awaitable[Any]]] = [
        ("transaction_id", stub.GetTransaction(pb.GetTransactionRequest(transaction_id=VISA))),
        ("transaction_id", stub.Capture(pb.CaptureRequest(transaction_id=VISA, idempotency_key=key))),
        ("transaction_id", stub.Void(pb.VoidRequest(transaction_id=DASHED, idempotency_key=key))),
        ("transaction_id", stub.Refund(pb.RefundRequest(transaction_id=f"tx {SPACED}", idempotency_key=key))),
        ("idempotency_key", stub.Capture(pb.CaptureRequest(transaction_id=tx, idempotency_key=VISA))),
        ("merchant_id", stub.QuoteFee(pb.QuoteFeeRequest(merchant_id=VISA, amount=money(100)))),
    ]
    for field, call in calls:
        seen = await _fails(call)
        assert seen.violations == {field: NO_CARD_NUMBER}
        _no_pan(seen.everything())

    # Nothing changed: the transaction is still authorized, and the key is still free.
    captured = await stub.Capture(pb.CaptureRequest(transaction_id=tx, idempotency_key=key))
    assert captured.status == pb.TRANSACTION_STATUS_CAPTURED and not captured.replayed
    _no_pan(_logged(caplog))


@pytest.mark.parametrize("header", ["x-request-id", "x-caller-id"])
async def test_a_card_number_in_the_request_or_caller_id_is_rejected_before_any_log_line(
    switch_factory: SwitchFactory, caplog: pytest.LogCaptureFixture, header: str
) -> None:
    caplog.set_level(logging.DEBUG)
    trusted = {"trusted_identity_header": "x-caller-id"}  # a sidecar's header: read, so checked
    async with serve(switch_factory, "embedded", security=trusted) as switch:
        request = card_request()
        call = switch.stub.Authorize(request, metadata=((header, f"req-{VISA}"),))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        seen = decode(raised.value)
        assert seen.code is INVALID
        assert seen.violations == {header: NO_CARD_NUMBER}
        echoed = dict(await call.trailing_metadata())["x-request-id"]
        assert isinstance(echoed, str) and len(echoed) == 32  # one made by the switch instead
        _no_pan(seen.everything())

        stream = switch.stub.AuthorizeStream(iter([card_request()]), metadata=((header, SPACED),))
        with pytest.raises(grpc.aio.AioRpcError) as streamed:
            _ = [answer async for answer in stream]
        assert decode(streamed.value).code is INVALID
        _no_pan(decode(streamed.value).everything())

        # Nothing was claimed: the key is free.
        answer = await switch.stub.Authorize(request, metadata=(("x-caller-id", "wallet-api"),))
        assert answer.response_code == "00" and not answer.replayed
    _no_pan(_logged(caplog))


async def test_a_batch_item_whose_key_is_a_card_number_fails_alone_without_echoing_it(switch: Switch) -> None:
    good = card_request()
    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[card_request(key=VISA), good]))
    bad, ok = batch.responses
    assert bad.error.code == INVALID.value[0]
    assert [(v.field, v.description) for v in bad.error.field_violations] == [("idempotency_key", NO_CARD_NUMBER)]
    assert bad.idempotency_key == ""  # the key is the card number: not echoed
    _no_pan(batch.SerializeToString())
    assert ok.decision == pb.DECISION_APPROVED and ok.idempotency_key == good.idempotency_key


async def test_identifiers_that_only_resemble_card_numbers_still_work(switch: Switch) -> None:
    """Phone numbers, UUIDs and millisecond timestamps are not card numbers, though
    each digit run below passes the Luhn check."""
    request = card_request(key="order-1718123456705")
    request.metadata["phone"] = "+5511999990006"
    request.metadata["uuid"] = "123e4567-e89b-12d3-a456-426614174008"
    request.merchant_id = MERCHANT
    await approved(switch, request)
    account = pb.AuthorizeRequest(
        idempotency_key=new_key(),
        merchant_id=MERCHANT,
        amount=money(1000, "BRL"),
        account=pb.Account(rail="instant", id="+5511999990006", country="BR"),
    )
    await approved(switch, account)
