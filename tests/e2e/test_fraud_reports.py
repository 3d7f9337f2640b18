"""ReportFraud labels authorizations; the journal keeps each label beside the features the
payment was scored on, and `switch risk train --config` learns from them."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest

from switch import config
from switch.cli.main import main as cli
from switch.risk.model.features import FEATURES
from switch.risk.model.labels import labelled_rows
from switch.v1 import switch_pb2 as pb
from tests.conftest import drop_production_state, store_settings
from tests.e2e.support import MASTERCARD, VISA, card_request, expect, serve_settings

CALLERS = [{"identity": "*", "roles": ["authorize", "read", "compliance"], "merchants": ["*"]}]


@pytest.fixture
async def settings(store_set: str, tmp_path: Path) -> Any:
    raw: dict[str, Any] = store_settings(store_set, tmp_path)
    raw.setdefault("server", {})["port"] = 0
    raw.setdefault("security", {})["callers"] = CALLERS
    raw["fraud_model"] = {}
    kept = config.from_mapping(raw)
    yield kept
    await drop_production_state(kept)


async def test_labels_keep_the_features_each_payment_was_scored_on(settings: config.Settings) -> None:
    async with serve_settings(settings) as switch:
        fraud = await switch.stub.Authorize(card_request(pan=VISA, amount=90_000))
        honest = await switch.stub.Authorize(card_request(pan=MASTERCARD, amount=1_200))
        report = pb.ReportFraudRequest(transaction_id=fraud.transaction_id, fraud=True, reason="chargeback CB-1")
        answer = await switch.stub.ReportFraud(report)
        assert (answer.transaction_id, answer.fraud) == (fraud.transaction_id, True)
        # A report made in error is replaced by the next one.
        await switch.stub.ReportFraud(
            pb.ReportFraudRequest(transaction_id=honest.transaction_id, fraud=True, reason="x")
        )
        await switch.stub.ReportFraud(
            pb.ReportFraudRequest(transaction_id=honest.transaction_id, fraud=False, reason="y")
        )

        rows, skipped = labelled_rows(await switch.running.journal.labelled_decisions())
        assert skipped == 0
        assert [label for _, label in rows] == [True, False]
        assert all(len(features) == len(FEATURES) for features, _ in rows)

        unknown = pb.ReportFraudRequest(transaction_id="tx_NOPE", fraud=True, reason="r")
        await expect(switch.stub.ReportFraud(unknown), grpc.StatusCode.NOT_FOUND)
        no_reason = await expect(
            switch.stub.ReportFraud(pb.ReportFraudRequest(transaction_id=fraud.transaction_id, fraud=True)),
            grpc.StatusCode.INVALID_ARGUMENT,
        )
        assert "reason" in no_reason.violations


async def test_training_learns_from_the_journals_labels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    journal = tmp_path / "journal.sqlite3"
    raw: dict[str, Any] = {"server": {"port": 0}, "stores": {"sqlite_path": str(journal)}, "fraud_model": {}}
    raw["security"] = {"callers": CALLERS}
    async with serve_settings(config.from_mapping(raw)) as switch:
        for n, pan in enumerate((VISA, MASTERCARD)):
            paid = await switch.stub.Authorize(card_request(pan=pan, amount=5_000 + n))
            request = pb.ReportFraudRequest(transaction_id=paid.transaction_id, fraud=n == 0, reason="review")
            await switch.stub.ReportFraud(request)
    settings_file = tmp_path / "switch.toml"
    settings_file.write_text(f'[stores]\nsqlite_path = "{journal}"\n')
    command = ["risk", "train", "--config", str(settings_file), "--days", "10", "--out", str(tmp_path / "m.json")]
    assert await asyncio.to_thread(cli, command) == 0  # it runs its own event loop
    printed = capsys.readouterr().out
    assert "| labelled in the journal (fraud) | 2 (1) |" in printed
    assert "| labelled, not scored (skipped) | 0 |" in printed
