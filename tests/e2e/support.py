"""Helpers shared by the end-to-end tests: request builders and error decoding."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import grpc
import orjson
import pytest
from google.rpc import error_details_pb2, status_pb2

from switch import config, server
from switch.adapters.contract import Adapter, AdapterRequest, AdapterResult, Capability
from switch.server import RunningSwitch
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import SwitchFactory, drop_production_state, store_settings

if TYPE_CHECKING:
    from switch.v1.switch_pb2_grpc import SwitchAsyncStub

VISA = "4111111111111111"
MASTERCARD = "5555555555554444"
AMEX = "378282246310005"
DECLINE_CARD = "4000000000000002"  # the simulated issuer answers "05"
NO_FUNDS_CARD = "4000000000009995"  # the simulated issuer answers "51"
BAD_LUHN = "4111111111111112"
MERCHANT = "m_e2e"
STATUS_DETAILS_KEY = "grpc-status-details-bin"


@dataclass
class Switch:
    running: RunningSwitch
    stub: SwitchAsyncStub

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.running.port}"


@asynccontextmanager
async def serve(factory: SwitchFactory, store_set: str, **tables: Any) -> AsyncIterator[Switch]:
    """Starts a switch on port 0 with a typed grpc.aio stub."""
    async with factory(store_set, **tables) as (running, stub):
        yield Switch(running, cast("SwitchAsyncStub", stub))


@asynccontextmanager
async def serve_settings(settings: config.Settings) -> AsyncIterator[Switch]:
    """Starts a switch from settings the test keeps (to restart it, or to read its stores)."""
    running = await server.build(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{running.port}") as channel:
            yield Switch(running, switch_pb2_grpc.SwitchStub(channel))
    finally:
        await running.stop(1.0)


Send = Callable[[Sequence[AdapterRequest], float], Awaitable[list[AdapterResult]]]


def spy_on_issuer(switch: Switch, monkeypatch: pytest.MonkeyPatch) -> list[AdapterRequest]:
    """Records every request the switch sends to its (simulated) issuer from now on."""
    sent: list[AdapterRequest] = []

    def recording(adapter: Adapter) -> Send:
        original = adapter.send

        async def send(requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
            sent.extend(requests)
            return await original(requests, time_left)

        return send

    for adapter in switch.running.adapters:
        monkeypatch.setattr(adapter, "send", recording(adapter))
    return sent


def new_key(prefix: str = "k") -> str:
    # Not hex: 16 hex digits are all decimal once in 1,850 keys, and 1 in 10 of those
    # passes Luhn, a card number the switch rightly refuses as a key.
    return f"{prefix}_{secrets.token_urlsafe(12)}"


def money(minor_units: int, currency: str = "USD") -> pb.Money:
    return pb.Money(minor_units=minor_units, currency=currency)


def card(pan: str = VISA, month: int = 12, year: int = 2099, holder: str = "") -> pb.Card:
    return pb.Card(pan=pan, expiry_month=month, expiry_year=year, holder_name=holder)


def card_request(
    key: str | None = None,
    *,
    pan: str = VISA,
    amount: int = 1000,
    currency: str = "USD",
    merchant: str = MERCHANT,
    month: int = 12,
    year: int = 2099,
) -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        idempotency_key=key if key is not None else new_key(),
        merchant_id=merchant,
        amount=money(amount, currency),
        card=card(pan, month, year),
    )


def account_request(
    key: str | None = None,
    *,
    rail: str = "instant",
    account_id: str = "acct-001122",
    amount: int = 1000,
    currency: str = "BRL",
    merchant: str = MERCHANT,
) -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        idempotency_key=key if key is not None else new_key(),
        merchant_id=merchant,
        amount=money(amount, currency),
        account=pb.Account(rail=rail, id=account_id, country="BR"),
    )


async def approved(switch: Switch, request: pb.AuthorizeRequest) -> pb.AuthorizeResponse:
    """Authorizes and checks the answer is an approval."""
    response = await switch.stub.Authorize(request)
    assert response.decision == pb.DECISION_APPROVED, response
    assert response.response_code == "00"
    return response


async def get(switch: Switch, transaction_id: str) -> pb.Transaction:
    return await switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=transaction_id))


async def decision_of(switch: Switch, answer: pb.AuthorizeResponse) -> dict[str, Any]:
    """What the risk steps decided for an authorization, as its journal entry keeps it."""
    stored = await switch.running.journal.get_transaction(answer.transaction_id)
    assert stored is not None
    (entry,) = (await switch.running.journal.find_entries([(stored.merchant_id, answer.idempotency_key)])).values()
    decided: dict[str, Any] = orjson.loads(entry.decision)
    return decided


@dataclass
class Failure:
    """A failed call as the client saw it, with the google.rpc.Status from its trailers."""

    code: grpc.StatusCode
    details: str
    status: status_pb2.Status | None
    raw_trailers: list[tuple[str, str | bytes]] = field(default_factory=list)

    @property
    def violations(self) -> dict[str, str]:
        """field -> description, from the google.rpc.BadRequest detail."""
        found: dict[str, str] = {}
        if self.status is None:
            return found
        for detail in self.status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad_request = error_details_pb2.BadRequest()
                detail.Unpack(bad_request)
                for violation in bad_request.field_violations:
                    found[violation.field] = violation.description
        return found

    def everything(self) -> bytes:
        """Every byte the client received about the failure, for leak checks."""
        parts = [self.details.encode()]
        for _, value in self.raw_trailers:
            parts.append(value if isinstance(value, bytes) else value.encode())
        return b"\n".join(parts)


def decode(error: grpc.aio.AioRpcError) -> Failure:
    """The failure's google.rpc.Status, decoded the way rpc_status.from_call does."""
    metadata = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    trailers = [(str(key), value) for key, value in metadata]
    status = None
    for key, value in trailers:
        if key == STATUS_DETAILS_KEY:
            assert isinstance(value, bytes)
            status = status_pb2.Status.FromString(value)
            # The same consistency checks as grpc_status.rpc_status.from_call:
            assert status.code == error.code().value[0]
            assert status.message == error.details()
    return Failure(error.code(), error.details() or "", status, trailers)


async def failure(call: Awaitable[Any]) -> Failure:
    """Awaits a call that must fail."""
    try:
        result = await call
    except grpc.aio.AioRpcError as error:
        return decode(error)
    raise AssertionError(f"the call succeeded: {result}")


async def expect(call: Awaitable[Any], code: grpc.StatusCode) -> Failure:
    seen = await failure(call)
    assert seen.code == code, (seen.code, seen.details)
    return seen


def settles(switch: Switch, route: str) -> bool:
    """Whether route's adapter settles an approval at once (the ISO 20022 rail, the embedded
    default's instant route, does; the simulated adapter authorizes like a card issuer)."""
    (adapter,) = [adapter for adapter in switch.running.adapters if adapter.name == route]
    return Capability.SETTLES_ON_AUTHORIZE in adapter.capabilities


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@asynccontextmanager
async def bundle_settings(
    store_set: str, folder: Path, bundle: str, security: dict[str, Any] | None = None
) -> AsyncIterator[config.Settings]:
    """Settings of the store set, on port 0, whose risk policy is `bundle` ([policy]'s file,
    written in folder), with security's keys added; the production state dropped after."""
    raw: dict[str, Any] = store_settings(store_set, folder)
    raw.setdefault("server", {})["port"] = 0
    raw.setdefault("security", {}).update(security or {})
    raw["policy"] = {"file": str(write(folder / "policy.toml", bundle))}
    kept = config.from_mapping(raw)
    try:
        yield kept
    finally:
        await drop_production_state(kept)
