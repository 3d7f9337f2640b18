"""Reaching a PKCS#11 token: the module loaded and initialised in this process, the
token found by its label, the user logged in with the PIN from a file.

Fork: a PKCS#11 library initialised before a fork must be initialised again in the
child (PKCS#11 v2.40, section 6.7.7: the child's C_Initialize). `serve --workers N`
never loads the module in the parent: each worker does, when it builds its server.
Should a process load it and then fork anyway, python-pkcs11 would hand the child the
parent's cached, initialised library, so the pid that initialised each module is
remembered and a child finalises and initialises it again before using it.

Login: PKCS#11 logs a whole application in, not a session (a second C_Login answers
CKR_USER_ALREADY_LOGGED_IN, and closing a logged-in session logs every session out),
so each process logs in once per token, on a session it keeps open, and every other
session it opens shares that state.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pkcs11
from pkcs11 import exceptions

from switch.security.custody.base import CustodyError, Pkcs11Keys
from switch.security.secret_files import SecretFileError, read_private

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Library

_initialised_by: dict[str, int] = {}  # module path -> pid that initialised it
_logged_in: dict[tuple[str, str], pkcs11.Session] = {}  # (module, token label) -> the session that logged in


def open_session(keys: Pkcs11Keys, *, rw: bool = False) -> pkcs11.Session:
    """A session on the token, as its logged-in user. Close it when done."""
    token = find_token(keys)
    pin = read_pin(Path(keys.pin_file))  # read every time: a PIN file made readable to others is refused
    if (keys.module, keys.token_label) not in _logged_in:
        _logged_in[keys.module, keys.token_label] = _log_in(token, keys, pin)
    try:
        return token.open(rw=rw)
    except exceptions.PKCS11Error as exc:
        raise CustodyError("token_label", f"cannot open a session on {keys.token_label!r}: {_reason(exc)}") from None


def find_token(keys: Pkcs11Keys) -> pkcs11.Token:
    library = _library(keys.module)
    try:
        return library.get_token(token_label=keys.token_label)
    except exceptions.NoSuchToken:
        raise CustodyError("token_label", f"no token labelled {keys.token_label!r} in {keys.module}") from None
    except exceptions.MultipleTokensReturned:
        raise CustodyError("token_label", f"more than one token labelled {keys.token_label!r}") from None
    except exceptions.PKCS11Error as exc:
        raise CustodyError("module", f"{keys.module}: {_reason(exc)}") from None


def read_pin(path: Path) -> str:
    try:
        data = read_private(path)
    except SecretFileError as exc:
        raise CustodyError("pin_file", str(exc)) from None
    try:
        pin = data.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError:
        raise CustodyError("pin_file", f"{path} must hold the PIN as UTF-8 text") from None
    if not pin:
        raise CustodyError("pin_file", f"{path} is empty")
    return pin


def _library(module: str) -> Library:
    if not Path(module).is_file():
        raise CustodyError("module", f"no PKCS#11 module at {module}")
    try:
        library = pkcs11.lib(module)
    except exceptions.PKCS11Error as exc:
        raise CustodyError("module", str(exc)) from None  # the loader's words: the path and dlerror()
    pid = os.getpid()
    if _initialised_by.setdefault(module, pid) != pid:  # initialised before a fork: this is the child
        with contextlib.suppress(exceptions.PKCS11Error):  # the parent's state may not finalise here
            library.finalize()
        try:
            library.initialize()
        except exceptions.PKCS11Error as exc:
            raise CustodyError("module", f"cannot initialise {module} after a fork: {_reason(exc)}") from None
        _initialised_by[module] = pid
        for held in [held for held in _logged_in if held[0] == module]:
            del _logged_in[held]  # the parent's login: gone with the library's state
    return library


def _log_in(token: pkcs11.Token, keys: Pkcs11Keys, pin: str) -> pkcs11.Session:
    try:
        return token.open(user_pin=pin)
    except exceptions.PinIncorrect:
        raise CustodyError("pin_file", f"the token {keys.token_label!r} refused the PIN in {keys.pin_file}") from None
    except exceptions.PinLocked:
        raise CustodyError("pin_file", f"the token {keys.token_label!r} has locked its user PIN") from None
    except exceptions.UserPinNotInitialized:
        raise CustodyError("token_label", f"the token {keys.token_label!r} has no user PIN set") from None
    except exceptions.PKCS11Error as exc:
        raise CustodyError("token_label", f"cannot log in to {keys.token_label!r}: {_reason(exc)}") from None


def _reason(exc: exceptions.PKCS11Error) -> str:
    """The error's kind (e.g. PinLenRange): python-pkcs11's classes name the CKR_ code, and
    say nothing of the arguments (a PIN, a key)."""
    return type(exc).__name__
