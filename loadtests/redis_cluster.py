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

With replicas=R each primary gets R replicas (ports after the primaries'), so a
test can kill a primary and watch the cluster fail over.
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
def running_cluster(
    folder: Path,
    primaries: int = 3,
    redis_server: str = "redis-server",
    *,
    replicas: int = 0,
    node_timeout_ms: int = 5000,
) -> Iterator[list[int]]:
    """Yields the nodes' ports (the primaries', then their replicas') once every node
    answers cluster_state:ok and every replica is in sync."""
    ports = free_ports(primaries * (1 + replicas))
    servers: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:
            command = node_command(redis_server, port, folder, node_timeout_ms)
            servers.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        form_cluster(ports[:primaries], servers, replicas=ports[primaries:])
        yield ports
    finally:
        for server in servers:
            server.kill()  # nothing is kept on disk, and a cluster node's shutdown takes seconds
        for server in servers:
            with suppress(subprocess.TimeoutExpired):
                server.wait(timeout=10)


def node_command(redis_server: str, port: int, folder: Path, node_timeout_ms: int = 5000) -> list[str]:
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
        "--cluster-node-timeout", str(node_timeout_ms),
        "--save", "",
        "--appendonly", "no",
        "--logfile", "redis.log",
    ]  # fmt: skip


def form_cluster(
    ports: list[int], processes: list[subprocess.Popen[bytes]] | None = None, *, replicas: list[int] | None = None
) -> None:
    """Makes the nodes on these ports one cluster of primaries, the slots split evenly;
    the nodes on `replicas` (a whole number per primary) replicate them in turn."""
    import redis

    if len(ports) < 3:
        raise ValueError("a Redis Cluster needs at least three primaries")
    everyone = ports + list(replicas or ())
    clients = [redis.Redis(host="127.0.0.1", port=port, socket_timeout=5) for port in everyone]
    primaries = clients[: len(ports)]
    try:
        _wait_for(lambda: all(_answers(client) for client in clients), "the nodes to start", processes)
        for index, client in enumerate(primaries):
            low, high = index * SLOTS // len(ports), (index + 1) * SLOTS // len(ports) - 1
            client.cluster("ADDSLOTSRANGE", low, high)
        for port in everyone[1:]:
            clients[0].cluster("MEET", "127.0.0.1", port)
        _wait_for(lambda: all(_knows(client, len(everyone)) for client in clients), "the nodes to meet", processes)
        ids = [str(client.cluster("MYID"), "ascii") for client in primaries]
        for index, client in enumerate(clients[len(ports) :]):
            client.cluster("REPLICATE", ids[index % len(ports)])
        _wait_for(lambda: all(_cluster_ok(client, len(everyone)) for client in clients), "the cluster", processes)
        _wait_for(lambda: all(_in_sync(client) for client in clients[len(ports) :]), "the replicas", processes)
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


def _knows(client: redis.Redis, nodes: int) -> bool:
    return int(client.cluster("INFO").get("cluster_known_nodes", 0)) == nodes  # redis-py parses it into a dict


def _cluster_ok(client: redis.Redis, nodes: int) -> bool:
    info = client.cluster("INFO")
    return bool(info.get("cluster_state") == "ok" and int(info.get("cluster_known_nodes", 0)) == nodes)


def _in_sync(replica: redis.Redis) -> bool:
    info = replica.info("replication")
    return bool(info.get("role") == "slave" and info.get("master_link_status") == "up")


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
