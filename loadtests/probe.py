"""Waits for a gRPC server's health service to say SERVING:

    python -m loadtests.probe 127.0.0.1:PORT [--timeout 60] [--tls-dir DIR]

Exit status 0 once it does, 1 (with the last answer) when it has not after --timeout
seconds. A process of its own (loadtests/servers.py starts it): an orchestrator that
opened a gRPC channel itself would carry gRPC's threads into every process it forks later.
With --tls-dir (a folder made by `switch tls init`) it connects over mutual TLS with the
folder's client certificate.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from loadtests.harness import SERVICE


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="wait until a gRPC server's health service says SERVING")
    parser.add_argument("target", help="host:port")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds to wait")
    parser.add_argument("--tls-dir", type=Path, help="connect over mutual TLS with this folder's client files")
    args = parser.parse_args(argv)
    return wait_serving(args.target, args.timeout, args.tls_dir)


def wait_serving(target: str, timeout: float, tls_dir: Path | None = None) -> int:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    credentials = None
    if tls_dir is not None:
        from switch.cli.demo.tls import TlsFolder

        credentials = TlsFolder.open(tls_dir).credentials()
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        opened = grpc.secure_channel(target, credentials) if credentials else grpc.insecure_channel(target)
        with opened as channel:
            try:
                answer = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=SERVICE), timeout=2.0
                )
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return 0
                last = f"health {answer.status}"
            except grpc.RpcError as error:
                last = error.code().name if isinstance(error, grpc.Call) else str(error)
        time.sleep(0.1)
    print(f"{target}: not serving after {timeout:.0f} s ({last})")
    return 1


if __name__ == "__main__":
    sys.exit(main())
