"""Checkpoint signatures, verified with the public key alone (no HSM, no custody): what
a client of the audit trail runs.

Two algorithms: "ed25519" (RFC 8032; the signature is its 64 bytes) and
"ecdsa-p256-sha256" (ECDSA over SHA-256 on P-256; the signature is DER, X9.62's
Ecdsa-Sig-Value, as OpenSSL and `cryptography` write it). A key is named by its id: the
first 16 hex digits of the SHA-256 of its DER SubjectPublicKeyInfo.
"""

from __future__ import annotations

import hashlib

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

ED25519 = "ed25519"
ECDSA_P256_SHA256 = "ecdsa-p256-sha256"
ALGORITHMS = (ED25519, ECDSA_P256_SHA256)


def verify_signature(public_key_pem: bytes, algorithm: str, message: bytes, signature: bytes) -> bool:
    """Whether signature is message's under the key and algorithm; False for a key that
    does not parse or is not of the algorithm's kind."""
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return False
    try:
        if algorithm == ED25519 and isinstance(key, Ed25519PublicKey):
            key.verify(signature, message)
            return True
        if (
            algorithm == ECDSA_P256_SHA256
            and isinstance(key, ec.EllipticCurvePublicKey)
            and isinstance(key.curve, ec.SECP256R1)
        ):
            key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
            return True
    except InvalidSignature:
        return False
    return False


def public_key_id(public_key_pem: bytes) -> str:
    """The key's id: stable, short, and computed by anyone holding the public key."""
    return _digest(public_key_pem)[:16]


def public_key_fingerprint(public_key_pem: bytes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, in full: what `switch keys list` shows."""
    return "sha256:" + _digest(public_key_pem)


def _digest(public_key_pem: bytes) -> str:
    key = serialization.load_pem_public_key(public_key_pem)
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()
