"""Key custody: where the switch's keys live and how a worker gets them.

- files.py: key files (the embedded default, and file-based production);
- hsm.py: a PKCS#11 token; the data keys are stored wrapped under its key-encryption
  key (wrapped.py) and unwrapped into each worker's memory, after the fork
  (session.py); hsm_keys.py makes and rotates them; hsm_signing.py signs in the token;
- signing.py: checking a checkpoint signature with the public key alone.

open_custody is what the composition root calls, in the worker. python-pkcs11 is
imported only when a PKCS#11 custody is opened: reading the settings never loads it.
"""

from __future__ import annotations

from switch.security.custody.base import (
    CheckpointSigner,
    Custody,
    CustodyError,
    FileKeys,
    Pkcs11Keys,
    TokenKeys,
)
from switch.security.custody.signing import verify_signature

__all__ = [
    "CheckpointSigner",
    "Custody",
    "CustodyError",
    "FileKeys",
    "Pkcs11Keys",
    "TokenKeys",
    "open_custody",
    "verify_signature",
]


def open_custody(description: FileKeys | Pkcs11Keys) -> Custody:
    """The custody the description names; CustodyError (its field names the part at
    fault) when its keys cannot be reached. Close it when the process is done with it."""
    if isinstance(description, FileKeys):
        from switch.security.custody.files import FileCustody

        return FileCustody(description)
    from switch.security.custody.hsm import Pkcs11Custody

    return Pkcs11Custody(description)
