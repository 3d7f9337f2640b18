"""Every message on the wire between the template adapter and its simulator validates against
the protocol's specification, adapters/template/messages.schema.json: each request against
#/$defs/request, each answer against #/$defs/answer.

The frames are captured where they are written (framing.encode), from a real exchange that
makes every operation kind: not hand-written JSON. Copy this file with the folder; for a
standard protocol validate against the standard's own schema instead (the ISO 20022 XSDs in
test_rail_iso20022_schemas.py, an independent decoder in test_card_iso8583_independent.py).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker  # type: ignore[import-untyped]  # no py.typed

import adapters.template
from adapters.template import TemplateAdapter, framing, mapping
from adapters.template.simulator import start_simulator
from switch.adapters.contract import AdapterRequest
from switch.domain.models import Account, Card, Money, OperationKind

SCHEMA_PATH = Path(adapters.template.__file__).parent / "messages.schema.json"
SCHEMA: dict[str, Any] = json.loads(SCHEMA_PATH.read_text())
DEFINITIONS = ("request", "answer")
CARD = "4111111111111111"
ORIGINAL = "K7M2QX"

Frames = dict[str, list[framing.Message]]  # definition -> its messages, as written


def _requests() -> list[AdapterRequest]:
    def authorize(transaction_id: str, *, card: Card | None = None, account: str = "") -> AdapterRequest:
        source = Account("rail", account) if account else None
        return AdapterRequest(
            OperationKind.AUTHORIZE, transaction_id, "merchant-1", Money(1000, "USD"), card=card, account=source
        )

    def operation(kind: OperationKind, transaction_id: str, code: str = ORIGINAL, amount: int = 500) -> AdapterRequest:
        return AdapterRequest(kind, transaction_id, "café-1", Money(amount, "EUR"), authorization_code=code)

    return [
        authorize("tx_01J0000000000000000000001", card=Card(CARD, 12, 2099)),
        authorize("tx_01J0000000000000000000002", card=Card(CARD, 0, 0)),  # from a token: no expiry
        authorize("tx_01J0000000000000000000003", card=Card("4000000000000002", 1, 2030)),  # do_not_honor
        authorize("tx_01J0000000000000000000004", card=Card("4000000000009995", 1, 2030)),  # insufficient_funds
        authorize("tx_01J0000000000000000000005", account="ana@bank"),
        authorize("tx_01J0000000000000000000006", account="1234-insufficient"),
        authorize("tx_01J0000000000000000000007", account="x" * mapping.MAX_TEXT),  # the longest text
        authorize("tx_01J0000000000000000000008", account="9876-closed"),  # unknown_account
        operation(OperationKind.CAPTURE, "tx_01J0000000000000000000009"),
        operation(OperationKind.VOID, "tx_01J0000000000000000000010"),
        operation(OperationKind.REFUND, "tx_01J0000000000000000000011", amount=0),
        operation(OperationKind.REVERSE, "tx_01J0000000000000000000012", code=""),  # outcome unknown: no code
    ]


@pytest.fixture
async def frames(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Frames]:
    """The messages both sides write during one exchange of every operation kind. Both sides
    write through framing.encode; an answer carries its request's id back, so the first
    message with an id is the request and the second its answer."""
    written: list[framing.Message] = []
    encode = framing.encode

    def tap(message: framing.Message) -> bytes:
        raw = encode(message)
        written.append(json.loads(raw[4:]))  # what went on the wire, not the dict it came from
        return raw

    monkeypatch.setattr(framing, "encode", tap)
    simulator, port = await start_simulator("127.0.0.1", 0)
    adapter = TemplateAdapter("template", {"port": port, "timeout": 0.5})
    await adapter.start()
    try:
        results = await adapter.send(_requests(), time_left=3.0)
        assert not any(result.unknown for result in results)
        codes = ["00", "00", "05", "51", "00", "51", "00", "14", "00", "00", "00", "00"]
        assert [result.response_code for result in results] == codes
        captured: Frames = {"request": [], "answer": []}
        seen: set[str] = set()
        for message in written:
            captured["answer" if message["id"] in seen else "request"].append(message)
            seen.add(message["id"])
        yield captured
    finally:
        await adapter.close()
        await simulator.close()


def _validator(definition: str) -> Any:
    return Draft202012Validator(SCHEMA, format_checker=FormatChecker()).evolve(schema={"$ref": f"#/$defs/{definition}"})


def _errors(message: framing.Message, definition: str) -> list[str]:
    # Where and which rule, never the value: it may be a card number.
    return [f"{error.json_path}: {error.validator}" for error in _validator(definition).iter_errors(message)]


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(DEFINITIONS) <= set(SCHEMA["$defs"])


def test_the_schema_names_the_operations_and_results_the_code_knows() -> None:
    requests, answers = (SCHEMA["$defs"][definition]["properties"] for definition in DEFINITIONS)
    assert requests["op"]["enum"] == [kind.value for kind in OperationKind]
    assert set(answers["result"]["enum"]) == set(mapping.RESULTS)
    assert SCHEMA["$defs"]["text"]["maxLength"] == mapping.MAX_TEXT


@pytest.mark.parametrize("definition", DEFINITIONS)
async def test_every_message_on_the_wire_is_schema_valid(frames: Frames, definition: str) -> None:
    sent = frames[definition]
    assert len(sent) == len(_requests()), f"{len(sent)} {definition}s on the wire"
    for message in sent:
        assert _errors(message, definition) == [], mapping.describe(message)


async def test_every_request_is_answered_once_by_id_and_ref(frames: Frames) -> None:
    requests = {message["id"]: message["ref"] for message in frames["request"]}
    assert {message["id"]: message["ref"] for message in frames["answer"]} == requests
    assert len(requests) == len(frames["answer"])


async def test_every_operation_kind_and_source_is_on_the_wire(frames: Frames) -> None:
    requests = frames["request"]
    assert {message["op"] for message in requests} == {kind.value for kind in OperationKind}
    cards = [message["card"] for message in requests if "card" in message]
    assert any("expiry" in card for card in cards) and any("expiry" not in card for card in cards)
    assert any("account" in message for message in requests)
    assert any("original_auth" in message for message in requests)
    assert any(message["op"] != "authorize" and "original_auth" not in message for message in requests)
    results = {message["result"] for message in frames["answer"]}
    assert {"approved", "do_not_honor", "insufficient_funds", "unknown_account"} <= results
    assert any("auth_code" in message for message in frames["answer"])


# --- the schema bites: a captured message, spoiled, is refused ---


def _captured(frames: Frames, definition: str, keep: Callable[[framing.Message], bool]) -> framing.Message:
    message = next(message for message in frames[definition] if keep(message))
    assert _errors(message, definition) == []  # valid as captured: what the spoiling breaks is the point
    copy: framing.Message = json.loads(json.dumps(message))  # a deep copy to spoil
    return copy


def _card_authorization(frames: Frames) -> framing.Message:
    return _captured(frames, "request", lambda message: "expiry" in message.get("card", {}))


@pytest.mark.parametrize("field", ["id", "op", "ref", "merchant", "amount", "currency", "card"])
async def test_a_request_without_a_required_field_is_refused(frames: Frames, field: str) -> None:
    message = _card_authorization(frames)
    del message[field]
    assert _errors(message, "request")


SPOILED_REQUESTS: dict[str, Callable[[framing.Message], None]] = {
    "an extra field": lambda message: message.update(note="hello"),
    "a ref too long": lambda message: message.update(ref="r" * (mapping.MAX_TEXT + 1)),
    "an empty merchant": lambda message: message.update(merchant=""),
    "a ref ending in a newline": lambda message: message.update(ref=message["ref"] + "\n"),
    "a control character": lambda message: message.update(merchant="merchant\x07"),
    "an unknown op": lambda message: message.update(op="transfer"),
    "an amount as a string": lambda message: message.update(amount="1000"),
    "an amount of zero": lambda message: message.update(amount=0),
    "a lowercase currency": lambda message: message.update(currency="usd"),
    "a short card number": lambda message: message["card"].update(number="41111111111"),
    "a card number with a space": lambda message: message["card"].update(number="4111 1111 1111 1111"),
    "a thirteenth month": lambda message: message["card"].update(expiry="2099-13"),
    "an extra card field": lambda message: message["card"].update(cvv="123"),
    "a card and an account": lambda message: message.update(account="ana@bank"),
    "an original on an authorization": lambda message: message.update(original_auth=ORIGINAL),
}


@pytest.mark.parametrize("spoil", SPOILED_REQUESTS.values(), ids=SPOILED_REQUESTS)
async def test_a_spoiled_request_is_refused(frames: Frames, spoil: Callable[[framing.Message], None]) -> None:
    message = _card_authorization(frames)
    spoil(message)
    assert _errors(message, "request")


async def test_an_operation_with_a_card_an_unknown_op_or_no_amount_is_refused(frames: Frames) -> None:
    capture = _captured(frames, "request", lambda message: message["op"] == "capture")
    assert _errors({**capture, "card": {"number": CARD}}, "request")
    assert _errors({**capture, "account": "ana@bank"}, "request")
    assert _errors({**capture, "amount": -1}, "request")
    assert _errors({**capture, "op": "transfer"}, "request")
    assert _errors({key: value for key, value in capture.items() if key != "amount"}, "request")


SPOILED_ANSWERS: dict[str, Callable[[framing.Message], object]] = {
    "a card number": lambda message: message.update(card={"number": CARD}),
    "a bare card number": lambda message: message.update(number=CARD),
    "an account": lambda message: message.update(account="ana@bank"),
    "no network_ref": lambda message: message.pop("network_ref"),
    "an unknown result": lambda message: (message.pop("auth_code"), message.update(result="maybe")),
    "an auth code on a decline": lambda message: message.update(result="do_not_honor"),
    "a long auth code": lambda message: message.update(auth_code="K7M2QX1"),
    "a foreign network_ref": lambda message: message.update(network_ref="ref-1"),
    "an id with a space": lambda message: message.update(id=message["id"] + " 1"),
}


@pytest.mark.parametrize("spoil", SPOILED_ANSWERS.values(), ids=SPOILED_ANSWERS)
async def test_a_spoiled_answer_is_refused(frames: Frames, spoil: Callable[[framing.Message], object]) -> None:
    message = _captured(frames, "answer", lambda message: "auth_code" in message)
    spoil(message)
    assert _errors(message, "answer")
