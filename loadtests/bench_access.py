"""What admission costs a call: the caller's identity, its role and a merchant scope,
as the API's decorators run them, against the same handler without them, over one
mutual-TLS connection in this process (a throwaway CA), and the per-item merchant
check a batch runs on each item, by the kind of scope.

    .venv/bin/python loadtests/bench_access.py [--calls 2000] [--repeats 5] [--checks 100000]

Each row is the median of --repeats; the per-call rows time the work inside the
handler (the call itself, its TLS and its transport are the same with or without).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.security.access import Access, check_merchant
from switch.security.identity import IdentitySource
from switch.security.policy import CallerRule, Policy, Role
from tests.pki import CA

CALLER = "spiffe://wallet.example/payments"
ACCESS = Access(
    Policy([CallerRule("spiffe://wallet.example/*", frozenset(Role), ("m-*",))]), IdentitySource.CERTIFICATE
)


class _Timed(health_pb2_grpc.HealthServicer):  # type: ignore[misc]
    """Times `admit` (identity, role, one scope check) inside a real call's handler."""

    def __init__(self) -> None:
        self.nanoseconds: list[int] = []

    async def Check(self, request: Any, context: Any) -> Any:
        started = time.perf_counter_ns()
        grant = ACCESS.admit(ACCESS.caller(context, ""), Role.AUTHORIZE)
        check_merchant(grant, "m-1")
        self.nanoseconds.append(time.perf_counter_ns() - started)
        return health_pb2.HealthCheckResponse(status=health_pb2.HealthCheckResponse.SERVING)


async def per_call(calls: int) -> float:
    ca = CA()
    server_cert, client_cert = ca.server(), ca.client(uri=CALLER)
    servicer = _Timed()
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    pair = [(server_cert.key_pem, server_cert.cert_pem)]
    credentials = grpc.ssl_server_credentials(pair, root_certificates=ca.cert_pem, require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    client = grpc.ssl_channel_credentials(ca.cert_pem, client_cert.key_pem, client_cert.cert_pem)
    try:
        async with grpc.aio.secure_channel(f"127.0.0.1:{port}", client) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(calls):
                await stub.Check(health_pb2.HealthCheckRequest())
    finally:
        await server.stop(None)
    return statistics.median(servicer.nanoseconds) / 1000.0


def per_item(merchants: tuple[str, ...], merchant: str, checks: int) -> float:
    grant = Policy([CallerRule("*", frozenset({Role.AUTHORIZE}), merchants)]).grant("c")
    assert grant is not None and grant.may_act_for(merchant)
    started = time.perf_counter_ns()
    for _ in range(checks):
        grant.may_act_for(merchant)
    return (time.perf_counter_ns() - started) / checks / 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--checks", type=int, default=100_000)
    args = parser.parse_args()
    rows = [("per call: identity from the client certificate, role, one scope check", asyncio.run, per_call)]
    print("| what | µs (median) |")
    print("| --- | ---: |")
    for label, runner, function in rows:
        print(f"| {label} | {statistics.median(runner(function(args.calls)) for _ in range(args.repeats)):.2f} |")
    scopes = [
        ('per item: every merchant ("*")', ("*",), "m-1"),
        ("per item: an exact merchant id, among 50", tuple(f"m-{i}" for i in range(50)), "m-49"),
        ('per item: a prefix ("m-br-*")', ("m-br-*",), "m-br-77"),
        ('per item: another pattern ("m-*-br")', ("m-*-br",), "m-77-br"),
    ]
    for label, merchants, merchant in scopes:
        value = statistics.median(per_item(merchants, merchant, args.checks) for _ in range(args.repeats))
        print(f"| {label} | {value:.2f} |")


if __name__ == "__main__":
    main()
