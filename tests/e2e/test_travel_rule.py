"""The travel rule at the edge, over gRPC: a cross-border transfer of 1,000 USD or more
without its originator's and beneficiary's names is INVALID_ARGUMENT naming both, and
changes nothing; named, it goes through. In a batch the unnamed item fails alone."""

from __future__ import annotations

import grpc

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import account_request, approved, expect, new_key, serve


def cross_border(key: str, *, named: bool) -> pb.AuthorizeRequest:
    request = account_request(key, amount=150_000, currency="USD")  # from BR
    request.destination.CopyFrom(pb.Account(rail="instant", id="PT50000201231234567890154", country="PT"))
    if named:
        request.account.holder_name, request.destination.holder_name = "Ana Souza", "Rui Costa"
    return request


async def test_an_unnamed_cross_border_transfer_is_refused_and_moves_nothing(
    store_set: str, switch_factory: SwitchFactory
) -> None:
    async with serve(switch_factory, store_set) as switch:
        key = new_key("r16")
        refused = await expect(switch.stub.Authorize(cross_border(key, named=False)), grpc.StatusCode.INVALID_ARGUMENT)
        assert set(refused.violations) == {"source.account.holder_name", "destination.holder_name"}
        named = await approved(switch, cross_border(key, named=True))  # the same key: nothing was kept
        assert not named.replayed

        batch = pb.AuthorizeBatchRequest(
            requests=[cross_border(new_key(), named=True), cross_border(new_key(), named=False)]
        )
        first, second = (await switch.stub.AuthorizeBatch(batch)).responses
        assert first.decision == pb.DECISION_APPROVED
        assert second.error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
