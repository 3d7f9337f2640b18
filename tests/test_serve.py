"""`switch serve` as an operator runs it: SIGTERM drains, --workers forks and shares the port."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switch import config
from switch.config.keys import parse_key_ring, write_key_file
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import drop_production_state, store_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment(raw: dict[str, Any], folder: Path) -> dict[str, str]:
    stores, security = raw["stores"], raw.get("security", {})
    env = dict(os.environ)
    names = {
        "redis_url": "SWITCH_REDIS_URL",
        "postgres_dsn": "SWITCH_POSTGRES_DSN",
        "postgres_schema": "SWITCH_POSTGRES_SCHEMA",
        "key_prefix": "SWITCH_KEY_PREFIX",
        "sqlite_path": "SWITCH_SQLITE_PATH",
    }
    env.update({names[key]: value for key, value in stores.items()})
    if raw.get("server", {}).get("plaintext"):
        env["SWITCH_PLAINTEXT"] = "true"
    if "fingerprint_key_hex" in security:
        env["SWITCH_FINGERPRINT_KEY"] = security["fingerprint_key_hex"]
    if "audit_signing_key_file" in security:
        env["SWITCH_AUDIT_SIGNING_KEY_FILE"] = security["audit_signing_key_file"]
    if "tokenization" in raw:
        path = folder / "token-keys.json"  # how production mounts its keys: a file
        write_key_file(path, parse_key_ring(raw["tokenization"]))
        env["SWITCH_TOKENIZATION_KEY_FILE"] = str(path)
    return env


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[object]:
    started: list[subprocess.Popen[bytes]] = []

    def start(store_set: str, *args: str, toml: str = "") -> tuple[subprocess.Popen[bytes], int, config.Settings]:
        raw = store_settings(store_set, tmp_path)
        port = free_port()
        command = [sys.executable, "-m", "switch", "serve", "--port", str(port), *args]
        if toml:
            (tmp_path / "switch.toml").write_text(toml)
            command += ["--config", str(tmp_path / "switch.toml")]
        # Its own session, so that teardown reaches the workers even when the parent is gone.
        process = subprocess.Popen(
            command, env=environment(raw, tmp_path), stderr=subprocess.PIPE, start_new_session=True
        )
        started.append(process)
        wait_until_serving(port)
        return process, port, config.from_mapping(raw)

    yield start
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_serving(port: int, seconds: float = 20.0) -> None:
    deadline = time.monotonic() + seconds
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        while True:
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)


def children_of(pid: int) -> list[str]:
    return subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False).stdout.split()


def listening_on(port: int) -> str:
    return subprocess.run(["ss", "-ltnpH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout


def wait_until(condition: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def request(key: str) -> pb.AuthorizeRequest:
    return pb.AuthorizeRequest(
        idempotency_key=key,
        merchant_id="m-serve",
        amount=pb.Money(minor_units=500, currency="EUR"),
        card=pb.Card(pan="4111111111111111", expiry_month=12, expiry_year=2031),
    )


async def test_sigterm_drains_in_flight_calls(serve: object) -> None:
    # A second at the issuer keeps calls in flight while the signal arrives; the signal
    # waits half of it, so that on a loaded machine every call has reached the switch
    # (one that arrives after the signal is refused, as it should be, not drained).
    toml = "[adapters]\nsimulator_latency_ms = 1000\ntimeout_ms = 3000\n[idempotency]\nlease_seconds = 6\n"
    process, port, _ = serve("embedded", toml=toml)  # type: ignore[operator]
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = switch_pb2_grpc.SwitchStub(channel)
        calls = [asyncio.ensure_future(stub.Authorize(request(f"drain-{i}"))) for i in range(20)]
        await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*calls)
    assert [a.response_code for a in answers] == ["00"] * 20
    assert process.wait(timeout=15) == 0
    assert b'"draining' in process.stderr.read()


def test_workers_share_the_port_and_stop_together(serve: object) -> None:
    process, port, settings = serve("production", "--workers", "2")  # type: ignore[operator]
    try:
        # The first worker serves before the others are forked; each binds the port itself.
        assert wait_until(lambda: len(children_of(process.pid)) == 2)
        children = children_of(process.pid)
        assert wait_until(lambda: all(f"pid={child}," in listening_on(port) for child in children))
        for i in range(4):  # a channel each: SO_REUSEPORT spreads connections, not calls
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                answer = switch_pb2_grpc.SwitchStub(channel).Authorize(request(f"w-{i}"), timeout=10)
            assert answer.response_code == "00"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert all(not Path(f"/proc/{child}").exists() for child in children)
    finally:
        asyncio.run(drop_production_state(settings))


def test_a_worker_killed_is_replaced_and_the_parent_still_stops_cleanly(serve: object) -> None:
    process, port, settings = serve("production", "--workers", "2")  # type: ignore[operator]
    try:
        assert wait_until(lambda: len(children_of(process.pid)) == 2)
        killed = children_of(process.pid)[0]
        os.kill(int(killed), signal.SIGKILL)
        assert wait_until(lambda: len(children_of(process.pid)) == 2 and killed not in children_of(process.pid))
        replacement = (set(children_of(process.pid)) - {killed}).pop()
        assert wait_until(lambda: f"pid={replacement}," in listening_on(port))
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = switch_pb2_grpc.SwitchStub(channel).Authorize(request("after-kill"), timeout=10)
        assert answer.response_code == "00"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
        assert b"Traceback" not in process.stderr.read()
        assert not children_of(process.pid)
    finally:
        asyncio.run(drop_production_state(settings))


def test_workers_stop_when_their_supervisor_is_killed_outright(serve: object) -> None:
    process, _, settings = serve("production", "--workers", "2")  # type: ignore[operator]
    try:
        assert wait_until(lambda: len(children_of(process.pid)) == 2)
        workers = [int(pid) for pid in children_of(process.pid)]
        process.send_signal(signal.SIGKILL)  # no chance to stop them
        process.wait(timeout=5)
        assert wait_until(lambda: not any(_running(pid) for pid in workers), seconds=20)
    finally:
        asyncio.run(drop_production_state(settings))


def _running(pid: int) -> bool:
    """Alive and not a zombie (an orphan's exit may wait for a reaper)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def test_configuration_loads_without_importing_grpc(tmp_path: Path) -> None:
    """`serve --workers N` reads its configuration, then forks: gRPC must not be loaded yet."""
    path = tmp_path / "switch.toml"
    path.write_text(
        '[tokenization]\nactive_key = "k1"\nkeys = { k1 = "' + "ab" * 32 + '" }\n'
        '[[fee_schedule]]\nname = "cards"\npercent = "2.9"\nfixed = 30\n'
        '[[limits]]\nscope = "merchant"\nwindow_seconds = 60\nmax_count = 5\n'
    )
    probe = (
        "import sys\nfrom switch import cli, config\n"
        f"config.load({str(path)!r}, {{}})\n"
        "loaded = sorted(m for m in sys.modules if m == 'grpc' or m.startswith('grpc.'))\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", probe], check=True)


def test_a_promotion_reaches_every_worker(serve: object, tmp_path: Path) -> None:
    """PromoteModel in one worker: it journals and reloads, and its SIGHUP to the supervisor
    (relayed to every worker) makes the others read the promotion from the journal."""
    from switch.config.policy import load_policy
    from tests.e2e.test_challenger import a_challenger, bundle

    challenger = a_challenger(tmp_path, 12.0)  # declines every payment
    policy = tmp_path / "policy.toml"
    policy.write_text(bundle(None, challenger))
    metrics = free_port()  # worker i serves its metrics on metrics + i
    toml = (
        f'[server]\nmetrics_port = {metrics}\n[policy]\nfile = "{policy}"\n'
        '[[security.callers]]\nidentity = "*"\nroles = ["authorize", "admin"]\nmerchants = ["*"]\n'
    )
    process, port, settings = serve("production", "--workers", "2", toml=toml)  # type: ignore[operator]
    try:
        assert wait_until(lambda: len(children_of(process.pid)) == 2)
        assert wait_until(lambda: all(_scrape(metrics + i) for i in range(2)))
        loaded = load_policy(policy)
        assert loaded.fraud_model is not None and loaded.fraud_model.challenger is not None
        model = loaded.fraud_model.challenger.version
        promote = pb.PromoteModelRequest(policy_version=loaded.version, model_version=model, reason="every worker")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = switch_pb2_grpc.SwitchStub(channel).PromoteModel(promote, timeout=10)
        assert answer.live_model == model
        swapped = 'switch_policy_reloads_total{outcome="swapped"} 1'
        assert wait_until(lambda: all(swapped in _scrape(metrics + i) for i in range(2)))
        for i in range(4):  # a channel each: SO_REUSEPORT spreads connections, not calls
            with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                declined = switch_pb2_grpc.SwitchStub(channel).Authorize(request(f"p-{i}"), timeout=10)
            assert declined.response_code == "59", declined
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        asyncio.run(drop_production_state(settings))


def _scrape(port: int) -> str:
    """A worker's metrics; "" while it does not answer."""
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as answer:
            return str(answer.read().decode())
    except OSError:
        return ""


async def test_sighup_reloads_the_policy_in_a_task_whose_failure_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from types import SimpleNamespace

    from switch.cli.main import _reload, _spread

    async def reloaded() -> bool:
        return True

    async def broken() -> bool:
        raise RuntimeError("the journal's driver broke")

    reloads: set[asyncio.Task[None]] = set()
    for reload_policy in (reloaded, broken):
        _reload([SimpleNamespace(certificates=None, reload_policy=reload_policy)], reloads)
    assert len(reloads) == 2  # kept until they end
    await asyncio.gather(*reloads)
    await asyncio.sleep(0)  # the done callbacks
    assert reloads == set()
    assert "policy reload failed; the policy in force goes on serving" in caplog.text
    _spread(None)()  # one process: nobody to tell, nothing raised
