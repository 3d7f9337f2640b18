"""The file custody: keys the configuration names in files (or inline), held in memory,
and checkpoints signed with an Ed25519 private key file (PEM, PKCS#8, mode 0600).

The embedded default makes its files beside its journal at the first start; production
mounts them (`switch keys init --dir` writes a set). The key files themselves are read
by the configuration (switch.config.keys), which refuses a bad one before anything starts.
"""

from __future__ import annotations

from pathlib import Path

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from switch.security.custody.base import CheckpointSigner, CustodyError, FileKeys, TokenKeys
from switch.security.custody.signing import ED25519, public_key_id
from switch.security.secret_files import SecretFileError, read_private

SIGNING_KEY_FILE = "audit-signing.key"
_SIGNING_FIELD = "signing_key_file"


class FileCustody:
    kind = "file"

    def __init__(self, keys: FileKeys) -> None:
        self._keys = keys
        self._signer: Ed25519FileSigner | None = None

    def fingerprint_key(self) -> bytes:
        return self._keys.fingerprint_key

    def token_keys(self) -> TokenKeys:
        return self._keys.token_keys

    def checkpoint_signer(self) -> CheckpointSigner:
        if self._signer is None:
            if not self._keys.signing_key_file:
                raise CustodyError(_SIGNING_FIELD, "no checkpoint signing key is configured")
            self._signer = read_signing_key(Path(self._keys.signing_key_file))
        return self._signer

    def close(self) -> None:
        """Nothing to release: the keys live as long as the process."""

    def __repr__(self) -> str:
        return f"FileCustody({self._keys!r})"


class Ed25519FileSigner:
    """Signs with an Ed25519 private key held in memory."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._private_key = private_key
        self._public_pem = private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        self.key_id = public_key_id(self._public_pem)
        self.algorithm = ED25519

    def sign(self, message: bytes) -> bytes:
        return self._private_key.sign(message)

    def public_key_pem(self) -> bytes:
        return self._public_pem

    def __repr__(self) -> str:
        return f"Ed25519FileSigner(key_id={self.key_id!r})"


def new_signing_key_pem() -> bytes:
    """A fresh Ed25519 private key, PEM (PKCS#8, unencrypted: the file's mode protects it)."""
    return Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def read_signing_key(path: Path) -> Ed25519FileSigner:
    try:
        pem = read_private(path)
    except SecretFileError as exc:
        raise CustodyError(_SIGNING_FIELD, str(exc)) from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        # The parser's message may quote the file, and the file holds a key: say only where.
        raise CustodyError(_SIGNING_FIELD, f"{path} must hold an Ed25519 private key (PEM)") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CustodyError(_SIGNING_FIELD, f"{path} must hold an Ed25519 private key, not another kind")
    return Ed25519FileSigner(key)
