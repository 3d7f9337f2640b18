"""What the load test sends, and how it judges each answer: plain Python, no Locust, no gevent.

The instrument mix is a cycle of serialized AuthorizeRequests *without* their
idempotency key (field 1). A key is spliced in front of a template for every
request, so building a request costs one string format and one bytes join:

    key = keys.next()                       # unique per request
    payload = with_key(key, template.body)  # a complete serialized AuthorizeRequest
    batch = batch_payload([...payloads])    # a complete serialized AuthorizeBatchRequest

The mix (README "Test instruments"): approving cards on several networks, cards the
issuer declines "05" and "51", accounts on the `instant` rail that approve, and
accounts ending `-insufficient` that decline "51".

`problem(answer, expected)` says what is wrong with an answer, or None. A decline is
never a problem, whatever its code: it is a normal result. Problems are a per-item
error, an answer with no decision, a replayed answer to a key never sent before, and
an approval of an instrument the issuer always declines.
"""

from __future__ import annotations

import datetime
import itertools
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from loadtests.payloads import BATCH_TAG, varint
from switch.v1 import switch_pb2 as pb

APPROVED = "00"
EXPIRY_YEAR = datetime.date.today().year + 3
LOAD_MERCHANTS = 8  # merchants the load is spread over

# (weight out of 100, source kind, instrument, the answer the simulators give)
_MIX: tuple[tuple[int, str, str, str], ...] = (
    (40, "card", "4111111111111111", APPROVED),  # Visa
    (20, "card", "5555555555554444", APPROVED),  # Mastercard
    (10, "card", "378282246310005", APPROVED),  # Amex
    (6, "card", "4000000000000002", "05"),
    (4, "card", "4000000000009995", "51"),
    (16, "account", "+5511999990000", APPROVED),
    (4, "account", "acct-42-insufficient", "51"),
)


@dataclass(frozen=True)
class Template:
    """One serialized AuthorizeRequest without its idempotency key."""

    body: bytes
    expected_code: str  # "00" or the decline code the simulators answer
    label: str  # e.g. "card 4000...0002", for failure messages without a full PAN


def _label(kind: str, instrument: str) -> str:
    return f"{kind} {instrument[:4]}...{instrument[-4:]}" if kind == "card" else f"account {instrument}"


def _request(index: int, kind: str, instrument: str) -> pb.AuthorizeRequest:
    request = pb.AuthorizeRequest(
        merchant_id=f"load-merchant-{index % LOAD_MERCHANTS}",
        amount=pb.Money(minor_units=500 + (index * 7919) % 49_500, currency="USD"),
    )
    if kind == "card":
        request.card.CopyFrom(pb.Card(pan=instrument, expiry_month=1 + index % 12, expiry_year=EXPIRY_YEAR))
    else:
        request.account.CopyFrom(pb.Account(rail="instant", id=instrument, country="BR"))
    return request


def build_mix() -> tuple[Template, ...]:
    """100 templates in the mix's proportions, interleaved so any short run sees every kind."""
    slots = [(kind, instrument, code) for weight, kind, instrument, code in _MIX for _ in range(weight)]
    # A fixed stride coprime with 100 spreads each kind over the whole cycle.
    ordered = [slots[(position * 37) % len(slots)] for position in range(len(slots))]
    return tuple(
        Template(_request(index, kind, instrument).SerializeToString(), code, _label(kind, instrument))
        for index, (kind, instrument, code) in enumerate(ordered)
    )


MIX = build_mix()
# Captures go to card routes only: an instant-rail payment is final (its ISO 20022 route declines a capture).
CAPTURABLE = tuple(t for t in MIX if t.expected_code == APPROVED and t.label.startswith("card"))


class Keys:
    """Unique idempotency keys: a random tag per instance (so per user, after any fork) and a counter."""

    def __init__(self) -> None:
        # Glued to a letter: a hex tag that happens to be all digits must not read as a card number.
        self.tag = "u" + secrets.token_hex(6)
        self._counter = itertools.count()

    def next(self) -> str:
        return f"lt-{self.tag}-{next(self._counter):x}"


def cycle(templates: Sequence[Template]) -> Iterator[Template]:
    """The templates forever, starting at a random position."""
    start = secrets.randbelow(len(templates))
    return itertools.cycle((*templates[start:], *templates[:start]))


def with_key(key: str, body: bytes) -> bytes:
    """A serialized AuthorizeRequest: field 1 (idempotency_key) followed by the template."""
    raw = key.encode()
    return b"\x0a" + varint(len(raw)) + raw + body


def batch_payload(items: Sequence[bytes]) -> bytes:
    """A serialized AuthorizeBatchRequest: each item as field 1 (requests)."""
    return b"".join(BATCH_TAG + varint(len(item)) + item for item in items)


def problem(answer: pb.AuthorizeResponse, expected: Template) -> str | None:
    """What is wrong with an answer to a first (never replayed) request, or None."""
    if answer.HasField("error"):
        return f"item error {answer.error.code}: {answer.error.message}"
    if answer.replayed:
        return "replayed answer to a new idempotency key"
    if answer.decision == pb.DECISION_APPROVED:
        if expected.expected_code != APPROVED:
            return f"{expected.label}: approved, expected decline {expected.expected_code}"
        return None
    if answer.decision == pb.DECISION_DECLINED:
        return None
    return f"{expected.label}: no decision (code {answer.response_code!r})"


def replay_problem(first: pb.AuthorizeResponse, again: pb.AuthorizeResponse) -> str | None:
    """What is wrong with the answer to the same request sent a second time, or None."""
    if again.HasField("error"):
        return f"item error on replay {again.error.code}: {again.error.message}"
    if not again.replayed:
        return "second call with the same key not marked replayed"
    if again.transaction_id != first.transaction_id:
        return "replay answered with another transaction"
    if (again.decision, again.response_code) != (first.decision, first.response_code):
        return "replay answered with another decision"
    return None
