"""`switch keys init | rotate | list | public-key`: the switch's keys, in files or in an HSM.

--dir DIR works on key files (file custody): init writes the fingerprint key, the
token key ring and the checkpoint signing key there. --config FILE works on the
custody the configuration names; with key_custody = "pkcs11" init makes the token's
key-encryption key, the data keys (wrapped into security.pkcs11.wrapped_keys_file) and
the checkpoint signing key pair. rotate adds k<n+1> and makes it active (--audit: a new
checkpoint signing key instead); each worker uses it from its next start. No command
prints key material: ids, which key is active, and the public key's fingerprint.
"""

from __future__ import annotations

import argparse
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from switch import config
from switch.cards.tokenizer import KeyRing
from switch.config.keys import (
    FINGERPRINT_KEY_FILE,
    TOKEN_KEY_FILE,
    new_fingerprint_key,
    new_key_ring,
    parse_key_ring,
    write_key_file,
    write_secret,
)
from switch.security.custody import CustodyError, Pkcs11Keys
from switch.security.custody.base import next_key_id
from switch.security.custody.files import SIGNING_KEY_FILE, Ed25519FileSigner, new_signing_key_pem, read_signing_key
from switch.security.custody.signing import public_key_fingerprint


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    keys = commands.add_parser("keys", help="key material for a deployment: key files or an HSM (PKCS#11)")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    helps = {
        "init": "write a new fingerprint key, tokenization key ring and checkpoint signing key (never replaces one)",
        "rotate": "add a tokenization key k<n+1> and make it active; older keys keep working",
        "list": "key ids, the active key, the custody and the checkpoint signing key's fingerprint",
        "public-key": "print the checkpoint signing public key (PEM), for whoever checks checkpoints",
    }
    for name, text in helps.items():
        command = key_commands.add_parser(name, help=text)
        where = command.add_mutually_exclusive_group(required=True)
        where.add_argument("--dir", help="a folder of key files (keys init --dir: created 0700, files 0600)")
        where.add_argument("--config", help='a TOML configuration: its custody (security.key_custody, e.g. "pkcs11")')
        if name == "rotate":
            command.add_argument(
                "--audit", action="store_true", help="rotate the checkpoint signing key instead (HSM custody)"
            )


def run(args: argparse.Namespace) -> int:
    """Raises ConfigError (exit status 2) for what the keys' custody refuses."""
    if args.dir:
        commands: dict[str, Callable[[Path], int]] = {
            "init": init_files,
            "rotate": rotate_files,
            "list": list_files,
            "public-key": public_key_of_files,
        }
        if args.keys_command == "rotate" and args.audit:
            raise config.ConfigError("keys rotate --audit: a key file is replaced by hand; --audit is for an HSM")
        return commands[args.keys_command](Path(args.dir))
    settings = config.load(args.config, os.environ)
    if settings.pkcs11 is None:
        return _file_custody_of(settings, args)
    try:
        status = _hsm(settings.pkcs11, args)
    except CustodyError as exc:
        raise config.ConfigError(f"security.pkcs11.{exc.field}: {exc}") from None
    if args.keys_command == "rotate":
        _journal_rotation(settings, "the checkpoint signing key" if args.audit else "the tokenization keys")
    return status


def _journal_rotation(settings: config.Settings, what: str) -> None:
    """A rotation is a security event: it goes into the audit trail of the configured journal."""
    import asyncio
    import time

    from switch import server  # not at import: `switch serve` forks before gRPC is imported
    from switch.domain.audit import EventKind, SecurityEvent

    async def record() -> None:
        journal = await server.open_journal(settings)
        try:
            detail = f"rotated {what}; workers use the new key once restarted"
            event = SecurityEvent(EventKind.KEYS, "", "allowed", "keys rotate", detail, time.time())
            await journal.record_events([event])
        finally:
            await journal.close()

    asyncio.run(record())


# --- key files ---------------------------------------------------------------------


def init_files(folder: Path) -> int:
    """Writes the key material production needs, for `switch serve` to name in
    security.fingerprint_key_file, tokenization.key_file and security.audit_signing_key_file."""
    fingerprint, ring, signing = folder / FINGERPRINT_KEY_FILE, folder / TOKEN_KEY_FILE, folder / SIGNING_KEY_FILE
    for path in (fingerprint, ring, signing):
        if path.exists():
            raise config.ConfigError(f"keys init: {path} exists; keys are never replaced (rotate them instead)")
    if not (
        write_secret(fingerprint, new_fingerprint_key(), replace=False)
        and write_key_file(ring, new_key_ring(), replace=False)
        and write_secret(signing, new_signing_key_pem(), replace=False)
    ):
        raise config.ConfigError(f"keys init: another process is writing keys in {folder}")
    print(f"wrote {fingerprint}, {ring} and {signing} (mode 0600)")
    return 0


def rotate_files(folder: Path) -> int:
    path = folder / TOKEN_KEY_FILE
    ring = parse_key_ring({"key_file": str(path)})
    key_id = next_key_id(ring.keys)
    write_key_file(path, KeyRing({**ring.keys, key_id: secrets.token_bytes(32)}, key_id))
    print(f"{path}: added {key_id}, now active; restart the switch's workers to use it")
    return 0


def list_files(folder: Path) -> int:
    signing = folder / SIGNING_KEY_FILE
    _print_files(f"custody: file ({folder})", parse_key_ring({"key_file": str(folder / TOKEN_KEY_FILE)}), signing)
    return 0


def public_key_of_files(folder: Path) -> int:
    print(_signing_key(folder / SIGNING_KEY_FILE).public_key_pem().decode(), end="")
    return 0


def _file_custody_of(settings: config.Settings, args: argparse.Namespace) -> int:
    if args.keys_command in ("init", "rotate"):
        raise config.ConfigError(
            f'security.key_custody: keys {args.keys_command} --config manages keys in an HSM (key_custody = "pkcs11"); '
            "for key files use --dir"
        )
    folder = Path(settings.stores.sqlite_path).parent  # where the embedded default keeps its own
    signing_file = settings.security.audit_signing_key_file or (
        str(folder / SIGNING_KEY_FILE) if settings.stores.embedded else ""
    )
    if args.keys_command == "public-key":
        if not signing_file:
            raise config.ConfigError("security.audit_signing_key_file: no checkpoint signing key is configured")
        print(_signing_key(Path(signing_file)).public_key_pem().decode(), end="")
        return 0
    ring = settings.tokenization
    if ring is None and settings.stores.embedded and (folder / TOKEN_KEY_FILE).exists():
        ring = parse_key_ring({"key_file": str(folder / TOKEN_KEY_FILE)})
    _print_files("custody: file", ring, Path(signing_file) if signing_file else None)
    return 0


def _print_files(custody: str, ring: KeyRing | None, signing: Path | None) -> None:
    print(custody)
    if ring is None:
        print("token keys: none yet (the embedded default makes them at its first start)")
    else:
        print(f"token keys: {', '.join(sorted(ring.keys))} (active: {ring.active_key})")
    if signing is None or not signing.exists():
        print("checkpoint signing key: none")
    else:
        signer = _signing_key(signing)
        pem = signer.public_key_pem()
        print(f"checkpoint signing key: {signer.key_id} ({signer.algorithm}, {public_key_fingerprint(pem)})")


def _signing_key(path: Path) -> Ed25519FileSigner:
    try:
        return read_signing_key(path)
    except CustodyError as exc:
        raise config.ConfigError(f"security.audit_signing_key_file: {exc}") from None


# --- an HSM --------------------------------------------------------------------------


def _hsm(keys: Pkcs11Keys, args: argparse.Namespace) -> int:
    from switch.security.custody import hsm_keys

    where = f"token {keys.token_label!r}"
    if args.keys_command == "init":
        wrapped = hsm_keys.init_keys(keys)
        print(f"{where}: key-encryption key {wrapped.kek!r} and a checkpoint signing key pair")
        print(f"wrote {keys.wrapped_keys_file} (mode 0600): k1 (active) and the fingerprint key, wrapped")
    elif args.keys_command == "rotate" and args.audit:
        key_id = hsm_keys.rotate_audit_key(keys)
        print(f"{where}: checkpoint signing key {key_id}, now the one used; the older ones stay in the token")
    elif args.keys_command == "rotate":
        key_id = hsm_keys.rotate_token_key(keys)
        print(f"{keys.wrapped_keys_file}: added {key_id}, now active; restart the switch's workers to use it")
    elif args.keys_command == "public-key":
        print(hsm_keys.listing(keys).audit_public_key_pem.decode(), end="")
    else:
        listing = hsm_keys.listing(keys)
        print(f"custody: pkcs11 ({where}, module {keys.module})")
        print(f"token keys: {', '.join(listing.key_ids)} (active: {listing.active_key})")
        print(f"fingerprint key: wrapped in {keys.wrapped_keys_file}")
        print(f"checkpoint signing key: {listing.audit_key} ({listing.audit_algorithm}, {listing.audit_fingerprint})")
    return 0
