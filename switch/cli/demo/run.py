"""The demo's run: its private switch, the client that drives it, the summary
(the package's docstring says what it shows)."""

from __future__ import annotations

import asyncio
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import grpc
import uvloop

from switch.cli.demo.fees import DEMO_FEES
from switch.cli.demo.report import Report
from switch.cli.demo.script import VELOCITY, Script
from switch.cli.demo.tls import TlsFolder
from switch.config import Settings, StoreSettings, from_mapping
from switch.config.fraud_model import parse_fraud_model
from switch.config.policy import PolicyBundle
from switch.config.sanctions import SanctionsSettings
from switch.config.settings import DEFAULT_CALLERS
from switch.risk.aml import AmlPolicy
from switch.risk.kyc import KycPolicy, TierLimits
from switch.risk.sanctions.lists import ListSource
from switch.security.policy import CallerRule, Role
from switch.v1 import switch_pb2_grpc

DEMO_TIMEOUT = 60.0


def main(settings: Settings, calls: int = 300, tls_dir: Path | None = None) -> int:
    """Runs the demo on a private embedded switch; 0 when every expectation held."""
    tls = TlsFolder.open(tls_dir) if tls_dir is not None else None
    with tempfile.TemporaryDirectory(prefix="switch-demo-") as folder:
        return uvloop.run(_run(demo_settings(settings, Path(folder), tls), calls, tls))


def demo_settings(settings: Settings, folder: Path, tls: TlsFolder | None = None) -> Settings:
    """The demo's private switch: the embedded stores in `folder` on a free loopback port,
    the velocity limit, the demo's fees unless some are configured; and its own transport
    and callers, whatever is configured: plaintext and every caller allowed, or mutual TLS
    with tls's files and its client allowed."""
    fees = settings if settings.fee_schedules else from_mapping(DEMO_FEES)
    return replace(
        settings,
        server=replace(settings.server, host="127.0.0.1", port=0, workers=1),
        stores=StoreSettings(sqlite_path=str(folder / "journal.sqlite3")),
        limits=(*settings.limits, VELOCITY),
        tokenization=None,  # the embedded default makes its own key ring in the folder
        fee_schedules=fees.fee_schedules,
        fx=fees.fx,
        security=replace(settings.security, trusted_identity_header=""),
        tls=tls.server_files() if tls else None,
        callers=(_demo_caller(tls),),
        sanctions=settings.sanctions or DEMO_SANCTIONS,
        policy=PolicyBundle(
            settings.policy.version,
            settings.policy.kyc or DEMO_KYC,
            settings.policy.aml or AmlPolicy(),
            settings.policy.fraud_model or parse_fraud_model({"decline": DEMO_DECLINE_SCORE}),
        ),
    )


# The risk step, unless configured: a small excerpt of OFAC's SDN list (legacy CSV), a
# "limited" KYC tier (a holder waiting for verification: 50.00 USD over its lifetime),
# the AML rules and the shipped fraud model.
# The shipped model declines from a score of 0.2: a card paying again within minutes
# comes near it, and the demo pays with its test cards again and again to show their
# issuer's answers. Card testing (the script's) still reaches this one.
DEMO_DECLINE_SCORE = 0.9
DEMO_SANCTIONS = SanctionsSettings(sources=(ListSource("ofac-csv", Path(__file__).with_name("sanctions")),))
DEMO_KYC = KycPolicy(
    "verified",
    MappingProxyType(
        {"verified": MappingProxyType({}), "limited": MappingProxyType({"USD": TierLimits(lifetime=5_000)})}
    ),
)


def _demo_caller(tls: TlsFolder | None) -> CallerRule:
    """Who may call the demo's switch: its client (or, in plaintext, anyone) with the
    client's roles and compliance, which sets tiers and lists alerts."""
    rule = tls.caller_rule() if tls else DEFAULT_CALLERS[0]
    return replace(rule, roles=rule.roles | {Role.COMPLIANCE})


async def _run(settings: Settings, calls: int, tls: TlsFolder | None) -> int:
    from switch import server

    running = await server.build(settings)
    report = Report()
    started = time.perf_counter()
    target = f"127.0.0.1:{running.port}"
    try:
        channel = grpc.aio.secure_channel(target, tls.credentials()) if tls else grpc.aio.insecure_channel(target)
        async with channel:
            stub = switch_pb2_grpc.SwitchStub(channel)
            tokens = switch_pb2_grpc.TokensStub(channel)
            async with asyncio.timeout(DEMO_TIMEOUT):
                await Script(stub, tokens, report).run(calls)
    except TimeoutError:
        report.fail(f"the demo did not finish within {DEMO_TIMEOUT:.0f} s")
    finally:
        await running.stop(1.0)
    report.print_summary(calls, time.perf_counter() - started)
    return 1 if report.failures else 0
