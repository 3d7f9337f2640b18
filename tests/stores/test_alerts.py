"""Listing risk alerts from the real journals (SQLite and PostgreSQL): the entries that raised
one, filtered by kind, merchant and time, oldest first, paged by a cursor."""

from __future__ import annotations

from dataclasses import replace

from switch.domain.alerts import AlertQuery, RiskAlert
from switch.stores.base import Journal
from tests.stores.test_journal import T0, backend, entry, journal, record

__all__ = ["backend", "journal"]  # fixtures, imported for the tests below

# (n, merchant, alert, seconds after T0): what each authorization raised, "" for nothing.
RAISED = [
    (1, "m-1", "sanctions_review", 10.0),
    (2, "m-1", "", 11.0),
    (3, "m-2", "sanctions_hit", 12.0),
    (4, "m-1", "sanctions_hit", 13.0),
    (5, "m-2", "sanctions_review", 14.0),
    (6, "m-2", "", 15.0),
    (7, "m-1", "sanctions_review", 16.0),
]


async def alerted(journal: Journal) -> None:
    batch = []
    for n, merchant, alert, after in RAISED:
        rec = replace(record(n, merchant), created_at=T0 + after, updated_at=T0 + after)
        batch.append(
            (rec, replace(entry(rec), created_at=T0 + after, alert=alert, decision="" if not alert else '{"a":1}'))
        )
    assert await journal.record_authorizations(batch) == [None] * len(batch)


def ids(found: list[RiskAlert]) -> list[str]:
    return [alert.transaction_id for alert in found]


async def test_only_entries_that_raised_an_alert_are_listed_oldest_first(journal: Journal) -> None:
    await alerted(journal)
    found = await journal.list_alerts(AlertQuery())
    assert ids(found) == ["tx-1", "tx-3", "tx-4", "tx-5", "tx-7"]
    first = found[0]
    assert (first.merchant_id, first.kind, first.decision, first.created_at) == (
        "m-1",
        "sanctions_review",
        '{"a":1}',
        T0 + 10.0,
    )
    assert first.response_code == "00"


async def test_filters_by_kind_merchant_and_time(journal: Journal) -> None:
    await alerted(journal)
    assert ids(await journal.list_alerts(AlertQuery(kind="sanctions_hit"))) == ["tx-3", "tx-4"]
    assert ids(await journal.list_alerts(AlertQuery(merchant_id="m-2"))) == ["tx-3", "tx-5"]
    assert ids(await journal.list_alerts(AlertQuery(kind="sanctions_review", merchant_id="m-1"))) == ["tx-1", "tx-7"]
    window = AlertQuery(since=T0 + 12.0, until=T0 + 16.0)  # since inclusive, until exclusive
    assert ids(await journal.list_alerts(window)) == ["tx-3", "tx-4", "tx-5"]
    assert await journal.list_alerts(AlertQuery(kind="sanctions_embargo")) == []


async def test_pages_follow_one_another_by_cursor(journal: Journal) -> None:
    await alerted(journal)
    pages: list[list[str]] = []
    after: tuple[float, str] | None = None
    while True:
        page = await journal.list_alerts(AlertQuery(after=after, limit=2))
        if not page:
            break
        pages.append(ids(page))
        after = page[-1].cursor
    assert pages == [["tx-1", "tx-3"], ["tx-4", "tx-5"], ["tx-7"]]
