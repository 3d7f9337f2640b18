"""The composition root: reads nothing itself, wires everything from Settings.

build() opens the stores, loads the adapters named by the routes, assembles the
pipeline, batcher and servicers, and starts a grpc.aio server (port 0 picks a
free port: tests use it). RunningSwitch.stop() drains: health goes NOT_SERVING,
in-flight calls finish, queued work is answered, then stores and adapters close.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection

from switch.adapters import contract as adapter_contract
from switch.adapters.contract import Adapter, Capability, ReturnsAdapter
from switch.api import decoding
from switch.api.servicer import SwitchServicer, TokensServicer
from switch.cards.tokenizer import KeyRing, Tokenizer
from switch.config import ConfigError, RouteSettings, Settings
from switch.config.fraud_model import FraudModelSettings
from switch.config.keys import (
    FINGERPRINT_KEY_FILE,
    TOKEN_KEY_FILE,
    new_fingerprint_key,
    new_key_ring,
    parse_key_ring,
    read_fingerprint_key,
    write_key_file,
    write_secret,
)
from switch.config.policy import PolicyBundle, load_policy
from switch.config.routing import parse_routing
from switch.config.settings import DEFAULT_CALLERS
from switch.domain.audit import EventKind, SecurityEvent
from switch.domain.errors import StartupError
from switch.domain.models import INT64_MAX, Authorization, Money, MoneyOverflow
from switch.flow.batcher import MicroBatcher
from switch.flow.kyc import HolderTiers
from switch.flow.pending_operations import PendingOperationWorker, lease_seconds
from switch.flow.periodic import Every
from switch.flow.pipeline import AuthorizationPipeline
from switch.flow.promotion import Promotions
from switch.flow.returns import Returns
from switch.flow.reversals import ReversalWorker
from switch.flow.transactions import TransactionService
from switch.money.fees import FeeEngine, FxRateMissing
from switch.risk.aml import AmlRules
from switch.risk.assess import Assessor
from switch.risk.holders import HolderCounters
from switch.risk.kyc import KycRules
from switch.risk.model.drift import DriftMonitor
from switch.risk.model.model import FraudModel
from switch.risk.policy import CurrentPolicy, RiskPolicy
from switch.risk.sanctions.lists import ListError
from switch.risk.sanctions.refresh import ListRefresh
from switch.risk.sanctions.screening import Screening
from switch.risk.travel_rule import TravelRule
from switch.risk.velocity import RiskRules
from switch.routing.breaker import Breakers, BreakerState
from switch.routing.router import Router
from switch.security.access import Access
from switch.security.audit.checkpoints import Checkpoints
from switch.security.audit.trail import AuditTrail
from switch.security.custody import CheckpointSigner, Custody, CustodyError, FileKeys, TokenKeys
from switch.security.custody import open_custody as open_key_custody
from switch.security.custody.files import SIGNING_KEY_FILE, new_signing_key_pem
from switch.security.enumeration import EnumerationGuard
from switch.security.identity import IdentitySource
from switch.security.policy import Policy
from switch.security.ratelimit import CallerRateLimit
from switch.security.tls import ServerCertificates
from switch.stores import store_errors
from switch.stores.base import Journal, StateStore
from switch.telemetry.metrics import Counter, SwitchMetrics
from switch.telemetry.metrics import serve as serve_metrics
from switch.v1 import switch_pb2, switch_pb2_grpc

SIMULATORS = "switch.simulators"  # entry points: name -> async start(host, port, **options)
SERVICE_NAME = switch_pb2.DESCRIPTOR.services_by_name["Switch"].full_name
TOKENS_SERVICE_NAME = switch_pb2.DESCRIPTOR.services_by_name["Tokens"].full_name

MAX_MESSAGE_BYTES = 16 * 1024 * 1024

log = logging.getLogger("switch")


@dataclass
class RunningSwitch:
    server: grpc.aio.Server
    port: int
    health: HealthServicer
    batcher: MicroBatcher
    reversals: ReversalWorker
    state: StateStore
    journal: Journal
    adapters: list[Adapter]
    simulators: list[Simulator]
    metrics: SwitchMetrics
    metrics_server: asyncio.Server | None = None
    pending_operations: PendingOperationWorker | None = None
    certificates: ServerCertificates | None = None  # reload() on SIGHUP
    custody: Custody | None = None  # this worker's keys; checkpoint_signer(settings, custody) signs with it
    trail: AuditTrail | None = None  # security events
    checkpoints: Checkpoints | None = None  # signs the audit chains' heads
    checkpointing: Every | None = None  # ... every security.audit_checkpoint_seconds
    sanctions_refresh: Every | None = None  # reads the sanctions lists again every sanctions.refresh_seconds
    screening: Screening | None = None  # its index's process goes with the switch
    # On SIGHUP: [policy]'s bundle and its latest promotion read again (False: refused).
    reload_policy: Callable[[], Awaitable[bool]] | None = None

    async def stop(self, grace_seconds: float) -> None:
        await self.health.enter_graceful_shutdown()
        if self.metrics_server is not None:
            self.metrics_server.close()
        await self.server.stop(grace_seconds)
        await self.batcher.close()
        if self.sanctions_refresh is not None:
            await self.sanctions_refresh.close()
        if self.screening is not None:
            self.screening.close()
        await self.reversals.close()
        if self.pending_operations is not None:
            await self.pending_operations.close()
        for adapter in self.adapters:
            await adapter.close()
        for simulator in self.simulators:
            await simulator.close()
        await self._close_audit()
        await self.state.close()
        await self.journal.close()
        if self.custody is not None:
            self.custody.close()

    async def wait(self) -> None:
        await self.server.wait_for_termination()

    async def _close_audit(self) -> None:
        """Writes the security events still buffered and signs the chains' final heads."""
        if self.checkpointing is not None:
            await self.checkpointing.close()
        if self.trail is not None:
            await self.trail.close()
        if self.checkpoints is not None:
            try:
                await self.checkpoints.sign()
            except Exception:  # the journal is going away with the switch: verify still covers the chain
                log.exception("could not sign the audit chains' last checkpoint")


def _alone() -> None:
    """A switch of one process has no other worker to tell of a promotion."""


# spread: makes every other worker of this switch read its policy again (PromoteModel);
# `switch serve --workers N` signals its supervisor, which relays SIGHUP to them all.
async def build(settings: Settings, spread: Callable[[], None] = _alone) -> RunningSwitch:
    # What the configuration alone can refuse (keys, adapters and their options) is
    # checked before anything starts or connects. The keys are reached here, in the
    # worker, after the fork: a PKCS#11 token is initialised and logged in to now.
    keys = open_custody(settings)
    try:
        fingerprint, ring = _keys(settings, keys)
        tokenizer = Tokenizer(fingerprint, ring)
    except BaseException:
        keys.close()
        raise
    fees = FeeEngine(settings.fee_schedules, settings.fx)
    simulators, settings = await _start_default_simulators(settings)
    router = _router(settings, fees)
    metrics = SwitchMetrics()
    state, journal = await open_stores(settings, metrics.state_store_events)
    await _start_adapters(router, Returns(journal, outcomes=metrics.returns))
    timeout = settings.adapters.timeout_ms / 1000.0
    operation_lease = lease_seconds(timeout)  # how long a capture, void or refund's sender holds it
    screening, sanctions_refresh = await _screening(settings, metrics)
    current_policy, reload_policy = await _current_policy(settings, fees, metrics, journal)
    pipeline = AuthorizationPipeline(
        tokenizer=tokenizer,
        state=state,
        journal=journal,
        router=router,
        risk=RiskRules(settings.limits),
        fees=fees,
        adapter_timeout=timeout,
        metrics=metrics,
        screening=screening,
        policy=current_policy,
    )
    batcher = MicroBatcher(pipeline.run, settings.batcher, settings.idempotency.lease_seconds, metrics)
    _watch(metrics, batcher, router)
    transactions = TransactionService(
        state=state,
        journal=journal,
        router=router,
        adapter_timeout=timeout,
        in_flight_wait_seconds=settings.idempotency.lease_seconds,
        lease_seconds=operation_lease,
    )

    server = grpc.aio.server(
        options=[
            ("grpc.so_reuseport", 1),
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ],
    )
    # Through switch.api.decoding: a request that does not decode is INVALID_ARGUMENT, not UNKNOWN.
    trail = AuditTrail(journal)
    switch_servicer, tokens_servicer = _servicers(
        settings,
        _access(settings, trail),
        batcher=batcher,
        transactions=transactions,
        fees=fees,
        tokenizer=tokenizer,
        journal=journal,
        state=state,
        policy=current_policy,
        promotions=Promotions(journal, lambda: current_policy.policy, reload_policy, spread),
    )
    checkpoints, checkpointing = _checkpoints(settings, journal, keys, ring, trail)
    decoding.register(switch_pb2_grpc.add_SwitchServicer_to_server, switch_servicer, server)
    decoding.register(switch_pb2_grpc.add_TokensServicer_to_server, tokens_servicer, server)
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    services = (SERVICE_NAME, TOKENS_SERVICE_NAME, health.SERVICE_NAME, reflection.SERVICE_NAME)
    reflection.enable_server_reflection(services, server)
    address = f"{settings.server.host}:{settings.server.port}"
    certificates = None if settings.tls is None else ServerCertificates(settings.tls, _reload_events(trail))
    if certificates is None:
        port = server.add_insecure_port(address)
    else:
        port = server.add_secure_port(address, certificates.credentials())
    reversals = ReversalWorker(
        journal,
        router,
        time_left=timeout,
        intent_lease=settings.idempotency.lease_seconds,
        outcomes=metrics.reversals,
        cards=tokenizer.card_of,
    )
    operations = PendingOperationWorker(journal, router, adapter_timeout=timeout, lease_seconds=operation_lease)
    batcher.start()
    for task in (reversals, operations, checkpointing, sanctions_refresh):
        if task is not None:
            task.start()
    await server.start()
    exporter = None
    if settings.server.metrics_port:
        exporter = await serve_metrics(metrics, settings.server.host, settings.server.metrics_port)
    for service in ("", SERVICE_NAME, TOKENS_SERVICE_NAME):
        await health_servicer.set(service, health_pb2.HealthCheckResponse.SERVING)
    if not settings.fee_schedules:
        log.info("no [[fee_schedule]] configured: no fee is charged and QuoteFee answers 0")
    _log_transport(settings)
    return RunningSwitch(
        server,
        port,
        health_servicer,
        batcher,
        reversals,
        state,
        journal,
        router.adapters,
        simulators,
        metrics,
        exporter,
        operations,
        certificates,
        keys,
        trail,
        checkpoints,
        checkpointing,
        sanctions_refresh,
        screening,
        reload_policy,
    )


async def _screening(settings: Settings, metrics: SwitchMetrics) -> tuple[Screening | None, Every | None]:
    """Sanctions screening as [sanctions] configures it, its lists read now (a list that cannot be
    read refuses the start), and the task that reads them again; (None, None) without the table."""
    configured = settings.sanctions
    if configured is None:
        return None, None
    screening = Screening(configured.policy)
    if not configured.sources:
        return screening, None
    metrics.gauge(
        "switch_sanctions_list",
        "The sanctions lists' version (SHA-256) this worker screens against: 1 for the one served",
        lambda: [((("version", screening.version),), 1.0)] if screening.version else [],
    )
    refresh = ListRefresh(screening, configured.sources, outcomes=metrics.sanctions_refreshes)
    try:
        await refresh.first()
    except (ListError, OSError) as error:
        raise StartupError(f"sanctions.lists: {error}") from None
    if not configured.refresh_seconds:
        return screening, None
    return screening, Every(configured.refresh_seconds, "sanctions-refresh", refresh.refresh)


async def _start_adapters(router: Router, returns: Returns) -> None:
    """Starts every route's adapter; one that hears returns from its network delivers them to returns."""
    for adapter in router.adapters:
        if Capability.RETURNS in adapter.capabilities:
            cast(ReturnsAdapter, adapter).listen(returns)
        await adapter.start()


def _servicers(
    settings: Settings,
    access: Access,
    *,
    batcher: MicroBatcher,
    transactions: TransactionService,
    fees: FeeEngine,
    tokenizer: Tokenizer,
    journal: Journal,
    state: StateStore,
    policy: CurrentPolicy,
    promotions: Promotions,
) -> tuple[SwitchServicer, TokensServicer]:
    security = settings.security
    # One guard for both ways to a token: Tokenize and a card Authorize.
    guard = EnumerationGuard(security.enumeration_max_distinct, security.enumeration_window_seconds)
    rate = CallerRateLimit(security.tokenize_per_second, security.tokenize_burst)
    detokenize_rate = CallerRateLimit(security.detokenize_per_second, security.detokenize_burst)
    return (
        SwitchServicer(
            batcher,
            transactions,
            fees,
            access,
            guard,
            alerts=journal.list_alerts,
            holder_tiers=HolderTiers(tokenizer, journal, state, lambda: policy.policy.tiers),
            promotions=promotions,
            travel_rule=TravelRule(_in_usd(fees)),
        ),
        TokensServicer(tokenizer, access, guard, rate, detokenize_rate),
    )


def risk_policy(bundle: PolicyBundle, fees: FeeEngine, live_model: str | None = None) -> RiskPolicy:
    """What a policy bundle becomes in a worker: KYC caps ([kyc]) and, for the AML rules
    ([aml]) and the fraud model ([fraud_model]), each payment's parties' activity; the
    fraud score (with its drift monitor) and the AML rules over it. live_model: the version
    a promotion made live (PromoteModel); the challenger's swaps the two models' roles."""
    aml = AmlRules(bundle.aml) if bundle.aml is not None else None
    scoring = bundle.fraud_model
    holders = HolderCounters(
        KycRules(bundle.kyc) if bundle.kyc is not None else None,
        activity=aml is not None or scoring is not None,
        in_usd=_in_usd(fees),
        near_threshold=(lambda cents: aml.near_threshold(cents / 100)) if aml is not None else (lambda cents: False),
    )
    assessor = None
    if scoring is not None or aml is not None:
        model, challenger = _live_and_shadow(scoring, live_model) if scoring is not None else (None, None)
        drift = DriftMonitor(model, scoring.drift_window) if scoring is not None and model is not None else None
        assessor = Assessor(model, aml, drift, challenger=challenger)
    tiers = frozenset(bundle.kyc.tiers) if bundle.kyc is not None else frozenset()
    return RiskPolicy(bundle.version, holders if holders.active else None, assessor, tiers)


def _live_and_shadow(scoring: FraudModelSettings, live_model: str | None) -> tuple[FraudModel, FraudModel | None]:
    """(the model that decides, the one in shadow): the bundle's, or swapped once its
    challenger was promoted. Each keeps the thresholds of its own table."""
    challenger = scoring.challenger
    if challenger is not None and live_model == challenger.version:
        return challenger, scoring.model
    return scoring.model, challenger


async def _current_policy(
    settings: Settings, fees: FeeEngine, metrics: SwitchMetrics, journal: Journal
) -> tuple[CurrentPolicy, Callable[[], Awaitable[bool]]]:
    """The risk policy the switch starts with (its bundle's latest promotion applied: a
    restart keeps it), its version and its drift watched; and what reads it again."""
    bundle = settings.policy
    live = await journal.promoted_model(bundle.version) if bundle.version else None
    current = CurrentPolicy(risk_policy(bundle, fees, live))
    _watch_policy(metrics, current)
    return current, _policy_reload(settings, fees, current, metrics, journal)


def _watch_policy(metrics: SwitchMetrics, current: CurrentPolicy) -> None:
    """The policy's version, and the drift monitor's PSI per feature and score, as gauges."""
    metrics.gauge(
        "switch_policy",
        "The risk policy bundle this worker applies, by version (empty: the main file's own tables)",
        lambda: [((("version", current.policy.version),), 1.0)],
    )

    def psi() -> list[tuple[tuple[tuple[str, str], ...], float]]:
        assessor = current.policy.assessor
        drift = assessor.drift if assessor is not None else None
        return [] if drift is None else [((("feature", name),), value) for name, value in drift.psi().items()]

    metrics.gauge(
        "switch_risk_psi",
        "Population stability index of each fraud-model feature and of the score, over this worker's "
        "last drift_window sampled payments against the model's training data (above 0.25: shifted)",
        psi,
    )


def _policy_reload(
    settings: Settings, fees: FeeEngine, current: CurrentPolicy, metrics: SwitchMetrics, journal: Journal
) -> Callable[[], Awaitable[bool]]:
    """Reads [policy]'s bundle and its latest promotion (journaled by PromoteModel in any
    worker) again, and swaps the policy in if either changed (SIGHUP); a bundle that does
    not load, or a journal that does not answer, is refused, counted and logged, and the
    policy in force goes on serving."""
    # One at a time: a reload that read the journal before a promotion must not swap
    # its policy in after one that read it since.
    serial = asyncio.Lock()

    async def reload() -> bool:
        if not settings.policy_file:
            log.info("policy reload: no [policy] file to read again")
            return True
        async with serial:
            return await _reload_once(Path(settings.policy_file), fees, current, metrics, journal)

    return reload


async def _reload_once(
    path: Path, fees: FeeEngine, current: CurrentPolicy, metrics: SwitchMetrics, journal: Journal
) -> bool:
    in_force = current.policy
    refusals: tuple[type[Exception], ...] = (ConfigError, *store_errors())
    try:
        bundle = load_policy(path)
        promoted = await journal.promoted_model(bundle.version)
    except refusals as exc:
        metrics.policy_reloads.inc((("outcome", "refused"),))
        log.error("policy reload refused, %s still in force: %s", in_force.version, exc)
        return False
    scoring = bundle.fraud_model
    live = _live_and_shadow(scoring, promoted)[0].version if scoring is not None else ""
    if (bundle.version, live) == (in_force.version, in_force.live_model):
        metrics.policy_reloads.inc((("outcome", "unchanged"),))
        return True
    policy = risk_policy(bundle, fees, promoted)
    current.swap(policy)
    metrics.policy_reloads.inc((("outcome", "swapped"),))
    log.warning(
        "policy %s in force, live model %s (was %s, %s)",
        policy.version,
        policy.live_model or "none",
        in_force.version,
        in_force.live_model or "none",
    )
    return True


def _in_usd(fees: FeeEngine) -> Callable[[Money], int | None]:
    """An amount's worth in USD minor units at the configured rates (switch.risk.travel_rule); None
    without a rate, and past int64 as the largest amount."""

    def in_usd(amount: Money) -> int | None:
        try:
            return fees.convert(amount, "USD").minor_units
        except FxRateMissing:
            return None
        except MoneyOverflow:
            return INT64_MAX

    return in_usd


def _checkpoints(
    settings: Settings, journal: Journal, keys: Custody, ring: KeyRing, trail: AuditTrail
) -> tuple[Checkpoints, Every]:
    """The signer of this worker's checkpoints, and the task that signs them; the keys it
    serves with go into the audit trail."""
    signer = checkpoint_signer(settings, keys)
    checkpoints = Checkpoints(journal, signer)
    trail.note(_keys_event(keys, ring, signer))
    return checkpoints, Every(settings.security.audit_checkpoint_seconds, "audit-checkpoints", checkpoints.sign)


def _keys_event(custody: Custody, ring: KeyRing, signer: CheckpointSigner) -> SecurityEvent:
    """The keys this worker serves with, for the audit trail: a rotation shows as the
    next start's event naming another active key. Ids only, never key material."""
    keys = f"{', '.join(sorted(ring.keys))} (active {ring.active_key})"
    detail = f"custody {custody.kind}; token keys {keys}; checkpoint key {signer.key_id} ({signer.algorithm})"
    return SecurityEvent(EventKind.KEYS, "", "allowed", "keys loaded", detail, time.time())


def _reload_events(trail: AuditTrail) -> Callable[[str], None]:
    """What the TLS files' reload (in gRPC's thread) tells the audit trail, on the loop."""
    loop = asyncio.get_running_loop()

    def reloaded(what: str) -> None:
        event = SecurityEvent(EventKind.RELOAD, "", "allowed", "server.tls", what, time.time())
        loop.call_soon_threadsafe(trail.note, event)

    return reloaded


def _access(settings: Settings, trail: AuditTrail) -> Access:
    """Who may call: identities from client certificates with TLS, else from the trusted
    sidecar's header when one is named, else nobody's (the anonymous caller)."""
    if settings.tls is not None:
        # Without required client certificates gRPC asks for none: nobody is named.
        source = IdentitySource.CERTIFICATE if settings.tls.require_client_cert else IdentitySource.NONE
    elif settings.security.trusted_identity_header:
        source = IdentitySource.HEADER
    else:
        source = IdentitySource.NONE
    policy = Policy(DEFAULT_CALLERS if settings.callers is None else settings.callers)
    return Access(policy, source, settings.security.trusted_identity_header, trail)


def _log_transport(settings: Settings) -> None:
    if settings.tls is not None:
        if settings.tls.require_client_cert:
            log.info("serving mutual TLS; callers are named by their certificates")
        else:
            log.warning("serving TLS without client certificates: every caller is anonymous")
    elif settings.server.plaintext:
        log.info("serving plaintext, as server.plaintext says (a TLS-terminating sidecar in front)")
    else:  # the loader allows nothing else: the embedded default on loopback
        log.info("serving plaintext on loopback (the embedded default); configure [server.tls] for TLS")
    if settings.callers is None:
        log.info(
            "no [[security.callers]]: every caller may authorize, operate, read, quote and tokenize "
            "for every merchant, and none may detokenize"
        )


def _watch(metrics: SwitchMetrics, batcher: MicroBatcher, router: Router) -> None:
    """The gauges: read when scraped, never on the hot path."""
    metrics.gauge("switch_pending_items", "Items admitted and not yet answered", lambda: [((), batcher.owed)])
    levels = {BreakerState.CLOSED: 0, BreakerState.HALF_OPEN: 1, BreakerState.OPEN: 2}
    metrics.gauge(
        "switch_route_breaker",
        "Each route's circuit breaker: 0 closed, 1 half-open, 2 open",
        lambda: [((("route", route),), levels[state]) for route, state in sorted(router.breaker_states().items())],
    )


class Simulator(Protocol):
    async def close(self) -> None: ...


# The real adapters the embedded default puts behind its routes: route -> (simulator,
# adapter), both by entry-point name. A pair not installed leaves its route on the
# in-process simulated issuer.
DEFAULT_SIMULATED_ROUTES = {"card": ("card", "card_iso8583"), "instant": ("rail", "rail_iso20022")}


async def _start_default_simulators(settings: Settings) -> tuple[list[Simulator], Settings]:
    """The embedded default runs the real paths: it starts the installed simulators on
    loopback and routes to them through their adapters (ISO 8583 cards, ISO 20022
    rails). Configured routes, and the production stores, start nothing."""
    if settings.routes_configured or not settings.stores.embedded:
        return [], settings
    simulators = {ep.name: ep for ep in entry_points(group=SIMULATORS)}
    adapters = adapter_contract.discover()
    started: list[Simulator] = []
    routes = list(settings.routes)
    for index, route in enumerate(routes):
        simulator_name, adapter_name = DEFAULT_SIMULATED_ROUTES.get(route.name, ("", ""))
        if simulator_name not in simulators or adapter_name not in adapters:
            continue
        simulator, port = await simulators[simulator_name].load()("127.0.0.1", 0)
        started.append(simulator)
        routes[index] = RouteSettings(route.name, adapter_name, route.rail, {"host": "127.0.0.1", "port": port})
    return started, replace(settings, routes=tuple(routes))


def _router(settings: Settings, fees: FeeEngine) -> Router:
    """One adapter per configured route, started by name: installed is not enabled."""
    installed = adapter_contract.discover()
    adapters: dict[str, Adapter] = {}
    for route in settings.routes:
        if route.adapter not in installed:
            raise ConfigError(f"routes.{route.name}.adapter: no installed adapter named {route.adapter!r}")
        options = dict(route.options)
        if route.adapter == "simulated":  # the simulator's latency has its own setting
            options.setdefault("latency_ms", settings.adapters.simulator_latency_ms)
        try:
            adapters[route.name] = installed[route.adapter](route.name, options)
        except (ValueError, TypeError) as exc:  # the adapter contract's way to refuse its options
            raise ConfigError(f"routes.{route.name}.options: {exc}") from None
    table = settings.routing or parse_routing({}, None)
    rails = {route.name: route.rail for route in settings.routes}

    def cost(route: str, authorization: Authorization) -> int:
        """What the merchant would pay on this route: its rail's fee schedule."""
        try:
            return fees.quote(authorization.merchant_id, authorization.amount, rails[route]).fee.minor_units
        except MoneyOverflow:
            return INT64_MAX

    return Router(adapters, rails, table, Breakers(table.breaker, time.monotonic), cost)


def open_custody(settings: Settings) -> Custody:
    """Where this process's keys are: a PKCS#11 token (security.key_custody = "pkcs11"),
    or key files. Open it where the keys are used, after any fork; close it when done.
    ConfigError names the setting at fault."""
    try:
        if settings.pkcs11 is not None:
            return open_key_custody(settings.pkcs11)
        fingerprint, ring = _file_fingerprint_key(settings), _file_token_keys(settings)  # in this order: errors too
        tokens = TokenKeys(ring.keys, ring.active_key)
        return open_key_custody(FileKeys(fingerprint, tokens, _signing_key_file(settings)))
    except CustodyError as exc:
        raise _refusal(settings, exc) from None


def fingerprint_key(settings: Settings) -> bytes:
    """The HMAC key for fingerprints, from the custody."""
    opened = open_custody(settings)
    try:
        return _keys(settings, opened)[0]
    finally:
        opened.close()


def token_keys(settings: Settings) -> KeyRing:
    """The tokenization keys, from the custody."""
    opened = open_custody(settings)
    try:
        return _keys(settings, opened)[1]
    finally:
        opened.close()


def checkpoint_signer(settings: Settings, opened: Custody) -> CheckpointSigner:
    """The key the audit trail's checkpoints are signed with, from a custody this process
    opened (a worker's: RunningSwitch.custody); valid until that custody is closed."""
    try:
        return opened.checkpoint_signer()
    except CustodyError as exc:
        raise _refusal(settings, exc) from None


def _keys(settings: Settings, opened: Custody) -> tuple[bytes, KeyRing]:
    try:
        ring = opened.token_keys()
        return opened.fingerprint_key(), KeyRing(ring.keys, ring.active_key)
    except CustodyError as exc:
        raise _refusal(settings, exc) from None


def _refusal(settings: Settings, exc: CustodyError) -> ConfigError:
    """The custody's error as the configuration's: named by the setting at fault."""
    if settings.pkcs11 is not None:
        return ConfigError(f"security.pkcs11.{exc.field}: {exc}")
    if settings.security.audit_signing_key_file or not settings.stores.embedded:
        hint = "" if settings.security.audit_signing_key_file else "; `switch keys init --dir DIR` writes one"
        return ConfigError(f"security.audit_signing_key_file: {exc}{hint}")
    return ConfigError(f"stores.sqlite_path (its folder's {SIGNING_KEY_FILE}): {exc}")


def _file_fingerprint_key(settings: Settings) -> bytes:
    """The HMAC key for fingerprints. Every worker and instance must share it, so
    production requires it; the embedded default keeps a random one beside its journal."""
    security = settings.security
    if security.fingerprint_key_hex:
        return bytes.fromhex(security.fingerprint_key_hex)
    if security.fingerprint_key_file:
        return read_fingerprint_key(Path(security.fingerprint_key_file))
    if not settings.stores.embedded:
        raise ConfigError(
            "security.fingerprint_key_file: required with Redis and PostgreSQL (or fingerprint_key_hex); "
            "`switch keys init --dir DIR` writes one"
        )
    path = Path(settings.stores.sqlite_path).parent / FINGERPRINT_KEY_FILE
    write_secret(path, new_fingerprint_key(), replace=False)  # the first start's key, whoever wrote it
    return read_fingerprint_key(path, "stores.sqlite_path (its folder's fingerprint.key)")


def _file_token_keys(settings: Settings) -> KeyRing:
    """The tokenization keys. Production must configure them (every instance shares
    them); the embedded default keeps a random ring beside its journal."""
    if settings.tokenization is not None:
        return settings.tokenization
    if not settings.stores.embedded:
        raise ConfigError("tokenization: required with Redis and PostgreSQL (active_key and keys, or key_file)")
    path = Path(settings.stores.sqlite_path).parent / TOKEN_KEY_FILE
    write_key_file(path, new_key_ring(), replace=False)
    return parse_key_ring({"key_file": str(path)})


def _signing_key_file(settings: Settings) -> str:
    """The Ed25519 key file checkpoints are signed with: the configured one; the embedded
    default keeps one beside its journal; production without one has none ("")."""
    if settings.security.audit_signing_key_file or not settings.stores.embedded:
        return settings.security.audit_signing_key_file
    path = Path(settings.stores.sqlite_path).parent / SIGNING_KEY_FILE
    write_secret(path, new_signing_key_pem(), replace=False)
    return str(path)


async def migrate(settings: Settings) -> int:
    """Brings the configured journal's schema up to date; the number of migrations applied."""
    if settings.stores.embedded:
        import sqlite3

        from switch.stores import sqlite

        path = Path(settings.stores.sqlite_path)
        sqlite.private_file(path)  # folder 0700, database 0600, as the journal opens them
        return sqlite.migrate(sqlite3.connect(path, isolation_level=None))
    from switch.stores import postgres

    return await postgres.migrate(settings.stores.postgres_dsn, schema=settings.stores.postgres_schema or None)


async def open_stores(settings: Settings, events: Counter | None = None) -> tuple[StateStore, Journal]:
    """Memory + SQLite for the embedded default; Redis (one primary, or a Cluster) +
    PostgreSQL when configured. events counts the Redis stores' rare events
    (SwitchMetrics.state_store_events)."""
    idempotency = settings.idempotency
    journal = await open_journal(settings)
    if settings.stores.embedded:
        from switch.stores.memory import MemoryStateStore

        retention, lease = idempotency.retention_seconds, idempotency.lease_seconds
        return MemoryStateStore(retention, lease, tier_source=journal.holder_tiers), journal

    from switch.stores.redis import RedisStateStore
    from switch.stores.redis_cluster import RedisClusterStateStore

    redis_store = RedisClusterStateStore if settings.stores.redis_cluster else RedisStateStore
    try:
        state = redis_store.from_url(
            settings.stores.redis_url,
            prefix=settings.stores.key_prefix,
            retention_seconds=idempotency.retention_seconds,
            lease_seconds=idempotency.lease_seconds,
            events=events,
            tier_source=journal.holder_tiers,  # what a Redis that lost the tiers reloads them from
        )
    except BaseException:
        await journal.close()
        raise
    try:
        await state.check_server()
    except BaseException as exc:
        await state.close()
        await journal.close()
        if isinstance(exc, store_errors()):
            raise StartupError(f"stores.redis_url: Redis does not answer: {_reason(exc)}") from None
        raise
    return state, journal


async def open_journal(settings: Settings) -> Journal:
    """The configured journal alone (`switch audit verify` reads no state store)."""
    if settings.stores.embedded:
        from switch.stores.sqlite import SqliteJournal

        # It makes the folder (0700) and the database (0600) itself.
        return await SqliteJournal.open(Path(settings.stores.sqlite_path))
    from switch.stores.postgres import PostgresJournal

    schema = settings.stores.postgres_schema or None
    try:
        return await PostgresJournal.open(settings.stores.postgres_dsn, schema=schema)
    except store_errors() as exc:
        raise StartupError(f"stores.postgres_dsn: PostgreSQL does not answer: {_reason(exc)}") from None


def checkpoint_public_key(settings: Settings) -> bytes:
    """The public key (PEM) of the configured checkpoint signing key."""
    opened = open_custody(settings)
    try:
        return checkpoint_signer(settings, opened).public_key_pem()
    finally:
        opened.close()


def _reason(exc: BaseException) -> str:
    """The driver's reason, on one line; drivers name host and port, never the password."""
    return " ".join(str(exc).split())[:300] or type(exc).__name__
