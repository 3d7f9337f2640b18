"""`switch tls init`: certificates for trying mutual TLS, from a throwaway CA.

It writes, into a folder it creates 0700, a fresh self-signed CA certificate
(ca.pem), a server certificate for the names given (server.pem, server.key) and a
client certificate carrying one identity (client.pem, client.key): what
[server.tls] and a client need to speak mutual TLS with the switch. ECDSA P-256,
valid for a year. Keys are mode 0600; no file is ever replaced (each is written
atomically and created once, like `switch keys init`).

The CA's private key is not kept: it signs these two certificates and is gone, so
nothing more can be issued under this CA (run it again in another folder). It is a
throwaway CA for trying the switch, not a PKI: a deployment uses its own CA (or a
SPIFFE issuer) and names its files in [server.tls].

The tests' certificate authority (tests/pki.py) is this one, so there is one
certificate-issuing code.
"""

from __future__ import annotations

import datetime
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from switch.cli.demo.tls import CA_FILE, CLIENT_CERT, CLIENT_KEY, SERVER_CERT, SERVER_KEY  # the folder's layout
from switch.config import ConfigError
from switch.config.keys import write_secret

DEFAULT_NAMES = ("localhost", "127.0.0.1")
VALID_DAYS = 365
CERT_MODE = 0o644  # a certificate is public; its key is 0600 (write_secret's mode)
_MAX_COMMON_NAME = 64  # X.509's upper bound for a common name
# A URI as a SAN holds: ASCII, a scheme, an authority (a SPIFFE id's trust domain), a path.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[!-.0-~]+[!-~]*")
_DNS_NAME = re.compile(r"(?:\*\.)?(?!-)[A-Za-z0-9-]{1,63}(?<!-)(?:\.(?!-)[A-Za-z0-9-]{1,63}(?<!-))*\.?")


@dataclass(frozen=True)
class Issued:
    """A certificate (PEM) and its private key (PEM, unencrypted)."""

    cert_pem: bytes
    key_pem: bytes
    serial: int

    def write(self, folder: Path, name: str, *, replace: bool = True) -> tuple[Path, Path]:
        """(certificate, key) written as name.pem and name.key (0600), each atomically;
        replace=False refuses (ConfigError naming it) a file that is already there."""
        cert, key = folder / f"{name}.pem", folder / f"{name}.key"
        _write(cert, self.cert_pem, replace=replace, secret=False)
        _write(key, self.key_pem, replace=replace, secret=True)
        return cert, key


class CA:
    """A self-signed certificate authority held in memory: its key lives as long as the object."""

    def __init__(self, name: str = "switch test CA", *, days: int = VALID_DAYS) -> None:
        self.days = days
        self.key = ec.generate_private_key(ec.SECP256R1())
        start, end = _validity(days, expired=False)
        subject = _name(name)
        public = self.key.public_key()
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, folder: Path, name: str = "ca", *, replace: bool = True) -> Path:
        """The CA's certificate (never its key) as name.pem."""
        path = folder / f"{name}.pem"
        _write(path, self.cert_pem, replace=replace, secret=False)
        return path

    def server(self, names: Sequence[str] = DEFAULT_NAMES, *, expired: bool = False) -> Issued:
        """A server certificate (serverAuth) for names: DNS names, and IP addresses as IP SANs."""
        ips = tuple(name for name in names if _is_ip(name))
        dns = tuple(name for name in names if not _is_ip(name))
        return self.issue(dns=dns, ips=ips, client=False, expired=expired)

    def client(self, *, uri: str = "", dns: str = "", common_name: str = "client", expired: bool = False) -> Issued:
        """A client certificate (clientAuth) naming the caller by a URI SAN (a SPIFFE id) or a DNS SAN."""
        return self.issue(
            dns=(dns,) if dns else (), uris=(uri,) if uri else (), common_name=common_name, client=True, expired=expired
        )

    def issue(
        self,
        *,
        dns: Sequence[str] = (),
        ips: Sequence[str] = (),
        uris: Sequence[str] = (),
        common_name: str = "",
        client: bool,
        expired: bool = False,
    ) -> Issued:
        """A leaf certificate signed by this CA, for a client (clientAuth) or a server
        (serverAuth); expired: one whose validity ended yesterday."""
        key = ec.generate_private_key(ec.SECP256R1())
        start, end = _validity(self.days, expired=expired)
        names: list[x509.GeneralName] = [x509.DNSName(name) for name in dns]
        names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        names += [x509.UniformResourceIdentifier(uri) for uri in uris]
        shown = common_name or next(iter([*dns, *ips]), "peer")
        usage = ExtendedKeyUsageOID.CLIENT_AUTH if client else ExtendedKeyUsageOID.SERVER_AUTH
        serial = x509.random_serial_number()
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(shown if len(shown) <= _MAX_COMMON_NAME else "peer"))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(ca=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(x509.SubjectAlternativeName(names), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return Issued(cert.public_bytes(serialization.Encoding.PEM), key_pem, serial)


def init(folder: Path, client: str, names: Sequence[str] | None) -> int:
    """Writes ca.pem, server.pem + server.key and client.pem + client.key into folder
    (see the module's docstring); ConfigError, writing nothing, when one is there or
    an argument is not a name a certificate can hold. Prints the paths and the
    client's identity, never key material."""
    server_names = tuple(names) if names else DEFAULT_NAMES
    for name in server_names:
        if not (_is_ip(name) or _DNS_NAME.fullmatch(name)):
            raise ConfigError(f"tls init: --name {name!r} is neither a DNS name nor an IP address")
    identity = client.strip()
    if "://" in identity:
        if not _URI.fullmatch(identity):
            raise ConfigError(f"tls init: --client {client!r} is not a URI (e.g. spiffe://switch.local/client)")
    elif not _DNS_NAME.fullmatch(identity):
        raise ConfigError(f"tls init: --client {client!r} is neither a URI (a SPIFFE id) nor a DNS name")
    targets = [folder / name for name in (CA_FILE, SERVER_CERT, SERVER_KEY, CLIENT_CERT, CLIENT_KEY)]
    for path in targets:
        if path.exists():
            raise ConfigError(f"tls init: {path} exists; certificates are never replaced (choose another --dir)")

    ca = CA("switch tls init CA (throwaway)")  # its key is never written: it goes with this call
    server = ca.server(server_names)
    issued = ca.client(uri=identity) if "://" in identity else ca.client(dns=identity, common_name=identity)
    try:
        ca_file = ca.write(folder, replace=False)
        server_cert, server_key = server.write(folder, "server", replace=False)
        client_cert, client_key = issued.write(folder, "client", replace=False)
    except OSError as exc:
        raise ConfigError(f"tls init: cannot write in {folder}: {exc.strerror}") from None

    print(f"wrote {ca_file}: a throwaway CA's certificate (server.tls.client_ca_file; clients trust it)")
    print(f"wrote {server_cert} and {server_key} (key mode 0600): the switch's, for {', '.join(server_names)}")
    print(f"wrote {client_cert} and {client_key} (key mode 0600): a client's, identity {identity}")
    print(f"valid {VALID_DAYS} days; the CA's private key was not kept (a throwaway CA: it signs nothing more)")
    return 0


def _write(path: Path, data: bytes, *, replace: bool, secret: bool) -> None:
    """Atomically, through write_secret (mode 0600, its folder created 0700); a
    certificate is then made readable (CERT_MODE)."""
    if not write_secret(path, data, replace=replace):
        raise ConfigError(f"tls init: {path} exists; certificates are never replaced (choose another --dir)")
    if not secret:
        path.chmod(CERT_MODE)


def _validity(days: int, *, expired: bool) -> tuple[datetime.datetime, datetime.datetime]:
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        return now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)
    return now - datetime.timedelta(days=1), now + datetime.timedelta(days=days)


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True
