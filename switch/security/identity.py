"""Who is calling: the identity a call is admitted under.

With TLS, the verified client certificate says it, in this order: its SPIFFE id (a
`spiffe://` URI SAN), another URI SAN, a DNS SAN, the subject's common name; any
header the caller writes is ignored. Without TLS there is no verified identity: a
mesh sidecar that terminated mutual TLS in front of the switch may pass the one it
verified in a trusted header, which configuration names, and only for a listener on
loopback or a Unix socket, where nothing but the sidecar can reach the switch.
Otherwise every plaintext caller is the anonymous identity "".
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence

ANONYMOUS = ""

# The peer properties grpc's TLS puts in a call's auth context, most specific first.
_CERTIFICATE_NAMES = ("peer_spiffe_id", "peer_uri", "peer_dns", "x509_common_name")


class IdentitySource(enum.Enum):
    CERTIFICATE = "certificate"  # TLS: the client certificate
    HEADER = "header"  # plaintext behind a sidecar: a trusted header
    NONE = "none"  # plaintext: everyone is anonymous


def from_certificate(auth_context: Mapping[str, Sequence[bytes]]) -> str | None:
    """The verified certificate's identity; None when the peer presented no certificate."""
    for name in _CERTIFICATE_NAMES:
        values = auth_context.get(name)
        if values:
            return values[0].decode("utf-8", "replace")
    return None
