"""The Prometheus endpoint: what the switch did, as an SRE's scraper reads it."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from switch import config
from switch.config import ConfigError
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import DECLINE_CARD, card_request, serve
from tests.e2e.test_routing import free_port

ROUTES = {"card": {"adapter": "simulated"}, "instant": {"adapter": "simulated"}}


async def http_get(port: int, path: str) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    raw = await reader.read()
    writer.close()
    head, _, body = raw.decode().partition("\r\n\r\n")
    return head.splitlines()[0], body


def samples(body: str) -> dict[str, float]:
    return {
        line.rsplit(" ", 1)[0]: float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line and not line.startswith("#")
    }


async def test_a_scrape_shows_answers_replays_batches_and_gauges(switch_factory: SwitchFactory) -> None:
    port = free_port()
    async with serve(switch_factory, "embedded", routes=ROUTES, server={"metrics_port": port}) as switch:
        approved = card_request()
        await switch.stub.Authorize(approved)
        await switch.stub.Authorize(approved)  # a replay
        await switch.stub.Authorize(card_request(pan=DECLINE_CARD))
        status, body = await http_get(port, "/metrics")
        assert status == "HTTP/1.1 200 OK"
        found = samples(body)
        assert found['switch_authorizations_total{route="card",status="authorized"}'] == 1
        assert found['switch_authorizations_total{route="card",status="declined"}'] == 1
        assert found["switch_replays_total"] == 1
        assert found["switch_batch_items_count"] == 3
        assert found['switch_batch_items_bucket{le="+Inf"}'] == 3
        assert found["switch_pending_items"] == 0
        assert found['switch_route_breaker{route="card"}'] == 0
        assert found['switch_adapter_seconds_count{route="card"}'] == 2
        assert "# TYPE switch_batch_seconds histogram" in body
        help_line = next(line for line in body.splitlines() if line.startswith("# HELP switch_authorizations "))
        assert "(authorized, declined, unknown)" in help_line  # the label's own values
        assert "# TYPE switch_state_store_events counter" in body  # none on the embedded stores

        status, _ = await http_get(port, "/other")
        assert status == "HTTP/1.1 404 Not Found"


async def test_shed_items_are_counted(switch_factory: SwitchFactory) -> None:
    port = free_port()
    tables = {"routes": ROUTES, "server": {"metrics_port": port}, "batcher": {"max_pending": 2}}
    async with serve(switch_factory, "embedded", **tables) as switch:
        with pytest.raises(grpc.aio.AioRpcError):
            await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=[card_request() for _ in range(3)]))
        _, body = await http_get(port, "/metrics")
        assert samples(body)["switch_shed_items_total"] == 3


def test_metrics_port_needs_room_for_every_worker() -> None:
    with pytest.raises(ConfigError, match=r"server\.metrics_port"):
        config.from_mapping({"server": {"metrics_port": 65535, "workers": 2}})
