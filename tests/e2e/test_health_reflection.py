"""grpc.health.v1 and server reflection, as generic gRPC tooling sees them."""

from __future__ import annotations

import asyncio

import grpc
from google.protobuf import descriptor_pool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

from tests.e2e.support import Switch

SWITCH_SERVICE = "switch.v1.Switch"
METHODS = {
    "Authorize",
    "AuthorizeBatch",
    "AuthorizeStream",
    "Capture",
    "Void",
    "Refund",
    "GetTransaction",
    "QuoteFee",
    "ListAlerts",
    "SetHolderTier",
    "ReportFraud",
    "PromoteModel",
}


async def test_health_check_serving(switch: Switch) -> None:
    async with grpc.aio.insecure_channel(switch.target) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        for service in ("", SWITCH_SERVICE):
            answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
            assert answer.status == health_pb2.HealthCheckResponse.SERVING, service
        try:
            await health.Check(health_pb2.HealthCheckRequest(service="no.such.Service"))
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.NOT_FOUND
        else:
            raise AssertionError("an unknown service must be NOT_FOUND")


async def test_reflection_lists_the_switch(switch: Switch) -> None:
    async with grpc.aio.insecure_channel(switch.target) as channel:
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        requests = [
            reflection_pb2.ServerReflectionRequest(list_services=""),
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=SWITCH_SERVICE),
        ]
        answers = [answer async for answer in reflection.ServerReflectionInfo(iter(requests))]

    listed = {service.name for service in answers[0].list_services_response.service}
    assert {SWITCH_SERVICE, "switch.v1.Tokens", "grpc.health.v1.Health"} <= listed
    assert answers[1].file_descriptor_response.file_descriptor_proto


def _describe(target: str) -> set[str]:
    """What a generic client (grpcurl-like) learns from reflection alone."""
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert SWITCH_SERVICE in set(database.get_services())
        pool = descriptor_pool.DescriptorPool(database)
        service = pool.FindServiceByName(SWITCH_SERVICE)
        authorize = service.methods_by_name["Authorize"]
        assert authorize.input_type.full_name == "switch.v1.AuthorizeRequest"
        assert "idempotency_key" in authorize.input_type.fields_by_name
        return {method.name for method in service.methods}


async def test_reflection_describes_every_method(switch: Switch) -> None:
    # The blocking client runs on a thread so the switch keeps serving on this loop.
    assert await asyncio.to_thread(_describe, switch.target) == METHODS
