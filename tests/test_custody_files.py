"""The file custody: key files written once and private, a token key rotated in its
ring file, and checkpoints signed with an Ed25519 key file and verified with the
public key alone."""

from __future__ import annotations

import re
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from switch import config, server
from switch.config import ConfigError
from switch.config.keys import parse_key_ring
from switch.security.audit.checkpoints import Signer
from switch.security.custody import verify_signature
from switch.security.custody.files import SIGNING_KEY_FILE, read_signing_key
from switch.security.custody.signing import ECDSA_P256_SHA256, ED25519, public_key_id
from tests.conftest import FINGERPRINT_KEY, POSTGRES_DSN, REDIS_URL, TOKEN_KEY

MESSAGE = b"checkpoint 7: heads [...]"


def switch_keys(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switch", "keys", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_keys_init_dir_writes_a_signing_key_that_lists_rotates_and_exports(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    assert switch_keys("init", "--dir", str(folder)).returncode == 0
    assert stat.S_IMODE((folder / SIGNING_KEY_FILE).stat().st_mode) == 0o600
    signer = read_signing_key(folder / SIGNING_KEY_FILE)
    rotated = switch_keys("rotate", "--dir", str(folder))
    assert rotated.returncode == 0, rotated.stderr
    ring = parse_key_ring({"key_file": str(folder / "token-keys.json")})
    assert (sorted(ring.keys), ring.active_key) == (["k1", "k2"], "k2")
    listed = switch_keys("list", "--dir", str(folder)).stdout
    assert "token keys: k1, k2 (active: k2)" in listed
    assert f"checkpoint signing key: {signer.key_id} (ed25519, sha256:" in listed
    exported = switch_keys("public-key", "--dir", str(folder)).stdout.encode()
    assert exported == signer.public_key_pem()
    printed = listed + rotated.stdout + exported.decode()
    assert not any(key.hex() in printed for key in ring.keys.values())
    assert (folder / "fingerprint.key").read_text().strip() not in printed


def test_the_file_signer_signs_and_anyone_verifies(tmp_path: Path) -> None:
    assert switch_keys("init", "--dir", str(tmp_path)).returncode == 0
    signer: Signer = read_signing_key(tmp_path / SIGNING_KEY_FILE)  # what the audit trail's checkpoints take
    signature = signer.sign(MESSAGE)
    pem = signer.public_key_pem()
    assert (signer.algorithm, signer.key_id) == (ED25519, public_key_id(pem))
    assert verify_signature(pem, ED25519, MESSAGE, signature)
    assert not verify_signature(pem, ED25519, MESSAGE + b" ", signature)
    assert not verify_signature(pem, ED25519, MESSAGE, bytes(64))
    assert not verify_signature(pem, ECDSA_P256_SHA256, MESSAGE, signature)
    assert not verify_signature(b"not a key", ED25519, MESSAGE, signature)
    assert "PRIVATE" not in repr(signer) and pem.decode() not in repr(signer)


def test_the_embedded_default_makes_its_signing_key_once_beside_its_journal(tmp_path: Path) -> None:
    settings = config.from_mapping({"stores": {"sqlite_path": str(tmp_path / "data" / "journal.sqlite3")}})
    first = server.open_custody(settings)
    key_id = server.checkpoint_signer(settings, first).key_id
    path = tmp_path / "data" / SIGNING_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert server.checkpoint_signer(settings, server.open_custody(settings)).key_id == key_id  # never replaced


def production(**security: str) -> config.Settings:
    return config.from_mapping(
        {
            "server": {"plaintext": True},
            "stores": {"redis_url": REDIS_URL, "postgres_dsn": POSTGRES_DSN},
            "security": {"fingerprint_key_hex": FINGERPRINT_KEY, **security},
            "tokenization": {"active_key": "k1", "keys": {"k1": TOKEN_KEY}},
        }
    )


def test_production_signs_only_with_a_configured_key_file(tmp_path: Path) -> None:
    settings = production()
    custody = server.open_custody(settings)  # the switch starts without one: nothing signs yet
    with pytest.raises(ConfigError, match=r"^security\.audit_signing_key_file: .*switch keys init --dir DIR"):
        server.checkpoint_signer(settings, custody)
    assert switch_keys("init", "--dir", str(tmp_path)).returncode == 0
    path = tmp_path / SIGNING_KEY_FILE
    settings = production(audit_signing_key_file=str(path))
    assert server.checkpoint_signer(settings, server.open_custody(settings)).algorithm == ED25519
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=rf"^security\.audit_signing_key_file: {re.escape(str(path))} is mode 0644"):
        server.checkpoint_signer(settings, server.open_custody(settings))


def test_a_signing_key_file_that_is_not_ed25519_is_refused_without_quoting_it(tmp_path: Path) -> None:
    path = tmp_path / SIGNING_KEY_FILE
    path.write_text("-----BEGIN PRIVATE KEY-----\nc2VjcmV0\n-----END PRIVATE KEY-----\n")
    path.chmod(0o600)
    settings = production(audit_signing_key_file=str(path))
    with pytest.raises(ConfigError, match="must hold an Ed25519 private key") as refused:
        server.checkpoint_signer(settings, server.open_custody(settings))
    assert "c2VjcmV0" not in str(refused.value)


def test_keys_list_config_shows_the_embedded_defaults_keys_once_made(tmp_path: Path) -> None:
    toml = tmp_path / "switch.toml"
    toml.write_text(f'[stores]\nsqlite_path = "{tmp_path / "data" / "journal.sqlite3"}"\n')
    assert "token keys: none yet" in switch_keys("list", "--config", str(toml)).stdout
    settings = config.load(toml, {})
    key_id = server.checkpoint_signer(settings, server.open_custody(settings)).key_id  # what a first start makes
    listed = switch_keys("list", "--config", str(toml)).stdout
    assert "token keys: k1 (active: k1)" in listed and f"checkpoint signing key: {key_id}" in listed
    refused = switch_keys("rotate", "--config", str(toml))
    assert refused.returncode == 2 and "for key files use --dir" in refused.stderr
