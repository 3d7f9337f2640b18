"""The switch's public surface: what embedders and adapter authors import.

An adapter implements `Adapter` (answering `AdapterRequest` with `AdapterResult`, or
raising `AdapterUnavailable` when the network cannot be reached), maps its network's
codes onto `ResponseCode`, masks what it logs with `mask_pan` / `mask_account`, and
proves itself against `AdapterConformance`; `MockAdapter` stands in for one in tests.
An embedder tokenizes with `Tokenizer` over a `KeyRing` and checks card numbers with
`luhn_valid`. Everything else is internal and may move; tests/test_public_api.py pins
this list.
"""

from typing import TYPE_CHECKING, Any

from switch.adapters.contract import (
    ENTRY_POINT_GROUP,
    Adapter,
    AdapterRequest,
    AdapterResult,
    AdapterUnavailable,
    Capability,
)
from switch.adapters.mock import MockAdapter
from switch.cards.luhn import contains_card_number, luhn_valid
from switch.cards.tokenizer import CardToken, KeyRing, Tokenizer
from switch.domain.models import (
    Account,
    Card,
    Instrument,
    Money,
    OperationKind,
    Token,
    mask_account,
    mask_pan,
)
from switch.domain.response_codes import ResponseCode

if TYPE_CHECKING:
    from switch.adapters.conformance import AdapterConformance


def __getattr__(name: str) -> Any:
    # The conformance suite is pytest tests; a running switch does not import pytest.
    if name == "AdapterConformance":
        from switch.adapters.conformance import AdapterConformance

        return AdapterConformance
    raise AttributeError(f"module 'switch' has no attribute {name!r}")


__all__ = [
    "ENTRY_POINT_GROUP",
    "Account",
    "Adapter",
    "AdapterConformance",
    "AdapterRequest",
    "AdapterResult",
    "AdapterUnavailable",
    "Capability",
    "Card",
    "CardToken",
    "Instrument",
    "KeyRing",
    "MockAdapter",
    "Money",
    "OperationKind",
    "ResponseCode",
    "Token",
    "Tokenizer",
    "contains_card_number",
    "luhn_valid",
    "mask_account",
    "mask_pan",
]
