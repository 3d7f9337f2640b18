"""The bridge to adapter processes: the wire mapping, what each failure means, TLS,
and the example adapter process (`switch sim remote`) as a real separate process."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import logging
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.remote_issuer import RemoteIssuer, start_simulator
from adapters.remote_issuer.issuer import LATE_CARD
from switch.adapters.conformance import card_request
from switch.adapters.contract import AdapterRequest, AdapterResult, AdapterUnavailable, Capability
from switch.adapters.remote import AdapterProcessError, RemoteAdapter, to_operation, to_result
from switch.domain.models import Account, Instrument, InstrumentKind, Money, OperationKind
from switch.v1 import adapter_pb2, adapter_pb2_grpc
from tests.e2e.test_routing import free_port

APPROVE = "4111111111111111"
DECLINE = "4000000000000002"


@pytest.fixture
async def issuer() -> AsyncIterator[tuple[RemoteIssuer, str]]:
    issuer, port = await start_simulator(late_delay=2.0)
    yield issuer, f"127.0.0.1:{port}"
    await issuer.close()


@pytest.fixture
async def bridge(issuer: tuple[RemoteIssuer, str]) -> AsyncIterator[RemoteAdapter]:
    adapter = RemoteAdapter("partner", {"address": issuer[1], "connect_timeout": 0.5})
    await adapter.start()
    yield adapter
    await adapter.close()


# --- the wire mapping: pure ---


def test_a_card_authorization_crosses_with_its_card_and_masked_view() -> None:
    instrument = Instrument(InstrumentKind.CARD, "fp", "411111******1111")
    request = AdapterRequest(
        OperationKind.AUTHORIZE,
        "tx-1",
        "merchant-1",
        Money(1234, "EUR"),
        instrument=instrument,
        card=card_request(APPROVE, "tx-1").card,
        destination=Account("instant", "shop@bank", "DE"),
    )
    operation = to_operation(request)
    assert operation.kind == adapter_pb2.OPERATION_KIND_AUTHORIZE
    assert (operation.card.pan, operation.card.expiry_month, operation.card.expiry_year) == (APPROVE, 12, 2099)
    assert (operation.amount.minor_units, operation.amount.currency) == (1234, "EUR")
    assert operation.masked_instrument == "411111******1111"
    assert (operation.destination.rail, operation.destination.id) == ("instant", "shop@bank")
    assert operation.WhichOneof("source") == "card"


def test_a_reversal_crosses_without_a_source() -> None:
    request = AdapterRequest(OperationKind.REVERSE, "tx-1", "m", Money(5, "USD"), authorization_code="ABC123")
    operation = to_operation(request)
    assert operation.kind == adapter_pb2.OPERATION_KIND_REVERSE
    assert operation.WhichOneof("source") is None and operation.authorization_code == "ABC123"
    assert to_operation(replace(request, kind=OperationKind.REFUND, reference="op_7")).reference == "op_7"


def test_outcomes_map_onto_the_switch_results() -> None:
    approved = to_result(adapter_pb2.AdapterOutcome(response_code="00", authorization_code="X1", network_reference="R"))
    assert approved.approved and (approved.authorization_code, approved.network_reference) == ("X1", "R")
    declined = to_result(adapter_pb2.AdapterOutcome(response_code="51", authorization_code="IGNORED"))
    assert (declined.response_code, declined.authorization_code, declined.message) == ("51", "", "insufficient funds")
    assert to_result(adapter_pb2.AdapterOutcome(response_code="ZZ")).response_code == "05"
    unknown = to_result(adapter_pb2.AdapterOutcome(response_code="00", unknown=True))
    assert unknown.unknown and not unknown.approved


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "needs an address"),
        ({"address": "10.0.0.7:7070"}, "not loopback"),
        ({"address": "127.0.0.1:7070", "cert_file": "c.pem"}, "go together"),
        ({"address": "127.0.0.1:7070", "colour": "blue"}, "unknown option"),
    ],
)
def test_bad_options_are_refused_with_the_reason(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RemoteAdapter("partner", options)


def test_plaintext_beyond_loopback_only_when_asked_for() -> None:
    RemoteAdapter("partner", {"address": "10.0.0.7:7070", "plaintext": True})
    RemoteAdapter("partner", {"address": "localhost:7070"})
    RemoteAdapter("partner", {"address": "[::1]:7070"})


# --- the bridge against the example process's service ---


async def test_it_learns_what_the_process_can_do(bridge: RemoteAdapter) -> None:
    assert {Capability.AUTHORIZE, Capability.REVERSE, Capability.PARTIAL_CAPTURE} <= bridge.capabilities
    assert bridge.adapter_name == "remote-issuer"


async def test_a_late_operation_is_unknown_while_the_rest_of_its_batch_keeps_its_answers(
    bridge: RemoteAdapter,
) -> None:
    requests = [card_request(APPROVE, "tx-1"), card_request(LATE_CARD, "tx-2"), card_request(DECLINE, "tx-3")]
    results = await bridge.send(requests, time_left=0.4)
    assert [(r.response_code, r.unknown) for r in results] == [("00", False), ("91", True), ("05", False)]


async def test_reversals_captures_and_refunds_reach_the_process(
    bridge: RemoteAdapter, issuer: tuple[RemoteIssuer, str]
) -> None:
    kinds = (OperationKind.CAPTURE, OperationKind.REFUND, OperationKind.REVERSE, OperationKind.REVERSE)
    requests = [AdapterRequest(kind, "tx-9", "m", Money(100, "USD"), authorization_code="A1") for kind in kinds]
    results = await bridge.send(requests, time_left=1.0)
    assert all(result.approved for result in results)
    assert issuer[0].reversals["tx-9"] == 2  # a repeated reversal is acknowledged again
    assert (issuer[0].received["capture"], issuer[0].received["refund"]) == (1, 1)


async def test_a_resent_operation_is_applied_once_by_its_reference(
    bridge: RemoteAdapter, issuer: tuple[RemoteIssuer, str]
) -> None:
    refund = AdapterRequest(OperationKind.REFUND, "tx-8", "m", Money(100, "USD"), authorization_code="A1")
    first, again, other = await bridge.send(
        [replace(refund, reference="op_1"), replace(refund, reference="op_1"), replace(refund, reference="op_2")],
        time_left=1.0,
    )
    assert first.approved and again == first  # the same answer: applied once
    assert other.approved and other.network_reference != first.network_reference
    assert len(issuer[0].answered) == 2


async def test_a_network_that_is_down_fails_over_with_nothing_sent(
    bridge: RemoteAdapter, issuer: tuple[RemoteIssuer, str]
) -> None:
    issuer[0].network_up = False
    with pytest.raises(AdapterUnavailable, match="issuer network down"):
        await bridge.send([card_request(APPROVE, "tx-1")], time_left=1.0)
    assert sum(issuer[0].received.values()) == 0


async def test_a_process_that_starts_later_is_picked_up() -> None:
    port = free_port()
    adapter = RemoteAdapter("partner", {"address": f"127.0.0.1:{port}", "connect_timeout": 0.2, "backoff_max": 0.1})
    await adapter.start()  # nothing listens yet: not an error, the route is down
    try:
        assert adapter.capabilities == frozenset()
        with pytest.raises(AdapterUnavailable):
            await adapter.send([card_request(APPROVE, "tx-1")], time_left=0.5)
        issuer, _ = await start_simulator("127.0.0.1", port)
        try:
            (result,) = await adapter.send([card_request(APPROVE, "tx-2")], time_left=1.0)
            assert result.approved
        finally:
            await issuer.close()
    finally:
        await adapter.close()


async def test_no_card_number_in_the_bridge_or_process_logs(
    bridge: RemoteAdapter, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    instrument = Instrument(InstrumentKind.CARD, "fp", "411111******1111")
    request = AdapterRequest(
        OperationKind.AUTHORIZE,
        "tx-1",
        "m",
        Money(100, "USD"),
        instrument=instrument,
        card=card_request(APPROVE, "x").card,
    )
    late = card_request(LATE_CARD, "tx-2")
    await bridge.send([request, late], time_left=0.3)
    assert "411111******1111" in caplog.text  # the process logged what it may
    assert APPROVE not in caplog.text and LATE_CARD not in caplog.text


# --- processes that break the contract ---


class BrokenAdapter(adapter_pb2_grpc.AdapterServicer):
    """Describes itself properly, then answers Send as told."""

    def __init__(self, send: str) -> None:
        self.send = send

    async def Describe(self, request: Any, context: Any) -> adapter_pb2.DescribeResponse:
        return adapter_pb2.DescribeResponse(name="broken", capabilities=[adapter_pb2.CAPABILITY_AUTHORIZE])

    async def Send(self, request: adapter_pb2.SendRequest, context: Any) -> adapter_pb2.SendResponse:
        if self.send == "error":
            await context.abort(grpc.StatusCode.INTERNAL, "the adapter fell over")
        return adapter_pb2.SendResponse(outcomes=[adapter_pb2.AdapterOutcome(response_code="00")])  # always one


async def serve_servicer(servicer: adapter_pb2_grpc.AdapterServicer | None) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server()
    if servicer is not None:
        adapter_pb2_grpc.add_AdapterServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.mark.parametrize("send", ["error", "wrong count"])
async def test_an_answer_that_cannot_be_trusted_makes_every_outcome_unknown(send: str) -> None:
    server, address = await serve_servicer(BrokenAdapter(send))
    adapter = RemoteAdapter("partner", {"address": address})
    await adapter.start()
    try:
        results = await adapter.send([card_request(APPROVE, "tx-1"), card_request(APPROVE, "tx-2")], time_left=1.0)
        assert results == [AdapterResult.timed_out()] * 2
    finally:
        await adapter.close()
        await server.stop(None)


async def test_a_process_that_is_not_an_adapter_stops_the_start() -> None:
    server, address = await serve_servicer(None)  # answers, but UNIMPLEMENTED
    adapter = RemoteAdapter("partner", {"address": address})
    try:
        with pytest.raises(AdapterProcessError, match=r"does not serve switch\.v1\.Adapter"):
            await adapter.start()
    finally:
        await adapter.close()
        await server.stop(None)


# --- TLS ---


def self_signed(directory: Path) -> tuple[Path, bytes, bytes]:
    """A certificate for 127.0.0.1 that is its own CA: (its file, its PEM, its key's PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "adapter.test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path = directory / "adapter.pem"
    path.write_bytes(pem)
    return path, pem, key_pem


async def test_the_bridge_speaks_tls_to_a_process_with_a_certificate(tmp_path: Path) -> None:
    ca_file, certificate, key = self_signed(tmp_path)
    server = grpc.aio.server()
    adapter_pb2_grpc.add_AdapterServicer_to_server(RemoteIssuer(), server)
    port = server.add_secure_port("127.0.0.1:0", grpc.ssl_server_credentials([(key, certificate)]))
    await server.start()
    trusting = RemoteAdapter("partner", {"address": f"127.0.0.1:{port}", "ca_file": str(ca_file)})
    plaintext = RemoteAdapter("partner", {"address": f"127.0.0.1:{port}", "connect_timeout": 0.3})
    try:
        await trusting.start()
        (result,) = await trusting.send([card_request(APPROVE, "tx-1")], time_left=2.0)
        assert result.approved
        await plaintext.start()  # a plaintext client cannot talk to it: the route is down
        with pytest.raises(AdapterUnavailable):
            await plaintext.send([card_request(APPROVE, "tx-2")], time_left=0.5)
    finally:
        await trusting.close()
        await plaintext.close()
        await server.stop(None)


# --- the example process, as a process ---


async def test_switch_sim_remote_runs_the_example_process() -> None:
    port = free_port()
    command = [sys.executable, "-m", "switch", "sim", "remote", "--port", str(port)]
    process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    adapter = RemoteAdapter("partner", {"address": f"127.0.0.1:{port}", "connect_timeout": 5.0})
    try:
        await adapter.start()
        results = await adapter.send([card_request(APPROVE, "tx-1"), card_request(DECLINE, "tx-2")], time_left=2.0)
        assert [result.response_code for result in results] == ["00", "05"]
    finally:
        await adapter.close()
        process.terminate()
        _, stderr = await asyncio.wait_for(process.communicate(), 10)
    assert process.returncode == 0
    assert APPROVE.encode() not in stderr and DECLINE.encode() not in stderr
