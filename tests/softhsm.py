"""A SoftHSM2 token in a temporary folder, for the PKCS#11 key custody's tests.

SoftHSM reads SOFTHSM2_CONF once, when a process initialises it, so one token serves
the whole test process (shared_token below) and each test keeps its own wrapped-key
file: init finds the token's key-encryption key or makes it. Subprocesses (`switch
serve`, `switch keys`) get SOFTHSM2_CONF in their environment. Debian's softhsm2
provides it; `.ci/run` installs it, and without it these tests skip saying so.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from switch.config.keys import write_secret
from switch.security.custody import Pkcs11Keys

MODULE = "/usr/lib/softhsm/libsofthsm2.so"
LABEL = "switch-test"
MISSING = "SoftHSM2 is not installed (Debian: apt-get install softhsm2; .ci/run installs it)"


@dataclass(frozen=True)
class SoftHsm:
    folder: Path  # softhsm2.conf, tokens/ and the PIN file
    conf: Path
    pin: str
    so_pin: str

    @property
    def pin_file(self) -> Path:
        return self.folder / "user.pin"

    def keys(self, wrapped_keys_file: Path, pin_file: Path | None = None) -> Pkcs11Keys:
        return Pkcs11Keys(MODULE, LABEL, str(pin_file or self.pin_file), str(wrapped_keys_file))

    def toml(self, wrapped_keys_file: Path, pin_file: Path | None = None) -> str:
        """The [security] table of a switch whose keys are in this token."""
        return (
            '[security]\nkey_custody = "pkcs11"\n\n[security.pkcs11]\n'
            f'module = "{MODULE}"\ntoken_label = "{LABEL}"\n'
            f'pin_file = "{pin_file or self.pin_file}"\nwrapped_keys_file = "{wrapped_keys_file}"\n'
        )

    def environ(self) -> dict[str, str]:
        """A subprocess's environment: this token's configuration, and no SWITCH_ variable
        of the test run's (a key or a store of another test must not leak in)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCH_") or k == "SWITCH_NO_EXTENSIONS"}
        return {**env, "SOFTHSM2_CONF": str(self.conf)}


def installed() -> bool:
    return Path(MODULE).is_file() and shutil.which("softhsm2-util") is not None


def make_token(folder: Path) -> SoftHsm:
    """An initialised token labelled LABEL, its user PIN in a 0600 file."""
    if not installed():
        pytest.skip(MISSING)
    tokens = folder / "tokens"
    tokens.mkdir(parents=True, mode=0o700)
    conf = folder / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {tokens}\nobjectstore.backend = file\nlog.level = ERROR\n")
    hsm = SoftHsm(folder, conf, pin=secrets.token_hex(8), so_pin=secrets.token_hex(8))
    command = ["softhsm2-util", "--init-token", "--free", "--label", LABEL, "--pin", hsm.pin, "--so-pin", hsm.so_pin]
    subprocess.run(command, env={**os.environ, "SOFTHSM2_CONF": str(conf)}, check=True, capture_output=True)
    write_secret(hsm.pin_file, hsm.pin.encode() + b"\n")
    return hsm


_shared: list[SoftHsm] = []


def shared_token(tmp_path_factory: pytest.TempPathFactory) -> SoftHsm:
    """The test process's token, made at the first call; SOFTHSM2_CONF names it here from
    then on (SoftHSM, once initialised in a process, keeps the configuration it read)."""
    if not _shared:
        _shared.append(make_token(tmp_path_factory.mktemp("softhsm")))
        os.environ["SOFTHSM2_CONF"] = str(_shared[0].conf)
    return _shared[0]
