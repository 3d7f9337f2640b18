"""[server.tls] and [[security.callers]], parsed into the security room's types;
ConfigError names the key."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, optional_text
from switch.security.policy import CallerRule, Role
from switch.security.tls import TlsFiles

_TLS_KEYS = frozenset({"cert_file", "key_file", "client_ca_file", "require_client_cert"})
_CALLER_KEYS = frozenset({"identity", "roles", "merchants"})
_ROLE_NAMES = ", ".join(role.value for role in Role)


def parse_tls(raw: Any) -> TlsFiles:
    where = "server.tls"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: must be a table")
    no_unknown_keys(where, raw, _TLS_KEYS)
    cert_file = optional_text(f"{where}.cert_file", raw.get("cert_file"))
    key_file = optional_text(f"{where}.key_file", raw.get("key_file"))
    if cert_file is None or key_file is None:
        raise ConfigError(f"{where}: name cert_file and key_file (PEM files)")
    client_ca_file = optional_text(f"{where}.client_ca_file", raw.get("client_ca_file")) or ""
    require = raw.get("require_client_cert", True)
    if not isinstance(require, bool):
        raise ConfigError(f"{where}.require_client_cert: must be true or false")
    if require and not client_ca_file:
        raise ConfigError(f"{where}.client_ca_file: mutual TLS needs the CA that client certificates chain to")
    return TlsFiles(cert_file, key_file, client_ca_file, require)


def parse_callers(raw: Any) -> tuple[CallerRule, ...]:
    where = "security.callers"
    if not isinstance(raw, list) or not all(isinstance(item, Mapping) for item in raw):
        raise ConfigError(f"{where}: must be an array of tables ([[security.callers]])")
    return tuple(_caller(f"{where}[{index}]", item) for index, item in enumerate(raw))


def _caller(where: str, item: Mapping[str, Any]) -> CallerRule:
    no_unknown_keys(where, item, _CALLER_KEYS)
    identity = item.get("identity")
    if not isinstance(identity, str):
        raise ConfigError(f'{where}.identity: must be a string ("spiffe://...", a DNS name, or "*")')
    roles = item.get("roles")
    if not isinstance(roles, list) or not roles:
        raise ConfigError(f"{where}.roles: must be a non-empty array of {_ROLE_NAMES}")
    try:
        granted = frozenset(Role(role) for role in roles)
    except ValueError:
        raise ConfigError(f"{where}.roles: each must be one of {_ROLE_NAMES}") from None
    merchants = item.get("merchants", [])
    if not isinstance(merchants, list) or not all(isinstance(m, str) and m for m in merchants):
        raise ConfigError(f'{where}.merchants: must be an array of merchant ids or patterns ("*" for all)')
    return CallerRule(identity, granted, tuple(merchants))
