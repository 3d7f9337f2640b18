"""The settings' shapes: one frozen dataclass per TOML section, with its defaults.

The engines' own value types (fee schedules, the routing table, the key ring, velocity
limits, the batcher's bounds) are defined beside the engines; a Settings holds them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from switch.cards.tokenizer import KeyRing
from switch.config.policy import PolicyBundle
from switch.config.sanctions import SanctionsSettings
from switch.domain.limits import Limit
from switch.flow.batcher import BatcherSettings
from switch.money.fees import FeeSchedule, FxTable
from switch.routing.rules import RoutingTable
from switch.security.custody import Pkcs11Keys
from switch.security.policy import CallerRule, Role
from switch.security.tls import TlsFiles


@dataclass(frozen=True, slots=True)
class RouteSettings:
    """A route: its name (in responses and the journal), the installed adapter that
    serves it (entry point in "switch.adapters"), its rail (for fee schedules), and
    the adapter's own options. Only adapters named by a route are ever started."""

    name: str
    adapter: str
    rail: str
    options: Mapping[str, Any] = field(default_factory=dict)


# Without [routes]: cards on "card", account payments on the "instant" rail, both
# answered by the built-in simulated issuer.
DEFAULT_ROUTES = (RouteSettings("card", "simulated", "card"), RouteSettings("instant", "simulated", "instant"))


@dataclass(frozen=True, slots=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 50051
    workers: int = 1
    drain_seconds: float = 10.0
    metrics_port: int = 0  # Prometheus text on GET /metrics; 0: off. Worker i uses metrics_port + i.
    # Without [server.tls] the port is plaintext: true says it is meant (behind a
    # TLS-terminating sidecar). Only the embedded default on loopback may leave it out.
    plaintext: bool = False


@dataclass(frozen=True, slots=True)
class IdempotencySettings:
    retention_seconds: int = 86_400
    lease_seconds: int = 30  # an in-flight claim older than this was abandoned by a crash


@dataclass(frozen=True, slots=True)
class StoreSettings:
    redis_url: str = ""
    redis_cluster: bool = False  # redis_url names nodes of a Redis Cluster (comma-separated); the rest are found
    postgres_dsn: str = ""
    postgres_schema: str = ""  # empty: the DSN's default search_path
    sqlite_path: str = "switch-data/journal.sqlite3"
    key_prefix: str = "sw"  # prefix of every Redis key

    @property
    def embedded(self) -> bool:
        return not (self.redis_url or self.postgres_dsn)


@dataclass(frozen=True, slots=True)
class SecuritySettings:
    fingerprint_key_hex: str = ""  # empty: a random key kept beside the SQLite journal
    fingerprint_key_file: str = ""
    # "file": the keys above, [tokenization] and audit_signing_key_file; "pkcs11": wrapped
    # under a token's key ([security.pkcs11], Settings.pkcs11), unwrapped in each worker.
    key_custody: str = "file"
    audit_signing_key_file: str = ""  # the Ed25519 key checkpoints are signed with (PEM, 0600)
    # Plaintext behind a sidecar that terminated mutual TLS on loopback: the header in
    # which it passes the identity it verified. Empty: every plaintext caller is anonymous.
    trusted_identity_header: str = ""
    # Tokenize calls per second per caller and worker (0: no limit), and the burst above it.
    tokenize_per_second: float = 100.0
    tokenize_burst: int = 200
    # Different card numbers one caller may send per pattern (length, first 6, last 4)
    # within the window, through Tokenize or a card Authorize (0: no limit).
    enumeration_max_distinct: int = 100
    enumeration_window_seconds: float = 3600.0
    # Detokenize calls per second per caller and worker, and the burst above it: a
    # person working a dispute, not a batch job (0 per second: no limit).
    detokenize_per_second: float = 1.0
    detokenize_burst: int = 10
    # How often each worker signs the heads of its audit chains (and once at shutdown).
    audit_checkpoint_seconds: float = 60.0


@dataclass(frozen=True, slots=True)
class AdapterSettings:
    timeout_ms: int = 2_000
    simulator_latency_ms: float = 0.0


@dataclass(frozen=True, slots=True)
class Settings:
    server: ServerSettings = field(default_factory=ServerSettings)
    batcher: BatcherSettings = field(default_factory=BatcherSettings)
    idempotency: IdempotencySettings = field(default_factory=IdempotencySettings)
    stores: StoreSettings = field(default_factory=StoreSettings)
    security: SecuritySettings = field(default_factory=SecuritySettings)
    adapters: AdapterSettings = field(default_factory=AdapterSettings)
    limits: tuple[Limit, ...] = ()
    routes: tuple[RouteSettings, ...] = DEFAULT_ROUTES
    # False: no [routes] table; the embedded default may then run its simulators behind them.
    routes_configured: bool = False
    routing: RoutingTable | None = None  # None: the default rules (cards -> "card", accounts -> their rail)
    tokenization: KeyRing | None = None  # None: the embedded default makes its own keys
    fee_schedules: tuple[FeeSchedule, ...] = ()
    fx: FxTable | None = None
    log_level: str = "INFO"
    tls: TlsFiles | None = None  # [server.tls]; None: plaintext
    callers: tuple[CallerRule, ...] | None = None  # [[security.callers]]; None: DEFAULT_CALLERS
    pkcs11: Pkcs11Keys | None = None  # [security.pkcs11] with key_custody = "pkcs11"; None: the file custody
    sanctions: SanctionsSettings | None = None  # [sanctions]; None: no screening
    # [kyc] (none: no tiers, no caps), [aml] (none: no AML rules), [fraud_model] (none: no
    # score): from the main file, or from [policy]'s bundle file, read again on SIGHUP.
    policy: PolicyBundle = field(default_factory=lambda: PolicyBundle(""))
    policy_file: str = ""


# Without [[security.callers]]: every caller may do what the demo does, never detokenize
# or administer; the switch logs this at start.
DEFAULT_CALLERS = (
    CallerRule("*", frozenset({Role.AUTHORIZE, Role.OPERATE, Role.READ, Role.QUOTE, Role.TOKENIZE}), ("*",)),
)
