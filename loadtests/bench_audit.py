"""What the audit chain costs a journal commit: CPU per authorization of sealing a batch
(compiled and the pure-Python reference), and of PostgresJournal.record_authorizations
(which seals, and writes the block in the same transaction) at batches of 16 and 256.

    .venv/bin/python loadtests/bench_audit.py [--batches 60] [--repeats 5] [--postgres-dsn DSN]

Each row is the median of --repeats. To see what the chain adds, run it in a worktree of
the commit before the chain too, alternating (the seal rows exist only after it).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import time
from pathlib import Path

import asyncpg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from switch.domain.models import JournalEntry, Money, OperationKind, TransactionRecord, TransactionStatus
from switch.stores.postgres import PostgresJournal

POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def authorization(n: int) -> tuple[TransactionRecord, JournalEntry]:
    """A record and entry shaped like the switch's: a masked card, a token, an answer."""
    now = time.time()
    record = TransactionRecord(
        transaction_id=f"tx_{secrets.token_hex(12)}",
        merchant_id=f"m-{n % 16}",
        idempotency_key=f"bench-{secrets.token_hex(8)}",
        status=TransactionStatus.AUTHORIZED,
        authorized=Money(1000 + n, "USD"),
        captured_minor=0,
        refunded_minor=0,
        route="card",
        masked_instrument="411111******1111",
        fingerprint=secrets.token_hex(32),
        token="4111119876541112",
        response_code="00",
        authorization_code="A12345",
        fee_minor=37,
        created_at=now,
        updated_at=now,
        version=1,
    )
    response = b'{"transaction_id":"%s","response_code":"00","approved":true,"token":"4111119876541112"}' % (
        record.transaction_id.encode()
    )
    entry = JournalEntry(
        transaction_id=record.transaction_id,
        merchant_id=record.merchant_id,
        idempotency_key=record.idempotency_key,
        kind=OperationKind.AUTHORIZE,
        amount=record.authorized,
        response_code="00",
        status=record.status,
        request_hash=secrets.token_hex(32),
        response=response,
        created_at=now,
        fee_shares=(("acquirer", 20), ("scheme", 17)),
    )
    return record, entry


def seal_rows(batch: int, repeats: int) -> list[tuple[str, float]]:
    try:
        from switch.stores.audit import merkle
        from switch.stores.rows import entry_row, transaction_row
    except ImportError:
        return []  # before the chain
    pairs = [authorization(n) for n in range(batch)]
    transactions = [transaction_row(record) for record, _ in pairs]
    entries = [entry_row(entry) for _, entry in pairs]
    rows = []
    for name, seal in (("compiled", merkle.seal_rows), ("reference", merkle.reference_seal_rows)):
        times = []
        for _ in range(repeats):
            started = time.process_time()
            for _ in range(200):
                seal(transactions, entries, [])
            times.append((time.process_time() - started) / (200 * batch) * 1e6)
        rows.append((f"seal a batch of {batch} ({name})", statistics.median(times)))
    return rows


async def record(dsn: str, batch: int, batches: int, repeats: int) -> float:
    schema = f"bench_audit_{secrets.token_hex(4)}"
    journal = await PostgresJournal.open(dsn, schema=schema)
    try:
        times = []
        for _ in range(repeats):
            work = [[authorization(n) for n in range(batch)] for _ in range(batches)]
            await journal.record_authorizations(work.pop())  # warm: the pool, the statements
            started = time.process_time()
            for items in work:
                await journal.record_authorizations(items)
            times.append((time.process_time() - started) / (len(work) * batch) * 1e6)
        return statistics.median(times)
    finally:
        await journal.close()
        connection = await asyncpg.connect(dsn)
        await connection.execute(f'DROP SCHEMA "{schema}" CASCADE')
        await connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, default=60)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--postgres-dsn", default=POSTGRES_DSN)
    args = parser.parse_args()
    rows = [*seal_rows(256, args.repeats), *seal_rows(16, args.repeats)]
    for batch in (256, 16):
        cpu = asyncio.run(record(args.postgres_dsn, batch, args.batches, args.repeats))
        rows.append((f"record_authorizations, batches of {batch} (switch CPU)", cpu))
    print("| what | CPU µs per authorization |")
    print("| --- | ---: |")
    for name, value in rows:
        print(f"| {name} | {value:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
