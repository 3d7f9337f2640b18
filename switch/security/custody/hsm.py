"""The PKCS#11 custody: data keys stored wrapped under a key-encryption key (KEK) that
never leaves the token, unwrapped by each worker into its memory.

The KEK is an AES-256 token object, sensitive and never extractable, allowed to wrap
and unwrap and nothing else. The data keys (the tokenization keys, AES-256, and the
fingerprint key, a 256-bit generic secret for HMAC) were made inside the token and
leave it only wrapped (CKM_AES_KEY_WRAP_PAD), into the wrapped-key file (wrapped.py).
A worker unwraps each into a session object it may read, copies CKA_VALUE into memory
and destroys the object at once: the token keeps no clear copy, the disk never held one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, exceptions
from pkcs11.types import UnwrapMixin

from switch.security.custody.base import CheckpointSigner, CustodyError, Pkcs11Keys, TokenKeys
from switch.security.custody.hsm_signing import Pkcs11Signer
from switch.security.custody.session import open_session
from switch.security.custody.wrapped import WrappedKeys, read_wrapped

KEK_LABEL = "switch-kek"
WRAPPING = Mechanism.AES_KEY_WRAP_PAD  # RFC 5649: integrity-checked, any key length
DATA_KEY_BITS = 256
NO_CAPABILITIES = MechanismFlag(0)  # the data keys are used in the switch's memory, never in the token

# What a worker unwraps into: a session object (gone with the session) it may read.
# SoftHSM 2.6 answers CKR_ATTRIBUTE_SENSITIVE to reading CKA_VALUE unless the key is
# both not sensitive and extractable, so both are asked for; tokens that refuse to
# unwrap into a readable key cannot serve this custody (the keys are used in memory).
READABLE = {
    Attribute.TOKEN: False,
    Attribute.PRIVATE: True,
    Attribute.SENSITIVE: False,
    Attribute.EXTRACTABLE: True,
}


class Pkcs11Custody:
    kind = "pkcs11"

    def __init__(self, keys: Pkcs11Keys) -> None:
        self._keys = keys
        self._session = open_session(keys)
        self._signer: Pkcs11Signer | None = None
        self._closed = False
        try:
            self._wrapped = read_wrapped(Path(keys.wrapped_keys_file))
            self._kek = find_kek(self._session, self._wrapped.kek)
        except CustodyError:
            self._session.close()
            raise

    @property
    def wrapped(self) -> WrappedKeys:
        return self._wrapped

    def fingerprint_key(self) -> bytes:
        return unwrap(self._kek, KeyType.GENERIC_SECRET, self._wrapped.fingerprint, "fingerprint")

    def token_keys(self) -> TokenKeys:
        wrapped = self._wrapped
        keys = {key_id: unwrap(self._kek, KeyType.AES, blob, f"keys.{key_id}") for key_id, blob in wrapped.keys.items()}
        return TokenKeys(keys, wrapped.active_key)

    def checkpoint_signer(self) -> CheckpointSigner:
        if self._signer is None:
            self._signer = Pkcs11Signer(self._session, self._wrapped.audit_key)
        return self._signer

    def close(self) -> None:
        if not self._closed:  # a second close would be the token's error
            self._closed = True
            self._session.close()

    def __repr__(self) -> str:
        return f"Pkcs11Custody({self._keys!r})"


def find_kek(session: pkcs11.Session, label: str) -> pkcs11.Key:
    try:
        kek = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=label)
    except exceptions.NoSuchKey:
        raise CustodyError("token_label", f"the token has no key-encryption key {label!r} (switch keys init)") from None
    except exceptions.MultipleObjectsReturned:
        raise CustodyError("token_label", f"the token has several keys labelled {label!r}") from None
    return kek


def unwrap(kek: pkcs11.Key, key_type: KeyType, blob: bytes, what: str) -> bytes:
    """The wrapped key's value, through a session object destroyed at once."""
    if not isinstance(kek, UnwrapMixin):
        raise CustodyError("token_label", f"the key-encryption key {kek.label!r} may not unwrap")
    template: dict[Attribute, Any] = dict(READABLE)
    try:
        key = kek.unwrap_key(
            ObjectClass.SECRET_KEY,
            key_type,
            blob,
            mechanism=WRAPPING,
            capabilities=NO_CAPABILITIES,
            template=template,
        )
    except exceptions.PKCS11Error as exc:
        raise CustodyError(
            "wrapped_keys_file",
            f"{what} does not unwrap under the token's key-encryption key ({type(exc).__name__}): "
            "the file belongs to another token or key, or was changed",
        ) from None
    try:
        value = bytes(key[Attribute.VALUE])
    except exceptions.PKCS11Error as exc:
        raise CustodyError("token_label", f"the token will not let {what} be read ({type(exc).__name__})") from None
    finally:
        key.destroy()
    if len(value) * 8 != DATA_KEY_BITS:
        raise CustodyError("wrapped_keys_file", f"{what} is not a {DATA_KEY_BITS}-bit key")
    return value
