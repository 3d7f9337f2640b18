"""An id the instant rail's schema cannot carry is the caller's error, caught before
anything moves: INVALID_ARGUMENT naming the field, nothing sent or stored, and the key
free for a corrected retry. The instant route is the ISO 20022 rail adapter and its
simulator, on both store sets."""

from __future__ import annotations

import grpc

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import account_request, approved, expect, new_key
from tests.e2e.test_instant_refunds import on_the_rail

TOO_LONG = "9" * 35  # an account number: Othr/Id is Max34Text
LONGEST = "9" * 34


async def test_an_id_past_the_schemas_length_is_invalid_argument_and_moves_nothing(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    async with on_the_rail(store_set, switch_factory) as (switch, rail):
        key = new_key("long")
        failure = await expect(
            switch.stub.Authorize(account_request(key, account_id=TOO_LONG)), grpc.StatusCode.INVALID_ARGUMENT
        )
        assert set(failure.violations) == {"source.account.id"}
        assert TOO_LONG.encode() not in failure.everything()

        destination = account_request(new_key("dest"), account_id=LONGEST)
        destination.destination.CopyFrom(pb.Account(rail="instant", id="shop-" + TOO_LONG))
        failure = await expect(switch.stub.Authorize(destination), grpc.StatusCode.INVALID_ARGUMENT)
        assert set(failure.violations) == {"destination.id"}

        merchant = account_request(new_key("merchant"), account_id=LONGEST, merchant="m" * 35)
        failure = await expect(switch.stub.Authorize(merchant), grpc.StatusCode.INVALID_ARGUMENT)
        assert set(failure.violations) == {"merchant_id"}
        assert sum(rail.received.values()) == 0  # nothing reached the rail

        # Nothing was kept either: the same key, corrected, goes through.
        await approved(switch, account_request(key, account_id=LONGEST))
        assert rail.received["pacs.008"] == 1


async def test_in_a_batch_only_the_item_the_rail_cannot_carry_fails(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    async with on_the_rail(store_set, switch_factory) as (switch, _):
        good, bad = account_request(account_id="ana@bank"), account_request(account_id=TOO_LONG)
        answer = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[good, bad]))
        first, second = answer.responses
        assert first.decision == pb.DECISION_APPROVED and not first.HasField("error")
        assert second.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert [v.field for v in second.error.field_violations] == ["source.account.id"]
