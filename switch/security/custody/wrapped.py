"""The wrapped-key file: the data keys as the HSM's key-encryption key wrapped them.

JSON, mode 0600 (ciphertext, but nobody else's business), replaced atomically:

    {"kek": "switch-kek", "active_key": "k2",
     "keys": {"k1": "<hex of wrapped key>", "k2": "..."},
     "fingerprint": "<hex of wrapped key>", "audit_key": "<CKA_ID of the signing key pair, hex>"}

Each blob is CKM_AES_KEY_WRAP_PAD (RFC 5649) output under the token's key-encryption
key labelled "kek"; without that token and its PIN the file is useless. audit_key names
the checkpoint signing key pair, which stays in the token.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import orjson

from switch.security.custody.base import CustodyError
from switch.security.custody.storage import write_private
from switch.security.secret_files import SecretFileError, read_private

KEY_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,31}")
_FIELD = "wrapped_keys_file"
_KEYS = frozenset({"kek", "active_key", "keys", "fingerprint", "audit_key"})
_HEX = re.compile(r"(?:[0-9a-f]{2})+")


@dataclass(frozen=True, slots=True)
class WrappedKeys:
    kek: str  # the key-encryption key's label in the token
    active_key: str
    keys: Mapping[str, bytes]  # token key id -> wrapped blob
    fingerprint: bytes  # the fingerprint key, wrapped
    audit_key: str  # the checkpoint signing key pair's CKA_ID, hex

    def __post_init__(self) -> None:
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))


def read_wrapped(path: Path) -> WrappedKeys:
    try:
        data = orjson.loads(read_private(path))
    except SecretFileError as exc:
        raise CustodyError(_FIELD, str(exc)) from None
    except orjson.JSONDecodeError:
        raise CustodyError(_FIELD, f"{path} is not valid JSON") from None
    if not isinstance(data, dict) or set(data) != _KEYS:
        raise CustodyError(_FIELD, f"{path} must hold an object with exactly {', '.join(sorted(_KEYS))}")
    keys = data["keys"]
    if not isinstance(keys, dict) or not keys or not all(isinstance(k, str) and KEY_ID.fullmatch(k) for k in keys):
        raise CustodyError(_FIELD, f"{path}: keys must map key ids to wrapped keys, with at least one")
    active = data["active_key"]
    if not isinstance(active, str) or active not in keys:
        raise CustodyError(_FIELD, f"{path}: active_key must name one of the keys")
    if not isinstance(data["kek"], str) or not data["kek"]:
        raise CustodyError(_FIELD, f"{path}: kek must be the key-encryption key's label")
    if not isinstance(data["audit_key"], str) or not _HEX.fullmatch(data["audit_key"]):
        raise CustodyError(_FIELD, f"{path}: audit_key must be the signing key pair's CKA_ID in lower-case hex")
    return WrappedKeys(
        kek=data["kek"],
        active_key=active,
        keys={key_id: _blob(path, f"keys.{key_id}", blob) for key_id, blob in keys.items()},
        fingerprint=_blob(path, "fingerprint", data["fingerprint"]),
        audit_key=data["audit_key"],
    )


def write_wrapped(path: Path, wrapped: WrappedKeys, *, replace: bool = True) -> bool:
    """replace=False: only when no file is there (see storage.write_private)."""
    data: dict[str, Any] = {
        "kek": wrapped.kek,
        "active_key": wrapped.active_key,
        "keys": {key_id: blob.hex() for key_id, blob in wrapped.keys.items()},
        "fingerprint": wrapped.fingerprint.hex(),
        "audit_key": wrapped.audit_key,
    }
    return write_private(path, orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS), replace=replace)


def _blob(path: Path, where: str, value: object) -> bytes:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise CustodyError(_FIELD, f"{path}: {where} must be a wrapped key in lower-case hex")
    return bytes.fromhex(value)
