"""A folder of TLS files, as `switch tls init --dir DIR` writes it, for the clients the
project ships: the demo, and the load tests (loadtests/ imports this module; it imports
neither the demo nor gRPC at module level, and the demo package's __init__ loads nothing):

    DIR/ca.pem                        the CA both sides trust
    DIR/server.pem, DIR/server.key    the server's certificate (localhost, 127.0.0.1) and key
    DIR/client.pem, DIR/client.key    a client certificate and key: the caller

A server started for a client of the project serves mutual TLS with the first three and
grants the client certificate's identity what the demo and the load tests call
(`server_files()` and `caller_rule()` as settings, `server_toml()` as configuration); the
client connects with `credentials()`. gRPC checks the server certificate against the host
the client dials (127.0.0.1 or localhost are in it), so no target name override is needed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.x509.oid import NameOID

from switch.domain.errors import StartupError
from switch.security.identity import from_certificate
from switch.security.policy import CallerRule, Role
from switch.security.tls import TlsFiles

if TYPE_CHECKING:
    import grpc

CA_FILE = "ca.pem"
SERVER_CERT, SERVER_KEY = "server.pem", "server.key"
CLIENT_CERT, CLIENT_KEY = "client.pem", "client.key"
FILES = (CA_FILE, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY)

# What the demo and the load tests call: never detokenize or administer.
CLIENT_ROLES = frozenset({Role.AUTHORIZE, Role.OPERATE, Role.READ, Role.QUOTE, Role.TOKENIZE})


@dataclass(frozen=True)
class TlsFolder:
    path: Path

    @classmethod
    def open(cls, path: Path | str) -> TlsFolder:
        """The folder, once it holds every file; StartupError naming the ones it lacks."""
        folder = cls(Path(path).resolve())  # absolute: a server may run in another folder
        missing = [name for name in FILES if not (folder.path / name).is_file()]
        if missing:
            raise StartupError(
                f"--tls-dir {path}: no {', '.join(missing)} there (make the folder with `switch tls init --dir {path}`)"
            )
        return folder

    def file(self, name: str) -> Path:
        return self.path / name

    def read(self, name: str) -> bytes:
        try:
            return self.file(name).read_bytes()
        except OSError as exc:
            raise StartupError(f"--tls-dir {self.path}: cannot read {name}: {exc.strerror}") from None

    # --- the client ---------------------------------------------------------------------------------

    def credentials(self) -> grpc.ChannelCredentials:
        """Channel credentials: trust ca.pem, present client.pem (with client.key)."""
        import grpc

        return grpc.ssl_channel_credentials(
            root_certificates=self.read(CA_FILE),
            private_key=self.read(CLIENT_KEY),
            certificate_chain=self.read(CLIENT_CERT),
        )

    def client_identity(self) -> str:
        """The identity the switch names the client by (switch.security.identity): from the
        names gRPC reads off client.pem, its subject alternative names (DNS, URI, IP) or,
        when it has none, its common name."""
        try:
            certificate = x509.load_pem_x509_certificates(self.read(CLIENT_CERT))[0]
        except ValueError:
            raise StartupError(f"--tls-dir {self.path}: {CLIENT_CERT} holds no PEM certificate") from None
        names: list[str] = []
        try:
            alternative = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            pass
        else:
            names += alternative.get_values_for_type(x509.DNSName)
            names += alternative.get_values_for_type(x509.UniformResourceIdentifier)
            names += [str(ip) for ip in alternative.get_values_for_type(x509.IPAddress)]
        if not names:
            common = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            names = [str(attribute.value) for attribute in common]
        identity = from_certificate([name.encode() for name in names])
        if not identity:
            raise StartupError(f"--tls-dir {self.path}: {CLIENT_CERT} names nobody (no SAN, no common name)")
        return identity

    # --- the server -----------------------------------------------------------------------------------

    def server_files(self) -> TlsFiles:
        """[server.tls]: mutual TLS with server.pem / server.key, clients chaining to ca.pem."""
        return TlsFiles(
            cert_file=str(self.file(SERVER_CERT)),
            key_file=str(self.file(SERVER_KEY)),
            client_ca_file=str(self.file(CA_FILE)),
            require_client_cert=True,
        )

    def caller_rule(self) -> CallerRule:
        """[[security.callers]]: the client's identity with CLIENT_ROLES, for every merchant."""
        return CallerRule(self.client_identity(), CLIENT_ROLES, ("*",))

    def server_toml(self) -> str:
        """server_files() and caller_rule() as configuration, to add to a TOML file that has
        no [server.tls] and no [[security.callers]] of its own."""
        files, rule = self.server_files(), self.caller_rule()
        roles = ", ".join(json.dumps(role.value) for role in sorted(rule.roles, key=lambda role: role.value))
        return (
            "\n[server.tls]\n"
            f"cert_file = {_toml_string(files.cert_file)}\n"
            f"key_file = {_toml_string(files.key_file)}\n"
            f"client_ca_file = {_toml_string(files.client_ca_file)}\n"
            "\n[[security.callers]]\n"
            f"identity = {_toml_string(rule.identity)}\n"
            f"roles = [{roles}]\n"
            'merchants = ["*"]\n'
        )


def _toml_string(text: str) -> str:
    # A JSON string is a TOML basic string: the same quotes and escapes.
    return json.dumps(text)
