"""A local Redis Cluster for the tests and the benchmarks: primaries on free loopback ports.

Started from a redis-server binary (this machine's by default: the Debian package
that also runs the Redis on 6379), in a folder the caller gives, with nothing kept
on disk. The cluster is formed over the nodes' own commands (CLUSTER ADDSLOTSRANGE,
CLUSTER MEET), so no redis-cli is needed: the lent benchmark machine carries only
redis-server. The slots are split evenly in port order (with three primaries:
0-5460, 5461-10922, 10923-16383, as redis-cli would), so a test can place keys
on chosen primaries.

    with running_cluster(folder) as ports: ...         # tests, the stage profile
    node_command(binary, port, folder); form_cluster(ports)   # a caller that owns the processes
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import redis

SLOTS = 16_384
_BUS_OFFSET = 10_000  # a cluster node also listens on its port + 10000


@contextmanager
def running_cluster(folder: Path, primaries: int = 3, redis_server: str = "redis-server") -> Iterator[list[int]]:
    """Yields the primaries' ports once every node answers cluster_state:ok."""
    ports = free_ports(primaries)
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            command = node_command(redis_server, port, folder)
            servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        form_cluster(ports, servers)
        yield ports
    finally:
        for server in servers:
            server.kill()  # nothing is kept on disk, and a cluster node's shutdown takes seconds
        for server in servers:
            with suppress(subprocess.TimeoutExpired):
                server.wait(timeout=10)


def node_command(redis_server: str, port: int, folder: Path) -> list[str]:
    """The command line of one cluster node on 127.0.0.1:port, its files under folder/port."""
    home = folder / str(port)
    home.mkdir(parents=True, exist_ok=True)
    return [
        redis_server,
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--protected-mode", "no",
        "--daemonize", "no",
        "--dir", str(home),
        "--cluster-enabled", "yes",
        "--cluster-config-file", "nodes.conf",
        "--cluster-node-timeout", "5000",
        "--save", "",
        "--appendonly", "no",
        "--logfile", "redis.log",
    ]  # fmt: skip


def form_cluster(ports: list[int], processes: list[subprocess.Popen[bytes]] | None = None) -> None:
    """Makes the nodes on these ports one cluster of primaries, the slots split evenly."""
    import redis

    if len(ports) < 3:
        raise ValueError("a Redis Cluster needs at least three primaries")
    clients = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) for port in ports]
    try:
        _wait_for(lambda: all(_answers(client) for client in clients), "the nodes to start", processes)
        for index, client in enumerate(clients):
            low, high = index * SLOTS // len(ports), (index + 1) * SLOTS // len(ports) - 1
            client.cluster("ADDSLOTSRANGE", low, high)
        for port in ports[1:]:
            clients[0].cluster("MEET", "127.0.0.1", port)
        _wait_for(lambda: all(_cluster_ok(client, len(ports)) for client in clients), "the cluster", processes)
    finally:
        for client in clients:
            client.close()


def node_of_slot(ports: list[int], slot: int) -> int:
    """The port of the primary that serves a slot."""
    import redis

    client = redis.Redis(host="127.0.0.1", port=ports[0])
    try:
        for low, high, primary, *_ in client.cluster("SLOTS"):
            if low <= slot <= high:
                return int(primary[1])
    finally:
        client.close()
    raise LookupError(f"slot {slot} is not served")


def node_id(port: int) -> str:
    import redis

    client = redis.Redis(host="127.0.0.1", port=port, decode_responses=True)
    try:
        return str(client.cluster("MYID"))
    finally:
        client.close()


def free_ports(count: int) -> list[int]:
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


def _answers(client: redis.Redis) -> bool:
    from redis import RedisError

    try:
        return bool(client.ping())
    except RedisError:
        return False


def _cluster_ok(client: redis.Redis, primaries: int) -> bool:
    info = client.cluster("INFO")  # redis-py parses it into a dict
    return bool(info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == primaries)


def _wait_for(
    ready: Callable[[], bool], what: str, processes: list[subprocess.Popen[bytes]] | None, seconds: float = 30.0
) -> None:
    deadline = time.monotonic() + seconds
    while not ready():
        for process in processes or ():
            if process.poll() is not None:
                raise RuntimeError(f"a Redis Cluster node exited with {process.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {seconds:.0f} s waiting for {what}")
        time.sleep(0.05)
