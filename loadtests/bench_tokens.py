"""Tokenization throughput: the compiled FF1 against the pure-Python twin, in the same run.

    .venv/bin/python loadtests/bench_tokens.py [--seconds 0.4] [--repeats 5] [--cpu 0]

Prints FF1 encryptions/s (the 6 middle digits of a 16-digit card, and a 16-digit
string) and card tokenizations/s (Tokenizer.tokenize: checks, split, FF1, the
Luhn cycle-walk, the CardToken) for cext and for pure Python, and their ratio.
Each side runs in a process of its own (multiprocessing, spawned: a fresh
interpreter), the pure-Python one with SWITCH_NO_EXTENSIONS=1, so nothing compiled
(not even Luhn) helps it. Both processes are pinned to one core; each figure is the
median of --repeats runs of about --seconds each.

The issue's aims: cext >= 20x pure-Python FF1, >= 100,000 card tokenizations/s.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence

KEY = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
CASES = ("FF1 encrypt, 6 digits", "FF1 encrypt, 16 digits", "card tokenize, 16 digits")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    compiled = _run_child(args, extensions=True)
    pure = _run_child(args, extensions=False)
    if not compiled.pop("compiled"):
        print("warning: switch.cards._ff1 is not built; the cext column is pure Python too", file=sys.stderr)
    pure.pop("compiled")
    print(f"one core (cpu {args.cpu}), median of {args.repeats} runs of ~{args.seconds} s")
    print()
    print("| operation | cext ops/s | pure Python ops/s | ratio |")
    print("| --- | ---: | ---: | ---: |")
    for case in CASES:
        print(f"| {case} | {compiled[case]:,.0f} | {pure[case]:,.0f} | {compiled[case] / pure[case]:,.1f}x |")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="FF1 and card tokenization throughput, cext vs pure Python")
    parser.add_argument("--seconds", type=float, default=0.4, help="length of one run")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure; the median is shown")
    parser.add_argument("--cpu", type=int, default=0, help="the core both processes are pinned to")
    return parser


def _run_child(args: argparse.Namespace, *, extensions: bool) -> dict[str, float | bool]:
    """_measure_all in a spawned interpreter: switch.native reads SWITCH_NO_EXTENSIONS when
    it is first imported, and the child inherits this process's environment as it starts."""
    saved = os.environ.pop("SWITCH_NO_EXTENSIONS", None)
    if not extensions:
        os.environ["SWITCH_NO_EXTENSIONS"] = "1"
    try:
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            figures: dict[str, float | bool] = pool.apply(_measure_all, (args.seconds, args.repeats, args.cpu))
    finally:
        os.environ.pop("SWITCH_NO_EXTENSIONS", None)
        if saved is not None:
            os.environ["SWITCH_NO_EXTENSIONS"] = saved
    return figures


def _measure_all(seconds: float, repeats: int, cpu: int) -> dict[str, float | bool]:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
    # Imported here so the child's SWITCH_NO_EXTENSIONS decides which implementation loads.
    from switch.cards import ff1
    from switch.cards.tokenizer import KeyRing, Tokenizer
    from switch.domain.models import Card

    cipher = ff1.FF1(KEY)
    tokenizer = Tokenizer(b"f" * 32, KeyRing({"k1": KEY}, "k1"))
    rng = random.Random(1)
    cards = [Card(_valid_pan(rng, 16), 12, 2030) for _ in range(1000)]
    middles = [card.pan[6:12] for card in cards]
    longs = [card.pan for card in cards]
    tweak = b"pan:16:411111:1111"
    operations: dict[str, Callable[[int], object]] = {
        CASES[0]: lambda i: cipher.encrypt(tweak, middles[i]),
        CASES[1]: lambda i: cipher.encrypt(tweak, longs[i]),
        CASES[2]: lambda i: tokenizer.tokenize(cards[i]),
    }
    figures: dict[str, float | bool] = {"compiled": ff1.FF1 is ff1.CompiledFF1}
    for name, operation in operations.items():
        figures[name] = statistics.median(_rate(operation, seconds) for _ in range(repeats))
    return figures


def _rate(operation: Callable[[int], object], seconds: float) -> float:
    """Operations per second over about `seconds`, in chunks of 1,000 (one pass over the inputs)."""
    done = 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for i in range(1000):
            operation(i)
        done += 1000
        now = time.perf_counter()
        if now >= deadline:
            return done / (now - start)


def _valid_pan(rng: random.Random, length: int) -> str:
    from switch.cards.luhn import reference_luhn_valid

    digits = "4" + "".join(rng.choice("0123456789") for _ in range(length - 2))
    return next(digits + d for d in "0123456789" if reference_luhn_valid(digits + d))


if __name__ == "__main__":
    sys.exit(main())
