"""What a key custody hands the switch, and the descriptions it is opened from.

A custody holds the fingerprint key (HMAC of card numbers), the tokenization keys and
the key checkpoints are signed with. Two exist: key files (files.py; the embedded
default and file-based production) and a PKCS#11 token (hsm.py), under whose
key-encryption key the data keys are stored wrapped. The engines (cards) take plain
bytes; the composition root builds them from a Custody. Nothing here prints, logs or
reprs key material, and no error quotes a key or a PIN.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Protocol


class CustodyError(ValueError):
    """The keys cannot be reached or are not what they must be. field names the part of
    the custody's description at fault (e.g. "pin_file"), for the caller to name its setting."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True, repr=False)
class TokenKeys:
    """The tokenization keys by id, and the id new tokens are made with."""

    keys: Mapping[str, bytes]
    active_key: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    def __repr__(self) -> str:
        return f"TokenKeys(active_key={self.active_key!r}, key_ids={sorted(self.keys)!r})"


def next_key_id(key_ids: Iterable[str]) -> str:
    """The id a rotation adds: k<n+1>, n the highest k<number> (an id is never reused)."""
    numbers = [int(key_id[1:]) for key_id in key_ids if re.fullmatch(r"k[0-9]+", key_id)]
    return f"k{max(numbers, default=0) + 1}"


@dataclass(frozen=True, slots=True)
class Pkcs11Keys:
    """Keys wrapped under a PKCS#11 token's key-encryption key: the module to load (a path:
    SoftHSM2's, or a real HSM's), the token's label, the file holding the user PIN (mode
    0600), and the file of wrapped keys. Only paths and a label: no key material, so the
    settings can carry it across the fork and each worker unwraps for itself."""

    module: str
    token_label: str
    pin_file: str
    wrapped_keys_file: str


@dataclass(frozen=True, slots=True, repr=False)
class FileKeys:
    """Keys read from files (or the configuration): the fingerprint key, the token keys,
    and the Ed25519 key file checkpoints are signed with ("" when none is configured)."""

    fingerprint_key: bytes
    token_keys: TokenKeys
    signing_key_file: str = ""

    def __repr__(self) -> str:
        return f"FileKeys(token_keys={self.token_keys!r}, signing_key_file={self.signing_key_file!r})"


class CheckpointSigner(Protocol):
    """Signs the audit trail's checkpoints. algorithm is "ed25519" (the 64-byte RFC 8032
    signature) or "ecdsa-p256-sha256" (DER, X9.62); signing.verify_signature checks one
    with the public key alone."""

    key_id: str
    algorithm: str

    def sign(self, message: bytes) -> bytes: ...

    def public_key_pem(self) -> bytes: ...


class Custody(Protocol):
    @property
    def kind(self) -> str:
        """ "file" or "pkcs11"."""
        ...

    def fingerprint_key(self) -> bytes: ...

    def token_keys(self) -> TokenKeys: ...

    def checkpoint_signer(self) -> CheckpointSigner:
        """Valid until close()."""
        ...

    def close(self) -> None: ...
