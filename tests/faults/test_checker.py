"""The checker on small made-up histories: it passes a clean one and names each violation."""

from __future__ import annotations

import itertools
from dataclasses import replace

from tests.faults.checker import check
from tests.faults.journal import JournalEntry, JournalTransaction, JournalView, PendingWork
from tests.faults.records import DUPLICATE, EXECUTED, Attempt, ClientOp, NetworkOp

MERCHANT = "m-1"
AUTH, CAPTURE, REFUND = 100_000_000, 99_999_995, 11
_SEQ = itertools.count(1)


def net(kind: str, tx: str, amount: int, effect: str = EXECUTED) -> NetworkOp:
    return NetworkOp(next(_SEQ), 1.0, kind, tx, MERCHANT, amount, "USD", "", "411111******1111", "00", "ABC", effect)


def op(kind: str, key: str, amount: int, tx: str, answer: dict[str, object] | None, *codes: str) -> ClientOp:
    attempts = (
        [Attempt(code, 0.01, 1.0) for code in (*codes, "OK")] if answer else [Attempt(c, 0.01, 1.0) for c in codes]
    )
    return ClientOp(kind, key, MERCHANT, amount, "USD", tx, 1.0, 8.0, attempts=attempts, answer=answer)


def entry(kind: str, key: str, tx: str, amount: int, status: str, *, code: str = "00") -> JournalEntry:
    return JournalEntry(tx, MERCHANT, key, kind, "USD", amount, code, status)


def row(tx: str, status: str, captured: int = 0, refunded: int = 0) -> JournalTransaction:
    return JournalTransaction(tx, MERCHANT, "a1", status, "USD", AUTH, captured, refunded)


APPROVED = {"decision": "approved", "response_code": "00", "transaction_id": "tx1", "replayed": False}


def clean() -> tuple[list[NetworkOp], JournalView, list[ClientOp]]:
    network = [net("authorize", "tx1", AUTH), net("capture", "tx1", CAPTURE), net("refund", "tx1", REFUND)]
    journal = JournalView(
        {"tx1": row("tx1", "partially_refunded", CAPTURE, REFUND)},
        [
            entry("authorize", "a1", "tx1", AUTH, "authorized"),
            entry("capture", "c1", "tx1", CAPTURE, "captured"),
            entry("refund", "r1", "tx1", REFUND, "partially_refunded"),
        ],
    )
    client = [
        op("authorize", "a1", AUTH, "tx1", APPROVED),
        op("capture", "c1", CAPTURE, "tx1", {"status": "captured"}),
        op("refund", "r1", REFUND, "tx1", {"status": "partially_refunded"}, "UNAVAILABLE"),
    ]
    return network, journal, client


def checks(network: list[NetworkOp], journal: JournalView, client: list[ClientOp]) -> set[tuple[str, str]]:
    return {(v.check, v.kind) for v in check(network, journal, client).violations}


def test_a_clean_history_passes_and_both_sides_hold_the_same_money() -> None:
    verdict = check(*clean())
    assert verdict.violations == []
    assert verdict.totals.network == verdict.totals.journal
    assert verdict.totals.network.moved == CAPTURE - REFUND


def test_a_resend_the_network_answered_as_a_duplicate_is_not_an_execution() -> None:
    network, journal, client = clean()
    assert check([*network, net("refund", "tx1", REFUND, DUPLICATE)], journal, client).violations == []


def test_a_refund_executed_twice_is_caught() -> None:
    network, journal, client = clean()
    found = checks([*network, net("refund", "tx1", REFUND)], journal, client)
    assert {("executed-twice", "refund"), ("executed-not-journaled", "refund")} <= found


def test_an_authorization_approved_twice_is_caught_unless_the_first_was_reversed() -> None:
    network, journal, client = clean()
    twice = [net("authorize", "tx0", AUTH), *network]
    assert {("executed-twice", "authorize"), ("approval-lost", "authorize")} <= checks(twice, journal, client)
    reversed_first = [*twice, net("reverse", "tx0", AUTH)]
    assert check(reversed_first, journal, client).violations == []


def test_an_unknown_outcome_must_be_reversed_at_the_network() -> None:
    network, _, _ = clean()
    journal = JournalView({"tx1": row("tx1", "unknown")}, [entry("authorize", "a1", "tx1", AUTH, "unknown", code="91")])
    client = [op("authorize", "a1", AUTH, "", None, "UNAVAILABLE")]
    assert checks(network[:1], journal, client) == {("unknown-not-reversed", "authorize")}
    assert not checks([*network[:1], net("reverse", "tx1", AUTH)], journal, client)


def test_more_refunded_than_captured_at_the_network_is_caught() -> None:
    network, journal, client = clean()
    big = replace(network[2], amount=CAPTURE + 1)
    assert ("over-refund", "refund") in checks([*network[:2], big], journal, client)


def test_an_answer_the_journal_does_not_hold_is_caught() -> None:
    network, journal, client = clean()
    journal = JournalView(journal.transactions, journal.entries[:2])
    assert ("acknowledged", "refund") in checks(network, journal, client)


def test_statuses_other_than_ok_and_unavailable_are_violations() -> None:
    network, journal, client = clean()
    client[1].attempts.insert(0, Attempt("ABORTED", 3.0, 1.0))
    client[2].attempts.insert(0, Attempt("DEADLINE_EXCEEDED", 8.0, 1.0))
    verdict = check(network, journal, client)
    assert {(v.check, v.kind) for v in verdict.violations} == {("status", "capture")}
    assert verdict.client_deadlines == 1


def test_a_refusal_is_allowed_only_for_an_operation_that_raced_on_purpose() -> None:
    network, journal, client = clean()
    refused = op("refund", "R1", CAPTURE - 1, "tx1", None, "FAILED_PRECONDITION")
    assert ("status", "refund") in checks(network, journal, [*client, refused])
    assert not checks(network, journal, [*client, replace(refused, contended=True)])


def test_work_left_after_the_settle_wait_is_reported() -> None:
    network, journal, client = clean()
    journal.pending = PendingWork(frozenset({"tx9"}), 1, 0)
    assert ("unsettled", "reverse") in checks(network, journal, client)
