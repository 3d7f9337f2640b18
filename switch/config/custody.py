"""[security] key_custody and [security.pkcs11], parsed into the custody's description;
ConfigError names the key.

With key_custody = "pkcs11" the settings carry only where the keys are (module, token,
PIN file, wrapped-key file): each worker unwraps them after the fork, so no key is read
here, and none may be configured in the clear beside the token's.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, optional_text
from switch.config.settings import SecuritySettings
from switch.security.custody import Pkcs11Keys

CUSTODIES = ("file", "pkcs11")
_PKCS11_KEYS = ("module", "token_label", "pin_file", "wrapped_keys_file")


def parse_custody(security: SecuritySettings, table: Any, tokenization: bool) -> Pkcs11Keys | None:
    """table: [security.pkcs11] (None when absent); tokenization: whether [tokenization] is
    configured. None: the file custody."""
    if security.key_custody not in CUSTODIES:
        raise ConfigError('security.key_custody: must be "file" or "pkcs11"')
    if security.key_custody == "file":
        if table is not None:
            raise ConfigError('security.pkcs11: only with security.key_custody = "pkcs11"')
        return None
    in_the_clear = (
        ("security.fingerprint_key_hex", bool(security.fingerprint_key_hex)),
        ("security.fingerprint_key_file", bool(security.fingerprint_key_file)),
        ("security.audit_signing_key_file", bool(security.audit_signing_key_file)),
        ("tokenization", tokenization),
    )
    for where, configured in in_the_clear:
        if configured:
            raise ConfigError(f'{where}: with key_custody = "pkcs11" the keys are in the token; remove it')
    return _pkcs11(table)


def _pkcs11(table: Any) -> Pkcs11Keys:
    where = "security.pkcs11"
    if table is None:
        raise ConfigError(f'{where}: key_custody = "pkcs11" needs this table ({", ".join(_PKCS11_KEYS)})')
    if not isinstance(table, Mapping):
        raise ConfigError(f"{where}: must be a table")
    no_unknown_keys(where, table, frozenset(_PKCS11_KEYS))
    values = {}
    for key in _PKCS11_KEYS:
        value = optional_text(f"{where}.{key}", table.get(key))
        if value is None:
            raise ConfigError(f"{where}.{key}: required")
        values[key] = value
    return Pkcs11Keys(**values)
