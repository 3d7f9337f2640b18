"""Mutual TLS for the project's own clients: a `switch tls init` folder (switch.cli.demo.tls),
the demo's switch over it, and who that switch turns away."""

from __future__ import annotations

import tomllib
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from switch import config, server
from switch.cli import main as switch_command
from switch.cli.demo.run import demo_settings
from switch.cli.demo.tls import CLIENT_ROLES, FILES, TlsFolder
from switch.config import StartupError
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.pki import CA
from tests.test_demo import check_summary, run_demo

ROOT = Path(__file__).resolve().parent.parent
CLIENT = "spiffe://switch.local/client"


def make_folder(folder: Path, ca: CA, client: str = CLIENT) -> Path:
    """The layout `switch tls init --dir folder --client client` writes."""
    folder.mkdir(parents=True, exist_ok=True)
    ca.write(folder, "ca")
    ca.server().write(folder, "server")
    ca.client(uri=client).write(folder, "client")
    return folder


@pytest.fixture(scope="module")
def ca() -> CA:
    return CA()


@pytest.fixture(scope="module")
def tls_dir(ca: CA, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_folder(tmp_path_factory.mktemp("tls"), ca)


# --- the folder ------------------------------------------------------------------------------------


def test_the_folder_names_its_client_and_configures_a_server_for_it(tls_dir: Path) -> None:
    tls = TlsFolder.open(tls_dir)
    assert tls.client_identity() == CLIENT
    settings = config.from_mapping(tomllib.loads(tls.server_toml()))
    assert settings.tls == tls.server_files()
    assert settings.tls.require_client_cert and settings.tls.client_ca_file == str(tls_dir / "ca.pem")
    assert settings.callers == (tls.caller_rule(),)
    assert settings.callers[0].identity == CLIENT and settings.callers[0].roles == CLIENT_ROLES


def test_a_folder_without_every_file_is_refused_by_name(tls_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_bytes((tls_dir / "ca.pem").read_bytes())
    with pytest.raises(StartupError, match=r"no server\.pem, server\.key, client\.pem, client\.key"):
        TlsFolder.open(tmp_path)
    for name in FILES:
        assert (tls_dir / name).is_file()
    assert TlsFolder.open(tls_dir).path == tls_dir.resolve()


def test_the_demo_refuses_a_folder_it_cannot_use(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert switch_command(["demo", "--tls-dir", str(tmp_path), "--calls", "10"]) == 2
    assert "start-up error: --tls-dir" in capsys.readouterr().err


# --- the demo over mutual TLS ----------------------------------------------------------------------


@pytest.mark.slow
def test_the_demo_over_mutual_tls_holds_every_expectation(tls_dir: Path) -> None:
    done = run_demo("--tls-dir", str(tls_dir), "--calls", "50")
    assert done.returncode == 0, done.stdout + done.stderr
    check_summary(done.stdout)
    assert "50 RPCs" in done.stdout


@pytest.fixture
async def demo_switch(tls_dir: Path, tmp_path: Path) -> AsyncIterator[int]:
    """The switch the demo starts with --tls-dir; yields its port."""
    running = await server.build(demo_settings(config.Settings(), tmp_path, TlsFolder.open(tls_dir)))
    try:
        yield running.port
    finally:
        await running.stop(0.5)


async def _quote(port: int, credentials: grpc.ChannelCredentials | None) -> grpc.StatusCode:
    target = f"127.0.0.1:{port}"
    channel = grpc.aio.secure_channel(target, credentials) if credentials else grpc.aio.insecure_channel(target)
    async with channel:
        request = pb.QuoteFeeRequest(merchant_id="m-1", amount=pb.Money(minor_units=1_000, currency="USD"), rail="card")
        try:
            await switch_pb2_grpc.SwitchStub(channel).QuoteFee(request, timeout=5)
        except grpc.aio.AioRpcError as error:
            return error.code()
        return grpc.StatusCode.OK


async def test_the_demo_switch_admits_its_client_and_no_one_else(
    demo_switch: int, tls_dir: Path, ca: CA, tmp_path: Path
) -> None:
    tls = TlsFolder.open(tls_dir)
    assert await _quote(demo_switch, tls.credentials()) == grpc.StatusCode.OK
    # plaintext, and TLS without a client certificate: no handshake
    assert await _quote(demo_switch, None) == grpc.StatusCode.UNAVAILABLE
    anonymous = grpc.ssl_channel_credentials(root_certificates=tls.read("ca.pem"))
    assert await _quote(demo_switch, anonymous) == grpc.StatusCode.UNAVAILABLE
    # a certificate of the same CA for another identity: no rule grants it anything
    other = TlsFolder.open(make_folder(tmp_path / "other", ca, client="spiffe://switch.local/someone-else"))
    assert await _quote(demo_switch, other.credentials()) == grpc.StatusCode.PERMISSION_DENIED
    # a certificate from another CA: no handshake
    stranger = TlsFolder.open(make_folder(tmp_path / "stranger", CA("another CA")))
    assert await _quote(demo_switch, stranger.credentials()) == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize("kind", ["dns", "common name"])
async def test_the_identity_read_from_the_client_certificate_is_the_switchs(
    kind: str, ca: CA, tls_dir: Path, tmp_path: Path
) -> None:
    """Without a SPIFFE id the switch names a client by its DNS SAN, or its common name
    when it has no SAN: the demo's caller rule must say the same."""
    folder = make_folder(tmp_path / "tls", ca)
    issued = ca.client(dns="wallet.example") if kind == "dns" else ca.client(common_name="wallet-client")
    issued.write(folder, "client")
    tls = TlsFolder.open(folder)
    assert tls.client_identity() == ("wallet.example" if kind == "dns" else "wallet-client")
    running = await server.build(demo_settings(config.Settings(), tmp_path, tls))
    try:
        assert await _quote(running.port, tls.credentials()) == grpc.StatusCode.OK
    finally:
        await running.stop(0.5)
