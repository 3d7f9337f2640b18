"""Money moves exactly once under faults: one round of each fault kind, with two workers.

The bounded version of `make chaos` (tests/faults/chaos.py): a short load of
payments (authorizations, then captures, voids and refunds, some racing on one
transaction from different workers) through `switch serve --workers 2` on Redis
and PostgreSQL behind fault proxies, to the recording network; a PostgreSQL cut,
hold and delay, a Redis kill -9 and a worker kill -9 are injected while it runs.
Then the checker compares the network's log, the journal and what the clients
were told (tests/faults/checker.py), and there must be no violation.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.faults.campaign import CampaignSettings, run_campaign, summary
from tests.faults.harness import WorldError
from tests.faults.injector import FAULT_KINDS
from tests.faults.load import LoadSettings

pytestmark = pytest.mark.slow

BOUNDED = CampaignSettings(
    plan=FAULT_KINDS,
    gap=1.5,
    seed=7,
    load=LoadSettings(tasks=8, pause=0.5),
    min_stories=150,  # about 135 approvals, 110 with captures, voids or refunds after them
)


@pytest.mark.timeout(300)
async def test_money_moves_exactly_once_under_faults(tmp_path: Path) -> None:
    try:
        outcome = await run_campaign(tmp_path / "world", BOUNDED)
    except WorldError as error:
        pytest.fail(f"the fault suite's world did not start: {error}")
    report = summary(outcome)
    print(report)
    assert [event.kind for event in outcome.events] == list(FAULT_KINDS), report
    approvals = [op for op in outcome.ops if op.kind == "authorize" and (op.answer or {}).get("decision") == "approved"]
    follow_ups = [op for op in outcome.ops if op.kind != "authorize" and op.answer is not None]
    assert len(approvals) >= 50 and len(follow_ups) >= 50, f"too little load ran:\n{report}"
    assert not outcome.verdict.violations, f"{len(outcome.verdict.violations)} violation(s):\n{report}"
