"""`switch policy check | reload`: a risk policy bundle checked, and a running switch told
to read it again.

    switch policy check --config switch.toml            # the bundle [policy] names: its version
    switch policy reload --config switch.toml --pid N   # checked first, then SIGHUP to N

N is `switch serve`'s process (the supervisor relays the signal to every worker). Each
worker reads the bundle again, checks it whole and swaps it in between two batches; a
bundle a worker cannot load leaves its old one serving (switch_policy_reloads_total
{outcome="refused"}). A bundle this command refuses is never signalled.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from switch import config
from switch.config.policy import load_policy


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    policy = commands.add_parser("policy", help="check the risk policy bundle, or have a running switch reload it")
    actions = policy.add_subparsers(dest="policy_command", required=True)
    check = actions.add_parser("check", help="load the bundle [policy] names, whole, and print its version")
    reload = actions.add_parser("reload", help="check the bundle, then signal the running switch to read it again")
    reload.add_argument("--pid", type=int, required=True, help="the pid of `switch serve` (its log says it)")
    for command in (check, reload):
        command.add_argument("--config", required=True, help="the switch's TOML configuration (with [policy])")


def run(args: argparse.Namespace) -> int:
    settings = config.load(args.config, os.environ)
    if not settings.policy_file:
        print(f"{args.config}: no [policy] file: the risk tables are read once, at start", file=sys.stderr)
        return 2
    bundle = load_policy(Path(settings.policy_file))  # ConfigError: refused, nothing signalled
    print(f"policy {bundle.version}: {settings.policy_file}")
    if args.policy_command == "reload":
        try:
            os.kill(args.pid, signal.SIGHUP)
        except ProcessLookupError:
            print(f"no process {args.pid}", file=sys.stderr)
            return 2
        print(f"SIGHUP sent to {args.pid}")
    return 0
