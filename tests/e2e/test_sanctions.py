"""Sanctions screening in the batch, end to end over gRPC, on both store sets.

A party on the list, or a country under embargo, is declined 93 before anything is
routed or sent; every screened authorization is journaled with the list version
that decided it; the lists are read at start, and a list that cannot be read
refuses the start. The lists are the committed fixtures in their published formats."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import grpc
import pytest

from switch.config import StartupError
from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import Switch, account_request, card, card_request, decision_of, expect, serve, spy_on_issuer

FIXTURES = Path(__file__).parents[1] / "data" / "sanctions"


def sanctions(**changes: Any) -> dict[str, Any]:
    return {
        "lists": [
            {"format": "ofac-csv", "path": str(FIXTURES / "ofac")},
            {"format": "un-xml", "path": str(FIXTURES / "un" / "consolidated.xml")},
        ],
        "embargoed_countries": ["KP"],
        "merchant_names": {"m_cuba": "Banco Nacional de Cuba"},
        **changes,
    }


async def test_a_listed_party_is_declined_93_and_journaled_with_the_list_version(
    store_set: str, switch_factory: SwitchFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with serve(switch_factory, store_set, sanctions=sanctions()) as switch:
        sent = spy_on_issuer(switch, monkeypatch)
        (version,) = _served_versions(switch)
        listed = card_request()
        listed.card.CopyFrom(card(holder="Hasan Nasrallah"))
        hit = await switch.stub.Authorize(listed)
        assert (hit.decision, hit.response_code) == (pb.DECISION_DECLINED, "93")
        assert "sanctions ofac:2686" in hit.message and "Nasrallah" not in hit.message
        assert (await decision_of(switch, hit))["verdict"] == "hit"
        assert (await decision_of(switch, hit))["sanctions"] == version

        clean = card_request()
        clean.card.CopyFrom(card(holder="Maria Oliveira Santos"))
        passed = await switch.stub.Authorize(clean)
        assert passed.decision == pb.DECISION_APPROVED
        assert await decision_of(switch, passed) == {"sanctions": version, "verdict": "pass"}

        merchant = await switch.stub.Authorize(card_request(merchant="m_cuba"))
        embargoed = await switch.stub.Authorize(account_request(account_id="+85000000000"))
        embargoed_request = account_request()
        embargoed_request.account.country = "KP"
        embargo = await switch.stub.Authorize(embargoed_request)
        assert (merchant.response_code, embargoed.response_code, embargo.response_code) == ("93", "00", "93")
        assert "embargoed country KP" in embargo.message

        again = await switch.stub.Authorize(listed)  # a retry replays the decline
        assert (again.response_code, again.replayed, again.transaction_id) == ("93", True, hit.transaction_id)
        assert len(sent) == 2  # only the two that passed reached a route
        alerts = switch.running.metrics.risk_alerts.values
        assert alerts[(("kind", "sanctions_hit"),)] == 3


def _served_versions(switch: Switch) -> set[str]:
    page = switch.running.metrics.render()
    return {line.split('version="')[1].split('"')[0] for line in page.splitlines() if "switch_sanctions_list{" in line}


async def test_a_list_that_cannot_be_read_refuses_the_start(switch_factory: SwitchFactory, tmp_path: Path) -> None:
    missing = {"lists": [{"format": "ofac-csv", "path": str(tmp_path / "nowhere")}]}
    with pytest.raises(StartupError, match=r"sanctions\.lists"):
        async with switch_factory("embedded", sanctions=missing):
            pass


COMPLIANCE_CALLERS = [{"identity": "*", "roles": ["authorize", "read", "compliance"], "merchants": ["*"]}]


async def test_hits_and_names_to_review_are_listed_as_alerts(store_set: str, switch_factory: SwitchFactory) -> None:
    screening = sanctions(hit=0.99, review=0.9)  # a typo of a listed name lands between the two
    async with serve(
        switch_factory, store_set, sanctions=screening, security={"callers": COMPLIANCE_CALLERS}
    ) as switch:
        (version,) = _served_versions(switch)
        answers = []
        for holder in ("Hasan Nasrallah", "Maria Oliveira Santos", "Hasan Nasrollah"):
            request = card_request()
            request.card.CopyFrom(card(holder=holder))
            answers.append(await switch.stub.Authorize(request))
        hit, clean, review = answers
        assert (hit.response_code, clean.response_code, review.response_code) == ("93", "00", "00")

        listed = await switch.stub.ListAlerts(pb.ListAlertsRequest())
        assert [(a.transaction_id, a.kind) for a in listed.alerts] == [
            (hit.transaction_id, "sanctions_hit"),
            (review.transaction_id, "sanctions_review"),
        ]
        assert [a.response_code for a in listed.alerts] == ["93", "00"]
        assert all(a.sanctions_version == version and "ofac:2686" in a.reason for a in listed.alerts)
        assert "Nasr" not in str(listed)  # entry ids, never a customer's name
        assert not listed.next_page_token  # not a full page

        only_hits = await switch.stub.ListAlerts(pb.ListAlertsRequest(kind="sanctions_hit"))
        assert [a.transaction_id for a in only_hits.alerts] == [hit.transaction_id]
        assert not (await switch.stub.ListAlerts(pb.ListAlertsRequest(merchant_id="m_elsewhere"))).alerts

        first = await switch.stub.ListAlerts(pb.ListAlertsRequest(page_size=1))
        second = await switch.stub.ListAlerts(pb.ListAlertsRequest(page_size=1, page_token=first.next_page_token))
        assert [a.transaction_id for a in (*first.alerts, *second.alerts)] == [
            hit.transaction_id,
            review.transaction_id,
        ]

        for bad, field in (
            (pb.ListAlertsRequest(page_token="not-a-token"), "page_token"),
            (pb.ListAlertsRequest(page_size=5000), "page_size"),
        ):
            refused = await expect(switch.stub.ListAlerts(bad), grpc.StatusCode.INVALID_ARGUMENT)
            assert set(refused.violations) == {field}


async def test_listing_alerts_needs_the_compliance_role(switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, "embedded", sanctions=sanctions()) as switch:  # the default callers
        await expect(switch.stub.ListAlerts(pb.ListAlertsRequest()), grpc.StatusCode.PERMISSION_DENIED)


async def test_a_caller_scoped_to_some_merchants_lists_one_merchants_alerts(switch_factory: SwitchFactory) -> None:
    scoped = [{"identity": "*", "roles": ["compliance"], "merchants": ["m_in_*"]}]
    async with serve(switch_factory, "embedded", sanctions=sanctions(), security={"callers": scoped}) as switch:
        assert not (await switch.stub.ListAlerts(pb.ListAlertsRequest(merchant_id="m_in_1"))).alerts
        await expect(switch.stub.ListAlerts(pb.ListAlertsRequest()), grpc.StatusCode.PERMISSION_DENIED)
        await expect(
            switch.stub.ListAlerts(pb.ListAlertsRequest(merchant_id="m_out_1")), grpc.StatusCode.PERMISSION_DENIED
        )
