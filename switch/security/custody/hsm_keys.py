"""Making and rotating the PKCS#11 custody's keys: what `switch keys init | rotate | list
--config` does with key_custody = "pkcs11". No function here returns key material.

init makes (or finds) the key-encryption key, makes k1 and the fingerprint key inside
the token, wraps them into the wrapped-key file, and makes the checkpoint signing key
pair; rotate adds k<n+1> and makes it active (the older keys stay: their tokens keep
working), or, for the audit key, a new pair whose id the file then names (the old pair
stays in the token, so checkpoints it signed can still be checked with its public key).
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, exceptions
from pkcs11.types import WrapMixin
from pkcs11.util import ec

from switch.security.custody.base import CustodyError, Pkcs11Keys, next_key_id
from switch.security.custody.hsm import DATA_KEY_BITS, KEK_LABEL, NO_CAPABILITIES, WRAPPING, Pkcs11Custody, find_kek
from switch.security.custody.hsm_signing import AUDIT_LABEL, ED25519_CURVE, P256_CURVE, Pkcs11Signer
from switch.security.custody.session import open_session
from switch.security.custody.signing import ECDSA_P256_SHA256, ED25519, public_key_fingerprint
from switch.security.custody.wrapped import WrappedKeys, read_wrapped, write_wrapped

# The KEK: a token object that wraps and unwraps and does nothing else. Sensitive and
# not extractable, which PKCS#11 makes one-way (SoftHSM 2.6 answers CKR_ATTRIBUTE_READ_ONLY
# to setting either back), so its value never leaves the token, not even wrapped; and not
# modifiable (any change: CKR_ACTION_PROHIBITED), so nobody logged in can later let it
# encrypt or decrypt.
KEK_TEMPLATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.MODIFIABLE: False,
}
KEK_CAPABILITIES = MechanismFlag.WRAP | MechanismFlag.UNWRAP
# A data key while it is made: a session object, sensitive (nobody reads it in the token)
# and extractable, which only lets it out wrapped (C_WrapKey needs CKA_EXTRACTABLE).
NEW_DATA_KEY = {Attribute.TOKEN: False, Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: True}
# The checkpoint signing key: the private half sensitive, never extractable, sign only,
# and neither half modifiable.
AUDIT_PRIVATE = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SIGN: True,
    Attribute.DECRYPT: False,
    Attribute.UNWRAP: False,
    Attribute.DERIVE: False,
    Attribute.MODIFIABLE: False,
}
AUDIT_PUBLIC = {Attribute.TOKEN: True, Attribute.PRIVATE: False, Attribute.VERIFY: True, Attribute.MODIFIABLE: False}


@dataclass(frozen=True, slots=True)
class Listing:
    """What `switch keys list` shows: ids, fingerprints and the public key, no secret."""

    key_ids: tuple[str, ...]
    active_key: str
    audit_key: str
    audit_algorithm: str
    audit_fingerprint: str
    audit_public_key_pem: bytes


def init_keys(keys: Pkcs11Keys, algorithm: str | None = None) -> WrappedKeys:
    """algorithm: the checkpoint signing key's; None: Ed25519 where the token offers it, else ECDSA P-256."""
    path = Path(keys.wrapped_keys_file)
    if path.exists():
        raise CustodyError("wrapped_keys_file", f"{path} exists; keys are never replaced (rotate them instead)")
    with _session(keys) as session:
        kek = _kek(session)
        wrapped = WrappedKeys(
            kek=KEK_LABEL,
            active_key="k1",
            keys={"k1": _new_wrapped_key(session, kek, KeyType.AES)},
            fingerprint=_new_wrapped_key(session, kek, KeyType.GENERIC_SECRET),
            audit_key=_new_audit_key(session, algorithm or best_algorithm(session)),
        )
    if not write_wrapped(path, wrapped, replace=False):
        raise CustodyError("wrapped_keys_file", f"another process wrote {path} meanwhile; it is kept")
    return wrapped


def rotate_token_key(keys: Pkcs11Keys) -> str:
    """Adds k<n+1>, active from the next start of each worker; returns its id."""
    path = Path(keys.wrapped_keys_file)
    wrapped = read_wrapped(path)
    key_id = next_key_id(wrapped.keys)
    with _session(keys) as session:
        blob = _new_wrapped_key(session, find_kek(session, wrapped.kek), KeyType.AES)
    write_wrapped(path, replace(wrapped, keys={**wrapped.keys, key_id: blob}, active_key=key_id))
    return key_id


def rotate_audit_key(keys: Pkcs11Keys, algorithm: str | None = None) -> str:
    """A new checkpoint signing key pair, named by the file from now on; returns its key id
    (signing.public_key_id)."""
    path = Path(keys.wrapped_keys_file)
    wrapped = read_wrapped(path)
    with _session(keys) as session:
        handle = _new_audit_key(session, algorithm or best_algorithm(session))
        key_id = Pkcs11Signer(session, handle).key_id
    write_wrapped(path, replace(wrapped, audit_key=handle))
    return key_id


def listing(keys: Pkcs11Keys) -> Listing:
    """Checks the token holds the KEK and the signing key the file names; unwraps nothing."""
    custody = Pkcs11Custody(keys)
    try:
        signer = custody.checkpoint_signer()
        wrapped = custody.wrapped
        return Listing(
            key_ids=tuple(sorted(wrapped.keys)),
            active_key=wrapped.active_key,
            audit_key=signer.key_id,
            audit_algorithm=signer.algorithm,
            audit_fingerprint=public_key_fingerprint(signer.public_key_pem()),
            audit_public_key_pem=signer.public_key_pem(),
        )
    finally:
        custody.close()


def best_algorithm(session: pkcs11.Session) -> str:
    offered = session.token.slot.get_mechanisms()
    if {Mechanism.EC_EDWARDS_KEY_PAIR_GEN, Mechanism.EDDSA} <= offered:
        return ED25519
    return ECDSA_P256_SHA256


@contextlib.contextmanager
def _session(keys: Pkcs11Keys) -> Iterator[pkcs11.Session]:
    session = open_session(keys, rw=True)
    try:
        yield session
    except exceptions.PKCS11Error as exc:
        # The token refused an operation: its kind only (the CKR_ code), never arguments.
        raise CustodyError("token_label", f"the token refused: {type(exc).__name__}") from None
    finally:
        session.close()


def _kek(session: pkcs11.Session) -> pkcs11.Key:
    """The token's KEK; made when the token has none (a token set up for this switch)."""
    try:
        return find_kek(session, KEK_LABEL)
    except CustodyError:
        if any(True for _ in session.get_objects({Attribute.LABEL: KEK_LABEL})):
            raise
    return session.generate_key(
        KeyType.AES,
        DATA_KEY_BITS,
        label=KEK_LABEL,
        id=KEK_LABEL.encode(),
        store=True,
        capabilities=KEK_CAPABILITIES,
        template=dict(KEK_TEMPLATE),
    )


def _new_wrapped_key(session: pkcs11.Session, kek: pkcs11.Key, key_type: KeyType) -> bytes:
    if not isinstance(kek, WrapMixin):
        raise CustodyError("token_label", f"the key-encryption key {kek.label!r} may not wrap")
    key = session.generate_key(key_type, DATA_KEY_BITS, capabilities=NO_CAPABILITIES, template=dict(NEW_DATA_KEY))
    try:
        return bytes(kek.wrap_key(key, mechanism=WRAPPING))
    finally:
        key.destroy()


def _new_audit_key(session: pkcs11.Session, algorithm: str) -> str:
    """Makes the pair; returns the CKA_ID both halves carry (hex), which the file records.
    A random one: an unmodifiable object's id is set at its making, before its public key
    (whose digest names the key to verifiers) exists."""
    handle = secrets.token_bytes(8)
    curve = ED25519_CURVE if algorithm == ED25519 else P256_CURVE
    session.generate_keypair(
        KeyType.EC_EDWARDS if algorithm == ED25519 else KeyType.EC,
        id=handle,
        label=AUDIT_LABEL,
        store=True,
        capabilities=MechanismFlag.SIGN | MechanismFlag.VERIFY,
        public_template={**AUDIT_PUBLIC, Attribute.EC_PARAMS: ec.encode_named_curve_parameters(curve)},
        private_template=dict(AUDIT_PRIVATE),
    )
    return handle.hex()
