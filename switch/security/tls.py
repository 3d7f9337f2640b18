"""TLS on the switch's port: its certificate and key, and the CA that client
certificates must chain to, read again without a restart when they change.

gRPC asks for the current files at each TLS handshake (a new connection, not a call),
so a certificate rotated on disk serves the next connection while the calls in
flight finish on theirs; `reload()` (SIGHUP) forces a read even when the files' times
did not change. A half-written rotation (a certificate that does not match its key,
a file that does not parse) keeps the current pair and is tried again at the next
handshake. grpc is imported inside the functions: the settings hold a TlsFiles and
are read before `serve` forks its workers, which gRPC must not see.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from switch.domain.errors import StartupError
from switch.security.secret_files import SecretFileError, read_private

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    cert_file: str  # PEM: the server's certificate, then its chain
    key_file: str  # PEM: its private key; refused unless only its owner may read it (0600)
    client_ca_file: str = ""  # PEM: the CAs client certificates must chain to
    # True: mutual TLS, callers named by their certificates. False: the server alone is
    # authenticated; gRPC then does not ask for client certificates, so callers are anonymous.
    require_client_cert: bool = True


class ServerCertificates:
    def __init__(self, files: TlsFiles, on_reload: Callable[[str], None] | None = None) -> None:
        """on_reload(what) is called, from gRPC's thread, when new files are served."""
        self.files = files
        self._on_reload = on_reload
        self._forced = False
        self._stamp = self._stamps()
        try:
            self._current = self._read()
        except (OSError, ValueError) as exc:
            raise StartupError(f"server.tls: {exc}") from None

    def credentials(self) -> Any:
        """The port's grpc.ServerCredentials, asking this object for new files at each handshake."""
        import grpc

        return grpc.dynamic_ssl_server_credentials(
            self._current, self._fetch, require_client_authentication=self.files.require_client_cert
        )

    def reload(self) -> None:
        """Reads the files at the next handshake, even if their times did not change."""
        self._forced = True

    def _fetch(self) -> Any:
        stamp = self._stamps()
        if stamp == self._stamp and not self._forced:
            return None
        try:
            current = self._read()
        except (OSError, ValueError) as exc:
            log.warning("server.tls: keeping the current certificate: %s", exc)
            return None
        self._forced = False
        self._stamp = stamp
        self._current = current
        log.info("server.tls: serving the certificate in %s from the next connection on", self.files.cert_file)
        if self._on_reload is not None:
            self._on_reload(f"serving {self.files.cert_file} from the next connection on")
        return current

    def _stamps(self) -> tuple[tuple[int, int], ...]:
        stamps = []
        for name in (self.files.cert_file, self.files.key_file, self.files.client_ca_file):
            try:
                status = os.stat(name) if name else None
            except OSError:
                status = None
            stamps.append((status.st_mtime_ns, status.st_size) if status else (0, 0))
        return tuple(stamps)

    def _read(self) -> Any:
        """The files as a grpc certificate configuration; ValueError naming the file
        when one does not parse or the certificate is not the key's."""
        import grpc

        chain = _read(self.files.cert_file, "cert_file")
        try:
            certificate = x509.load_pem_x509_certificates(chain)[0]
        except ValueError:
            raise ValueError(f"cert_file: {self.files.cert_file} holds no PEM certificate") from None
        try:
            key = read_private(Path(self.files.key_file))
        except SecretFileError as exc:
            raise ValueError(f"key_file: {exc}") from None
        try:
            private_key = serialization.load_pem_private_key(key, password=None)
        except (ValueError, TypeError):
            # Never the exception's text: it may quote the key.
            raise ValueError(f"key_file: {self.files.key_file} holds no unencrypted PEM private key") from None
        if certificate.public_key().public_bytes(*_SPKI) != private_key.public_key().public_bytes(*_SPKI):
            raise ValueError(f"cert_file: {self.files.cert_file} is not the certificate of key_file's key")
        roots = _read(self.files.client_ca_file, "client_ca_file") if self.files.client_ca_file else None
        return grpc.ssl_server_certificate_configuration([(key, chain)], root_certificates=roots)


_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _read(path: str, setting: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{setting}: cannot read {path}: {exc.strerror}") from None
