"""`switch risk train`: trains the fraud model on synthetic traffic and writes its file.

A development command: it needs numpy and scikit-learn, which only the dev extras install.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from switch.risk.model.model import SHIPPED


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="switch risk train", description=__doc__)
    parser.add_argument(
        "--out", type=Path, default=SHIPPED, help="where to write the model (default: the shipped file)"
    )
    parser.add_argument("--seed", type=int, default=None, help="the synthetic traffic's seed")
    parser.add_argument("--days", type=int, default=None, help="days of synthetic traffic")
    parser.add_argument("--config", help="a switch's configuration: also learn from its journal's ReportFraud labels")
    args = parser.parse_args(argv)
    if importlib.util.find_spec("sklearn") is None or importlib.util.find_spec("numpy") is None:
        print("switch risk train needs scikit-learn: .venv/bin/pip install -e '.[dev]'", file=sys.stderr)
        return 2
    from switch.risk.model import train

    labelled, skipped = _from_journal(args.config) if args.config else ([], 0)
    trained = train.train(
        seed=train.DEFAULT_SEED if args.seed is None else args.seed,
        days=train.DEFAULT_DAYS if args.days is None else args.days,
        labelled=labelled,
    )
    train.write(trained, args.out)
    thresholds, decline, alert = trained.model.thresholds, trained.at_decline, trained.at_alert
    table = [
        ("events", f"{trained.events}"),
        ("fraud share", f"{trained.fraud_share:.2%}"),
        ("held-out AUC", f"{trained.held_out_auc:.4f}"),
        (
            "decline threshold (precision, recall)",
            f"{thresholds.decline:.4f} ({decline.precision:.3f}, {decline.recall:.3f})",
        ),
        ("alert threshold (precision, recall)", f"{thresholds.alert:.4f} ({alert.precision:.3f}, {alert.recall:.3f})"),
        ("labelled in the journal (fraud)", f"{len(labelled)} ({sum(f for _, f in labelled)})" if args.config else "-"),
        ("labelled, not scored (skipped)", f"{skipped}" if args.config else "-"),
        ("model version", trained.model.version),
        ("written to", str(args.out)),
    ]
    print("| fraud model | value |\n| --- | ---: |")
    for name, value in table:
        print(f"| {name} | {value} |")
    return 0


def _from_journal(config_path: str) -> tuple[list[tuple[list[float], bool]], int]:
    """The labelled examples the configured journal holds, and how many it could not use."""
    import asyncio

    from switch import config
    from switch.risk.model.labels import labelled_rows
    from switch.server import open_journal

    async def read() -> list[tuple[str, bool]]:
        journal = await open_journal(config.load(config_path, os.environ))
        try:
            return await journal.labelled_decisions()
        finally:
            await journal.close()

    return labelled_rows(asyncio.run(read()))


if __name__ == "__main__":
    raise SystemExit(main())
