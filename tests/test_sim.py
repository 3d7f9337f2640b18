"""`switch sim card`: the ISO 8583 simulator as its own process, reached by the switch."""

from __future__ import annotations

import select
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import card_request, serve


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_for_line(process: subprocess.Popen[bytes], text: bytes, seconds: float = 20.0) -> None:
    assert process.stderr is not None
    while select.select([process.stderr], [], [], seconds)[0]:
        line = process.stderr.readline()
        if text in line:
            return
        if not line:
            break
    raise AssertionError(f"the simulator never said {text!r}")


@pytest.fixture
def card_simulator() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    command = [sys.executable, "-m", "switch", "sim", "card", "--port", str(port)]
    process = subprocess.Popen(command, stderr=subprocess.PIPE)
    try:
        wait_for_line(process, b"card simulator listening")
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()


async def test_the_switch_authorizes_through_a_simulator_process(
    switch_factory: SwitchFactory, card_simulator: tuple[subprocess.Popen[bytes], int]
) -> None:
    process, port = card_simulator
    routes = {
        "card": {"adapter": "card_iso8583", "options": {"host": "127.0.0.1", "port": port}},
        "instant": {"adapter": "simulated"},
    }
    async with serve(switch_factory, "embedded", routes=routes) as switch:
        approved = await switch.stub.Authorize(card_request())
        declined = await switch.stub.Authorize(card_request(pan="4000000000009995"))
    assert (approved.decision, approved.route, len(approved.authorization_code)) == (pb.DECISION_APPROVED, "card", 6)
    assert declined.response_code == "51"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=10) == 0


def test_an_unknown_simulator_is_refused() -> None:
    done = subprocess.run([sys.executable, "-m", "switch", "sim", "nope"], capture_output=True, check=False)
    assert done.returncode == 2
    assert b"no simulator named 'nope'" in done.stderr and b"card" in done.stderr
