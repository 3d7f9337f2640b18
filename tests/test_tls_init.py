"""`switch tls init`: a throwaway CA, a server and a client certificate, written once
with private modes, which a switch serves mutual TLS with and names the client by."""

from __future__ import annotations

import datetime
import ipaddress
import re
import stat
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import grpc
import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from cryptography.x509.verification import PolicyBuilder, Store

from switch import config, server
from switch.cli.main import main
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import store_settings
from tests.e2e.support import card_request, expect, money, new_key

if TYPE_CHECKING:
    from switch.v1.switch_pb2_grpc import SwitchAsyncStub

DEFAULT_CLIENT = "spiffe://switch.local/client"
FILES = {"ca.pem": 0o644, "server.pem": 0o644, "server.key": 0o600, "client.pem": 0o644, "client.key": 0o600}
CALL_TIMEOUT = 10.0
DENIED = grpc.StatusCode.PERMISSION_DENIED


def tls_init(folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switch", "tls", "init", "--dir", str(folder), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def certificate(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def san(cert: x509.Certificate) -> x509.SubjectAlternativeName:
    return cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value


def usages(cert: x509.Certificate) -> list[x509.ObjectIdentifier]:
    return list(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)


def policy(ca: Path) -> PolicyBuilder:
    return PolicyBuilder().store(Store([certificate(ca)])).time(datetime.datetime.now(datetime.UTC))


def test_writes_the_files_with_private_modes_and_prints_no_key(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    result = tls_init(folder)
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert sorted(path.name for path in folder.iterdir()) == sorted(FILES)  # no CA key, no leftovers
    for name, mode in FILES.items():
        assert stat.S_IMODE((folder / name).stat().st_mode) == mode, name
    printed = result.stdout + result.stderr
    assert "PRIVATE KEY" not in printed and "BEGIN" not in printed
    for name in FILES:
        assert str(folder / name) in printed
    assert DEFAULT_CLIENT in printed
    assert "not kept" in printed  # says the CA is a throwaway one
    for name in ("server.key", "client.key"):
        assert (folder / name).read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_never_replaces_a_file(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    assert tls_init(folder).returncode == 0
    before = {name: (folder / name).read_bytes() for name in FILES}
    again = tls_init(folder, "--client", "spiffe://switch.local/other")
    assert again.returncode == 2
    assert re.fullmatch(
        r"configuration error: tls init: .*ca\.pem exists; certificates are never replaced.*\n", again.stderr
    )
    assert "Traceback" not in again.stderr
    assert {name: (folder / name).read_bytes() for name in FILES} == before


def test_one_file_already_there_is_refused_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "tls"
    folder.mkdir()
    (folder / "client.key").write_text("mine")
    assert main(["tls", "init", "--dir", str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "client.key exists" in err, err
    assert [path.name for path in folder.iterdir()] == ["client.key"]
    assert (folder / "client.key").read_text() == "mine"


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--name", "not a host"], "--name 'not a host'"),
        (["--client", "two words"], "--client 'two words'"),
        (["--client", "spiffe://"], "--client 'spiffe://'"),
        (["--client", "spiffe://é/x"], "--client"),
    ],
)
def test_a_name_no_certificate_can_hold_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    assert main(["tls", "init", "--dir", str(tmp_path / "tls"), *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and named in err, err
    assert not (tmp_path / "tls").exists()


def test_the_server_certificate_verifies_against_the_ca_for_the_names_given(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    assert tls_init(folder, "--name", "switch.internal", "--name", "10.0.0.7").returncode == 0
    leaf = certificate(folder / "server.pem")
    names = san(leaf)
    assert names.get_values_for_type(x509.DNSName) == ["switch.internal"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.0.0.7")]
    assert usages(leaf) == [ExtendedKeyUsageOID.SERVER_AUTH]
    for name in (x509.DNSName("switch.internal"), x509.IPAddress(ipaddress.ip_address("10.0.0.7"))):
        policy(folder / "ca.pem").build_server_verifier(name).verify(leaf, [])
    with pytest.raises(x509.verification.VerificationError):
        policy(folder / "ca.pem").build_server_verifier(x509.DNSName("localhost")).verify(leaf, [])


def test_by_default_the_server_is_localhost_and_127_0_0_1(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    assert tls_init(folder).returncode == 0
    names = san(certificate(folder / "server.pem"))
    assert names.get_values_for_type(x509.DNSName) == ["localhost"]
    assert names.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


@pytest.mark.parametrize(
    ("client", "kind"),
    [(DEFAULT_CLIENT, x509.UniformResourceIdentifier), ("payments.switch.internal", x509.DNSName)],
)
def test_the_client_certificate_carries_the_identity(
    tmp_path: Path, client: str, kind: type[x509.UniformResourceIdentifier | x509.DNSName]
) -> None:
    folder = tmp_path / "tls"
    args = ["--client", client] if client != DEFAULT_CLIENT else []
    assert tls_init(folder, *args).returncode == 0
    leaf = certificate(folder / "client.pem")
    assert san(leaf).get_values_for_type(kind) == [client]
    assert usages(leaf) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    verified = policy(folder / "ca.pem").build_client_verifier().verify(leaf, [])
    assert verified.subjects is not None and kind(client) in verified.subjects


# --- a switch serving mutual TLS with these files ------------------------------------


@dataclass(frozen=True)
class Served:
    settings: config.Settings
    granted: grpc.ChannelCredentials  # tls init's client, trusting the switch's CA
    stranger: grpc.ChannelCredentials  # another tls init's client, of another identity


@pytest.fixture
def served(tmp_path: Path) -> Served:
    """A switch on the embedded stores serving mutual TLS with tls init's files, whose one
    [[security.callers]] rule grants quote to tls init's default client identity. The
    client CAs are two tls inits' (another identity's certificate gets through the
    handshake, and is known by its own name)."""
    folder, other = tmp_path / "tls", tmp_path / "other"
    assert tls_init(folder).returncode == 0
    assert tls_init(other, "--client", "spiffe://switch.local/other").returncode == 0
    client_cas = tmp_path / "client-cas.pem"
    client_cas.write_bytes((folder / "ca.pem").read_bytes() + (other / "ca.pem").read_bytes())
    raw = store_settings("embedded", tmp_path)
    raw["server"] = {
        "port": 0,
        "tls": {
            "cert_file": str(folder / "server.pem"),
            "key_file": str(folder / "server.key"),
            "client_ca_file": str(client_cas),
        },
    }
    raw["security"] = {"callers": [{"identity": DEFAULT_CLIENT, "roles": ["quote"], "merchants": ["*"]}]}
    server_ca = (folder / "ca.pem").read_bytes()

    def client_of(where: Path) -> grpc.ChannelCredentials:
        key, chain = (where / "client.key").read_bytes(), (where / "client.pem").read_bytes()
        return grpc.ssl_channel_credentials(server_ca, key, chain)

    return Served(config.from_mapping(raw), client_of(folder), client_of(other))


@asynccontextmanager
async def caller(port: int, credentials: grpc.ChannelCredentials) -> AsyncIterator[SwitchAsyncStub]:
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        yield switch_pb2_grpc.SwitchStub(channel)


async def test_a_switch_serves_the_client_and_names_it_by_its_identity(served: Served) -> None:
    switch = await server.build(served.settings)
    try:
        quote = pb.QuoteFeeRequest(merchant_id="m_tls", amount=money(1000), rail="card")
        async with caller(switch.port, served.granted) as granted:
            answer = await granted.QuoteFee(quote, timeout=CALL_TIMEOUT)
            assert answer.fee.currency == "USD", answer
            # Its rule grants quote, and no more:
            await expect(granted.Authorize(card_request(new_key("tls")), timeout=CALL_TIMEOUT), DENIED)
        async with caller(switch.port, served.stranger) as stranger:
            await expect(stranger.QuoteFee(quote, timeout=CALL_TIMEOUT), DENIED)
    finally:
        await switch.stop(1.0)
