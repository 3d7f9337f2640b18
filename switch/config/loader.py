"""Settings: one TOML file plus environment overrides, read and validated once.

Only the composition root (switch.server) and the CLI call load(); every other
module receives the values it needs. Errors name the offending key, e.g.
"batcher.max_items: must be an integer >= 1".
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, optional_text
from switch.config.custody import parse_custody
from switch.config.fees import parse_fee_schedules, parse_fx
from switch.config.keys import parse_key_ring
from switch.config.policy import TABLES as POLICY_TABLES
from switch.config.policy import from_tables, load_policy, parse_policy_file
from switch.config.routing import check_routes, load_bin_table, parse_routing
from switch.config.sanctions import parse_sanctions
from switch.config.security import parse_callers, parse_tls
from switch.config.settings import (
    DEFAULT_ROUTES,
    AdapterSettings,
    IdempotencySettings,
    RouteSettings,
    SecuritySettings,
    ServerSettings,
    Settings,
    StoreSettings,
)
from switch.domain.limits import Limit, LimitScope
from switch.flow.batcher import BatcherSettings
from switch.routing.rules import RoutingTable, SourceKind

# Environment variable -> (section, key). Only these are read, and only here.
ENVIRONMENT = {
    "SWITCH_HOST": ("server", "host"),
    "SWITCH_PORT": ("server", "port"),
    "SWITCH_WORKERS": ("server", "workers"),
    "SWITCH_METRICS_PORT": ("server", "metrics_port"),
    "SWITCH_PLAINTEXT": ("server", "plaintext"),
    "SWITCH_REDIS_URL": ("stores", "redis_url"),
    "SWITCH_REDIS_CLUSTER": ("stores", "redis_cluster"),
    "SWITCH_POSTGRES_DSN": ("stores", "postgres_dsn"),
    "SWITCH_POSTGRES_SCHEMA": ("stores", "postgres_schema"),
    "SWITCH_SQLITE_PATH": ("stores", "sqlite_path"),
    "SWITCH_KEY_PREFIX": ("stores", "key_prefix"),
    "SWITCH_FINGERPRINT_KEY": ("security", "fingerprint_key_hex"),
    "SWITCH_FINGERPRINT_KEY_FILE": ("security", "fingerprint_key_file"),
    "SWITCH_TOKENIZATION_KEY_FILE": ("tokenization", "key_file"),
    "SWITCH_AUDIT_SIGNING_KEY_FILE": ("security", "audit_signing_key_file"),
    "SWITCH_LOG_LEVEL": ("", "log_level"),
}

_SECTIONS: dict[str, Any] = {
    "server": ServerSettings,
    "batcher": BatcherSettings,
    "idempotency": IdempotencySettings,
    "stores": StoreSettings,
    "security": SecuritySettings,
    "adapters": AdapterSettings,
}

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

# Tables inside a section, parsed by their own parsers rather than as scalars.
_TABLES = frozenset({("server", "tls"), ("security", "callers"), ("security", "pkcs11")})
_LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def load(
    path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """Reads the TOML file (if any), then environment overrides, then command-line
    overrides (section -> key -> value), and validates the result."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: {exc}") from exc
    for variable, (section, key) in ENVIRONMENT.items():
        if environ and variable in environ:
            target = raw.setdefault(section, {}) if section else raw
            target[key] = environ[variable]
    for section, values in (overrides or {}).items():
        raw.setdefault(section, {}).update(values)
    return from_mapping(raw)


def from_mapping(raw: Mapping[str, Any]) -> Settings:
    unknown = (
        set(raw)
        - set(_SECTIONS)
        - {
            "limits",
            "log_level",
            "tokenization",
            "fee_schedule",
            "fx",
            "routes",
            "routing",
            "sanctions",
            "kyc",
            "aml",
            "fraud_model",
            "policy",
        }
    )
    if unknown:
        raise ConfigError(f"{sorted(unknown)[0]}: unknown section or key")
    settings = Settings()
    for section, cls in _SECTIONS.items():
        values = raw.get(section, {})
        if not isinstance(values, Mapping):
            raise ConfigError(f"{section}: must be a table")
        scalars = {key: value for key, value in values.items() if (section, key) not in _TABLES}
        settings = replace(settings, **{section: _section(section, cls(), scalars)})
    settings = replace(settings, **_security(raw))
    log_level = str(raw.get("log_level", "INFO")).upper()
    if log_level not in _LOG_LEVELS:
        raise ConfigError(f"log_level: must be one of {', '.join(_LOG_LEVELS)}")
    limits = tuple(_limit(i, item) for i, item in enumerate(_list(raw, "limits")))
    settings = replace(settings, limits=limits, log_level=log_level, **_money_and_tokens(raw))
    pkcs11 = parse_custody(settings.security, raw.get("security", {}).get("pkcs11"), "tokenization" in raw)
    settings = replace(settings, pkcs11=pkcs11)
    settings = replace(
        settings,
        **_routes_and_routing(raw),
        sanctions=parse_sanctions(raw.get("sanctions")),
        **_policy(raw),
    )
    _check(settings)
    return settings


def _section(name: str, defaults: Any, values: Mapping[str, Any]) -> Any:
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if not hasattr(defaults, key):
            raise ConfigError(f"{name}.{key}: unknown key")
        expected = type(getattr(defaults, key))
        changes[key] = _coerce(f"{name}.{key}", value, expected)
    return replace(defaults, **changes)


_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
_KIND_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "a string"}


def _coerce(where: str, value: Any, expected: type) -> Any:
    if expected is bool and isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
        return value.strip().lower() in _TRUE  # from the environment
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is int and isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value)
    if expected is float and isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
    if not isinstance(value, expected) or isinstance(value, bool) != (expected is bool):
        raise ConfigError(f"{where}: must be {_KIND_NAMES.get(expected, f'a {expected.__name__}')}")
    return value


def _list(raw: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    items = raw.get(key, [])
    if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
        raise ConfigError(f"{key}: must be an array of tables ([[{key}]])")
    return items


def _policy(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The risk policy: from [policy]'s bundle file, or from the main file's own tables."""
    file = parse_policy_file(raw.get("policy"))
    if file is None:
        return {"policy": from_tables(raw)}
    inline = [table for table in POLICY_TABLES if table in raw]
    if inline:
        raise ConfigError(f"{inline[0]}: with [policy], it belongs in the bundle ({file})")
    return {"policy": load_policy(file), "policy_file": str(file)}


def _limit(index: int, item: Mapping[str, Any]) -> Limit:
    where = f"limits[{index}]"
    unknown = set(item) - {"scope", "window_seconds", "max_count", "max_amount"}
    if unknown:
        raise ConfigError(f"{where}.{sorted(unknown)[0]}: unknown key")
    try:
        scope = LimitScope(item.get("scope"))
    except ValueError:
        raise ConfigError(f"{where}.scope: must be one of 'instrument', 'merchant'") from None
    window = _positive(f"{where}.window_seconds", item.get("window_seconds"))
    max_count = item.get("max_count")
    max_amount = item.get("max_amount")
    if max_count is None and max_amount is None:
        raise ConfigError(f"{where}: set max_count, max_amount or both")
    return Limit(
        scope=scope,
        window_seconds=window,
        max_count=None if max_count is None else _positive(f"{where}.max_count", max_count),
        max_amount=None if max_amount is None else _positive(f"{where}.max_amount", max_amount),
    )


def _money_and_tokens(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The sections that configure the fee engine and the tokenizer."""
    tokenization = raw.get("tokenization")
    if tokenization is not None and not isinstance(tokenization, Mapping):
        raise ConfigError("tokenization: must be a table")
    fx = raw.get("fx", {})
    if not isinstance(fx, Mapping):
        raise ConfigError("fx: must be a table")
    return {
        "tokenization": None if tokenization is None else parse_key_ring(tokenization),
        "fee_schedules": parse_fee_schedules(_list(raw, "fee_schedule")),
        "fx": parse_fx(fx),
    }


def _security(raw: Mapping[str, Any]) -> dict[str, Any]:
    server, security = raw.get("server", {}), raw.get("security", {})
    return {
        "tls": parse_tls(server["tls"]) if "tls" in server else None,
        "callers": parse_callers(security["callers"]) if "callers" in security else None,
    }


def _routes_and_routing(raw: Mapping[str, Any]) -> dict[str, Any]:
    routes = _routes(raw.get("routes")) if "routes" in raw else DEFAULT_ROUTES
    routing_raw = raw.get("routing", {})
    if not isinstance(routing_raw, Mapping):
        raise ConfigError("routing: must be a table")
    bin_path = routing_raw.get("bin_table")
    bin_table = load_bin_table(bin_path) if isinstance(bin_path, str) and bin_path else None
    routing = parse_routing(routing_raw, bin_table)
    check_routes(routing, {route.name for route in routes})
    if "routes" in raw:
        _check_defaults_covered(routes, routing)
    return {"routes": routes, "routes_configured": "routes" in raw, "routing": routing}


def _check_defaults_covered(routes: tuple[RouteSettings, ...], routing: RoutingTable) -> None:
    """A [routes] table replaces the default routes; refuse to start rather than
    decline a whole source `92` because its route was dropped by adding another."""
    names = {route.name for route in routes}
    defaults = (
        ("card", SourceKind.CARD, None, "card authorizations", 'source = "card"'),
        ("instant", SourceKind.ACCOUNT, "instant", "account payments on rail 'instant'", 'rail = "instant"'),
    )
    for name, kind, rail, what, rule in defaults:
        if name not in names and not routing.routes_all(kind, rail):
            raise ConfigError(
                f"routes: {what} have no route; a [routes] table replaces the default routes, so add "
                f'[routes.{name}] (e.g. adapter = "simulated") or a [[routing.rules]] entry with {rule}'
            )


def _routes(raw: Any) -> tuple[RouteSettings, ...]:
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("routes: must be a table of routes ([routes.<name>])")
    routes = []
    for name, table in raw.items():
        where = f"routes.{name}"
        if not isinstance(table, Mapping):
            raise ConfigError(f"{where}: must be a table")
        no_unknown_keys(where, table, frozenset({"adapter", "rail", "options"}))
        adapter = optional_text(f"{where}.adapter", table.get("adapter"))
        if adapter is None:
            raise ConfigError(f"{where}.adapter: name the installed adapter that serves this route")
        rail = optional_text(f"{where}.rail", table.get("rail")) or name
        options = table.get("options", {})
        if not isinstance(options, Mapping):
            raise ConfigError(f"{where}.options: must be a table")
        routes.append(RouteSettings(name, adapter, rail, dict(options)))
    return tuple(routes)


def _positive(where: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{where}: must be an integer >= 1")
    return value


def _check(settings: Settings) -> None:
    for where, value in (
        ("server.port", settings.server.port),
        ("server.workers", settings.server.workers),
        ("batcher.max_items", settings.batcher.max_items),
        ("batcher.max_concurrent_batches", settings.batcher.max_concurrent_batches),
        ("batcher.max_pending", settings.batcher.max_pending),
        ("idempotency.retention_seconds", settings.idempotency.retention_seconds),
        ("idempotency.lease_seconds", settings.idempotency.lease_seconds),
        ("adapters.timeout_ms", settings.adapters.timeout_ms),
    ):
        if value < (0 if where == "server.port" else 1):
            raise ConfigError(f"{where}: must be an integer >= {0 if where == 'server.port' else 1}")
    if settings.server.port > 65535:
        raise ConfigError("server.port: must be <= 65535")
    if not 0 <= settings.server.metrics_port <= 65535 - settings.server.workers:
        raise ConfigError("server.metrics_port: must be 0 (off) or a port with room for one per worker")
    if settings.idempotency.lease_seconds * 1000 < 2 * settings.adapters.timeout_ms:
        # Past the lease, a batch's unjournaled intents are taken for abandoned and reversed.
        raise ConfigError("idempotency.lease_seconds: must be at least twice adapters.timeout_ms")
    if settings.batcher.max_delay_ms < 0:
        raise ConfigError("batcher.max_delay_ms: must be >= 0")
    security = settings.security
    for where, number in (
        ("security.tokenize_per_second", security.tokenize_per_second),
        ("security.detokenize_per_second", security.detokenize_per_second),
        ("security.enumeration_max_distinct", security.enumeration_max_distinct),
    ):
        if number < 0:
            raise ConfigError(f"{where}: must be >= 0 (0: no limit)")
    for where, burst in (
        ("security.tokenize_burst", security.tokenize_burst),
        ("security.detokenize_burst", security.detokenize_burst),
    ):
        if burst < 1:
            raise ConfigError(f"{where}: must be an integer >= 1")
    if security.audit_checkpoint_seconds <= 0:
        raise ConfigError("security.audit_checkpoint_seconds: must be > 0")
    if security.enumeration_window_seconds <= 0:
        raise ConfigError("security.enumeration_window_seconds: must be > 0")
    if bool(settings.stores.redis_url) != bool(settings.stores.postgres_dsn):
        raise ConfigError("stores: set both redis_url and postgres_dsn, or neither for the embedded default")
    if settings.stores.redis_cluster and not settings.stores.redis_url:
        raise ConfigError("stores.redis_cluster: needs redis_url, the address of one of the cluster's nodes")
    if settings.stores.embedded and settings.server.workers > 1:
        raise ConfigError("server.workers: the embedded default keeps state in one process; use Redis and PostgreSQL")
    _check_transport(settings)
    key_hex = settings.security.fingerprint_key_hex
    if key_hex:
        try:
            if len(bytes.fromhex(key_hex)) < 16:
                raise ValueError
        except ValueError:
            raise ConfigError("security.fingerprint_key_hex: must be at least 32 hex digits") from None


def _check_transport(settings: Settings) -> None:
    server, header = settings.server, settings.security.trusted_identity_header
    if settings.tls is not None and server.plaintext:
        raise ConfigError("server.plaintext: [server.tls] is configured; remove one of them")
    if settings.tls is None and not server.plaintext and not (settings.stores.embedded and server.host in _LOOPBACK):
        # Plaintext by default only for the demo: the embedded stores, reachable from this machine alone.
        raise ConfigError(
            "server.tls: the switch serves TLS unless it is the embedded default on loopback; "
            "configure [server.tls], or set server.plaintext = true behind a TLS-terminating sidecar"
        )
    if header and (settings.tls is not None or server.host not in _LOOPBACK):
        raise ConfigError(
            "security.trusted_identity_header: only for a plaintext listener on loopback, "
            "where nothing but the sidecar that sets it can reach the switch"
        )
    if header and header.lower() != header:
        raise ConfigError("security.trusted_identity_header: must be lower case (gRPC metadata keys are)")
