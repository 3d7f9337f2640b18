"""Serialized AuthorizeRequests for the benchmarks (capacity.py, scaling.py): templates
without their idempotency key, varied in card, account, merchant and amount, and the
protobuf framing that splices a key of KEY_LENGTH bytes in front of each one.
"""

from __future__ import annotations

from typing import Any

KEY_LENGTH = 24  # every idempotency key has this length, so templates can be spliced
CARD_POOL = 512
MERCHANTS = 16


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


def templates(merchant_prefix: str, merchants: int = MERCHANTS) -> list[bytes]:
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
