"""The bare echo: a grpc.aio server under uvloop implementing switch.v1.Switch with no logic,
the ceiling the benchmarks measure the switch against (capacity.py and scaling.py start it
through loadtests/servers.py):

    python -m loadtests.echo --port N [--tls-dir DIR]

Authorize returns one fixed response, AuthorizeBatch one per item, AuthorizeStream one per
request carrying its idempotency_key; the other methods answer UNIMPLEMENTED. Requests and
answers are still protobuf-parsed and serialized, the service is registered as the switch
registers its own, and the server has the switch's options (SO_REUSEPORT: several echo
processes can share a port), so only the service logic differs. The gRPC health service
says SERVING once it listens, and it prints "echo ready pid P port N". With --tls-dir (a
folder made by `switch tls init`) it serves mutual TLS as the switch does with that folder:
server.pem / server.key, client certificates required and chaining to ca.pem.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from loadtests.harness import MAX_MESSAGE_BYTES, SERVICE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a bare gRPC echo of switch.v1.Switch")
    parser.add_argument("--port", type=int, required=True, help="the loopback port (shared: SO_REUSEPORT)")
    parser.add_argument("--tls-dir", type=Path, help="serve mutual TLS with this folder's server files")
    args = parser.parse_args(argv)
    import uvloop

    uvloop.run(serve(args.port, args.tls_dir))
    return 0


async def serve(port: int, tls_dir: Path | None = None) -> None:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_health.v1._async import HealthServicer

    from switch.v1 import switch_pb2 as pb
    from switch.v1 import switch_pb2_grpc

    fixed = pb.AuthorizeResponse(
        idempotency_key="echo",
        transaction_id="tx_" + "0" * 26,
        decision=pb.DECISION_APPROVED,
        response_code="00",
        message="approved",
        route="card",
        authorization_code="ECHO00",
    )

    class Echo(switch_pb2_grpc.SwitchServicer):
        async def Authorize(self, request: pb.AuthorizeRequest, context: Any) -> pb.AuthorizeResponse:
            return fixed

        async def AuthorizeBatch(self, request: pb.AuthorizeBatchRequest, context: Any) -> pb.AuthorizeBatchResponse:
            return pb.AuthorizeBatchResponse(responses=[fixed] * len(request.requests))

        async def AuthorizeStream(
            self, request_iterator: AsyncIterator[pb.AuthorizeRequest], context: Any
        ) -> AsyncIterator[pb.AuthorizeResponse]:
            # One answer per request, carrying its key (clients match answers by key).
            async for request in request_iterator:
                answer = pb.AuthorizeResponse()
                answer.CopyFrom(fixed)
                answer.idempotency_key = request.idempotency_key
                yield answer

        async def Capture(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def Void(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def Refund(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def GetTransaction(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def QuoteFee(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def ListAlerts(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def SetHolderTier(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def ReportFraud(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

        async def PromoteModel(self, request: Any, context: Any) -> Any:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "echo: not benchmarked")

    # The same server options as switch.server.build, so only the service logic differs.
    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ]
    )
    switch_pb2_grpc.add_SwitchServicer_to_server(Echo(), server)
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    address = f"127.0.0.1:{port}"
    if tls_dir is None:
        bound = server.add_insecure_port(address)
    else:
        from switch.cli.demo.tls import CA_FILE, SERVER_CERT, SERVER_KEY, TlsFolder

        files = TlsFolder.open(tls_dir)
        pair = (files.read(SERVER_KEY), files.read(SERVER_CERT))
        credentials = grpc.ssl_server_credentials(
            [pair], root_certificates=files.read(CA_FILE), require_client_auth=True
        )
        bound = server.add_secure_port(address, credentials)
    if not bound:
        raise SystemExit(f"echo: could not bind 127.0.0.1:{port}")
    await server.start()
    for service in ("", SERVICE):
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
    print(f"echo ready pid {os.getpid()} port {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    sys.exit(main())
