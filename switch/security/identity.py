"""Who is calling: the identity a call is admitted under.

With TLS, the verified client certificate says it, in this order: its SPIFFE id (a
`spiffe://` URI SAN), another URI SAN, its first other SAN (a DNS name), the
subject's common name when it has no SAN; any header the caller writes is ignored.
Without TLS there is no verified identity: a mesh sidecar that terminated mutual
TLS in front of the switch may pass the one it verified in a trusted header, which
configuration names, and only for a listener on loopback, where nothing but the
sidecar can reach the switch. Otherwise every plaintext caller is the anonymous
identity "".
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

ANONYMOUS = ""


class IdentitySource(enum.Enum):
    CERTIFICATE = "certificate"  # TLS: the client certificate
    HEADER = "header"  # plaintext behind a sidecar: a trusted header
    NONE = "none"  # plaintext: everyone is anonymous


def from_certificate(names: Sequence[bytes] | None) -> str | None:
    """The verified certificate's identity, from the names gRPC reads off it (its
    subject alternative names, or its common name when it has none: the call's
    peer_identities(), which costs a tenth of the full auth context); None when the
    peer presented no certificate. A URI holds "://", which no DNS name can."""
    if not names:
        return None
    spiffe = [name for name in names if name.startswith(b"spiffe://")]
    uris = spiffe or [name for name in names if b"://" in name]
    return (uris or names)[0].decode("utf-8", "replace")
