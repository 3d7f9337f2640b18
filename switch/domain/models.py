"""The switch's domain values: frozen, slotted, and free of transport types.

Money is always an integer count of minor units plus an ISO 4217 code. A Card is
the only value that holds a PAN in clear; its repr masks it, and it never reaches
a store: past the tokenizer the pipeline carries an Instrument instead.

Values are frozen, except the records the pipeline builds for every
authorization (results, journal rows, claims, completions, quotes): a frozen
dataclass sets each field through object.__setattr__, several times slower to
build, and those records are made for every item of every batch. Nothing
mutates them; `dataclasses.replace` makes changed copies.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from switch.domain import currency
from switch.domain.response_codes import ResponseCode

INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)


class MoneyOverflow(ArithmeticError):
    """An amount left the int64 range; money never wraps."""


def checked_int64(value: int) -> int:
    if not INT64_MIN <= value <= INT64_MAX:
        raise MoneyOverflow(f"{value} does not fit in int64 minor units")
    return value


@dataclass(frozen=True, slots=True)
class Money:
    minor_units: int
    currency: str

    def __post_init__(self) -> None:
        if type(self.minor_units) is not int:
            raise TypeError("minor_units must be an int, never a float or Decimal")
        checked_int64(self.minor_units)
        if not currency.is_known(self.currency):
            raise ValueError(f"unknown ISO 4217 currency {self.currency!r}")

    def __add__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(checked_int64(self.minor_units + other.minor_units), self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same_currency(other)
        return Money(checked_int64(self.minor_units - other.minor_units), self.currency)

    def _same_currency(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValueError(f"cannot combine {self.currency} with {other.currency}")

    @classmethod
    def zero(cls, currency_code: str) -> Money:
        return cls(0, currency_code)


def mask_pan(pan: str) -> str:
    """First 6 and last 4 digits at most; fewer for short numbers so most stays hidden."""
    keep_head = 6 if len(pan) >= 16 else max(0, len(pan) - 10)
    keep_tail = 4
    hidden = len(pan) - keep_head - keep_tail
    return pan[:keep_head] + "*" * hidden + pan[-keep_tail:]


@dataclass(frozen=True, slots=True, repr=False)
class Card:
    pan: str
    expiry_month: int
    expiry_year: int
    holder_name: str = ""

    def __repr__(self) -> str:
        return f"Card({mask_pan(self.pan)}, {self.expiry_month:02d}/{self.expiry_year})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class Account:
    rail: str
    id: str
    country: str = ""
    holder_name: str = ""


@dataclass(frozen=True, slots=True)
class Token:
    """A token the switch issued earlier, standing in for a card."""

    value: str
    key_id: str = ""  # the tokenization key that made it; "": the active key


Source = Card | Account | Token


@dataclass(frozen=True, slots=True)
class Authorization:
    """A validated authorization request, as the servicer hands it to the pipeline."""

    idempotency_key: str
    merchant_id: str
    amount: Money
    source: Source
    destination: Account | None = None
    metadata: tuple[tuple[str, str], ...] = ()
    # When the caller stops waiting, in event-loop time; None: no deadline. Not part
    # of what the request means (idempotency ignores it), only of how long to try.
    deadline: float | None = field(default=None, compare=False)

    @property
    def cross_border(self) -> bool:
        """A transfer from an account to an account of another country (both countries known)."""
        source, destination = self.source, self.destination
        if not isinstance(source, Account) or destination is None or not source.country or not destination.country:
            return False
        return source.country.upper() != destination.country.upper()


class InstrumentKind(enum.Enum):
    CARD = "card"
    ACCOUNT = "account"


@dataclass(frozen=True, slots=True)
class Instrument:
    """What the switch keeps about a source once the PAN is behind the tokenizer."""

    kind: InstrumentKind
    fingerprint: str  # keyed HMAC of the PAN or account: the only identity stores see
    masked: str
    token: str = ""


# ---- unchecked constructors, for hot paths whose values are already checked ----
#
# A frozen dataclass's __init__ sets each field through object.__setattr__, and
# Money's __post_init__ checks again what the parser has just checked. These build
# the very same values (equal, same hash, same type) slot by slot, and check
# nothing: call them only with values that the ordinary constructor accepts.

_new = object.__new__


def slot_setters(cls: type, *names: str) -> tuple[Callable[[Any, Any], None], ...]:
    """The slots' own setters, in the order of the class's fields (which they must all be)."""
    if names != tuple(f.name for f in fields(cls)):
        raise TypeError(f"{cls.__name__}'s fields are not {names}")
    return tuple(vars(cls)[name].__set__ for name in names)


_money_units, _money_currency = slot_setters(Money, "minor_units", "currency")
_card_pan, _card_month, _card_year, _card_holder = slot_setters(
    Card, "pan", "expiry_month", "expiry_year", "holder_name"
)
_auth_key, _auth_merchant, _auth_amount, _auth_source, _auth_destination, _auth_metadata, _auth_deadline = slot_setters(
    Authorization, "idempotency_key", "merchant_id", "amount", "source", "destination", "metadata", "deadline"
)
_instrument_kind, _instrument_fingerprint, _instrument_masked, _instrument_token = slot_setters(
    Instrument, "kind", "fingerprint", "masked", "token"
)


def unchecked_money(minor_units: int, currency_code: str) -> Money:
    """Money(minor_units, currency_code) for an int in int64 and a known ISO 4217 code, unchecked."""
    money: Money = _new(Money)
    _money_units(money, minor_units)
    _money_currency(money, currency_code)
    return money


def unchecked_card(pan: str, expiry_month: int, expiry_year: int, holder_name: str = "") -> Card:
    """Card(...), built without the frozen __init__."""
    card: Card = _new(Card)
    _card_pan(card, pan)
    _card_month(card, expiry_month)
    _card_year(card, expiry_year)
    _card_holder(card, holder_name)
    return card


def unchecked_authorization(
    idempotency_key: str,
    merchant_id: str,
    amount: Money,
    source: Source,
    *,
    destination: Account | None = None,
    metadata: tuple[tuple[str, str], ...] = (),
    deadline: float | None = None,
) -> Authorization:
    """Authorization(...), built without the frozen __init__."""
    authorization: Authorization = _new(Authorization)
    _auth_key(authorization, idempotency_key)
    _auth_merchant(authorization, merchant_id)
    _auth_amount(authorization, amount)
    _auth_source(authorization, source)
    _auth_destination(authorization, destination)
    _auth_metadata(authorization, metadata)
    _auth_deadline(authorization, deadline)
    return authorization


def unchecked_instrument(kind: InstrumentKind, fingerprint: str, masked: str, token: str = "") -> Instrument:
    """Instrument(...), built without the frozen __init__."""
    instrument: Instrument = _new(Instrument)
    _instrument_kind(instrument, kind)
    _instrument_fingerprint(instrument, fingerprint)
    _instrument_masked(instrument, masked)
    _instrument_token(instrument, token)
    return instrument


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class AuthorizationResult:
    """The answer to one authorization: approved or declined, never an error."""

    idempotency_key: str
    transaction_id: str
    response_code: str
    message: str
    route: str = ""
    authorization_code: str = ""
    token: str = ""
    fee: Money | None = None
    replayed: bool = False

    @property
    def approved(self) -> bool:
        return self.response_code == ResponseCode.APPROVED.code


class TransactionStatus(enum.Enum):
    AUTHORIZED = "authorized"
    DECLINED = "declined"
    CAPTURED = "captured"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"
    VOIDED = "voided"
    REVERSED = "reversed"
    UNKNOWN = "unknown"
    # A recall of money that moved at once (an instant payment whose outcome the switch
    # never heard): accepted, the money comes back by a return; rejected, it stays
    # moved although the caller was told 91, for operations to settle.
    RETURN_PENDING = "return_pending"
    RECALL_REJECTED = "recall_rejected"


class OperationKind(enum.Enum):
    AUTHORIZE = "authorize"
    CAPTURE = "capture"
    VOID = "void"
    REFUND = "refund"
    REVERSE = "reverse"  # undoes an authorization whose outcome is unknown


@dataclass(frozen=True, slots=True)
class Operation:
    """A capture, void or refund of an earlier authorization. amount None: the default amount."""

    kind: OperationKind
    transaction_id: str
    idempotency_key: str
    amount: Money | None = None


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class TransactionRecord:
    """The current state of one transaction, as the journal stores it."""

    transaction_id: str
    merchant_id: str
    idempotency_key: str
    status: TransactionStatus
    authorized: Money
    captured_minor: int = 0
    refunded_minor: int = 0
    route: str = ""
    masked_instrument: str = ""
    fingerprint: str = ""
    token: str = ""
    response_code: str = ""
    authorization_code: str = ""
    fee_minor: int = 0
    created_at: float = 0.0
    updated_at: float = 0.0
    version: int = 1

    @property
    def captured(self) -> Money:
        return Money(self.captured_minor, self.authorized.currency)

    @property
    def refunded(self) -> Money:
        return Money(self.refunded_minor, self.authorized.currency)


@dataclass(slots=True)  # built per authorization, so not frozen: see switch.domain.models
class JournalEntry:
    """One durable step of a transaction. (merchant_id, idempotency_key) is unique."""

    transaction_id: str
    merchant_id: str
    idempotency_key: str
    kind: OperationKind
    amount: Money
    response_code: str
    status: TransactionStatus
    request_hash: str
    response: bytes  # the exact answer given, for replays (orjson; never a PAN)
    created_at: float
    fee_shares: tuple[tuple[str, int], ...] = field(default=())
    # A capture, void or refund decided (its amount reserved on the transaction) and
    # not yet answered by the network: response_code is "" and response holds the
    # transaction as the operation left it, the answer once the network approves.
    pending: bool = False
    # What the risk step decided for an authorization and on which versions (the
    # sanctions list's SHA-256, the reason: never a customer's name), as compact
    # JSON; "" when nothing was screened.
    decision: str = ""
    # The kind of risk alert the authorization raised ("sanctions_review", ...); "": none.
    # ListAlerts serves the entries that carry one (switch.domain.alerts).
    alert: str = ""


def mask_account(account_id: str) -> str:
    """Shows the last four characters of an account id or alias, at most a third of it."""
    shown = min(4, len(account_id) // 3)
    return "*" * (len(account_id) - shown) + account_id[len(account_id) - shown :]
