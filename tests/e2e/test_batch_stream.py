"""AuthorizeBatch and AuthorizeStream: one bad item fails alone, the rest proceed."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import grpc

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import (
    BAD_LUHN,
    DECLINE_CARD,
    MASTERCARD,
    VISA,
    Switch,
    account_request,
    card_request,
    expect,
    get,
    new_key,
    serve,
    settles,
)

INVALID_ARGUMENT = 3
ALREADY_EXISTS = 6


async def test_batch_answers_in_order_and_bad_items_fail_alone(switch: Switch) -> None:
    requests = [
        card_request(new_key(f"b{i:02d}"), pan=VISA if i % 2 else MASTERCARD, amount=100 + i) for i in range(20)
    ]
    requests[4] = card_request(new_key("bad-luhn"), pan=BAD_LUHN)
    requests[13] = card_request(new_key("bad-currency"), currency="QQQ")

    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests))

    assert len(batch.responses) == 20
    for index, (request, response) in enumerate(zip(requests, batch.responses, strict=True)):
        assert response.idempotency_key == request.idempotency_key
        if index in (4, 13):
            assert response.HasField("error")
            assert response.error.code == INVALID_ARGUMENT
            assert response.error.message
            assert response.transaction_id == ""
            assert response.decision == pb.DECISION_UNSPECIFIED
        else:
            assert not response.HasField("error")
            assert response.decision == pb.DECISION_APPROVED
            assert response.transaction_id.startswith("tx_")
    assert [v.field for v in batch.responses[4].error.field_violations] == ["source.card.pan"]
    assert [v.field for v in batch.responses[13].error.field_violations] == ["amount.currency"]
    assert BAD_LUHN not in str(batch.responses[4])

    good = [r for i, r in enumerate(batch.responses) if i not in (4, 13)]
    assert len({r.transaction_id for r in good}) == 18
    stored = await get(switch, batch.responses[7].transaction_id)
    assert stored.authorized.minor_units == 107
    assert stored.status == pb.TRANSACTION_STATUS_AUTHORIZED


async def test_batch_mixes_cards_and_rail_accounts(switch: Switch) -> None:
    requests = [
        card_request(pan=VISA),
        account_request(rail="instant", account_id="acct-1"),
        card_request(pan=DECLINE_CARD),
        account_request(rail="instant", account_id="acct-2-insufficient"),
        account_request(rail="nope"),
        card_request(pan=MASTERCARD, currency="EUR"),
    ]
    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests))

    assert [r.idempotency_key for r in batch.responses] == [r.idempotency_key for r in requests]
    assert [r.response_code for r in batch.responses] == ["00", "00", "05", "51", "92", "00"]
    assert [r.route for r in batch.responses] == ["card", "instant", "card", "instant", "", "card"]
    assert [r.decision for r in batch.responses] == [
        pb.DECISION_APPROVED,
        pb.DECISION_APPROVED,
        pb.DECISION_DECLINED,
        pb.DECISION_DECLINED,
        pb.DECISION_DECLINED,
        pb.DECISION_APPROVED,
    ]
    statuses = [(await get(switch, r.transaction_id)).status for r in batch.responses]
    settled = settles(switch, "instant")
    assert statuses == [
        pb.TRANSACTION_STATUS_AUTHORIZED,
        pb.TRANSACTION_STATUS_CAPTURED if settled else pb.TRANSACTION_STATUS_AUTHORIZED,
        pb.TRANSACTION_STATUS_DECLINED,
        pb.TRANSACTION_STATUS_DECLINED,
        pb.TRANSACTION_STATUS_DECLINED,
        pb.TRANSACTION_STATUS_AUTHORIZED,
    ]


async def test_batch_with_a_key_twice_makes_one_transaction(switch: Switch) -> None:
    request = card_request(amount=555)
    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[request, request]))
    first, second = batch.responses
    assert first.transaction_id == second.transaction_id
    assert sorted([first.replayed, second.replayed]) == [False, True]


async def test_batch_with_a_key_reused_for_another_request(switch: Switch) -> None:
    key = new_key()
    batch = await switch.stub.AuthorizeBatch(
        pb.AuthorizeBatchRequest(requests=[card_request(key, amount=100), card_request(key, amount=200)])
    )
    first, second = batch.responses
    assert first.decision == pb.DECISION_APPROVED
    assert second.error.code == ALREADY_EXISTS
    assert second.idempotency_key == key
    assert second.transaction_id == ""


async def test_empty_batch(switch: Switch) -> None:
    assert len((await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest())).responses) == 0


async def test_batch_replays_earlier_unary_answers(switch: Switch) -> None:
    request = card_request()
    unary = await switch.stub.Authorize(request)
    batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[request, card_request()]))
    assert batch.responses[0].replayed
    assert batch.responses[0].transaction_id == unary.transaction_id
    assert not batch.responses[1].replayed


async def test_stream_of_100_answers_every_key(switch: Switch) -> None:
    requests = [card_request(new_key(f"s{i:03d}"), amount=1 + i) for i in range(100)]

    async def produce() -> AsyncIterator[pb.AuthorizeRequest]:
        for request in requests:
            yield request

    responses = [response async for response in switch.stub.AuthorizeStream(produce())]

    assert len(responses) == 100
    assert Counter(r.idempotency_key for r in responses) == Counter(r.idempotency_key for r in requests)
    assert all(r.decision == pb.DECISION_APPROVED for r in responses)
    assert len({r.transaction_id for r in responses}) == 100


async def test_stream_bad_item_fails_alone(switch: Switch) -> None:
    requests = [card_request(new_key(f"s{i:02d}")) for i in range(10)]
    requests[3] = card_request(new_key("bad"), pan=BAD_LUHN)
    requests[6] = account_request(new_key("rail"), rail="instant")

    async def produce() -> AsyncIterator[pb.AuthorizeRequest]:
        for request in requests:
            yield request

    responses = {r.idempotency_key: r async for r in switch.stub.AuthorizeStream(produce())}

    assert set(responses) == {r.idempotency_key for r in requests}
    bad = responses[requests[3].idempotency_key]
    assert bad.error.code == INVALID_ARGUMENT
    assert [v.field for v in bad.error.field_violations] == ["source.card.pan"]
    assert BAD_LUHN not in str(bad)
    assert responses[requests[6].idempotency_key].route == "instant"
    others = [responses[r.idempotency_key] for i, r in enumerate(requests) if i != 3]
    assert all(r.decision == pb.DECISION_APPROVED and not r.HasField("error") for r in others)


async def test_stream_replays_a_repeated_key(switch: Switch) -> None:
    request = card_request()
    first = await switch.stub.Authorize(request)

    async def produce() -> AsyncIterator[pb.AuthorizeRequest]:
        yield request

    (answer,) = [r async for r in switch.stub.AuthorizeStream(produce())]
    assert answer.replayed
    assert answer.transaction_id == first.transaction_id


async def test_an_oversized_batch_is_shed_before_any_side_effect(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, batcher={"max_pending": 10}) as switch:
        requests = [card_request() for _ in range(11)]
        seen = await expect(
            switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests)), grpc.StatusCode.RESOURCE_EXHAUSTED
        )
        assert seen.details

        # Nothing was claimed: the same keys in smaller batches are fresh approvals.
        for part in (requests[:6], requests[6:]):
            batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=part))
            assert all(r.decision == pb.DECISION_APPROVED and not r.replayed for r in batch.responses)


async def test_stream_with_a_key_reused_for_another_request(switch: Switch) -> None:
    key = new_key()

    async def produce() -> AsyncIterator[pb.AuthorizeRequest]:
        yield card_request(key, amount=100)
        yield card_request(key, amount=200)

    answers = [r async for r in switch.stub.AuthorizeStream(produce())]
    assert sorted(r.error.code for r in answers) == [0, ALREADY_EXISTS]
    assert all(r.idempotency_key == key for r in answers)


async def test_a_stream_cancelled_midway_leaves_the_switch_owing_nothing(switch: Switch) -> None:
    requests = [card_request(new_key(f"c{i:03d}")) for i in range(50)]
    more = asyncio.Event()  # never set: the stream stays open until the client cancels it

    async def produce() -> AsyncIterator[pb.AuthorizeRequest]:
        for request in requests:
            yield request
        await more.wait()

    call = switch.stub.AuthorizeStream(produce())
    answered = [await call.read() for _ in range(10)]
    assert all(isinstance(r, pb.AuthorizeResponse) and r.decision == pb.DECISION_APPROVED for r in answered)
    call.cancel()
    batcher = switch.running.batcher
    for _ in range(200):
        if batcher.owed == 0:
            break
        await asyncio.sleep(0.01)
    assert batcher.owed == 0
    assert (await switch.stub.Authorize(card_request())).decision == pb.DECISION_APPROVED
