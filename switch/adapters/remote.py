"""The bridge to an adapter in another process: the adapter contract over gRPC.

An adapter written in any language serves `switch.v1.Adapter`
(protos/switch/v1/adapter.proto) and plugs in by address:

    [routes.partner]
    adapter = "remote"
    options = { address = "10.0.4.7:7070", ca_file = "/etc/switch/adapter-ca.pem" }

Options: address (host:port, required), connect_timeout (seconds to wait for a
connection before the route counts as down, default 1), backoff_max (seconds
between reconnect attempts at most, default 2), ca_file / cert_file / key_file
(TLS; cert and key for mutual TLS), server_name (the name the adapter's
certificate carries, when it is not the address's host), plaintext (allow a
plaintext channel beyond loopback, default false: the channel carries PANs).

What the contract's outcomes mean across the wire:
- nothing sent: the channel cannot connect in time, or the adapter answers
  `unavailable`, raises AdapterUnavailable and the switch fails over;
- sent but unanswered: any error status once the call has left (a deadline, a
  dropped connection, an adapter's own error) makes every operation of the batch
  an unknown outcome, which the switch reverses; so does a reply that breaks the
  contract (a wrong number of outcomes), because it cannot be trusted either.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from switch.adapters.contract import AdapterRequest, AdapterResult, AdapterUnavailable, Capability
from switch.domain.models import Account, OperationKind
from switch.domain.response_codes import ResponseCode
from switch.v1 import adapter_pb2, switch_pb2
from switch.v1.adapter_pb2_grpc import AdapterStub

if TYPE_CHECKING:
    from switch.v1.adapter_pb2_grpc import AdapterAsyncStub

log = logging.getLogger(__name__)

_KINDS = {
    OperationKind.AUTHORIZE: adapter_pb2.OPERATION_KIND_AUTHORIZE,
    OperationKind.CAPTURE: adapter_pb2.OPERATION_KIND_CAPTURE,
    OperationKind.VOID: adapter_pb2.OPERATION_KIND_VOID,
    OperationKind.REFUND: adapter_pb2.OPERATION_KIND_REFUND,
    OperationKind.REVERSE: adapter_pb2.OPERATION_KIND_REVERSE,
}
_CAPABILITIES = {
    adapter_pb2.CAPABILITY_AUTHORIZE: Capability.AUTHORIZE,
    adapter_pb2.CAPABILITY_CAPTURE: Capability.CAPTURE,
    adapter_pb2.CAPABILITY_PARTIAL_CAPTURE: Capability.PARTIAL_CAPTURE,
    adapter_pb2.CAPABILITY_VOID: Capability.VOID,
    adapter_pb2.CAPABILITY_REFUND: Capability.REFUND,
    adapter_pb2.CAPABILITY_REVERSE: Capability.REVERSE,
    adapter_pb2.CAPABILITY_STATUS_INQUIRY: Capability.STATUS_INQUIRY,
}
_KNOWN_OPTIONS = frozenset(
    {"address", "connect_timeout", "backoff_max", "ca_file", "cert_file", "key_file", "server_name", "plaintext"}
)


class AdapterProcessError(Exception):
    """The process at the address answers, but not as an adapter the switch can use."""


class RemoteAdapter:
    """A route served by an adapter process, reached over one gRPC channel."""

    def __init__(self, name: str = "remote", options: Mapping[str, Any] | None = None) -> None:
        options = dict(options or {})
        unknown = sorted(set(options) - _KNOWN_OPTIONS)
        if unknown:
            raise ValueError(f"adapter {name!r}: unknown option(s) {', '.join(unknown)}")
        address = options.get("address")
        if not isinstance(address, str) or ":" not in address:
            raise ValueError(f"adapter {name!r} needs an address option: host:port of the adapter process")
        self.name = name
        self.address = address
        self.connect_timeout = float(options.get("connect_timeout", 1.0))
        self._backoff_max_ms = int(float(options.get("backoff_max", 2.0)) * 1000)
        self._credentials = _credentials(name, address, options)
        self._server_name = options.get("server_name")
        self.capabilities: frozenset[Capability] = frozenset()
        self.adapter_name = ""  # what the process calls itself
        self.calls_sent = 0  # Send calls that left the switch, for tests and operators
        self._channel: grpc.aio.Channel | None = None
        self._stub: AdapterAsyncStub | None = None
        self._described = asyncio.Lock()

    async def start(self) -> None:
        """Opens the channel and asks the process what it can do. A process that is not
        up yet is not an error (the route counts as down until it is); one that answers
        as something other than a usable adapter is."""
        options: list[tuple[str, Any]] = [
            ("grpc.initial_reconnect_backoff_ms", 100),
            ("grpc.min_reconnect_backoff_ms", 100),
            ("grpc.max_reconnect_backoff_ms", self._backoff_max_ms),
        ]
        if self._server_name:
            options.append(("grpc.ssl_target_name_override", self._server_name))
        if self._credentials is None:
            self._channel = grpc.aio.insecure_channel(self.address, options=options)
        else:
            self._channel = grpc.aio.secure_channel(self.address, self._credentials, options=options)
        self._stub = AdapterStub(self._channel)
        try:
            await self._describe(self.connect_timeout)
        except AdapterUnavailable as error:
            log.warning("adapter %s: %s; the route counts as down until it answers", self.name, error)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close(None)

    async def send(self, requests: Sequence[AdapterRequest], time_left: float) -> list[AdapterResult]:
        if not requests:
            return []
        stub = await self._ready(time_left)
        request = adapter_pb2.SendRequest(operations=[to_operation(r) for r in requests])
        self.calls_sent += 1
        try:
            reply = await stub.Send(request, timeout=max(time_left, 0.0))
        except grpc.aio.AioRpcError as error:
            log.warning(
                "adapter %s: %d operation(s) sent, no answer (%s); outcomes unknown",
                self.name,
                len(requests),
                error.code().name,
            )
            return [AdapterResult.timed_out() for _ in requests]
        if reply.unavailable:
            raise AdapterUnavailable(f"adapter {self.name}: {reply.unavailable_reason or 'unavailable'}")
        if len(reply.outcomes) != len(requests):
            log.error(
                "adapter %s broke the contract: %d outcome(s) for %d operation(s); outcomes unknown",
                self.name,
                len(reply.outcomes),
                len(requests),
            )
            return [AdapterResult.timed_out() for _ in requests]
        return [to_result(outcome) for outcome in reply.outcomes]

    async def _ready(self, time_left: float) -> AdapterAsyncStub:
        """The stub, once the channel is connected and the process described; raises
        AdapterUnavailable when that does not happen in time, before anything is sent."""
        if self._channel is None or self._stub is None:
            raise AdapterUnavailable(f"adapter {self.name} is not started")
        wait = max(min(time_left, self.connect_timeout), 0.0)
        if not self.capabilities:
            try:
                await self._describe(wait)
            except AdapterProcessError as error:  # nothing was sent: the route is unusable
                log.error("%s", error)
                raise AdapterUnavailable(str(error)) from None
        elif self._channel.get_state(try_to_connect=True) is not grpc.ChannelConnectivity.READY:
            try:
                await asyncio.wait_for(self._channel.channel_ready(), wait)
            except TimeoutError:
                raise AdapterUnavailable(f"adapter {self.name}: no connection to {self.address}") from None
        return self._stub

    async def _describe(self, wait: float) -> None:
        assert self._stub is not None
        async with self._described:
            if self.capabilities:
                return
            try:
                reply = await self._stub.Describe(adapter_pb2.DescribeRequest(), timeout=wait, wait_for_ready=True)
            except grpc.aio.AioRpcError as error:
                if error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise AdapterUnavailable(f"adapter {self.name}: no answer from {self.address}") from None
                raise AdapterProcessError(
                    f"adapter {self.name}: {self.address} does not serve switch.v1.Adapter ({error.code().name})"
                ) from None
            capabilities = frozenset(_CAPABILITIES[c] for c in reply.capabilities if c in _CAPABILITIES)
            if Capability.AUTHORIZE not in capabilities:
                raise AdapterProcessError(f"adapter {self.name}: the process at {self.address} cannot authorize")
            self.capabilities = capabilities
            self.adapter_name = reply.name
            log.info("adapter %s: %s at %s can %s", self.name, reply.name, self.address, _listed(capabilities))


def to_operation(request: AdapterRequest) -> adapter_pb2.AdapterOperation:
    amount = switch_pb2.Money(minor_units=request.amount.minor_units, currency=request.amount.currency)
    operation = adapter_pb2.AdapterOperation(
        kind=_KINDS[request.kind],
        transaction_id=request.transaction_id,
        merchant_id=request.merchant_id,
        amount=amount,
        authorization_code=request.authorization_code,
        masked_instrument=request.instrument.masked if request.instrument else "",
        reference=request.reference,
    )
    if request.card is not None:
        card = request.card
        operation.card.CopyFrom(
            switch_pb2.Card(
                pan=card.pan,
                expiry_month=card.expiry_month,
                expiry_year=card.expiry_year,
                holder_name=card.holder_name,
            )
        )
    elif request.account is not None:
        operation.account.CopyFrom(_account(request.account))
    if request.destination is not None:
        operation.destination.CopyFrom(_account(request.destination))
    return operation


def to_result(outcome: adapter_pb2.AdapterOutcome) -> AdapterResult:
    if outcome.unknown:
        return AdapterResult.timed_out()
    code = ResponseCode.from_code(outcome.response_code)
    approved = code is ResponseCode.APPROVED
    return AdapterResult(
        response_code=code.code,
        message=outcome.message or code.message,
        authorization_code=outcome.authorization_code if approved else "",
        network_reference=outcome.network_reference,
    )


def _account(account: Account) -> switch_pb2.Account:
    return switch_pb2.Account(
        rail=account.rail, id=account.id, country=account.country, holder_name=account.holder_name
    )


def _credentials(name: str, address: str, options: Mapping[str, Any]) -> grpc.ChannelCredentials | None:
    files = {key: options.get(key) for key in ("ca_file", "cert_file", "key_file")}
    if not any(files.values()):
        if not options.get("plaintext", False) and not _is_loopback(address):
            raise ValueError(
                f"adapter {name!r}: {address} is not loopback and the channel carries card data; "
                "give ca_file (TLS), or plaintext = true if the network itself is protected"
            )
        return None
    if bool(files["cert_file"]) != bool(files["key_file"]):
        raise ValueError(f"adapter {name!r}: cert_file and key_file go together (mutual TLS)")
    contents = {key: Path(path).read_bytes() if path else None for key, path in files.items()}
    return grpc.ssl_channel_credentials(
        root_certificates=contents["ca_file"],
        private_key=contents["key_file"],
        certificate_chain=contents["cert_file"],
    )


def _is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _listed(capabilities: frozenset[Capability]) -> str:
    return ", ".join(sorted(c.value for c in capabilities))


__all__ = ["AdapterProcessError", "RemoteAdapter", "to_operation", "to_result"]
