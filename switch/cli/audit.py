"""`switch audit verify`: recomputes the journal's audit chains and checks its signed
checkpoints (switch.security.audit.verify); exit status 0 when the journal is
intact, 1 naming the first broken block and row when it is not.

Checkpoints are trusted when signed with the configured checkpoint key, or with
a public key named by --public-key (a rotated key, or a key kept apart from the
switch's configuration by whoever audits it)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from switch import config

if TYPE_CHECKING:
    from switch.security.audit.verify import Report

SHOWN = 20  # findings printed; the count says how many there are


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    audit = commands.add_parser("audit", help="the tamper-evident audit trail")
    audit_commands = audit.add_subparsers(dest="audit_command", required=True)
    check = audit_commands.add_parser("verify", help="recompute the audit chains and check the signed checkpoints")
    check.add_argument("--config", help="a TOML configuration file (the journal and the checkpoint key)")
    check.add_argument(
        "--public-key",
        action="append",
        default=[],
        metavar="PEM",
        help="a public key checkpoints may be signed with (repeatable); the configured key is always trusted",
    )


def run(settings: config.Settings, args: argparse.Namespace) -> int:
    from switch import server  # not at import: `switch serve` forks before gRPC is imported

    trusted = [server.checkpoint_public_key(settings)]
    for path in args.public_key:
        try:
            trusted.append(Path(path).read_bytes())
        except OSError as exc:
            raise config.ConfigError(f"--public-key: {path}: {exc.strerror}") from None
    report = asyncio.run(_verify(settings, trusted))
    print(summary(report, len(trusted)))
    return 0 if report.intact else 1


async def _verify(settings: config.Settings, trusted: list[bytes]) -> Report:
    from switch import server
    from switch.security.audit.verify import verify
    from switch.security.custody import verify_signature

    journal = await server.open_journal(settings)
    try:
        snapshot = await journal.read_audit()
    finally:
        await journal.close()
    return verify(snapshot, verify_signature, trusted)


def summary(report: Report, keys: int) -> str:
    counts = (
        f"{report.chains} chains, {report.blocks} blocks, {report.rows} rows, "
        f"{report.checkpoints} checkpoints (signatures checked against {keys} trusted keys)"
    )
    if report.intact:
        return f"audit verify: intact: {counts}"
    lines = [f"audit verify: TAMPERED: {len(report.findings)} findings over {counts}; the first:"]
    lines += [f"  {finding}" for finding in report.findings[:SHOWN]]
    if len(report.findings) > SHOWN:
        lines.append(f"  ... and {len(report.findings) - SHOWN} more")
    return "\n".join(lines)
