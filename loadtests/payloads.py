"""The requests every benchmark sends (capacity.py, scaling.py, stages.py) and how it
counts the answers.

Templates are serialized AuthorizeRequests without their idempotency key, varied in
card, account, merchant and amount. A request is a key of KEY_LENGTH bytes spliced in
front of a template (AuthorizeRequest field 1 comes first), so building one costs a
bytes join, not a protobuf serialization: the load generator's CPU stays with the calls.

    Requests(mode, run_id).build()     the next call's bytes, each authorization a fresh key
    source(kind, ...)                  a run's requests: pre-built ("pool", "ring") or built per call
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from typing import Any

KEY_LENGTH = 24  # every idempotency key has this length, so templates can be spliced
CARD_POOL = 512
MERCHANTS = 16
# The merchant ids are "<prefix>-NN": with this prefix they fit ISO 8583 field 42 (15 characters).
MERCHANT_PREFIX = "cap-merchant"
SOURCES = ("pool", "ring", "fresh")


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


KEY_TAG = b"\x0a" + varint(KEY_LENGTH)  # AuthorizeRequest/AuthorizeResponse field 1, length-delimited
BATCH_TAG = b"\x0a"  # AuthorizeBatchRequest.requests: field 1, length-delimited


def luhn_pan(serial: int) -> str:
    """A 15-digit Mastercard-range body for serial, with its Luhn check digit."""
    body = f"52{serial:013d}"
    for digit in "0123456789":
        total = 0
        for index, char in enumerate(reversed(body + digit)):
            value = int(char) * (2 if index % 2 else 1)
            total += value - 9 if value > 9 else value
        if total % 10 == 0:
            return body + digit
    raise AssertionError("unreachable")


def templates(merchant_prefix: str = MERCHANT_PREFIX, merchants: int = MERCHANTS) -> list[bytes]:
    """Serialized AuthorizeRequests without their idempotency key (field 1), varied in
    card, account, merchant (one of `merchants`) and amount. A key is spliced in front of each one."""
    from switch.v1 import switch_pb2 as pb

    built: list[bytes] = []
    for serial in range(CARD_POOL * 2):
        request = pb.AuthorizeRequest(
            merchant_id=f"{merchant_prefix}-{serial % merchants:02d}",
            amount=pb.Money(minor_units=100 + (serial * 7919) % 99_900, currency="USD"),
        )
        if serial % 20 == 7:
            request.card.CopyFrom(pb.Card(pan="4000000000000002", expiry_month=12, expiry_year=2031))
        elif serial % 40 == 13:
            request.card.CopyFrom(pb.Card(pan="4000000000009995", expiry_month=12, expiry_year=2031))
        elif serial % 10 == 3:
            suffix = "-insufficient" if serial % 30 == 3 else ""
            request.account.CopyFrom(pb.Account(rail="instant", id=f"acct-{serial % CARD_POOL:05d}{suffix}"))
        else:
            request.card.CopyFrom(
                pb.Card(pan=luhn_pan(serial % CARD_POOL), expiry_month=1 + serial % 12, expiry_year=2030)
            )
        built.append(request.SerializeToString())
    return built


def run_keys(run_id: str) -> Callable[[int], bytes]:
    """Key n of a run: "b<run_id>-" and n, zero-padded to KEY_LENGTH."""
    head = f"b{run_id}-".encode()
    width = KEY_LENGTH - len(head)
    return lambda n: head + b"%0*d" % (width, n)


class Requests:
    """The calls of one run, in order: an AuthorizeRequest (unary, stream) or an
    AuthorizeBatchRequest of batch_items, authorization n keyed key(n) on template n."""

    def __init__(
        self,
        mode: str,
        run_id: str,
        batch_items: int = 100,
        *,
        bodies: Sequence[bytes] | None = None,
        key: Callable[[int], bytes] | None = None,
    ) -> None:
        self.mode = mode
        self.batch_items = batch_items
        self.bodies = list(bodies) if bodies is not None else templates()
        self.key = key or run_keys(run_id)
        # A batch item: its tag and length, then the key's, then the key and the template.
        self.item_heads = [BATCH_TAG + varint(len(KEY_TAG) + KEY_LENGTH + len(t)) + KEY_TAG for t in self.bodies]
        self.next = 0

    def build(self) -> bytes:
        bodies, key, count = self.bodies, self.key, len(self.bodies)
        if self.mode != "batch":
            n = self.next
            self.next += 1
            return KEY_TAG + key(n) + bodies[n % count]
        first = self.next
        self.next += self.batch_items
        parts: list[bytes] = []
        for n in range(first, first + self.batch_items):
            parts += (self.item_heads[n % count], key(n), bodies[n % count])
        return b"".join(parts)


def prebuilt(mode: str, run_id: str, calls: int, batch_items: int = 100) -> list[bytes]:
    """`calls` serialized requests of a run, built now."""
    requests = Requests(mode, run_id, batch_items)
    return [requests.build() for _ in range(calls)]


def source(kind: str, mode: str, run_id: str, batch_items: int, count: int) -> Callable[[], bytes | None]:
    """A run's next request, or None when there is none left:

    pool    `count` calls built before the run; the run may use them up ("count-bound")
    ring    `count` calls built before the run, sent again and again: for a server that
            ignores the keys (the echo), so the generator's CPU goes to the calls
    fresh   each call built when it is sent: never used up, for long runs on many clients
    """
    if kind == "fresh":
        return Requests(mode, run_id, batch_items).build
    built = prebuilt(mode, run_id, count, batch_items)
    if kind == "ring":
        return itertools.cycle(built).__next__
    if kind != "pool":
        raise ValueError(f"requests: one of {', '.join(SOURCES)}, not {kind!r}")
    remaining = iter(built)
    return lambda: next(remaining, None)


def tally(counts: dict[str, int], answer: Any) -> None:
    """Counts one AuthorizeResponse under "approved", "declined" or "item_errors"."""
    from switch.v1 import switch_pb2 as pb

    if answer.decision == pb.DECISION_APPROVED:
        counts["approved"] += 1
    elif answer.decision == pb.DECISION_DECLINED:
        counts["declined"] += 1
    else:
        counts["item_errors"] += 1


def check_payload(mode: str, payload: bytes, run_id: str, batch_items: int) -> None:
    """Asserts that a built payload parses: an AuthorizeBatchRequest of batch_items (mode
    "batch") or an AuthorizeRequest, each with its own key of this run."""
    from switch.v1 import switch_pb2 as pb

    if mode == "batch":
        requests = list(pb.AuthorizeBatchRequest.FromString(payload).requests)
        assert len(requests) == batch_items
    else:
        requests = [pb.AuthorizeRequest.FromString(payload)]
    for request in requests:
        assert request.idempotency_key.startswith(f"b{run_id}-"), request.idempotency_key
        assert len(request.idempotency_key) == KEY_LENGTH
        assert request.merchant_id and request.amount.minor_units > 0
        assert request.WhichOneof("source") in ("card", "account")
