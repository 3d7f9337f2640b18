"""A local instant-payment rail in the shape of ISO 20022: alias resolution, credit
transfers, recalls and returns, over one persistent multiplexed TCP connection.

An authorization first resolves the debtor's account id or alias (acmt.023 ->
acmt.024; not found: decline "14"), then sends a pacs.008 credit transfer whose
pacs.002 status report approves or declines it. A reversal (REVERSE) is a
camt.056 recall answered by a camt.029 resolution, a refund a pacs.004 return
answered by a pacs.002, both naming the original MsgId, EndToEndId, TxId and UETR
(all derived from the switch's transaction id). A recall the rail accepts is
completed by a pacs.004 the rail sends later: the adapter delivers it to the switch
(Capability.RETURNS) and acknowledges it once it is journaled. Every document travels inside a
Business Application Header (head.001.001.02); the versions are spec.VERSIONS.

client.py does the I/O, mapping.py the pure translation, simulator.py plays the
rail for tests and local runs.

Options: host, port (required), timeout (connect, seconds), backoff_max (seconds
between reconnect attempts, at most); clearing_system (the clearing-system code the
member ids belong to, e.g. USABA), debtor_agent_member_id (the switch's participant)
and creditor_agent_member_id (the receiving participant): see parties.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from switch.adapters.contract import (
    AdapterRequest,
    AdapterResult,
    AdapterUnavailable,
    Capability,
    DeliverReturns,
)
from switch.domain.errors import Violation
from switch.domain.models import Account, Authorization, OperationKind
from switch.domain.response_codes import ResponseCode

from . import identifiers, mapping, parties
from .client import Build, RailClient
from .framing import Message
from .parties import Agents

__all__ = ["Iso20022RailAdapter"]

_UNDO = (OperationKind.REVERSE, OperationKind.REFUND)


class Iso20022RailAdapter:
    # An accepted pacs.008 is final: settled at once, returned by pacs.004.
    capabilities = frozenset(
        {
            Capability.AUTHORIZE,
            Capability.REVERSE,
            Capability.REFUND,
            Capability.SETTLES_ON_AUTHORIZE,
            Capability.RETURNS,
        }
    )

    def __init__(self, name: str = "rail_iso20022", options: Mapping[str, Any] | None = None) -> None:
        options = options or {}
        for required in ("host", "port"):
            if required not in options:
                raise ValueError(f"adapter {name!r} needs a {required} option: where the rail listens")
        self.name = name
        self.agents = parties.from_options(name, options)
        self.client = RailClient(
            str(options["host"]),
            int(options["port"]),
            timeout=float(options.get("timeout", 2.0)),
            backoff_max=float(options.get("backoff_max", 5.0)),
        )

    def violations(self, authorization: Authorization) -> list[Violation]:
        """What the schema cannot carry, asked by the switch when it plans the route, before
        anything is sent or stored (see CheckedAdapter): an account number past Max34Text, an alias past Max2048Text,
        the creditor's account (the destination, else the merchant id) past Max34Text."""
        found = []
        source = authorization.source
        if isinstance(source, Account):
            alias = mapping.proxy_type(source.id)
            if not identifiers.is_printable(source.id, mapping.MAX_ALIAS if alias else identifiers.MAX_ACCOUNT):
                found.append(Violation("source.account.id", _ALIAS_RULE if alias else _ACCOUNT_RULE))
        if authorization.destination is not None:
            if not _fits(authorization.destination.id):
                found.append(Violation("destination.id", _ACCOUNT_RULE))
        elif not _fits(authorization.merchant_id):
            found.append(Violation("merchant_id", f"{_ACCOUNT_RULE}: it is the creditor account without a destination"))
        return found

    def listen(self, deliver: DeliverReturns) -> None:
        """Where the pacs.004 returns of accepted recalls go (see client.py)."""
        self.client.listen(deliver)

    async def start(self) -> None:
        await self.client.start()

    async def close(self) -> None:
        await self.client.close()

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        """Resolve and undo in a first round, transfer what resolved in a second, all within time_left."""
        if not requests:
            return []
        now = datetime.now(UTC)
        loop_time = asyncio.get_running_loop().time
        deadline = loop_time() + time_left
        results: list[AdapterResult | None] = [None] * len(requests)
        first: list[tuple[int, Build]] = []
        for index, request in enumerate(requests):
            build = _first_build(request, self.agents, now)
            if isinstance(build, AdapterResult):
                results[index] = build  # refused unsent: a definite decline
            else:
                first.append((index, build))
        undone = any(requests[i].kind in _UNDO for i, _ in first)
        answers = await self.client.exchange([build for _, build in first], time_left) if first else []
        second: list[tuple[int, Build]] = []
        for (index, _), answer in zip(first, answers, strict=True):
            request = requests[index]
            if request.kind in _UNDO:
                results[index] = mapping.to_result(answer) if answer is not None else AdapterResult.timed_out()
            elif answer is None:
                code = ResponseCode.ISSUER_UNAVAILABLE  # the transfer itself was never sent
                results[index] = AdapterResult(code.code, f"{code.message}: alias resolution not answered")
            elif (account := mapping.resolved_account(answer)) is None:
                results[index] = mapping.not_found()
            elif isinstance(transfer := _second_build(request, account, self.agents, now), AdapterResult):
                results[index] = transfer
            else:
                second.append((index, transfer))
        if second:
            try:
                transfers = await self.client.exchange([build for _, build in second], deadline - loop_time())
            except AdapterUnavailable:
                if not undone:
                    raise  # only inquiries went out: nothing of value was sent
                code = ResponseCode.ISSUER_UNAVAILABLE
                transfers = [None] * len(second)
                for index, _ in second:
                    results[index] = AdapterResult(code.code, f"{code.message}: transfer not sent")
            for (index, _), answer in zip(second, transfers, strict=True):
                if results[index] is None:
                    results[index] = mapping.to_result(answer) if answer is not None else AdapterResult.timed_out()
        return [result for result in results if result is not None]


_ACCOUNT_RULE = f"must be 1 to {identifiers.MAX_ACCOUNT} printable characters on this rail"
_ALIAS_RULE = f"must be 1 to {mapping.MAX_ALIAS} printable characters on this rail"


def _fits(account_id: str) -> bool:
    return identifiers.is_printable(account_id, identifiers.MAX_ACCOUNT)


def _first_build(request: AdapterRequest, agents: Agents, now: datetime) -> Build | AdapterResult:
    """The first message for a request, or the decline it gets unsent. Mapping is pure, so
    building once here fails a request the rail cannot carry (an id too long or outside the
    SWIFT character set, say) before anything is sent."""
    build: Build
    try:
        if request.kind in _UNDO:
            build = partial(_undo, request, agents, now=now)
        elif request.kind is OperationKind.AUTHORIZE and request.account is not None:
            build = partial(_identify, request.account.id, agents, now=now)
            _transfer(request, "CHECK", agents, "CHECK", now=now)  # the debtor account comes resolved
        else:
            return _invalid("an ISO 20022 rail authorizes from an account, and reverses or refunds")
        build("CHECK")
    except ValueError as error:
        return _invalid(str(error))
    return build


def _second_build(request: AdapterRequest, account: str, agents: Agents, now: datetime) -> Build | AdapterResult:
    """The transfer from the resolved account, or the decline it gets unsent: the account the
    rail resolved to may not fit the schema either."""
    build: Build = partial(_transfer, request, account, agents, now=now)
    try:
        build("CHECK")
    except ValueError as error:
        return _invalid(str(error))
    return build


def _invalid(reason: str) -> AdapterResult:
    code = ResponseCode.INVALID_TRANSACTION
    return AdapterResult(code.code, f"{code.message}: {reason}")


def _identify(account_id: str, agents: Agents, msg_id: str, *, now: datetime) -> Message:
    return mapping.identification_request(msg_id, account_id, now=now, agents=agents)


def _transfer(request: AdapterRequest, account: str, agents: Agents, msg_id: str, *, now: datetime) -> Message:
    return mapping.credit_transfer(msg_id, request, account, now=now, agents=agents)


def _undo(request: AdapterRequest, agents: Agents, msg_id: str, *, now: datetime) -> Message:
    return mapping.undo(msg_id, request, now=now, agents=agents)
