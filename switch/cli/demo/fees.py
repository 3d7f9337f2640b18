"""The demo's fee schedule and FX rates, as the [[fee_schedule]] and [fx] tables
of a configuration. The demo uses them when no schedule is configured;
tests/e2e/test_fees.py prices against the same tables, so the fees and shares the
demo prints are the ones the tests pin.

Cards pay 2.9 % + 0.30, shared platform / partner, the partner passing 40 % of its
half to an agent; the instant rail pays 0.5 %. Settlement in EUR is quoted once.
"""

from __future__ import annotations

from typing import Any

FEE_SCHEDULE: list[dict[str, Any]] = [
    {
        "name": "cards",
        "rail": "card",
        "percent": "2.9",
        "fixed": 30,
        "shares": [
            {"party": "platform", "percent": "50"},
            {"party": "partner", "percent": "50", "shares": [{"party": "agent", "percent": "40"}]},
        ],
    },
    {"name": "instant", "rail": "instant", "percent": "0.5", "fixed": 0},
]
FX: dict[str, str] = {"USD/EUR": "0.9231"}

DEMO_FEES: dict[str, Any] = {"fee_schedule": FEE_SCHEDULE, "fx": FX}
