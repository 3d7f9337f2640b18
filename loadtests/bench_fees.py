"""The fee engine's throughput: compiled core (switch.money._fees_core) against its
pure-Python twin (switch.money.fees_core), measured in the same run.

    .venv/bin/python loadtests/bench_fees.py [--seconds 0.4] [--repeats 5] [--batch 256]

Rows: the engine's quote_many on a batch (schedule with tiers, cross-border and
2-level shares, as the pipeline would call it), the core's quote_many alone (no
matching, no Money objects), and FX conversion through the engine and through
the core's convert_many. Each cell is the median of --repeats runs of about
--seconds each, pinned to one CPU; the ratio is compiled / pure.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from types import ModuleType

from switch import native
from switch.config.fees import parse_fee_schedules, parse_fx
from switch.domain.models import Money
from switch.money import fees_core
from switch.money.fees import FeeEngine, QuoteRequest

SCHEDULE = {
    "name": "cards",
    "rail": "card",
    "percent": "2.9",
    "fixed": 30,
    "min": 50,
    "max": 200000,
    "cross_border_percent": "1.0",
    "tiers": [{"up_to": 10000, "percent": "3.4", "fixed": 30}, {"percent": "2.5", "fixed": 20}],
    "shares": [
        {"party": "platform", "percent": "50"},
        {"party": "partner", "percent": "50", "shares": [{"party": "agent", "percent": "40"}]},
    ],
}
FX = {"USD/EUR": "0.9231", "USD/JPY": "151.2345", "markup_percent": "1.5"}


def rate(run: Callable[[], object], items: int, seconds: float, repeats: int) -> float:
    """Median items/s over repeats runs of about `seconds` each."""
    results = []
    for _ in range(repeats):
        done, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            run()
            done += items
        results.append(done / elapsed)
    return statistics.median(results)


def workloads(core: ModuleType, batch: int) -> dict[str, Callable[[], object]]:
    engine = FeeEngine(parse_fee_schedules([SCHEDULE]), parse_fx(FX), core=core)
    chance = random.Random(7)
    amounts = [chance.randint(100, 10**6) for _ in range(batch)]
    requests = [
        QuoteRequest("m-1", Money(a, "USD"), "card", "US", chance.choice(["US", "BR"]), chance.choice(["", "EUR"]))
        for a in amounts
    ]
    moneys = [Money(a, "USD") for a in amounts]
    pricing = engine._priced[0].pricing  # the core object the engine built: measured without the engine around it
    pricings, crosses = [pricing] * batch, [bool(i % 2) for i in range(batch)]
    return {
        f"engine.quote_many ({batch}/call, 2-level shares, half with FX)": lambda: engine.quote_many(requests),
        f"core quote_many ({batch}/call, 2-level shares)": lambda: core.quote_many(pricings, amounts, crosses),
        "engine.convert (one Money at a time)": lambda: [engine.convert(m, "EUR") for m in moneys],
        f"core convert_many ({batch}/call)": lambda: core.convert_many(amounts, 92_310_000, 15_000, 0),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=0.4)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    compiled = native.load("switch.money._fees_core")
    if compiled is None:
        sys.exit("switch.money._fees_core is not built (or SWITCH_NO_EXTENSIONS is set): nothing to compare")
    fast, slow = workloads(compiled, args.batch), workloads(fees_core, args.batch)
    print(f"Python {sys.version.split()[0]}, {args.repeats} runs of ~{args.seconds} s each, median, one CPU\n")
    print("| workload | cext items/s | pure items/s | cext / pure |")
    print("| --- | ---: | ---: | ---: |")
    for name in fast:
        a = rate(fast[name], args.batch, args.seconds, args.repeats)
        b = rate(slow[name], args.batch, args.seconds, args.repeats)
        print(f"| {name} | {a:,.0f} | {b:,.0f} | {a / b:.1f}x |")


if __name__ == "__main__":
    main()
