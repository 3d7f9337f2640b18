"""A working adapter to copy: an example protocol of JSON messages over one multiplexed TCP connection.

Copy this folder to start a new card or rail adapter; README.md says how. The
adapter is the contract's face (switch/adapters/contract.py); client.py does the I/O,
mapping.py the pure translation, framing.py the bytes on the wire, and
simulator.py plays the network for tests and local runs.

Options (the route's `options` table): host (default 127.0.0.1), port
(required), timeout (connect, seconds), backoff_max (seconds between reconnect
attempts, at most).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from switch.adapters.contract import AdapterRequest, AdapterResult, Capability

from . import mapping
from .client import Build, TemplateClient
from .framing import Message

__all__ = ["TemplateAdapter"]


class TemplateAdapter:
    # Only what the network really does: the switch trusts this set.
    capabilities = frozenset(
        {Capability.AUTHORIZE, Capability.CAPTURE, Capability.VOID, Capability.REFUND, Capability.REVERSE}
    )

    def __init__(self, name: str = "template", options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        if "port" not in options:
            raise ValueError(f"adapter {name!r} needs a port option: where the network listens")
        self.name = name
        self.client = TemplateClient(
            str(options.get("host", "127.0.0.1")),
            int(options["port"]),
            timeout=float(options.get("timeout", 2.0)),
            backoff_max=float(options.get("backoff_max", 5.0)),
        )

    async def start(self) -> None:
        """Connects, or keeps trying in the background: a network that is down at start is not fatal."""
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        """One result per request, in order, within time_left. AdapterUnavailable (from the
        client) only when nothing was sent; a request sent but not answered is unknown."""
        refusals: list[AdapterResult | None] = []
        builds: list[Build] = []
        for request in requests:
            try:
                mapping.to_message(request, "")  # pure: a request the protocol cannot carry fails here, unsent
            except ValueError as error:
                refusals.append(mapping.refused(str(error)))
                continue
            refusals.append(None)
            builds.append(partial(mapping.to_message, request))
        answers = iter(await self.client.exchange(builds, time_left) if builds else [])
        return [refusal if refusal is not None else _result(next(answers)) for refusal in refusals]


def _result(answer: Message | None) -> AdapterResult:
    # No answer in time: the network may have approved it, so the outcome is unknown, never a decline.
    return mapping.to_result(answer) if answer is not None else AdapterResult.timed_out()
