"""An ISO 8583:1987 card adapter: authorizations, completions and reversals over TCP.

The adapter is the contract's face; client.py does the I/O on one persistent,
multiplexed connection and mapping.py the pure translation, as in every
connector. simulator.py is an issuer on the other end of the same protocol,
for tests and local runs.

Options: host, port, timeout (connect and network-management answers, seconds),
echo_interval (seconds), backoff_max (seconds between reconnect attempts, at
most), and who the switch is on the network (terminal.py): terminal_id (field
41), acquirer_id (fields 32 and 90; "acquirer" is its older name),
merchant_category_code (18), pos_entry_mode (22), pos_condition_code (25),
card_acceptor_name, card_acceptor_city and card_acceptor_country (43), and
timezone (an IANA name: the terminal's, for fields 12 and 13). A bad one raises
terminal.OptionError at construction, naming the option.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from switch.adapters.contract import AdapterRequest, AdapterResult, Capability
from switch.domain.models import OperationKind
from switch.domain.response_codes import ResponseCode

from . import mapping, terminal
from .client import Build, Iso8583Client
from .framing import Message

__all__ = ["Iso8583CardAdapter"]


class Iso8583CardAdapter:
    capabilities = frozenset(
        {
            Capability.AUTHORIZE,
            Capability.CAPTURE,
            Capability.VOID,
            Capability.REFUND,
            Capability.REVERSE,
            Capability.CARD_ON_REVERSAL,  # DE 2 on the 0420, as networks match reversals
        }
    )

    def __init__(self, name: str = "card_iso8583", options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        if "port" not in options:
            raise ValueError(f"adapter {name!r} needs a port option: where the network listens")
        self.name = name
        self.terminal = terminal.from_options(options)
        self.client = Iso8583Client(
            str(options.get("host", "127.0.0.1")),
            int(options["port"]),
            timeout=float(options.get("timeout", 2.0)),
            echo_interval=float(options.get("echo_interval", 30.0)),
            backoff_max=float(options.get("backoff_max", 5.0)),
        )

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        """Reversals (kind REVERSE) go out as 0420 advices, everything else as itself."""
        reversals = [i for i, r in enumerate(requests) if r.kind is OperationKind.REVERSE]
        if not reversals:
            return await self._exchange(requests, time_left, reversal_advice=False)
        others = [i for i, r in enumerate(requests) if r.kind is not OperationKind.REVERSE]
        answered = await asyncio.gather(
            self._exchange([requests[i] for i in reversals], time_left, reversal_advice=True),
            self._exchange([requests[i] for i in others], time_left, reversal_advice=False),
        )
        results: list[AdapterResult | None] = [None] * len(requests)
        for indices, answers in zip((reversals, others), answered, strict=True):
            for index, answer in zip(indices, answers, strict=True):
                results[index] = answer
        return [result for result in results if result is not None]

    async def reverse(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        """Reversal advices (0420) for authorizations whose outcome is unknown: the network
        undoes them if they were approved. Each request is the original authorization."""
        return await self._exchange(requests, time_left, reversal_advice=True)

    async def _exchange(
        self, requests: Sequence[AdapterRequest], time_left: float, *, reversal_advice: bool
    ) -> list[AdapterResult]:
        now = datetime.now(UTC)
        results: list[AdapterResult | None] = [None] * len(requests)
        builds: list[Build] = []
        sent_at: list[int] = []
        for index, original in enumerate(requests):
            request = _as_void(original) if reversal_advice else original
            build = partial(_build, request, acceptor=self.terminal, now=now, reversal_advice=reversal_advice)
            try:
                build(1)  # mapping is pure: a request the route cannot carry fails here, unsent
            except ValueError as error:
                # Nothing was sent for it, so a decline is definite and safe.
                code = ResponseCode.INVALID_TRANSACTION
                results[index] = AdapterResult(code.code, f"{code.message}: {error}")
                continue
            builds.append(build)
            sent_at.append(index)
        if builds:
            answers = await self.client.exchange(builds, time_left)
            for index, answer in zip(sent_at, answers, strict=True):
                results[index] = mapping.to_result(answer) if answer is not None else AdapterResult.timed_out()
        return [result for result in results if result is not None]


def _build(
    request: AdapterRequest, stan: int, *, acceptor: terminal.Terminal, now: datetime, reversal_advice: bool
) -> Message:
    return mapping.to_message(request, stan=stan, terminal=acceptor, now=now, reversal_advice=reversal_advice)


def _as_void(request: AdapterRequest) -> AdapterRequest:
    # The card stays, when the request has it: the reversal carries the PAN (field 2) then.
    return replace(request, kind=OperationKind.VOID)
