"""The `switch` fixture: a switch with default settings on the parametrized store set."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, serve


@pytest.fixture
async def switch(store_set: str, switch_factory: SwitchFactory) -> AsyncIterator[Switch]:
    async with serve(switch_factory, store_set) as running:
        yield running
