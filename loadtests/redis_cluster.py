"""A local Redis Cluster for the tests and the stage profile: primaries on free loopback ports.

Started from this machine's redis-server and redis-cli (the Debian package that
also runs the Redis on 6379), in a folder the caller gives, with nothing kept on
disk, and stopped when the caller is done. redis-cli splits the slots evenly
(with three: 0-5460, 5461-10922, 10923-16383), so a test can place keys on
chosen primaries.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

_BUS_OFFSET = 10_000  # a cluster node also listens on its port + 10000


@contextmanager
def running_cluster(folder: Path, primaries: int = 3) -> Iterator[list[int]]:
    """Yields the primaries' ports once the cluster answers cluster_state:ok."""
    if primaries < 3:
        raise ValueError("a Redis Cluster needs at least three primaries")
    for tool in ("redis-server", "redis-cli"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not on PATH: install Debian's redis-server package")
    ports = _free_ports(primaries)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            servers.append(_start_node(folder, port))
        for port in ports:
            _wait_for(lambda port=port: _cli(port, "PING") == "PONG", f"node {port} to start")
        addresses = [f"127.0.0.1:{port}" for port in ports]
        subprocess.run(
            ["redis-cli", "--cluster", "create", *addresses, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=30,
        )
        for port in ports:
            _wait_for(lambda port=port: "cluster_state:ok" in _cli(port, "CLUSTER", "INFO"), "the cluster")
        yield ports
    finally:
        for server in servers:
            server.kill()  # nothing is kept on disk, and a cluster node's shutdown takes seconds
        for server in servers:
            with suppress(subprocess.TimeoutExpired):
                server.wait(timeout=10)


def node_of_slot(ports: list[int], slot: int) -> int:
    """The port of the primary that serves a slot (by the split redis-cli made)."""
    for line in _cli(ports[0], "CLUSTER", "NODES").splitlines():
        fields = line.split()
        address, flags, ranges = fields[1], fields[2], fields[8:]
        if "master" not in flags:
            continue
        for served in ranges:
            low, _, high = served.partition("-")
            if int(low) <= slot <= int(high or low):
                return int(address.split(":")[1].split("@")[0])
    raise LookupError(f"slot {slot} is not served")


def node_id(port: int) -> str:
    return _cli(port, "CLUSTER", "MYID")


def _start_node(folder: Path, port: int) -> subprocess.Popen[bytes]:
    home = folder / str(port)
    home.mkdir(parents=True, exist_ok=True)
    command = [
        "redis-server",
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(home),
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "5000",
        "--save", "",
        "--appendonly", "no",
        "--logfile", "redis.log",
    ]  # fmt: skip
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cli(port: int, *command: str) -> str:
    done = subprocess.run(
        ["redis-cli", "-h", "127.0.0.1", "-p", str(port), *command],
        check=False,
        capture_output=True,
        text=True,
        timeout=10,
    )
    return done.stdout.strip()


def _wait_for(ready: object, what: str, seconds: float = 20.0) -> None:
    assert callable(ready)
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _free_ports(count: int) -> list[int]:
    """Ports free now, each with its cluster bus port (port + 10000) free too."""
    ports: list[int] = []
    while len(ports) < count:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + _BUS_OFFSET > 65535 or port in ports:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + _BUS_OFFSET))
            except OSError:
                continue
        ports.append(port)
    return ports
