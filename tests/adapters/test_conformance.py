"""Every adapter in the tree runs the conformance suite."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from adapters.card_iso8583 import Iso8583CardAdapter
from adapters.card_iso8583.simulator import LATE_CARD, start_simulator
from adapters.rail_iso20022 import Iso20022RailAdapter
from adapters.rail_iso20022.simulator import start_simulator as start_rail_simulator
from adapters.remote_issuer import start_simulator as start_remote_issuer
from adapters.remote_issuer.issuer import LATE_CARD as REMOTE_LATE_CARD
from adapters.simulated import SimulatedIssuer
from switch.adapters.conformance import AdapterConformance, card_request
from switch.adapters.contract import Adapter, AdapterRequest
from switch.adapters.remote import RemoteAdapter
from switch.domain.models import Account, Money, OperationKind

APPROVING_CARD = "4111111111111111"
DECLINING_CARD = "4000000000000002"


class CardRequests:
    def approving(self, transaction_id: str) -> AdapterRequest:
        return card_request(APPROVING_CARD, transaction_id)

    def declining(self, transaction_id: str) -> tuple[AdapterRequest, str]:
        return card_request(DECLINING_CARD, transaction_id), "05"


class TestSimulatedIssuer(CardRequests, AdapterConformance):
    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        issuer = SimulatedIssuer()
        await issuer.start()
        yield issuer
        await issuer.close()

    @pytest.fixture
    async def slow(self) -> AsyncIterator[tuple[Adapter, AdapterRequest]]:
        issuer = SimulatedIssuer(options={"latency_ms": 2000})
        yield issuer, self.approving("tx-slow")
        await issuer.close()


class TestIso8583CardAdapter(CardRequests, AdapterConformance):
    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        simulator, port = await start_simulator(late_delay=1.0)
        adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.5})
        await adapter.start()
        yield adapter
        await adapter.close()
        await simulator.close()

    @pytest.fixture
    async def slow(self, adapter: Adapter) -> AsyncIterator[tuple[Adapter, AdapterRequest]]:
        yield adapter, card_request(LATE_CARD, "tx-late")

    @pytest.fixture
    async def down(self) -> AsyncIterator[tuple[Adapter, Callable[[], int]]]:
        simulator, port = await start_simulator()
        await simulator.close()  # the port is now free and nothing listens on it
        adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.2})
        await adapter.start()
        yield adapter, lambda: adapter.client.requests_sent
        await adapter.close()


def account_request(account_id: str, transaction_id: str) -> AdapterRequest:
    return AdapterRequest(
        kind=OperationKind.AUTHORIZE,
        transaction_id=transaction_id,
        merchant_id="merchant-1",
        amount=Money(1000, "USD"),
        account=Account("rail", account_id),
    )


class TestIso20022RailAdapter(AdapterConformance):
    def approving(self, transaction_id: str) -> AdapterRequest:
        return account_request("ana@bank", transaction_id)

    def declining(self, transaction_id: str) -> tuple[AdapterRequest, str]:
        return account_request("1234-insufficient", transaction_id), "51"

    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        simulator, port = await start_rail_simulator(late_delay=1.0)
        adapter = Iso20022RailAdapter("rail", {"host": "127.0.0.1", "port": port, "timeout": 0.5})
        await adapter.start()
        yield adapter
        await adapter.close()
        await simulator.close()

    @pytest.fixture
    async def slow(self, adapter: Adapter) -> AsyncIterator[tuple[Adapter, AdapterRequest]]:
        yield adapter, account_request("1234-timeout", "tx-late")

    @pytest.fixture
    async def down(self) -> AsyncIterator[tuple[Adapter, Callable[[], int]]]:
        simulator, port = await start_rail_simulator()
        await simulator.close()  # the port is now free and nothing listens on it
        adapter = Iso20022RailAdapter("rail", {"host": "127.0.0.1", "port": port, "timeout": 0.2})
        await adapter.start()
        yield adapter, lambda: adapter.client.requests_sent
        await adapter.close()


class TestRemoteAdapter(CardRequests, AdapterConformance):
    """The bridge to an adapter process, against the example process's service."""

    @pytest.fixture
    async def adapter(self) -> AsyncIterator[Adapter]:
        issuer, port = await start_remote_issuer(late_delay=1.0)
        adapter = RemoteAdapter("remote", {"address": f"127.0.0.1:{port}", "connect_timeout": 0.5})
        await adapter.start()
        yield adapter
        await adapter.close()
        await issuer.close()

    @pytest.fixture
    async def slow(self, adapter: Adapter) -> AsyncIterator[tuple[Adapter, AdapterRequest]]:
        yield adapter, card_request(REMOTE_LATE_CARD, "tx-late")

    @pytest.fixture
    async def down(self) -> AsyncIterator[tuple[Adapter, Callable[[], int]]]:
        issuer, port = await start_remote_issuer()
        await issuer.close()  # the port is now free and nothing listens on it
        adapter = RemoteAdapter("remote", {"address": f"127.0.0.1:{port}", "connect_timeout": 0.2})
        await adapter.start()
        yield adapter, lambda: adapter.calls_sent
        await adapter.close()
