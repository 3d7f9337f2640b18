"""Returns journaled against the real journals (SQLite and PostgreSQL): a return completes
its transaction's reversal exactly once, however often and in whatever order it arrives."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest

from switch.adapters.contract import Return
from switch.domain.models import Money, TransactionRecord, TransactionStatus
from switch.flow.returns import Returns, return_key
from switch.stores.base import Journal
from switch.telemetry.metrics import Counter
from tests.stores.test_journal import T0, authorization, backend, journal, record, reversed_, unknown

__all__ = ["backend", "journal"]  # fixtures, imported for the tests below


def returned(rec: TransactionRecord, reference: str = "RTN1", minor: int | None = None) -> Return:
    amount = rec.authorized if minor is None else Money(minor, rec.authorized.currency)
    return Return(rec.transaction_id, amount, reference, "FOCR")


def handler(journal: Journal) -> tuple[Returns, Counter]:
    outcomes = Counter("switch_returns", "")
    return Returns(journal, outcomes=outcomes, clock=lambda: T0 + 1000), outcomes


async def recalled(journal: Journal, n: int, status: TransactionStatus) -> TransactionRecord:
    """A transaction told 91 whose recall left it in status (RETURN_PENDING, RECALL_REJECTED)."""
    rec, ent = unknown(n)
    await journal.record_authorizations([(rec, ent)])
    done, done_entry = reversed_(rec)
    after = replace(done, status=status)
    assert await journal.finish_reversal(after, replace(done_entry, status=status))
    return after


@pytest.mark.parametrize("status", [TransactionStatus.RETURN_PENDING, TransactionStatus.RECALL_REJECTED])
async def test_a_return_reverses_a_recalled_transaction_once(journal: Journal, status: TransactionStatus) -> None:
    rec = await recalled(journal, 1, status)
    returns, outcomes = handler(journal)
    await returns([returned(rec)])
    await returns([returned(rec)])  # delivered again: its acknowledgement was lost
    stored = await journal.get_transaction(rec.transaction_id)
    assert stored is not None and (stored.status, stored.version) == (TransactionStatus.REVERSED, rec.version + 1)
    (found,) = (await journal.find_entries([(rec.merchant_id, return_key("RTN1"))])).values()
    assert (found.status, found.amount, found.response_code) == (TransactionStatus.REVERSED, rec.authorized, "00")
    assert outcomes.values == {(("outcome", "applied"),): 1.0, (("outcome", "duplicate"),): 1.0}


async def test_a_return_that_overtakes_the_recalls_answer_finishes_the_reversal(journal: Journal) -> None:
    rec, ent = unknown(2)
    await journal.record_authorizations([(rec, ent)])
    returns, _ = handler(journal)
    await returns([returned(rec)])
    stored = await journal.get_transaction(rec.transaction_id)
    assert stored is not None and stored.status is TransactionStatus.REVERSED
    assert await journal.due_reversals(T0 + 10_000, 10) == []  # no recall left to send
    done, done_entry = reversed_(rec)  # the recall's answer, landing late, changes nothing
    assert await journal.finish_reversal(replace(done, status=TransactionStatus.RETURN_PENDING), done_entry) is False


async def test_a_return_racing_the_recalls_answer_ends_reversed(journal: Journal) -> None:
    rec, ent = unknown(3)
    await journal.record_authorizations([(rec, ent)])
    done, done_entry = reversed_(rec)
    pending = replace(done, status=TransactionStatus.RETURN_PENDING)
    returns, _ = handler(journal)
    await asyncio.gather(
        journal.finish_reversal(pending, replace(done_entry, status=TransactionStatus.RETURN_PENDING)),
        returns([returned(rec)]),
    )
    stored = await journal.get_transaction(rec.transaction_id)
    assert stored is not None and stored.status is TransactionStatus.REVERSED


async def test_a_return_for_nothing_awaiting_one_is_logged_and_not_applied(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    live, live_entry = authorization(4)
    await journal.record_authorizations([(live, live_entry)])
    returns, outcomes = handler(journal)
    await returns([returned(live, "RTN4"), returned(record(99), "RTN99")])
    stored = await journal.get_transaction(live.transaction_id)
    assert stored == live  # untouched
    assert await journal.find_entries([(live.merchant_id, return_key("RTN4"))]) == {}
    assert outcomes.values == {(("outcome", "unexpected"),): 2.0}
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(logged) == 2 and all("settle it by hand" in line for line in logged)


async def test_a_partial_return_is_journaled_with_what_came_back(
    journal: Journal, caplog: pytest.LogCaptureFixture
) -> None:
    rec = await recalled(journal, 5, TransactionStatus.RETURN_PENDING)
    returns, _ = handler(journal)
    await returns([returned(rec, "RTN5", minor=100)])
    (found,) = (await journal.find_entries([(rec.merchant_id, return_key("RTN5"))])).values()
    assert found.amount == Money(100, rec.authorized.currency)
    assert any("brought back 100" in r.getMessage() for r in caplog.records)
