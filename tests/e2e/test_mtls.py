"""Mutual TLS on the switch's port, end to end over real grpc.aio channels.

Who gets through the handshake (a certificate of the configured CA, current, or
nothing reaches the stores); certificates rotated on disk without a restart, and
read again on SIGHUP's reload() even when the files' times did not change; a
half-written rotation that keeps the current certificate; and which of a client
certificate's names the caller is known by (its SPIFFE id, else its DNS name, else
its common name), which no header can change.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import sqlite3
import ssl
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from cryptography import x509

from switch import config, server
from switch.config import Settings
from switch.domain.audit import EventKind
from switch.server import RunningSwitch
from switch.stores.rows import event_from_row
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import store_settings
from tests.e2e.support import card_request, expect, money, new_key
from tests.pki import CA, Issued

if TYPE_CHECKING:
    from switch.v1.switch_pb2_grpc import SwitchAsyncStub

CALL_TIMEOUT = 10.0
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
DENIED = grpc.StatusCode.PERMISSION_DENIED
UNAUTHENTICATED = grpc.StatusCode.UNAUTHENTICATED

GOOD = "spiffe://switch.test/good"
ADMIN = "spiffe://switch.test/admin"
EVERY_ROLE = ["authorize", "operate", "read", "quote", "tokenize", "detokenize", "admin"]
JOURNAL_TABLES = ("transactions", "journal_entries", "authorization_intents")
TLS_LOGGER = "switch.security.tls"


@dataclass(frozen=True)
class Pki:
    ca: CA
    other_ca: CA
    server: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = CA()
    return Pki(ca, CA("another CA"), ca.server())


def tls_settings(
    folder: Path, pki: Pki, callers: Sequence[dict[str, Any]], *, require_client_cert: bool = True
) -> Settings:
    """The embedded store set in folder, serving mutual TLS with pki's server certificate
    (server.pem / server.key in folder) to clients of pki's CA, under callers."""
    cert, key = pki.server.write(folder, "server")
    raw = store_settings("embedded", folder)
    raw["server"] = {
        "port": 0,
        "tls": {
            "cert_file": str(cert),
            "key_file": str(key),
            "client_ca_file": str(pki.ca.write(folder, "client-ca")),
            "require_client_cert": require_client_cert,
        },
    }
    raw.setdefault("security", {})["callers"] = list(callers)
    return config.from_mapping(raw)


@asynccontextmanager
async def running(settings: Settings) -> AsyncIterator[RunningSwitch]:
    switch = await server.build(settings)
    try:
        yield switch
    finally:
        await switch.stop(1.0)


@asynccontextmanager
async def stub(port: int, ca: CA, client: Issued | None, *, server_name: str = "") -> AsyncIterator[SwitchAsyncStub]:
    """A Switch stub on a channel of its own (no connection shared with another channel),
    presenting client's certificate (none: None) and trusting ca; server_name: the name
    the server's certificate must hold instead of 127.0.0.1."""
    credentials = grpc.ssl_channel_credentials(
        ca.cert_pem, client.key_pem if client else None, client.cert_pem if client else None
    )
    options: list[tuple[str, Any]] = [("grpc.use_local_subchannel_pool", 1)]
    if server_name:
        options.append(("grpc.ssl_target_name_override", server_name))
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        yield switch_pb2_grpc.SwitchStub(channel)


def quote(merchant: str = "m_tls") -> pb.QuoteFeeRequest:
    return pb.QuoteFeeRequest(merchant_id=merchant, amount=money(1000), rail="card")


async def quoted(switch: SwitchAsyncStub) -> None:
    """One call that must be served."""
    answer = await switch.QuoteFee(quote(), timeout=CALL_TIMEOUT)
    assert answer.fee.currency == "USD", answer


def served_serial(port: int, ca: CA, client: tuple[Path, Path]) -> int:
    """The serial of the certificate the switch presents to a new connection: a TLS
    handshake of its own (python's ssl, with a client certificate), no gRPC."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.load_verify_locations(cadata=ca.cert_pem.decode())
    context.load_cert_chain(*client)
    context.set_alpn_protocols(["h2"])
    with (
        socket.create_connection(("127.0.0.1", port), timeout=CALL_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return x509.load_der_x509_certificate(der).serial_number


async def serial_now(port: int, ca: CA, client: tuple[Path, Path]) -> int:
    return await asyncio.to_thread(served_serial, port, ca, client)


def journal_rows(settings: Settings, key: str) -> int:
    """Rows anywhere in the (SQLite) journal that hold this idempotency key."""
    with contextlib.closing(sqlite3.connect(settings.stores.sqlite_path)) as db:
        return sum(
            int(db.execute(f"SELECT COUNT(*) FROM {table} WHERE idempotency_key = ?", (key,)).fetchone()[0])
            for table in JOURNAL_TABLES
        )


def server_certificate(ca: CA, *names: str) -> Issued:
    """A server certificate for 127.0.0.1 and localhost that also names names."""
    return ca.issue(dns=("localhost", *names), ips=("127.0.0.1",), client=False)


def same_size_certificate(ca: CA, like: Issued, *names: str) -> Issued:
    """A server certificate (another key, another serial) whose PEM files are exactly
    like's sizes: with like's times too, its files' stamps are like's."""
    for _ in range(200):
        issued = server_certificate(ca, *names)
        if len(issued.cert_pem) == len(like.cert_pem) and len(issued.key_pem) == len(like.key_pem):
            return issued
    raise AssertionError("no certificate of the same size in 200 tries")


@contextlib.contextmanager
def same_times(*paths: Path) -> Iterator[None]:
    """Puts each file's access and modification times back after the block rewrote it."""
    before = [path.stat() for path in paths]
    yield
    for path, status in zip(paths, before, strict=True):
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))


# --- who gets through the handshake -------------------------------------------------


async def test_only_a_current_certificate_of_the_client_ca_gets_through(tmp_path: Path, pki: Pki) -> None:
    callers = [{"identity": GOOD, "roles": ["authorize"], "merchants": ["*"]}]
    settings = tls_settings(tmp_path, pki, callers)
    good = pki.ca.client(uri=GOOD)
    refused: dict[str, Issued | None] = {
        "no certificate": None,
        # The same identity, from a CA the switch does not trust, or out of date:
        "another CA's certificate": pki.other_ca.client(uri=GOOD),
        "an expired certificate": pki.ca.client(uri=GOOD, expired=True),
    }
    async with running(settings) as switch:
        keys = {}
        for name, client in refused.items():
            keys[name] = new_key(name[:2])
            async with stub(switch.port, pki.ca, client) as caller:
                await expect(caller.Authorize(card_request(keys[name]), timeout=CALL_TIMEOUT), UNAVAILABLE)
        async with stub(switch.port, pki.ca, good) as caller:
            for name, key in keys.items():
                # Nothing of a refused call reached the stores: its key is free.
                assert journal_rows(settings, key) == 0, name
                answer = await caller.Authorize(card_request(key), timeout=CALL_TIMEOUT)
                assert answer.response_code == "00", (name, answer)
                assert not answer.replayed, name
                assert journal_rows(settings, key) > 0, name


async def test_a_client_that_does_not_trust_the_server_is_not_served(tmp_path: Path, pki: Pki) -> None:
    callers = [{"identity": GOOD, "roles": ["quote"], "merchants": ["*"]}]
    async with running(tls_settings(tmp_path, pki, callers)) as switch:
        async with stub(switch.port, pki.other_ca, pki.ca.client(uri=GOOD)) as caller:
            await expect(caller.QuoteFee(quote(), timeout=CALL_TIMEOUT), UNAVAILABLE)
        async with stub(switch.port, pki.ca, pki.ca.client(uri=GOOD)) as caller:
            await quoted(caller)


async def test_without_required_client_certificates_every_caller_is_anonymous(tmp_path: Path, pki: Pki) -> None:
    # gRPC asks for no client certificate then, so none names a caller: "*" rules apply.
    anyone = [{"identity": "*", "roles": ["quote"], "merchants": ["*"]}]
    async with running(tls_settings(tmp_path / "anyone", pki, anyone, require_client_cert=False)) as switch:
        async with stub(switch.port, pki.ca, None) as caller:
            await quoted(caller)
        async with stub(switch.port, pki.ca, pki.ca.client(uri=GOOD)) as caller:
            await quoted(caller)
    only_good = [{"identity": GOOD, "roles": ["quote"], "merchants": ["*"]}]
    settings = tls_settings(tmp_path / "good", pki, only_good, require_client_cert=False)
    async with running(settings) as switch, stub(switch.port, pki.ca, pki.ca.client(uri=GOOD)) as caller:
        await expect(caller.QuoteFee(quote(), timeout=CALL_TIMEOUT), DENIED)


# --- rotation without a restart ------------------------------------------------------


async def test_a_rotated_certificate_serves_new_connections_while_open_ones_keep_theirs(
    tmp_path: Path, pki: Pki
) -> None:
    first = server_certificate(pki.ca, "first.switch.test")
    rotated = server_certificate(pki.ca, "rotated.switch.test")
    assert first.serial != rotated.serial
    callers = [{"identity": GOOD, "roles": ["quote"], "merchants": ["*"]}]
    settings = tls_settings(tmp_path, Pki(pki.ca, pki.other_ca, first), callers)
    client = pki.ca.client(uri=GOOD)
    client_files = client.write(tmp_path / "client", "good")
    async with running(settings) as switch:
        port = switch.port
        assert await serial_now(port, pki.ca, client_files) == first.serial
        async with stub(port, pki.ca, client, server_name="rotated.switch.test") as early:
            await expect(early.QuoteFee(quote(), timeout=CALL_TIMEOUT), UNAVAILABLE)  # not yet the rotated one

        # A channel that accepts only the first certificate: it connects now, and would
        # fail to reconnect once the rotated one is served.
        async with stub(port, pki.ca, client, server_name="first.switch.test") as opened_before:
            await quoted(opened_before)

            rotated.write(tmp_path, "server")  # over server.pem and server.key

            assert await serial_now(port, pki.ca, client_files) == rotated.serial
            async with stub(port, pki.ca, client, server_name="rotated.switch.test") as opened_after:
                await quoted(opened_after)
            async with stub(port, pki.ca, client, server_name="first.switch.test") as late:
                await expect(late.QuoteFee(quote(), timeout=CALL_TIMEOUT), UNAVAILABLE)
            for _ in range(3):  # its connection, and the first certificate, stay
                await quoted(opened_before)


async def test_reload_reads_the_files_again_even_when_their_times_did_not_change(tmp_path: Path, pki: Pki) -> None:
    first = server_certificate(pki.ca)
    rotated = same_size_certificate(pki.ca, first)
    callers = [{"identity": GOOD, "roles": ["quote"], "merchants": ["*"]}]
    settings = tls_settings(tmp_path, Pki(pki.ca, pki.other_ca, first), callers)
    client = pki.ca.client(uri=GOOD)
    client_files = client.write(tmp_path / "client", "good")
    cert, key = tmp_path / "server.pem", tmp_path / "server.key"
    async with running(settings) as switch, stub(switch.port, pki.ca, client) as opened_before:
        port = switch.port
        await quoted(opened_before)
        with same_times(cert, key):
            rotated.write(tmp_path, "server")
        assert [cert.stat().st_size, key.stat().st_size] == [len(first.cert_pem), len(first.key_pem)]
        # Same times, same sizes: a handshake does not read them again ...
        assert await serial_now(port, pki.ca, client_files) == first.serial

        assert switch.certificates is not None
        switch.certificates.reload()  # what SIGHUP does

        # ... until reload() says so: the next connection gets the rotated certificate.
        assert await serial_now(port, pki.ca, client_files) == rotated.serial
        assert await serial_now(port, pki.ca, client_files) == rotated.serial
        async with stub(port, pki.ca, client) as opened_after:
            await quoted(opened_after)
        await quoted(opened_before)
        # The reload is a security event in the audit trail, once.
        assert switch.trail is not None
        await asyncio.sleep(0)  # the event comes from gRPC's thread through the loop
        await switch.trail.flush()
        events = (event_from_row(row) for row in (await switch.journal.read_audit()).events)
        reloads = [event for event in events if event.kind is EventKind.RELOAD]
        assert [event.subject for event in reloads] == ["server.tls"], reloads


async def test_a_half_written_rotation_keeps_serving_the_current_certificate(
    tmp_path: Path, pki: Pki, caplog: pytest.LogCaptureFixture
) -> None:
    first = server_certificate(pki.ca)
    rotated = server_certificate(pki.ca)
    callers = [{"identity": GOOD, "roles": ["quote"], "merchants": ["*"]}]
    settings = tls_settings(tmp_path, Pki(pki.ca, pki.other_ca, first), callers)
    client = pki.ca.client(uri=GOOD)
    client_files = client.write(tmp_path / "client", "good")
    cert = tmp_path / "server.pem"
    async with running(settings) as switch:
        port = switch.port
        assert await serial_now(port, pki.ca, client_files) == first.serial

        for written, refused in (
            (rotated.cert_pem[: len(rotated.cert_pem) // 2], "holds no PEM certificate"),  # cut short
            (rotated.cert_pem, "is not the certificate of key_file's key"),  # the new one, beside the old key
        ):
            caplog.clear()
            with caplog.at_level(logging.WARNING, logger=TLS_LOGGER):
                cert.write_bytes(written)
                assert await serial_now(port, pki.ca, client_files) == first.serial
                async with stub(port, pki.ca, client) as caller:
                    await quoted(caller)
            # The switch refused the pair itself (gRPC is never handed it):
            assert "keeping the current certificate" in caplog.text
            assert refused in caplog.text

        rotated.write(tmp_path, "server")  # the rotation completed: tried again, and served
        assert await serial_now(port, pki.ca, client_files) == rotated.serial
        async with stub(port, pki.ca, client) as caller:
            await quoted(caller)


# --- which name is the caller --------------------------------------------------------

IDENTITY_CALLERS = [
    {"identity": "spiffe://switch.test/svc-a", "roles": ["quote"], "merchants": ["*"]},
    # svc-b's DNS name is granted, its SPIFFE id is not:
    {"identity": "svc-b.switch.test", "roles": ["quote"], "merchants": ["*"]},
    {"identity": "https://svc-u.switch.test/id", "roles": ["quote"], "merchants": ["*"]},
    {"identity": "dns-only.switch.test", "roles": ["quote"], "merchants": ["*"]},
    # the common name of a certificate that has a DNS name too:
    {"identity": "cn-granted", "roles": ["quote"], "merchants": ["*"]},
    {"identity": "cn-only-caller", "roles": ["quote"], "merchants": ["*"]},
    {"identity": ADMIN, "roles": EVERY_ROLE, "merchants": ["*"]},
]


@dataclass(frozen=True)
class Served:
    switch: RunningSwitch
    settings: Settings


@pytest.fixture
async def identities(tmp_path: Path, pki: Pki) -> AsyncIterator[Served]:
    settings = tls_settings(tmp_path, pki, IDENTITY_CALLERS)
    async with running(settings) as switch:
        yield Served(switch, settings)


@pytest.mark.parametrize(
    ("names", "served"),
    [
        # A SPIFFE id and a DNS name: the SPIFFE id names it.
        (("spiffe://switch.test/svc-a", "svc-a.switch.test", "svc-a"), True),
        (("spiffe://switch.test/svc-b", "svc-b.switch.test", "svc-b"), False),
        # Another URI: it names it, over the DNS name.
        (("https://svc-u.switch.test/id", "svc-u.switch.test", "svc-u"), True),
        # Only a DNS name (and a common name): the DNS name names it.
        (("", "dns-only.switch.test", "dns-only"), True),
        (("", "other.switch.test", "cn-granted"), False),
        # No subject alternative name: the common name.
        (("", "", "cn-only-caller"), True),
        (("", "", "nobody-in-particular"), False),
    ],
    ids=[
        "spiffe-granted",
        "spiffe-over-granted-dns",
        "uri-granted",
        "dns-granted",
        "dns-over-granted-cn",
        "cn-granted",
        "cn-unknown",
    ],
)
async def test_the_certificate_names_the_caller(
    identities: Served, pki: Pki, names: tuple[str, str, str], served: bool
) -> None:
    uri, dns, common_name = names  # of the client's certificate
    client = pki.ca.client(uri=uri, dns=dns, common_name=common_name)
    async with stub(identities.switch.port, pki.ca, client) as caller:
        if served:
            await quoted(caller)
        else:
            await expect(caller.QuoteFee(quote(), timeout=CALL_TIMEOUT), DENIED)


HEADERS = ("x-caller-id", "x-forwarded-client-cert", "x-spiffe-id", "x-client-identity")


async def test_over_tls_a_header_naming_a_privileged_caller_changes_nothing(identities: Served, pki: Pki) -> None:
    port = identities.switch.port
    claims = [(name, ADMIN) for name in HEADERS] + [("x-forwarded-client-cert", f"URI={ADMIN}")]
    key = new_key("hdr")
    async with stub(port, pki.ca, pki.ca.client(common_name="nobody-in-particular")) as nobody:
        await expect(nobody.QuoteFee(quote(), metadata=claims, timeout=CALL_TIMEOUT), DENIED)
        await expect(nobody.Authorize(card_request(key), metadata=claims, timeout=CALL_TIMEOUT), DENIED)
    async with stub(port, pki.ca, pki.ca.client(uri="spiffe://switch.test/svc-a")) as quoter:
        await quoted(quoter)  # it may quote, and no more, whatever it claims
        await expect(quoter.Authorize(card_request(key), metadata=claims, timeout=CALL_TIMEOUT), DENIED)
    assert journal_rows(identities.settings, key) == 0
    async with stub(port, pki.ca, pki.ca.client(uri=ADMIN)) as admin:
        answer = await admin.Authorize(card_request(key), timeout=CALL_TIMEOUT)  # the claimed caller may
        assert answer.response_code == "00", answer
        assert not answer.replayed
