"""Transaction ids: a batch made at once, each id in the one format, bit for bit."""

from __future__ import annotations

import base64
import itertools
import os
import re
import time

import pytest

from switch.domain import ids

ID = re.compile(r"tx_[0-9A-HJKMNP-TV-Z]{26}")
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
RFC4648 = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def bits(transaction_id: str) -> int:
    """The 128 bits an id encodes (the last character's 2 filler bits must be zero)."""
    value = 0
    for char in transaction_id.removeprefix("tx_"):
        value = value << 5 | CROCKFORD.index(char)
    assert value & 0b11 == 0
    return value >> 2


def reference(ms: int, random_bits: int) -> str:
    """The format as first written: base64's base 32 of 6 bytes of time + 10 random, mapped to Crockford."""
    raw = ms.to_bytes(6, "big") + random_bits.to_bytes(10, "big")
    return "tx_" + base64.b32encode(raw).decode()[:26].translate(str.maketrans(RFC4648, CROCKFORD))


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> int:
    now = 1_764_150_000.123
    monkeypatch.setattr(time, "time", lambda: now)
    return int(now * 1000)


@pytest.mark.parametrize("count", [1, 2, 7, 100, 257])
def test_a_batch_is_ids_in_the_single_format(frozen_clock: int, count: int) -> None:
    batch = ids.new_transaction_ids(count)
    assert len(batch) == count
    for made in batch:
        assert ID.fullmatch(made)
        value = bits(made)
        assert value >> 80 == frozen_clock
        # The encoding is the original one: re-encoding its own bits gives the same id.
        assert reference(frozen_clock, value & (2**80 - 1)) == made


def test_batch_ids_use_all_80_random_bits_and_differ() -> None:
    batch = ids.new_transaction_ids(2000)
    assert len(set(batch)) == len(batch)
    values = [bits(made) & (2**80 - 1) for made in batch]
    seen_set = seen_clear = 0
    for value in values:
        seen_set |= value
        seen_clear |= ~value
    assert seen_set == seen_clear & (2**80 - 1) == 2**80 - 1


def test_batches_sort_by_time(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter([1_700_000_000.0005, 1_700_000_000.0015, 1_700_000_001.0005, 1_800_000_000.0005])
    monkeypatch.setattr(time, "time", lambda: next(clock))
    batches = [ids.new_transaction_ids(50) for _ in range(4)]
    for earlier, later in itertools.pairwise(batches):
        assert max(earlier) < min(later)


def test_an_empty_batch_is_empty(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_randomness(size: int) -> bytes:
        raise AssertionError("no random bytes for no ids")

    monkeypatch.setattr(os, "urandom", no_randomness)
    assert ids.new_transaction_ids(0) == []


def test_an_id_tells_when_it_was_minted() -> None:
    before = time.time()
    (made,) = ids.new_transaction_ids(1)
    minted = ids.minted_at(made)
    assert minted is not None and before - 0.001 <= minted <= time.time()
    assert ids.minted_at("tx-1") is None and ids.minted_at("tx_" + "U" * 26) is None  # U is not Crockford
    assert ids.minted_at(made[:-1]) is None
