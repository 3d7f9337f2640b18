"""Checkpoints signed inside the token, with a key pair that never leaves it.

Ed25519 (CKM_EDDSA) where the token offers it, else ECDSA on P-256 (CKM_ECDSA over a
SHA-256 digest made here: tokens differ on CKM_ECDSA_SHA256, every one has CKM_ECDSA).
CKM_ECDSA answers r || s (32 bytes each); it is re-encoded as DER so that
signing.verify_signature, OpenSSL and `cryptography` read it. The public key is
exported as PEM from CKA_EC_POINT.
"""

from __future__ import annotations

import hashlib
import threading

import pkcs11
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, exceptions
from pkcs11.types import SignMixin
from pkcs11.util import ec

from switch.security.custody.base import CustodyError
from switch.security.custody.signing import ECDSA_P256_SHA256, ED25519, public_key_id

AUDIT_LABEL = "switch-audit"
ED25519_CURVE = "1.3.101.112"  # id-Ed25519 (RFC 8410), CKA_EC_PARAMS for CKK_EC_EDWARDS
P256_CURVE = "secp256r1"
_ALGORITHMS = {KeyType.EC_EDWARDS: ED25519, KeyType.EC: ECDSA_P256_SHA256}


class Pkcs11Signer:
    """Signs with the token's private key; one signature at a time (a PKCS#11 session
    runs one operation at a time)."""

    def __init__(self, session: pkcs11.Session, handle: str) -> None:
        """handle: the pair's CKA_ID, hex (the wrapped-key file's audit_key)."""
        private, public = _key_pair(session, handle)
        self._private = private
        self.algorithm = _ALGORITHMS[private.key_type]
        self._public_pem = public_key_pem(public)
        self.key_id = public_key_id(self._public_pem)
        self._lock = threading.Lock()

    def sign(self, message: bytes) -> bytes:
        with self._lock:
            if self.algorithm == ED25519:
                return bytes(self._private.sign(message, mechanism=Mechanism.EDDSA))
            raw = bytes(self._private.sign(hashlib.sha256(message).digest(), mechanism=Mechanism.ECDSA))
        return ec.encode_ecdsa_signature(raw)

    def public_key_pem(self) -> bytes:
        return self._public_pem

    def __repr__(self) -> str:
        return f"Pkcs11Signer(key_id={self.key_id!r}, algorithm={self.algorithm!r})"


def public_key_pem(public: pkcs11.PublicKey) -> bytes:
    if public.key_type == KeyType.EC_EDWARDS:
        point = bytes(public[Attribute.EC_POINT])
        # PKCS#11 3.0 puts the 32 bytes in a DER OCTET STRING (04 20 ..., as SoftHSM does); some tokens give them bare.
        key: PublicKeyTypes = Ed25519PublicKey.from_public_bytes(point[2:] if point[:2] == b"\x04\x20" else point)
    else:
        key = serialization.load_der_public_key(ec.encode_ec_public_key(public))
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _key_pair(session: pkcs11.Session, handle: str) -> tuple[SignMixin, pkcs11.PublicKey]:
    found = []
    for object_class in (ObjectClass.PRIVATE_KEY, ObjectClass.PUBLIC_KEY):
        try:
            found.append(session.get_key(object_class, label=AUDIT_LABEL, id=bytes.fromhex(handle)))
        except exceptions.NoSuchKey:
            raise CustodyError("token_label", f"the token has no checkpoint signing key {handle}") from None
        except exceptions.MultipleObjectsReturned:
            raise CustodyError("token_label", f"the token has several checkpoint signing keys {handle}") from None
    private, public = found
    if not isinstance(private, SignMixin) or not isinstance(public, pkcs11.PublicKey):
        raise CustodyError("token_label", f"the checkpoint signing key {handle} is not a key pair that may sign")
    p256 = ec.encode_named_curve_parameters(P256_CURVE)
    if private.key_type not in _ALGORITHMS or (private.key_type == KeyType.EC and public[Attribute.EC_PARAMS] != p256):
        raise CustodyError("token_label", f"the checkpoint signing key {handle} is neither Ed25519 nor P-256")
    return private, public
