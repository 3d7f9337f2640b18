"""The security room's parts on their own: policies, identities, the [server.tls] and
[[security.callers]] tables, and reading the port's certificate again."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from switch.config import ConfigError, from_mapping
from switch.domain.errors import PermissionDenied, StartupError, Unauthenticated
from switch.security.access import Access, check_merchant
from switch.security.identity import IdentitySource, from_certificate
from switch.security.policy import CallerRule, Policy, Role
from switch.security.tls import ServerCertificates, TlsFiles
from tests.pki import CA

ALL = frozenset(Role)


def rule(identity: str, *roles: Role, merchants: tuple[str, ...] = ("*",)) -> CallerRule:
    return CallerRule(identity, frozenset(roles), merchants)


# --- policy -----------------------------------------------------------------------------


def test_the_first_matching_rule_grants() -> None:
    policy = Policy(
        [
            rule("spiffe://wallet.example/payments", Role.AUTHORIZE, merchants=("m-1",)),
            rule("spiffe://wallet.example/*", Role.READ),
        ]
    )
    payments = policy.grant("spiffe://wallet.example/payments")
    assert payments is not None and payments.roles == {Role.AUTHORIZE}
    reporting = policy.grant("spiffe://wallet.example/reporting")
    assert reporting is not None and reporting.roles == {Role.READ}
    assert policy.grant("spiffe://other.example/payments") is None


@pytest.mark.parametrize(
    ("pattern", "identity", "matches"),
    [
        ("*", "", True),
        ("*", "anything at all", True),
        ("payments.internal", "payments.internal", True),
        ("payments.internal", "payments.internal.evil", False),
        ("payments.*", "payments.internal", True),
        ("*.internal", "payments.internal", True),
        ("a.b", "aXb", False),  # "." is a dot, not any character
        ("a?b", "aXb", False),  # only "*" is special
        ("[ab]", "a", False),
    ],
)
def test_identity_patterns(pattern: str, identity: str, matches: bool) -> None:
    assert (Policy([rule(pattern, Role.READ)]).grant(identity) is not None) is matches


@pytest.mark.parametrize(
    ("merchants", "merchant", "allowed"),
    [
        (("*",), "m-anything", True),
        (("m-1", "m-2"), "m-2", True),
        (("m-1",), "m-10", False),
        (("m-br-*",), "m-br-77", True),
        (("m-br-*",), "m-ar-77", False),
        ((), "m-1", False),
    ],
)
def test_merchant_scopes(merchants: tuple[str, ...], merchant: str, allowed: bool) -> None:
    grant = Policy([rule("*", Role.AUTHORIZE, merchants=merchants)]).grant("c")
    assert grant is not None and grant.may_act_for(merchant) is allowed


def test_grants_are_cached_per_caller_and_the_cache_is_bounded() -> None:
    policy = Policy([rule("*", Role.READ)])
    assert policy.grant("a") is policy.grant("a")
    for index in range(5000):
        policy.grant(f"caller-{index}")
    assert len(policy._grants) <= 4096


# --- access ---------------------------------------------------------------------------


class _Context:
    def __init__(self, names: list[bytes] | None) -> None:
        self._names = names

    def peer_identities(self) -> list[bytes] | None:
        return self._names


def test_with_tls_the_certificate_names_the_caller_and_none_is_unauthenticated() -> None:
    access = Access(Policy([rule("*", Role.READ)]), IdentitySource.CERTIFICATE)
    assert access.caller(_Context([b"cn"]), "ignored-header") == "cn"
    with pytest.raises(Unauthenticated):
        access.caller(_Context(None), "spoofed")


def test_a_trusted_header_is_required_when_it_names_the_caller() -> None:
    access = Access(Policy([rule("*", Role.READ)]), IdentitySource.HEADER, "x-caller-id")
    assert access.caller(_Context(None), "wallet-api") == "wallet-api"
    with pytest.raises(Unauthenticated, match="x-caller-id"):
        access.caller(_Context(None), "")


def test_plaintext_without_a_trusted_header_is_anonymous() -> None:
    access = Access(Policy([rule("*", Role.READ)]), IdentitySource.NONE)
    assert access.caller(_Context(None), "wallet-api") == ""


def test_admission_needs_the_role_and_names_neither_caller_nor_merchant() -> None:
    access = Access(Policy([rule("reader", Role.READ, merchants=("m-1",))]), IdentitySource.NONE)
    grant = access.admit("reader", Role.READ)
    with pytest.raises(PermissionDenied) as refused:
        access.admit("reader", Role.AUTHORIZE)
    assert "reader" not in refused.value.message
    with pytest.raises(PermissionDenied):
        access.admit("stranger", Role.READ)
    check_merchant(grant, "m-1")
    with pytest.raises(PermissionDenied) as scoped:
        check_merchant(grant, "m-4111111111111111")
    assert "4111" not in scoped.value.message


@pytest.mark.parametrize(
    ("names", "identity"),
    [
        ([b"p.internal", b"urn://x/y", b"spiffe://w/p"], "spiffe://w/p"),
        ([b"p.internal", b"https://w.example/p"], "https://w.example/p"),
        ([b"p.internal", b"q.internal"], "p.internal"),
        ([b"cn"], "cn"),  # no SAN: gRPC gives the common name
        ([], None),
        (None, None),
    ],
)
def test_the_certificate_identity_is_the_most_specific_name(names: list[bytes] | None, identity: str | None) -> None:
    assert from_certificate(names) == identity


# --- configuration --------------------------------------------------------------------


def test_callers_parse_into_rules() -> None:
    settings = from_mapping(
        {"security": {"callers": [{"identity": "spiffe://w/*", "roles": ["authorize", "read"], "merchants": ["m-*"]}]}}
    )
    assert settings.callers == (CallerRule("spiffe://w/*", frozenset({Role.AUTHORIZE, Role.READ}), ("m-*",)),)
    assert from_mapping({}).callers is None  # the default policy


@pytest.mark.parametrize(
    ("callers", "message"),
    [
        ({"identity": 7, "roles": ["read"]}, r"security.callers\[0\].identity: must be a string"),
        ({"identity": "a", "roles": []}, r"security.callers\[0\].roles: must be a non-empty array"),
        ({"identity": "a", "roles": ["root"]}, r"security.callers\[0\].roles: each must be one of authorize, "),
        ({"identity": "a", "roles": ["read"], "merchants": "m-1"}, r"security.callers\[0\].merchants: must be"),
        ({"identity": "a", "roles": ["read"], "who": 1}, r"security.callers\[0\].who: unknown key"),
    ],
)
def test_bad_callers_name_the_key(callers: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping({"security": {"callers": [callers]}})


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        ({"cert_file": "c.pem"}, "server.tls: name cert_file and key_file"),
        ({"cert_file": "c.pem", "key_file": "k.pem"}, "server.tls.client_ca_file: mutual TLS needs the CA"),
        (
            {"cert_file": "c", "key_file": "k", "require_client_cert": "yes"},
            "require_client_cert: must be true or false",
        ),
        ({"cert_file": "c", "key_file": "k", "ca": "x"}, "server.tls.ca: unknown key"),
    ],
)
def test_bad_tls_tables_name_the_key(tls: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        from_mapping({"server": {"tls": tls}})


def test_tls_without_client_certificates_needs_no_ca() -> None:
    settings = from_mapping({"server": {"tls": {"cert_file": "c", "key_file": "k", "require_client_cert": False}}})
    assert settings.tls == TlsFiles("c", "k", "", False)


# --- reading the port's certificate again ------------------------------------------------


@pytest.fixture
def files(tmp_path: Path) -> tuple[CA, TlsFiles]:
    ca = CA()
    cert, key = ca.server().write(tmp_path, "server")
    return ca, TlsFiles(str(cert), str(key), str(ca.write(tmp_path)))


def test_unchanged_files_are_not_read_again(files: tuple[CA, TlsFiles]) -> None:
    certificates = ServerCertificates(files[1])
    assert certificates._fetch() is None


def test_changed_files_are_served_and_a_forced_reload_reads_them_even_with_the_same_times(
    files: tuple[CA, TlsFiles],
) -> None:
    ca, tls = files
    certificates = ServerCertificates(tls)
    times = os.stat(tls.cert_file)
    ca.server().write(Path(tls.cert_file).parent, "server")
    assert certificates._fetch() is not None
    assert certificates._fetch() is None  # read once
    ca.server().write(Path(tls.cert_file).parent, "server")
    for name in (tls.cert_file, tls.key_file):
        os.utime(name, ns=(times.st_atime_ns, times.st_mtime_ns))
    certificates.reload()
    assert certificates._fetch() is not None


def test_a_half_written_rotation_keeps_the_current_pair(files: tuple[CA, TlsFiles]) -> None:
    ca, tls = files
    certificates = ServerCertificates(tls)
    Path(tls.cert_file).write_bytes(ca.server().cert_pem)  # a new certificate, the old key
    assert certificates._fetch() is None
    Path(tls.key_file).write_bytes(b"not a key")
    assert certificates._fetch() is None


def test_unreadable_files_refuse_the_start_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(StartupError, match=r"server.tls: cert_file: cannot read"):
        ServerCertificates(TlsFiles(str(tmp_path / "missing.pem"), str(tmp_path / "k"), ""))
    (tmp_path / "bad.pem").write_text("not a certificate")
    (tmp_path / "k").write_text("whatever")
    with pytest.raises(StartupError, match=r"holds no PEM certificate"):
        ServerCertificates(TlsFiles(str(tmp_path / "bad.pem"), str(tmp_path / "k"), ""))


def test_a_key_others_may_read_is_refused_like_every_key_file(files: tuple[CA, TlsFiles]) -> None:
    _, tls = files
    Path(tls.key_file).chmod(0o640)
    with pytest.raises(StartupError, match=r"server.tls: key_file: .* is mode 0640; key files must be 0600"):
        ServerCertificates(tls)
    Path(tls.key_file).chmod(0o600)
    certificates = ServerCertificates(tls)
    Path(tls.key_file).chmod(0o644)
    certificates.reload()
    assert certificates._fetch() is None  # a rotation that exposes the key keeps the current pair


def test_key_errors_never_quote_the_key(files: tuple[CA, TlsFiles], tmp_path: Path) -> None:
    _, tls = files
    secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
    (tmp_path / "broken.key").write_text(secret)
    (tmp_path / "broken.key").chmod(0o600)  # private: the parse, not the mode, refuses it
    with pytest.raises(StartupError) as refused:
        ServerCertificates(TlsFiles(tls.cert_file, str(tmp_path / "broken.key"), ""))
    assert "c2VjcmV0" not in str(refused.value)


def test_the_readmes_callers_section_configures_what_it_says() -> None:
    import re
    import tomllib

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("## Callers: TLS, identities and roles") : readme.index("## Running it")]
    blocks = re.findall(r"```toml\n(.*?)```", section, re.DOTALL)
    settings = from_mapping(tomllib.loads("\n".join(blocks)))
    assert settings.tls == TlsFiles(
        "/etc/switch/tls/server.pem", "/etc/switch/tls/server.key", "/etc/switch/tls/clients-ca.pem", True
    )
    assert settings.callers is not None
    payments = Policy(settings.callers).grant("spiffe://wallet.example/payments")
    assert payments is not None and Role.TOKENIZE in payments.roles
    assert payments.may_act_for("m-br-1") and not payments.may_act_for("m-ar-1")
    reporting = Policy(settings.callers).grant("spiffe://wallet.example/reporting/daily")
    assert reporting is not None and reporting.roles == {Role.READ}
