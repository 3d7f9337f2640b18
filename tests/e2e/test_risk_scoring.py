"""The fraud score and the AML rules end to end, on both store sets: each payment's
parties' activity from the state store, a score over the model's decline threshold
declines 59, alerts are journaled and listed, and the decision names the model."""

from __future__ import annotations

import asyncio
from typing import Any

from switch.risk.model.model import load
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import DECLINE_CARD, VISA, account_request, card_request, decision_of, serve

MODEL = load()
CALLERS = {"callers": [{"identity": "*", "roles": ["authorize", "read", "compliance"], "merchants": ["*"]}]}
RISK: dict[str, Any] = {"fraud_model": {}, "aml": {}, "security": CALLERS}
AML_ONLY: dict[str, Any] = {"aml": {}, "security": CALLERS}


def mule_payment(n: int) -> pb.AuthorizeRequest:
    request = account_request(account_id=f"acct-payer-{n:04d}", amount=20_000)
    request.destination.CopyFrom(pb.Account(rail="instant", id="acct-mule-0001", country="BR"))
    return request


async def test_a_legitimate_payment_is_scored_and_passes(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, **RISK) as switch:
        answer = await switch.stub.Authorize(card_request(pan=VISA, amount=2_500))
        assert answer.response_code == "00", answer
        decided = await decision_of(switch, answer)
        assert decided["model"] == MODEL.version
        assert 0.0 <= decided["score"] < MODEL.thresholds.decline


async def test_card_testing_is_declined_59(store_set: str, switch_factory: SwitchFactory) -> None:
    """A fresh card tried again and again for small amounts, the issuer declining: its
    activity (attempts and declines in the hour) drives the score over the threshold."""
    async with serve(switch_factory, store_set, **RISK) as switch:
        codes = []
        for _ in range(40):
            answer = await switch.stub.Authorize(card_request(pan=DECLINE_CARD, amount=150))
            codes.append(answer.response_code)
            if answer.response_code == "59":
                break
        assert codes[0] == "05" and codes[-1] == "59", codes
        assert "suspected fraud" in answer.message
        decided = await decision_of(switch, answer)
        assert decided["score"] >= MODEL.thresholds.decline and decided["model"] == MODEL.version
        assert decided["alerts"][0] == "fraud_score"
        listed = await switch.stub.ListAlerts(pb.ListAlertsRequest(kind="fraud_score"))
        assert answer.transaction_id in [alert.transaction_id for alert in listed.alerts]
        assert 'switch_risk_alerts_total{kind="fraud_score"}' in switch.running.metrics.render()


async def test_mules_fanning_in_raise_the_alert(store_set: str, switch_factory: SwitchFactory) -> None:
    """Many accounts paying one new account within hours: from the eleventh on, fan-in
    (the AML rules alone: the model would decline them first, see the next test)."""
    async with serve(switch_factory, store_set, **AML_ONLY) as switch:
        answers = [await switch.stub.Authorize(mule_payment(n)) for n in range(12)]
        assert {a.response_code for a in answers} == {"00"}
        kinds = [(await decision_of_or_empty(switch, a)).get("alerts", []) for a in answers]
        assert [n for n, alerts in enumerate(kinds) if alerts] == [10, 11]
        assert kinds[10] == ["aml_fan_in"]
        listed = await switch.stub.ListAlerts(pb.ListAlertsRequest(kind="aml_fan_in"))
        assert {a.transaction_id for a in listed.alerts} == {answers[10].transaction_id, answers[11].transaction_id}


async def test_the_model_declines_mules_before_the_rule_fires(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, **RISK) as switch:
        codes = [(await switch.stub.Authorize(mule_payment(n))).response_code for n in range(12)]
        assert codes[0] == "00" and codes[-1] == "59", codes


async def test_structuring_below_the_threshold_raises_the_alert(store_set: str, switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, store_set, **AML_ONLY) as switch:
        answers = [await switch.stub.Authorize(card_request(pan=VISA, amount=950_000)) for _ in range(3)]
        kinds = [(await decision_of_or_empty(switch, a)).get("alerts", []) for a in answers]
        assert "aml_structuring" not in kinds[0] and "aml_structuring" not in kinds[1]
        assert "aml_structuring" in kinds[2]


async def test_without_risk_tables_nothing_is_scored(switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, "embedded") as switch:
        answer = await switch.stub.Authorize(card_request(amount=2_500))
        assert await asyncio.wait_for(decision_of_or_empty(switch, answer), 5) == {}


async def decision_of_or_empty(switch: Any, answer: pb.AuthorizeResponse) -> dict[str, Any]:
    stored = await switch.running.journal.get_transaction(answer.transaction_id)
    (entry,) = (await switch.running.journal.find_entries([(stored.merchant_id, answer.idempotency_key)])).values()
    return {} if not entry.decision else dict(await decision_of(switch, answer))
