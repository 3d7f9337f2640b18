"""How fast the fraud model scores a batch, compiled and pure Python, and what the drift
watch adds per item, at batches of 16 and 256 (median of --rounds).

    .venv/bin/python loadtests/bench_model.py [--rounds 15]

Rows are synthetic traffic's features (switch.risk.model.synthetic) scored by the shipped
model (switch/risk/model/fraud-model.json). A few seconds.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch import native
from switch.risk.model import drift, model, synthetic
from switch.risk.model.features import feature_rows
from switch.risk.model.score import PureScorer

BATCHES = (16, 256)


def per_item_us(action: Callable[[], object], items: int, rounds: int, repeat: int) -> float:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(repeat):
            action()
        times.append((time.perf_counter() - started) / repeat / items * 1e6)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args(argv)
    fraud_model = model.load()
    events, _ = synthetic.traffic(8, seed=1, holders=300)
    rows = feature_rows(events)[-4096:]
    compiled = native.load("switch.risk.model._score")
    pure = PureScorer(fraud_model)
    fast = compiled.Scorer(fraud_model) if compiled is not None else None
    print(f"## Fraud model scoring ({len(fraud_model.features)} features, model {fraud_model.version})\n")
    print("| batch | compiled µs/item | pure µs/item | pure / compiled | drift observe µs/item |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for size in BATCHES:
        batch = rows[:size]
        scores = pure.score_many(batch)
        repeat = max(1, 4096 // size)
        pure_us = per_item_us(partial(pure.score_many, batch), size, args.rounds, repeat)
        fast_us = per_item_us(partial(fast.score_many, batch), size, args.rounds, repeat) if fast else math.nan
        monitor = drift.DriftMonitor(fraud_model, window=2048)
        drift_us = per_item_us(partial(monitor.observe, batch, scores), size, args.rounds, repeat)
        print(f"| {size} | {fast_us:.2f} | {pure_us:.2f} | {pure_us / fast_us:.1f}x | {drift_us:.2f} |")
    if fast is None:
        print("\n(the compiled scorer is not built or SWITCH_NO_EXTENSIONS is set)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
