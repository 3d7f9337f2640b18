"""The long fault campaign: many rounds of every fault kind, then one table.

    .venv/bin/python -m tests.faults.chaos [--rounds 10] [--seconds 2] [--seed 1] [--workers 2] [--keep]
    make chaos ARGS="--rounds 3"

Each round injects one fault of each kind (PostgreSQL cut, hold and delay, Redis
kill -9, worker kill -9), in an order drawn from the seed, with --seconds of load
before the first and after each; the defaults give 10 faults of each kind in
about 6 to 8 minutes on two cores. It prints, per fault kind, the faults
injected, the client operations that began during them and the violations the
checker found (tests/faults/checker.py), then what those violations are. The exit
status is 1 on any violation, 2 when the world could not be started. The run's
folder (network log, client log, switch logs) is removed on a pass unless --keep,
and kept on a failure.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from tests.faults.campaign import CampaignSettings, run_campaign, summary
from tests.faults.harness import WorldError, WorldSettings
from tests.faults.injector import FAULT_KINDS
from tests.faults.load import LoadSettings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.faults.chaos", description="Faults under load; does money move exactly once?"
    )
    parser.add_argument("--rounds", type=int, default=10, help="rounds of one fault of each kind (default 10)")
    parser.add_argument("--seconds", type=float, default=2.0, help="seconds of load between faults (default 2)")
    parser.add_argument("--seed", type=int, default=1, help="orders the faults and draws their durations")
    parser.add_argument("--workers", type=int, default=2, help="switch serve --workers (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the run's folder even when it passes")
    return parser


def plan(rounds: int, rng: random.Random) -> tuple[str, ...]:
    """rounds x every fault kind, each round in its own order."""
    faults: list[str] = []
    for _ in range(rounds):
        kinds = list(FAULT_KINDS)
        rng.shuffle(kinds)
        faults += kinds
    return tuple(faults)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = CampaignSettings(
        plan=plan(args.rounds, random.Random(args.seed)),
        gap=args.seconds,
        seed=args.seed,
        load=LoadSettings(),
        world=WorldSettings(workers=args.workers),
    )
    folder = Path(tempfile.mkdtemp(prefix="switch-chaos-"))
    print(f"{len(settings.plan)} faults, {args.seconds:g} s of load between them; run folder {folder}", flush=True)
    try:
        outcome = asyncio.run(run_campaign(folder / "world", settings))
    except WorldError as error:
        print(f"the world did not start: {error}", file=sys.stderr)
        return 2
    print(summary(outcome))
    failed = bool(outcome.verdict.violations)
    if failed or args.keep:
        print(f"kept {folder}: network.jsonl, client.jsonl and the switch logs are in world/")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
