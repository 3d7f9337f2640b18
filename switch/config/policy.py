"""The risk policy bundle: KYC tiers, AML rules and the fraud model, in a file of their own
that a running switch reads again on SIGHUP (`switch policy reload`).

    [policy]
    file = "policy.toml"    # holds [kyc], [aml] and [fraud_model], as in the main file

With [policy], those three tables come from the bundle and may not also be in the main
file. The bundle's version is the SHA-256 of its bytes and of its models' versions (the
model file is named by path: a new model under the same name is a new bundle); every
decision the risk step journals names it. A bundle is checked whole before it is used:
one that does not parse, or whose model does not load, refuses the start or, on a
reload, leaves the old bundle serving. Sanctions lists refresh on their own
([sanctions] refresh_seconds), by their own version.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switch.config.aml import parse_aml
from switch.config.checks import ConfigError, no_unknown_keys
from switch.config.fraud_model import FraudModelSettings, parse_fraud_model
from switch.config.kyc import parse_kyc
from switch.risk.aml import AmlPolicy
from switch.risk.kyc import KycPolicy

TABLES = ("kyc", "aml", "fraud_model")


@dataclass(frozen=True, slots=True)
class PolicyBundle:
    version: str  # "" for the tables of the main file (no [policy])
    kyc: KycPolicy | None = None
    aml: AmlPolicy | None = None
    fraud_model: FraudModelSettings | None = None


def parse_policy_file(raw: Any) -> Path | None:
    """The [policy] table's file; None without [policy]."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("policy: must be a table")
    no_unknown_keys("policy", raw, frozenset({"file"}))
    file = raw.get("file")
    if not isinstance(file, str) or not file:
        raise ConfigError("policy.file: must be the path of the policy bundle (TOML)")
    return Path(file)


def load_policy(path: Path) -> PolicyBundle:
    """Reads and checks a bundle, whole; ConfigError naming the file and the key."""
    try:
        data = path.read_bytes()
        raw = tomllib.loads(data.decode())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"policy.file: {path}: {exc}") from None
    try:
        no_unknown_keys("policy bundle", raw, frozenset(TABLES))
        return from_tables(raw, data)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def from_tables(raw: Mapping[str, Any], data: bytes | None = None) -> PolicyBundle:
    """The bundle of these tables; data: the bundle file's bytes, for its version (None:
    the main file's tables, unversioned)."""
    kyc, aml, scoring = parse_kyc(raw.get("kyc")), parse_aml(raw.get("aml")), parse_fraud_model(raw.get("fraud_model"))
    version = ""
    if data is not None:
        digest = hashlib.sha256(data)
        digest.update(b"\0" + (scoring.model.version if scoring is not None else "").encode())
        if scoring is not None and scoring.challenger is not None:
            digest.update(b"\0" + scoring.challenger.version.encode())
        version = digest.hexdigest()[:16]
    return PolicyBundle(version, kyc, aml, scoring)
