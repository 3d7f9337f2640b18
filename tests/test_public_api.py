"""The public surface (switch/__init__.py) is pinned: a name leaves it or joins it only
by changing this list, and importing it starts nothing and pulls in no test tools."""

from __future__ import annotations

import subprocess
import sys

import switch

PUBLIC = [
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


def test_the_public_names_are_pinned() -> None:
    assert switch.__all__ == PUBLIC


def test_every_public_name_resolves() -> None:
    for name in PUBLIC:
        assert getattr(switch, name) is not None, name


def test_the_public_names_are_the_internal_objects() -> None:
    from switch.adapters.conformance import AdapterConformance
    from switch.adapters.contract import Adapter
    from switch.cards.tokenizer import Tokenizer

    assert switch.Adapter is Adapter
    assert switch.Tokenizer is Tokenizer
    assert switch.AdapterConformance is AdapterConformance


def test_an_unknown_name_is_an_attribute_error() -> None:
    try:
        switch.__getattr__("Pipeline")
    except AttributeError as exc:
        assert "Pipeline" in str(exc)
    else:
        raise AssertionError("no AttributeError")


def test_importing_switch_loads_no_test_tools_and_no_server() -> None:
    probe = (
        "import sys, switch\n"
        "loaded = [m for m in ('pytest', 'hypothesis', 'grpc', 'switch.server', 'switch.flow') if m in sys.modules]\n"
        "print(','.join(loaded))\n"
    )
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60)
    assert result.stdout.strip() == ""
