"""One fault campaign: load on the world, faults injected one after another, then the check.

    world up -> load starts -> gap -> fault -> gap -> fault -> ... -> load stops
    -> the reversal workers settle -> switch and network stop -> checker

Each client operation and each violation is attributed to the fault whose window
(from its injection to the next one) it began in, for the summary table.
"""

from __future__ import annotations

import asyncio
import bisect
import json
import random
import secrets
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tests.faults.checker import Verdict, Violation, check
from tests.faults.harness import POSTGRES_DSN, WorldSettings, running_world
from tests.faults.injector import FaultEvent, Injector
from tests.faults.journal import audit_findings, read_journal
from tests.faults.load import Load, LoadSettings
from tests.faults.records import ClientOp, read_network_log, write_client_log

BEFORE_FAULTS = "(before any fault)"
UNATTRIBUTED = "(unattributed)"


@dataclass(frozen=True)
class CampaignSettings:
    plan: tuple[str, ...]  # fault kinds, in order
    gap: float = 1.5  # seconds of load before the first fault and after each
    seed: int = 0
    load: LoadSettings = field(default_factory=LoadSettings)
    world: WorldSettings = field(default_factory=WorldSettings)
    # Load goes on after the last fault until this many stories have begun, so a slow
    # machine runs as much as a fast one (bounded by max_seconds, which only a hung
    # switch reaches).
    min_stories: int = 0
    max_seconds: float = 240.0
    finish_seconds: float = 20.0  # after the last gap, how long calls may still retry
    settle_seconds: float = 30.0  # how long the reversal workers get to finish


@dataclass
class Outcome:
    events: list[FaultEvent]
    ops: list[ClientOp]
    verdict: Verdict
    settled: bool
    seconds: float
    folder: Path

    def attribute(self, at: float) -> str:
        if not at:
            return UNATTRIBUTED
        starts = [event.started for event in self.events]
        index = bisect.bisect_right(starts, at) - 1
        return BEFORE_FAULTS if index < 0 else self.events[index].kind


async def run_campaign(folder: Path, settings: CampaignSettings) -> Outcome:
    began = time.monotonic()
    rng = random.Random(settings.seed)
    async with running_world(folder, settings.world) as world:
        load = Load(world.address, f"f{secrets.token_hex(3)}", settings.load)
        stop = asyncio.Event()
        driving = asyncio.create_task(load.drive(stop))
        events: list[FaultEvent] = []
        try:
            await _sleep_unless_done(settings.gap, driving)
            injector = Injector(world, rng)
            for kind in settings.plan:
                events.append(await injector.inject(kind))
                await _sleep_unless_done(settings.gap, driving)
            while load.stories < settings.min_stories and time.monotonic() - began < settings.max_seconds:
                await _sleep_unless_done(0.2, driving)
        finally:
            stop.set()
            load.finish_by = time.monotonic() + settings.finish_seconds
            await asyncio.wait_for(driving, settings.finish_seconds + settings.load.timeout + 10.0)
        settled = await world.settle(settings.settle_seconds)
        await world.stop_switch()
        await world.stop_network()
        write_client_log(folder / "client.jsonl", load.ops)
        _write_events(folder / "faults.jsonl", events)
        journal = await read_journal(POSTGRES_DSN, world.schema)
        verdict = check(read_network_log(world.network_log), journal, load.ops)
        for finding in await audit_findings(POSTGRES_DSN, world.schema, world.folder / "keys" / "audit-signing.key"):
            verdict.violations.append(Violation("audit", "journal", world.schema, finding))
    return Outcome(events, load.ops, verdict, settled, time.monotonic() - began, folder)


def _write_events(path: Path, events: list[FaultEvent]) -> None:
    path.write_text("".join(json.dumps(asdict(event)) + "\n" for event in events))


async def _sleep_unless_done(seconds: float, driving: asyncio.Task[None]) -> None:
    """Sleeps; a load that ended early (it failed) raises here."""
    await asyncio.wait([driving], timeout=seconds)
    if driving.done():
        driving.result()
        raise RuntimeError("the load ended before the faults did")


@dataclass(frozen=True)
class Row:
    kind: str
    faults: int
    operations: int
    violations: int


def rows(outcome: Outcome) -> list[Row]:
    faults = Counter(event.kind for event in outcome.events)
    operations = Counter(outcome.attribute(op.started_at) for op in outcome.ops)
    violations = Counter(outcome.attribute(v.at) for v in outcome.verdict.violations)
    kinds = [BEFORE_FAULTS, *dict.fromkeys(event.kind for event in outcome.events)]
    if violations[UNATTRIBUTED]:
        kinds.append(UNATTRIBUTED)
    table = [Row(kind, faults[kind], operations[kind], violations[kind]) for kind in kinds]
    table.append(Row("total", sum(faults.values()), len(outcome.ops), len(outcome.verdict.violations)))
    return table


def summary(outcome: Outcome, listed: int = 40) -> str:
    verdict = outcome.verdict
    lines = [f"{'fault kind':<22} {'faults':>7} {'operations':>11} {'violations':>11}"]
    lines += [f"{r.kind:<22} {r.faults:>7} {r.operations:>11} {r.violations:>11}" for r in rows(outcome)]
    statuses = ", ".join(f"{kind} {code} {n}" for (kind, code), n in sorted(verdict.statuses.items()))
    lines += [
        "",
        f"run: {outcome.seconds:.0f} s, folder {outcome.folder}; settled: {outcome.settled}",
        f"statuses seen: {statuses}",
        f"client deadlines run out (no answer, allowed): {verdict.client_deadlines}; "
        f"operations the client gave up retrying: {verdict.unanswered}",
        f"money at the network: {verdict.totals.network}",
        f"money in the journal: {verdict.totals.journal}",
        f"transactions whose money differs: {len(verdict.totals.mismatched)}",
    ]
    lines += [f"fault: {e.kind} ({e.note})" for e in outcome.events if e.kind == "worker-kill"][:3]
    if verdict.violations:
        by_check = ", ".join(f"{check}/{kind} {n}" for (check, kind), n in sorted(verdict.by_check().items()))
        lines += ["", f"violations by check/operation: {by_check}"]
        lines += [f"  {v} (during {outcome.attribute(v.at)})" for v in verdict.violations[:listed]]
        if len(verdict.violations) > listed:
            lines.append(f"  ... {len(verdict.violations) - listed} more")
    return "\n".join(lines)


__all__ = ["CampaignSettings", "Outcome", "Row", "rows", "run_campaign", "summary"]
