"""The checker: does the network's view of the money equal the journal's?

In the spirit of Jepsen's bank test. Three records are compared once the switch
has settled: the recording network's log (what was executed), the journal
(PostgreSQL's transactions and journal_entries) and the client's record of
every call and answer. check() returns the violations (none: pass) and the
money on both sides, per transaction and in total:

- no idempotency key executed twice at the network (an authorization may be
  executed again only if the earlier execution was reversed; captures, voids and
  refunds never), and nothing executed that no client asked for;
- at the network, per transaction: captured <= authorized, refunded <= captured,
  no capture after a void or a void after a capture, nothing on a reversed or
  unknown authorization;
- every approval the network kept (not reversed) is journaled as approved, and
  one the journal holds as UNKNOWN or REVERSED was reversed at the network; every
  approval the journal holds was approved by the network;
- every capture, void and refund the network executed is journaled, and every
  one journaled was executed, with the same amount;
- every answer a client was told (an OK status) is journaled with that status,
  transaction, response code and amount;
- (tests/faults/campaign.py adds) the journal's audit chains verify, as
  `switch audit verify` would: no fault leaves a block without its rows or rows
  without their block;
- every status a client saw is OK or UNAVAILABLE; DEADLINE_EXCEEDED (no answer
  in time) is allowed and counted; FAILED_PRECONDITION is allowed only for an
  operation that raced on purpose with another of its transaction; anything else
  (ABORTED, INTERNAL, UNKNOWN, ...) is a violation.

Operations are mapped to keys by amount: the client gives every key an amount no
other key of its kind moves (tests/faults/load.py).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

from tests.faults.journal import JournalView
from tests.faults.records import EXECUTED, ClientOp, NetworkOp

APPROVED = "00"
# Journal statuses of a transaction whose authorization stands (or was voided after it stood).
APPROVED_STATUSES = frozenset({"authorized", "captured", "partially_refunded", "refunded", "voided"})
UNDONE_STATUSES = frozenset({"unknown", "reversed"})
FOLLOW_UPS = ("capture", "void", "refund")
ALLOWED_CODES = frozenset({"OK", "UNAVAILABLE", "DEADLINE_EXCEEDED"})
RETRIED = frozenset({"UNAVAILABLE", "ABORTED", "DEADLINE_EXCEEDED"})  # what the client retries
# A client-side deadline: the call took (nearly) all of its deadline.
DEADLINE_SLACK = 0.1


@dataclass(frozen=True)
class Violation:
    check: str  # which property: see the module's docstring
    kind: str  # the operation kind it concerns: authorize, capture, void, refund, reverse
    subject: str  # an idempotency key or a transaction id
    detail: str
    at: float = 0.0  # when the operation concerned ran into trouble (wall clock), to attribute it to a fault

    def __str__(self) -> str:
        return f"[{self.check}] {self.kind} {self.subject}: {self.detail}"


@dataclass
class Money:
    """Minor units of one transaction, or of all of them, on one side."""

    authorized: int = 0  # approvals that stand: not reversed, not voided
    captured: int = 0
    refunded: int = 0

    @property
    def moved(self) -> int:
        return self.captured - self.refunded

    def add(self, other: Money) -> None:
        self.authorized += other.authorized
        self.captured += other.captured
        self.refunded += other.refunded

    def __str__(self) -> str:
        return f"authorized {self.authorized}, captured {self.captured}, refunded {self.refunded}"


@dataclass
class Totals:
    network: Money = field(default_factory=Money)
    journal: Money = field(default_factory=Money)
    per_transaction: dict[str, tuple[Money, Money]] = field(default_factory=dict)  # id -> (network, journal)

    @property
    def mismatched(self) -> dict[str, tuple[Money, Money]]:
        return {
            tx: (network, journal)
            for tx, (network, journal) in self.per_transaction.items()
            if (network.authorized, network.captured, network.refunded)
            != (journal.authorized, journal.captured, journal.refunded)
        }


@dataclass
class Verdict:
    violations: list[Violation]
    totals: Totals
    statuses: Counter[tuple[str, str]]  # (kind, code) of every attempt
    client_deadlines: int  # attempts whose own deadline ran out: no answer
    unanswered: int  # operations the client gave up retrying (a refusal is an answer)

    def by_check(self) -> Counter[tuple[str, str]]:
        return Counter((v.check, v.kind) for v in self.violations)


def check(network: list[NetworkOp], journal: JournalView, client: list[ClientOp]) -> Verdict:
    violations: list[Violation] = []
    violations += _statuses(client)
    violations += _answers_journaled(client, journal)
    violations += _network_keys(network, client)
    state = _NetworkState.of(network)
    violations += state.rules()
    violations += _approvals(state, journal, client)
    violations += _follow_ups(network, journal, client)
    totals = _totals(state, journal)
    flagged = {v.subject for v in violations}
    for tx, (at_network, in_journal) in sorted(totals.mismatched.items()):
        if tx not in flagged and not _keys_of(tx, journal, client) & flagged:
            violations.append(
                Violation(
                    "money", "transaction", tx, f"network: {at_network}; journal: {in_journal}", _began(tx, client)
                )
            )
    if journal.pending:
        work = journal.pending
        violations.append(
            Violation(
                "unsettled",
                "reverse",
                "journal",
                f"after the settle wait: {work.intents} intent(s) without an outcome, {len(work.reversals)} "
                f"reversal(s) unacknowledged, {work.operations} operation(s) pending",
            )
        )
    statuses: Counter[tuple[str, str]] = Counter((op.kind, a.code) for op in client for a in op.attempts)
    deadlines = sum(
        1
        for op in client
        for a in op.attempts
        if a.code == "DEADLINE_EXCEEDED" and a.elapsed >= op.timeout - DEADLINE_SLACK
    )
    unanswered = sum(1 for op in client if op.answer is None and (not op.attempts or op.attempts[-1].code in RETRIED))
    return Verdict(violations, totals, statuses, deadlines, unanswered)


def _statuses(client: list[ClientOp]) -> list[Violation]:
    found = []
    for op in client:
        bad: Counter[str] = Counter()
        for attempt in op.attempts:
            allowed = attempt.code in ALLOWED_CODES or (attempt.code == "FAILED_PRECONDITION" and op.contended)
            if not allowed:
                bad[attempt.code] += 1
        for code, count in sorted(bad.items()):
            found.append(Violation("status", op.kind, op.key, f"{code} x{count} ({_attempts(op)})", op.troubled_at))
    return found


def _attempts(op: ClientOp) -> str:
    return ", ".join(f"{a.code} {a.elapsed:.2f}s" for a in op.attempts)


def _answers_journaled(client: list[ClientOp], journal: JournalView) -> list[Violation]:
    """Every answer a client received is journaled as it was told. A follow-up's key is
    scoped to its transaction's merchant, which the load keeps equal to the authorization's."""
    found = []
    for op in client:
        if op.answer is None:
            continue
        entry = journal.by_key.get((op.merchant_id, op.key))
        if entry is None or entry.pending:
            state = "not journaled" if entry is None else "still pending in the journal"
            found.append(Violation("acknowledged", op.kind, op.key, f"answered {op.answer}, {state}", op.troubled_at))
            continue
        told: tuple[object, ...] = (op.kind, op.transaction_id, op.amount)
        journaled: tuple[object, ...] = (entry.kind, entry.transaction_id, entry.amount)
        if op.kind == "authorize":
            approved = op.answer["decision"] == "approved"
            told += (op.answer["response_code"], "authorized" if approved else "not authorized")
            journaled += (entry.response_code, "authorized" if entry.status == "authorized" else "not authorized")
        else:
            told += (op.answer["status"],)
            journaled += (entry.status,)
        if told != journaled:
            found.append(
                Violation("acknowledged", op.kind, op.key, f"told {told}, journaled {journaled}", op.troubled_at)
            )
    return found


def _network_keys(network: list[NetworkOp], client: list[ClientOp]) -> list[Violation]:
    """No key executed twice at the network (an authorization: unless the earlier one
    was reversed), and nothing executed that no client sent."""
    by_amount = {(op.kind, op.amount): op for op in client}
    reversed_ids = {op.transaction_id for op in network if op.kind == "reverse"}
    executions: defaultdict[tuple[str, int], list[NetworkOp]] = defaultdict(list)
    found = []
    for op in network:
        if op.kind == "reverse" or op.effect != EXECUTED:
            continue
        owner = by_amount.get((op.kind, op.amount))
        if owner is None:
            found.append(
                Violation("unrequested", op.kind, op.transaction_id, f"{op.amount} executed; no client sent it", op.at)
            )
            continue
        if op.kind != "authorize" and op.transaction_id != owner.transaction_id:
            found.append(
                Violation(
                    "wrong-transaction",
                    op.kind,
                    owner.key,
                    f"executed on {op.transaction_id}, sent for {owner.transaction_id}",
                    owner.troubled_at,
                )
            )
        executions[op.kind, op.amount].append(op)
    for (kind, amount), ops in executions.items():
        owner = by_amount[kind, amount]
        standing = [op for op in ops if kind != "authorize" or op.transaction_id not in reversed_ids]
        if len(standing) > 1:
            ids = ", ".join(f"#{op.seq} {op.transaction_id}" for op in standing)
            found.append(
                Violation(
                    "executed-twice",
                    kind,
                    owner.key,
                    f"executed {len(standing)} times at the network{'' if kind != 'authorize' else ' unreversed'}: "
                    f"{ids}",
                    owner.troubled_at,
                )
            )
    return found


@dataclass
class _NetworkState:
    """Per transaction, what the network executed."""

    approved: dict[str, NetworkOp] = field(default_factory=dict)
    reversed: set[str] = field(default_factory=set)
    captured: Counter[str] = field(default_factory=Counter)
    refunded: Counter[str] = field(default_factory=Counter)
    voided: set[str] = field(default_factory=set)
    first_seen: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, network: list[NetworkOp]) -> _NetworkState:
        state = cls()
        for op in network:
            state.first_seen.setdefault(op.transaction_id, op.at)
            if op.kind == "reverse":
                state.reversed.add(op.transaction_id)
            elif op.effect != EXECUTED:
                continue
            elif op.kind == "authorize":
                state.approved[op.transaction_id] = op
            elif op.kind == "capture":
                state.captured[op.transaction_id] += op.amount
            elif op.kind == "refund":
                state.refunded[op.transaction_id] += op.amount
            elif op.kind == "void":
                state.voided.add(op.transaction_id)
        return state

    def standing(self, tx: str) -> int:
        """The authorized amount that stands at the network: 0 if none, reversed or voided."""
        approval = self.approved.get(tx)
        if approval is None or tx in self.reversed or tx in self.voided:
            return 0
        return approval.amount

    def rules(self) -> list[Violation]:
        found = []
        for tx in sorted(set(self.captured) | set(self.refunded) | self.voided):
            at = self.first_seen.get(tx, 0.0)
            approval = self.approved.get(tx)
            authorized = approval.amount if approval is not None else 0
            if approval is None or tx in self.reversed:
                why = "never approved" if approval is None else "reversed"
                kind = "capture" if self.captured[tx] else "refund" if self.refunded[tx] else "void"
                found.append(Violation("network-state", kind, tx, f"{kind} of an authorization {why}", at))
            if self.captured[tx] > authorized:
                found.append(
                    Violation("over-capture", "capture", tx, f"captured {self.captured[tx]} of {authorized}", at)
                )
            if self.refunded[tx] > self.captured[tx]:
                found.append(
                    Violation("over-refund", "refund", tx, f"refunded {self.refunded[tx]} of {self.captured[tx]}", at)
                )
            if tx in self.voided and self.captured[tx]:
                found.append(Violation("void-and-capture", "void", tx, f"voided and captured {self.captured[tx]}", at))
        return found


def _approvals(state: _NetworkState, journal: JournalView, client: list[ClientOp]) -> list[Violation]:
    """Approvals at the network and in the journal agree, reversals included."""
    found = []
    for tx, approval in sorted(state.approved.items()):
        record = journal.transactions.get(tx)
        reversed_there = tx in state.reversed
        at = approval.at
        if record is None:
            if not reversed_there:
                found.append(
                    Violation(
                        "approval-lost",
                        "authorize",
                        tx,
                        f"approved at the network (#{approval.seq}, {approval.amount}), no journal row, not reversed",
                        at,
                    )
                )
        elif record.status in APPROVED_STATUSES:
            if reversed_there:
                found.append(
                    Violation("approval-reversed", "authorize", tx, f"journal {record.status}, reversed at network", at)
                )
        elif record.status in UNDONE_STATUSES:
            if not reversed_there:
                pending = " (reversal still pending)" if tx in journal.pending.reversals else ""
                found.append(
                    Violation(
                        "unknown-not-reversed",
                        "authorize",
                        tx,
                        f"journal {record.status}, approved at the network (#{approval.seq}) "
                        f"and never reversed{pending}",
                        at,
                    )
                )
        elif not reversed_there:  # declined in the journal
            found.append(
                Violation("declined-but-approved", "authorize", tx, f"journal {record.status}, network approved", at)
            )
    for tx, record in sorted(journal.transactions.items()):
        if record.status in APPROVED_STATUSES and tx not in state.approved:
            found.append(
                Violation(
                    "phantom-approval", "authorize", tx, f"journal {record.status}, network never approved it", 0.0
                )
            )
        if record.status == "reversed" and tx not in state.reversed:
            found.append(Violation("phantom-reversal", "reverse", tx, "journal reversed, network never reversed", 0.0))
    return [_dated(v, client) for v in found]


def _follow_ups(network: list[NetworkOp], journal: JournalView, client: list[ClientOp]) -> list[Violation]:
    """Every capture, void and refund executed at the network is journaled, and back."""
    executed: Counter[tuple[str, str, int]] = Counter(
        (op.kind, op.transaction_id, op.amount) for op in network if op.kind in FOLLOW_UPS and op.effect == EXECUTED
    )
    journaled: Counter[tuple[str, str, int]] = Counter(
        (e.kind, e.transaction_id, e.amount)
        for e in journal.entries
        if e.kind in FOLLOW_UPS and e.response_code == APPROVED and not e.pending
    )
    owners = {(op.kind, op.transaction_id, op.amount): op for op in client if op.kind in FOLLOW_UPS}
    found = []
    for item in sorted(set(executed) | set(journaled)):
        kind, tx, amount = item
        if executed[item] == journaled[item]:
            continue
        owner = owners.get(item)
        subject = owner.key if owner is not None else tx
        at = owner.troubled_at if owner is not None else 0.0
        check = "executed-not-journaled" if executed[item] > journaled[item] else "journaled-not-executed"
        found.append(
            Violation(
                check,
                kind,
                subject,
                f"{tx} {amount}: executed {executed[item]}x at the network, journaled {journaled[item]}x",
                at,
            )
        )
    return found


def _totals(state: _NetworkState, journal: JournalView) -> Totals:
    totals = Totals()
    for tx in set(state.approved) | set(state.captured) | set(state.refunded) | set(journal.transactions):
        at_network = Money(state.standing(tx), state.captured[tx], state.refunded[tx])
        record = journal.transactions.get(tx)
        in_journal = Money()
        if record is not None and record.status in APPROVED_STATUSES:
            authorized = 0 if record.status == "voided" else record.authorized
            in_journal = Money(authorized, record.captured, record.refunded)
        if at_network == Money() and in_journal == Money():
            continue
        totals.per_transaction[tx] = (at_network, in_journal)
        totals.network.add(at_network)
        totals.journal.add(in_journal)
    return totals


def _keys_of(tx: str, journal: JournalView, client: list[ClientOp]) -> set[str]:
    keys = {op.key for op in client if op.transaction_id == tx}
    record = journal.transactions.get(tx)
    if record is not None:
        keys.add(record.idempotency_key)
    return keys


def _began(tx: str, client: list[ClientOp]) -> float:
    return min((op.troubled_at for op in client if op.transaction_id == tx), default=0.0)


def _dated(violation: Violation, client: list[ClientOp]) -> Violation:
    """Dates a transaction's violation by its first client call, when the client knew it."""
    began = _began(violation.subject, client)
    if not began:
        return violation
    return Violation(violation.check, violation.kind, violation.subject, violation.detail, began)


__all__ = ["Money", "Totals", "Verdict", "Violation", "check"]
