"""What the demo saw: latencies per (RPC, outcome), example lines and failed
expectations, the summary table it prints, and how an answer is named as an outcome."""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from switch.v1 import switch_pb2 as pb

MAX_EXAMPLES = 24

RPC_ORDER = (
    "Authorize",
    "AuthorizeBatch",
    "AuthorizeStream",
    "Capture",
    "Refund",
    "Void",
    "GetTransaction",
    "Tokenize",
    "QuoteFee",
)


@dataclass(slots=True)
class Report:
    """Latencies per (RPC, outcome), example lines and failed expectations."""

    latencies: dict[tuple[str, str], list[float]] = field(default_factory=lambda: defaultdict(list))
    examples: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    rpcs: int = 0

    def record(self, rpc: str, outcome: str, latency_ms: float) -> None:
        self.latencies[(rpc, outcome)].append(latency_ms)

    def expect(self, what: str, got: str, expected: str) -> bool:
        if got != expected:
            self.fail(f"{what}: expected {expected}, got {got}")
            return False
        return True

    def fail(self, message: str) -> None:
        self.failures.append(message)

    def example(self, line: str) -> None:
        if len(self.examples) < MAX_EXAMPLES:
            self.examples.append(line)

    def print_summary(self, calls: int, seconds: float) -> None:
        rows = sorted(self.latencies.items(), key=lambda kv: (_rpc_rank(kv[0][0]), kv[0][0], kv[0][1]))
        table = [("RPC", "outcome", "count", "p50 ms")]
        for (rpc, outcome), values in rows:
            table.append((rpc, outcome, str(len(values)), f"{statistics.median(values):.2f}"))
        widths = [max(len(row[i]) for row in table) for i in range(4)]
        rule = "  ".join("-" * w for w in widths)
        print(f"switch demo: {self.rpcs} RPCs on the embedded default (asked for {calls}) in {seconds:.2f} s")
        print()
        for index, row in enumerate(table):
            left = "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:2]))
            right = "  ".join(cell.rjust(widths[i + 2]) for i, cell in enumerate(row[2:]))
            print(f"{left}  {right}")
            if index == 0:
                print(rule)
        print(rule)
        items = sum(len(values) for values in self.latencies.values())
        print(f"total: {self.rpcs} RPCs, {items} outcomes (batch and stream items counted one by one)")
        print()
        print("examples:")
        for line in self.examples:
            print(f"  {line}")
        print()
        if self.failures:
            print(f"FAILED: {len(self.failures)} expectation(s) did not hold:")
            for failure in self.failures:
                print(f"  - {failure}")
        else:
            print("all expectations held")


def _rpc_rank(rpc: str) -> int:
    base = rpc.split(" ", 1)[0]
    return RPC_ORDER.index(base) if base in RPC_ORDER else len(RPC_ORDER)


def authorize_outcome(response: pb.AuthorizeResponse) -> str:
    if response.HasField("error"):
        return f"error {_status_name(response.error.code)}"
    outcome = "approved" if response.decision == pb.DECISION_APPROVED else f"declined {response.response_code}"
    return f"{outcome} (replayed)" if response.replayed else outcome


def transaction_outcome(transaction: pb.Transaction) -> str:
    status = pb.TransactionStatus.Name(transaction.status).removeprefix("TRANSACTION_STATUS_").lower()
    return f"ok {status} (replayed)" if transaction.replayed else f"ok {status}"


def _status_name(code: int) -> str:
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return f"code {code}"


def violations(error: grpc.aio.AioRpcError) -> str:
    """The field violations of an INVALID_ARGUMENT, from its google.rpc.BadRequest detail."""
    found: list[str] = []
    # At run time grpc.aio hands back an aio.Metadata of (key, value) pairs; grpc-stubs says otherwise.
    trailing = cast(Iterable[tuple[str, str | bytes]], error.trailing_metadata() or ())
    for key, value in trailing:
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        for detail in status_pb2.Status.FromString(value).details:
            bad_request = error_details_pb2.BadRequest()
            if detail.Unpack(bad_request):
                found.extend(f"{v.field}: {v.description}" for v in bad_request.field_violations)
    return "; ".join(found) or "(no field violations)"
