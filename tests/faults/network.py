"""A recording card network: serves `switch.v1.Adapter` and logs what it executes.

    .venv/bin/python -m tests.faults.network --port 7070 --log network.jsonl [--latency 0.002]

It decides as the example adapter process does (adapters/remote_issuer, which it
extends): it approves every card but that process's test cards, and executes
every capture, void and refund it is sent, without judging them (the checker
judges what the switch made it do). It honours reversals: a reversal of a
transaction it approved marks it reversed; a repeat is acknowledged again.

Every operation it decides is appended to a JSON-lines log (flushed per line)
before its answer leaves: kind, transaction id, merchant, amount, the operation's
reference when the contract carries one, the masked instrument (never a card
number), the answer, and its effect (tests/faults/records.py). An operation whose
reference it has already executed (the same kind and reference) is answered with
its first answer and logged as a duplicate, not executed again.

The switch reaches it through a `remote` route, so every worker talks to this one
process and one log.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from collections.abc import Sequence
from pathlib import Path

from adapters.remote_issuer.issuer import RemoteIssuer
from switch.v1 import adapter_pb2
from tests.faults.records import DECLINED, DUPLICATE, EXECUTED, REPEATED, UNMATCHED, NetworkOp

# The operation's reference: a field another version of the contract may add.
REFERENCE_FIELD = "reference"
APPROVED = "00"
_KIND_NAMES = {value: name.removeprefix("OPERATION_KIND_").lower() for name, value in adapter_pb2.OperationKind.items()}


class RecordingNetwork(RemoteIssuer):
    def __init__(self, log_path: Path, *, latency: float = 0.0) -> None:
        super().__init__(latency=latency)
        self._log = log_path.open("a", encoding="utf-8")
        self._seq = 0
        self._first_answers: dict[tuple[int, str], adapter_pb2.AdapterOutcome] = {}
        self._approved: set[str] = set()  # transaction ids whose authorization this network approved
        self._reversed: set[str] = set()

    def close_log(self) -> None:
        self._log.close()

    def _decide(self, operation: adapter_pb2.AdapterOperation) -> adapter_pb2.AdapterOutcome:
        reference = operation_reference(operation)
        if reference:
            first = self._first_answers.get((operation.kind, reference))
            if first is not None:
                self._record(operation, reference, first, DUPLICATE)
                return first
        outcome = super()._decide(operation)
        self._record(operation, reference, outcome, self._apply(operation, outcome))
        if reference:
            self._first_answers[operation.kind, reference] = outcome
        return outcome

    def _apply(self, operation: adapter_pb2.AdapterOperation, outcome: adapter_pb2.AdapterOutcome) -> str:
        """Moves the network's own state; returns the effect to log."""
        transaction_id = operation.transaction_id
        if outcome.response_code != APPROVED:
            return DECLINED
        if operation.kind == adapter_pb2.OPERATION_KIND_AUTHORIZE:
            self._approved.add(transaction_id)
            return EXECUTED
        if operation.kind == adapter_pb2.OPERATION_KIND_REVERSE:
            if transaction_id in self._reversed:
                return REPEATED
            self._reversed.add(transaction_id)  # also one that arrives before its original
            return EXECUTED if transaction_id in self._approved else UNMATCHED
        return EXECUTED

    def _record(
        self,
        operation: adapter_pb2.AdapterOperation,
        reference: str,
        outcome: adapter_pb2.AdapterOutcome,
        effect: str,
    ) -> None:
        self._seq += 1
        op = NetworkOp(
            seq=self._seq,
            at=time.time(),
            kind=_KIND_NAMES.get(operation.kind, "unspecified"),
            transaction_id=operation.transaction_id,
            merchant_id=operation.merchant_id,
            amount=operation.amount.minor_units,
            currency=operation.amount.currency,
            reference=reference,
            masked_instrument=operation.masked_instrument,
            response_code=outcome.response_code,
            authorization_code=outcome.authorization_code,
            effect=effect,
        )
        self._log.write(op.to_json() + "\n")
        self._log.flush()


def operation_reference(operation: adapter_pb2.AdapterOperation) -> str:
    """The operation's reference, or "" where the contract has no such field yet."""
    if REFERENCE_FIELD not in operation.DESCRIPTOR.fields_by_name:
        return ""
    return str(getattr(operation, REFERENCE_FIELD))


async def serve(host: str, port: int, log_path: Path, latency: float) -> None:
    """Serves until SIGTERM or SIGINT."""
    network = RecordingNetwork(log_path, latency=latency)
    bound = await network.start(host, port)
    print(f"recording network listening on {host}:{bound}, logging to {log_path}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await stop.wait()
    finally:
        await network.close()
        network.close_log()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.network", description="A recording card network (switch.v1.Adapter)."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True, help="0: any free port (printed)")
    parser.add_argument("--log", type=Path, required=True, help="the JSON-lines log to append to")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    asyncio.run(serve(args.host, args.port, args.log, args.latency))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
