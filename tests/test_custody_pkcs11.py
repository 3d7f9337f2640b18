"""security.key_custody = "pkcs11" on SoftHSM2: keys wrapped under a key-encryption key
that never leaves the token, unwrapped by each worker into memory, rotated without
breaking old tokens; checkpoints signed in the token and verified without it; and no
key material in any file, log or environment variable of the switch."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import re
import secrets
import signal
import sqlite3
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grpc
import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, Mechanism, MechanismFlag, ObjectClass, exceptions
from pkcs11.types import WrapMixin

from switch import config
from switch.cards.tokenizer import KeyRing, Tokenizer
from switch.config import ConfigError
from switch.domain.models import Card, Token
from switch.security.audit.checkpoints import Signer
from switch.security.custody import CustodyError, Pkcs11Keys, hsm_keys, open_custody, verify_signature
from switch.security.custody.hsm import KEK_LABEL
from switch.security.custody.hsm_signing import AUDIT_LABEL
from switch.security.custody.signing import ECDSA_P256_SHA256, ED25519, public_key_id
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import POSTGRES_DSN, REDIS_URL, drop_production_state
from tests.softhsm import LABEL, MODULE, SoftHsm, shared_token
from tests.test_serve import children_of, free_port, wait_until, wait_until_serving
from tests.test_startup import assert_refused_once

VISA = "4111111111111111"


@pytest.fixture
def hsm(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    return shared_token(tmp_path_factory)


@pytest.fixture
def keys(hsm: SoftHsm, tmp_path: Path) -> Pkcs11Keys:
    """A fresh set of keys in the token (init), in this test's own wrapped-key file."""
    described = hsm.keys(tmp_path / "data" / "wrapped-keys.json")
    hsm_keys.init_keys(described)
    return described


def switch_keys(hsm: SoftHsm, *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switch", "keys", *args]
    # In the token's folder: a configuration that names no journal gets the default's there.
    return subprocess.run(
        command, env=hsm.environ(), cwd=hsm.folder, capture_output=True, text=True, timeout=60, check=False
    )


def unwrapped(keys: Pkcs11Keys) -> tuple[bytes, dict[str, bytes], str]:
    """What the token unwraps: the fingerprint key, the token keys, the active key id."""
    custody = open_custody(keys)
    try:
        ring = custody.token_keys()
        return custody.fingerprint_key(), dict(ring.keys), ring.active_key
    finally:
        custody.close()


# --- the configuration ----------------------------------------------------------------------

PKCS11_TABLE = {"module": MODULE, "token_label": LABEL, "pin_file": "/p", "wrapped_keys_file": "/w"}


def test_the_readmes_hsm_table_configures_what_it_says() -> None:
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index("### Keys in an HSM") : readme.index("## The API")]
    block = section[section.index("```toml\n") + len("```toml\n") : section.index("```\n", section.index("```toml"))]
    described = config.from_mapping(tomllib.loads(block)).pkcs11
    assert described == Pkcs11Keys(MODULE, "switch", "/run/secrets/hsm-pin", "/var/lib/switch/wrapped-keys.json")


def test_the_settings_carry_where_the_keys_are_and_no_key() -> None:
    settings = config.from_mapping({"security": {"key_custody": "pkcs11", "pkcs11": PKCS11_TABLE}})
    assert settings.pkcs11 == Pkcs11Keys(MODULE, LABEL, "/p", "/w")
    assert config.from_mapping({}).pkcs11 is None  # the file custody, as before


@pytest.mark.parametrize(
    ("security", "extra", "message"),
    [
        ({"key_custody": "hsm"}, {}, r'security\.key_custody: must be "file" or "pkcs11"'),
        ({"key_custody": "pkcs11"}, {}, r"security\.pkcs11: key_custody = \"pkcs11\" needs this table .*"),
        ({"pkcs11": PKCS11_TABLE}, {}, r'security\.pkcs11: only with security\.key_custody = "pkcs11"'),
        (
            {"key_custody": "pkcs11", "pkcs11": {**PKCS11_TABLE, "pin": "1234"}},
            {},
            r"security\.pkcs11\.pin: unknown key",
        ),
        (
            {"key_custody": "pkcs11", "pkcs11": {k: v for k, v in PKCS11_TABLE.items() if k != "module"}},
            {},
            r"security\.pkcs11\.module: required",
        ),
        (
            {"key_custody": "pkcs11", "pkcs11": {**PKCS11_TABLE, "token_label": ""}},
            {},
            r"security\.pkcs11\.token_label: must be a non-empty string",
        ),
        (
            {"key_custody": "pkcs11", "pkcs11": PKCS11_TABLE, "fingerprint_key_hex": "ab" * 32},
            {},
            r"security\.fingerprint_key_hex: with key_custody = \"pkcs11\" the keys are in the token; remove it",
        ),
        (
            {"key_custody": "pkcs11", "pkcs11": PKCS11_TABLE},
            {"tokenization": {"active_key": "k1", "keys": {"k1": "ab" * 32}}},
            r"tokenization: with key_custody = \"pkcs11\" the keys are in the token; remove it",
        ),
    ],
)
def test_a_custody_mistake_names_its_key(security: dict[str, object], extra: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^{message}$"):
        config.from_mapping({"security": security, **extra})


# --- keys in the token ----------------------------------------------------------------------


def test_init_list_and_rotate_through_the_command_line(hsm: SoftHsm, tmp_path: Path) -> None:
    wrapped = tmp_path / "data" / "wrapped-keys.json"
    journal = tmp_path / "data" / "journal.sqlite3"
    (tmp_path / "switch.toml").write_text(hsm.toml(wrapped) + f'\n[stores]\nsqlite_path = "{journal}"\n')
    toml = str(tmp_path / "switch.toml")
    init = switch_keys(hsm, "init", "--config", toml)
    assert init.returncode == 0, init.stderr
    assert stat.S_IMODE(wrapped.stat().st_mode) == 0o600
    assert switch_keys(hsm, "init", "--config", toml).returncode == 2  # never replaced
    rotated = switch_keys(hsm, "rotate", "--config", toml)
    assert rotated.returncode == 0, rotated.stderr
    listed = switch_keys(hsm, "list", "--config", toml)
    assert listed.returncode == 0, listed.stderr
    assert "custody: pkcs11" in listed.stdout
    assert "token keys: k1, k2 (active: k2)" in listed.stdout
    signer_line = re.search(
        r"checkpoint signing key: ([0-9a-f]{16}) \((ed25519|ecdsa-p256-sha256), sha256:", listed.stdout
    )
    assert signer_line, listed.stdout
    public = switch_keys(hsm, "public-key", "--config", toml)
    assert public.returncode == 0 and public.stdout.startswith("-----BEGIN PUBLIC KEY-----")
    assert public_key_id(public.stdout.encode()) == signer_line.group(1)
    audit = switch_keys(hsm, "rotate", "--audit", "--config", toml)
    assert audit.returncode == 0, audit.stderr
    assert signer_line.group(1) not in switch_keys(hsm, "list", "--config", toml).stdout
    fingerprint, ring, active = unwrapped(hsm.keys(wrapped))
    assert (sorted(ring), active) == (["k1", "k2"], "k2")
    printed = "".join(done.stdout + done.stderr for done in (init, rotated, listed, public, audit))
    assert not leaks(printed.encode(), [fingerprint, *ring.values()])
    with sqlite3.connect(journal) as db:  # each rotation is a security event in the audit trail
        rotations = [row[0] for row in db.execute("SELECT detail FROM security_events WHERE kind = 'keys'")]
    assert sorted(rotations) == sorted(
        f"rotated {what}; workers use the new key once restarted"
        for what in ("the tokenization keys", "the checkpoint signing key")
    )


def test_tokens_made_before_a_rotation_still_detokenize_after_it(keys: Pkcs11Keys) -> None:
    fingerprint, ring, active = unwrapped(keys)
    before = Tokenizer(fingerprint, KeyRing(ring, active)).tokenize(Card(VISA, 12, 2031))
    assert before.key_id == "k1"
    assert hsm_keys.rotate_token_key(keys) == "k2"
    fingerprint_after, ring_after, active_after = unwrapped(keys)
    assert (fingerprint_after, ring_after["k1"], active_after) == (fingerprint, ring["k1"], "k2")
    after = Tokenizer(fingerprint_after, KeyRing(ring_after, active_after))
    assert after.detokenize(Token(before.token), "k1").pan == VISA
    assert after.tokenize(Card(VISA, 12, 2031)).key_id == "k2"


def test_the_key_encryption_key_never_leaves_the_token(keys: Pkcs11Keys) -> None:
    token = pkcs11.lib(MODULE).get_token(token_label=LABEL)
    with token.open(rw=True) as session:  # the process is logged in already (init)
        kek = session.get_key(ObjectClass.SECRET_KEY, KeyType.AES, label=KEK_LABEL)
        facts = kek.get_attributes(
            [Attribute.TOKEN, Attribute.SENSITIVE, Attribute.EXTRACTABLE, Attribute.NEVER_EXTRACTABLE]
        )
        assert facts == {
            Attribute.TOKEN: True,
            Attribute.SENSITIVE: True,
            Attribute.EXTRACTABLE: False,
            Attribute.NEVER_EXTRACTABLE: True,
        }
        assert (kek[Attribute.ENCRYPT], kek[Attribute.DECRYPT], kek[Attribute.WRAP]) == (False, False, True)
        with pytest.raises(exceptions.AttributeSensitive):
            kek[Attribute.VALUE]
        other = session.generate_key(KeyType.AES, 256, capabilities=MechanismFlag.WRAP | MechanismFlag.UNWRAP)
        assert isinstance(other, WrapMixin)
        with pytest.raises(exceptions.KeyUnextractable):
            other.wrap_key(kek, mechanism=Mechanism.AES_KEY_WRAP_PAD)
        assert kek[Attribute.MODIFIABLE] is False
        # Not readable later, nor allowed to decrypt (SoftHSM: CKR_ACTION_PROHIBITED, 0x1b).
        for attribute, value in (
            (Attribute.EXTRACTABLE, True),
            (Attribute.SENSITIVE, False),
            (Attribute.DECRYPT, True),
        ):
            with pytest.raises(exceptions.PKCS11Error):
                kek[attribute] = value
        signing = next(session.get_objects({Attribute.LABEL: AUDIT_LABEL, Attribute.CLASS: ObjectClass.PRIVATE_KEY}))
        assert (signing[Attribute.EXTRACTABLE], signing[Attribute.SENSITIVE]) == (False, True)
        with pytest.raises(exceptions.AttributeSensitive):
            signing[Attribute.VALUE]


def test_a_changed_wrapped_key_is_refused_naming_the_file(keys: Pkcs11Keys) -> None:
    path = Path(keys.wrapped_keys_file)
    text = path.read_text()
    blob = re.search(r'"k1": "([0-9a-f]+)"', text)
    assert blob
    changed = blob.group(1)[:-2] + ("00" if blob.group(1)[-2:] != "00" else "01")
    path.write_text(text.replace(blob.group(1), changed))
    custody = open_custody(keys)
    try:
        with pytest.raises(CustodyError, match=r"keys\.k1 does not unwrap") as refused:
            custody.token_keys()
        assert refused.value.field == "wrapped_keys_file"
    finally:
        custody.close()


def test_a_wrong_pin_is_one_line_naming_the_pin_file_and_not_the_pin(hsm: SoftHsm, tmp_path: Path) -> None:
    wrong_pin = secrets.token_hex(8)
    pin_file = tmp_path / "wrong.pin"
    pin_file.write_text(wrong_pin + "\n")
    pin_file.chmod(0o600)
    (tmp_path / "switch.toml").write_text(hsm.toml(tmp_path / "wrapped-keys.json", pin_file))
    result = switch_keys(hsm, "init", "--config", str(tmp_path / "switch.toml"))
    assert_refused_once(
        result,
        rf"configuration error: security\.pkcs11\.pin_file: the token '{LABEL}' refused the PIN in "
        + re.escape(str(pin_file)),
    )
    assert wrong_pin not in result.stderr and hsm.pin not in result.stderr
    pin_file.chmod(0o644)
    result = switch_keys(hsm, "list", "--config", str(tmp_path / "switch.toml"))
    assert_refused_once(result, r"configuration error: security\.pkcs11\.pin_file: .* is mode 0644; .*")


@pytest.mark.parametrize("algorithm", [ED25519, ECDSA_P256_SHA256])
def test_checkpoints_are_signed_in_the_token_and_verified_without_it(keys: Pkcs11Keys, algorithm: str) -> None:
    hsm_keys.rotate_audit_key(keys, algorithm)
    custody = open_custody(keys)
    try:
        signer: Signer = custody.checkpoint_signer()  # what the audit trail's checkpoints take
        signature = signer.sign(b"checkpoint 1: root 00ff")
        pem = signer.public_key_pem()
    finally:
        custody.close()
    assert signer.algorithm == algorithm
    assert signer.key_id == public_key_id(pem)
    assert verify_signature(pem, algorithm, b"checkpoint 1: root 00ff", signature)
    assert not verify_signature(pem, algorithm, b"checkpoint 1: root 00fe", signature)
    other = ECDSA_P256_SHA256 if algorithm == ED25519 else ED25519
    assert not verify_signature(pem, other, b"checkpoint 1: root 00ff", signature)


def test_a_forked_child_initialises_the_module_again_and_reads_the_same_keys(keys: Pkcs11Keys) -> None:
    # In a process of its own: it forks, with the library initialised and a custody open.
    probe = """
import os, sys
from switch.security.custody import Pkcs11Keys, open_custody, session
keys = Pkcs11Keys(*sys.argv[1:5])
parent = open_custody(keys)
before = (parent.fingerprint_key(), dict(parent.token_keys().keys))
read, write = os.pipe()
pid = os.fork()
if pid == 0:
    child = open_custody(keys)
    same = (child.fingerprint_key(), dict(child.token_keys().keys)) == before
    again = session._initialised_by[keys.module] == os.getpid()
    child.close()
    os.write(write, b"same" if same and again else b"different")
    os._exit(0)
os.close(write)
answer = os.read(read, 16)
os.waitpid(pid, 0)
assert parent.token_keys().keys.keys() == before[1].keys()  # the parent's session still works
print(answer.decode())
"""
    command = [sys.executable, "-c", probe, keys.module, keys.token_label, keys.pin_file, keys.wrapped_keys_file]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "same"


# --- end to end: two workers, a rotation, and nothing left behind ---------------------------------


def leaks(blob: bytes, keys: list[bytes]) -> list[str]:
    """How a key shows in blob, if it does: raw, hex (either case) or base64."""
    found = []
    for number, key in enumerate(keys):
        for form, needle in (
            ("raw", key),
            ("hex", key.hex().encode()),
            ("HEX", key.hex().upper().encode()),
            ("base64", base64.b64encode(key)),
        ):
            if needle in blob:
                found.append(f"key {number} as {form}")
    return found


@pytest.fixture
def serving(hsm: SoftHsm, tmp_path: Path) -> Iterator[tuple[Path, list[subprocess.Popen[bytes]]]]:
    """A production configuration (Redis and PostgreSQL of their own) with its keys in the
    token; the processes started are killed, and the stores dropped, afterwards."""
    unique = secrets.token_hex(4)
    (tmp_path / "config").mkdir()
    path = tmp_path / "config" / "switch.toml"
    path.write_text(
        "[server]\nplaintext = true\n\n"
        f'[stores]\nredis_url = "{REDIS_URL}"\npostgres_dsn = "{POSTGRES_DSN}"\n'
        f'postgres_schema = "test_{unique}"\nkey_prefix = "test:{unique}"\n\n'
        + hsm.toml(tmp_path / "data" / "wrapped-keys.json")
    )
    started: list[subprocess.Popen[bytes]] = []
    yield path, started
    for process in started:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    asyncio.run(drop_production_state(config.load(path, {})))


def start_two_workers(hsm: SoftHsm, path: Path, log: Path, port: int) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "switch", "serve", "--config", str(path), "--workers", "2", "--port", str(port)]
    with log.open("ab") as output:  # its own session: teardown reaches the workers too
        process = subprocess.Popen(command, env=hsm.environ(), stderr=output, start_new_session=True)
    wait_until_serving(port, seconds=60)
    assert wait_until(lambda: len(children_of(process.pid)) == 2)
    return process


def loaded(pid: int | str) -> bool:
    """Whether the process has the PKCS#11 module mapped (maps names the link's target)."""
    return str(Path(MODULE).resolve()) in Path(f"/proc/{pid}/maps").read_text()


def call(port: int, request: pb.AuthorizeRequest) -> pb.AuthorizeResponse:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # a channel each: both workers answer
        answer: pb.AuthorizeResponse = switch_pb2_grpc.SwitchStub(channel).Authorize(request, timeout=10)
    return answer


def authorize(key: str, **source: object) -> pb.AuthorizeRequest:
    money = pb.Money(minor_units=500, currency="EUR")
    return pb.AuthorizeRequest(idempotency_key=key, merchant_id="m-hsm", amount=money, **source)  # type: ignore[arg-type]


@pytest.mark.slow
def test_two_workers_unwrap_their_keys_and_leave_none_behind(
    hsm: SoftHsm, tmp_path: Path, serving: tuple[Path, list[subprocess.Popen[bytes]]]
) -> None:
    path, started = serving
    (tmp_path / "logs").mkdir()
    log = tmp_path / "logs" / "switch.log"
    assert switch_keys(hsm, "init", "--config", str(path)).returncode == 0
    port = free_port()
    first = start_two_workers(hsm, path, log, port)
    started.append(first)
    # The parent never loads the module (PKCS#11 must be initialised after the fork); each worker does.
    assert wait_until(lambda: all(loaded(child) for child in children_of(first.pid)))
    assert not loaded(first.pid)
    card = pb.Card(pan=VISA, expiry_month=12, expiry_year=2031)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        tokenized = switch_pb2_grpc.TokensStub(channel).Tokenize(pb.TokenizeRequest(card=card), timeout=10)
    assert tokenized.key_id == "k1"
    for i in range(4):
        assert call(port, authorize(f"card-{i}", card=card)).token == tokenized.token

    rotated = switch_keys(hsm, "rotate", "--config", str(path))
    assert rotated.returncode == 0, rotated.stderr
    first.send_signal(signal.SIGTERM)  # the workers read the keys at their start: restart them
    assert first.wait(timeout=30) == 0
    second = start_two_workers(hsm, path, log, port)
    started.append(second)
    workers = children_of(second.pid)
    for i in range(4):
        answer = call(port, authorize(f"token-{i}", token=tokenized.token, token_key_id="k1"))
        assert answer.response_code == "00", answer
        assert answer.token != tokenized.token  # the card's token under the active key, k2
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        assert switch_pb2_grpc.TokensStub(channel).Tokenize(pb.TokenizeRequest(card=card), timeout=10).key_id == "k2"

    # Only the token can say what the keys are: this process unwraps them to look for them.
    described = config.load(path, {}).pkcs11
    assert described is not None
    fingerprint, ring, _ = unwrapped(described)
    keys = [fingerprint, *ring.values()]
    environments = {pid: Path(f"/proc/{pid}/environ").read_bytes() for pid in [second.pid, *workers]}
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0
    for pid, environ in environments.items():
        assert not leaks(environ, keys), f"the environment of {pid}"
        assert hsm.pin.encode() not in environ
    assert hsm.pin.encode() not in log.read_bytes()
    assert b"Traceback" not in log.read_bytes()
    # Every file of the switch (configuration, wrapped keys, log) and of the token.
    scanned = [p for folder in (tmp_path, hsm.folder) for p in folder.rglob("*") if p.is_file()]
    assert {log, path, Path(described.wrapped_keys_file)} <= set(scanned)
    assert any(p.is_relative_to(hsm.folder / "tokens") for p in scanned)
    for scanned_file in scanned:
        assert not leaks(scanned_file.read_bytes(), keys), scanned_file
