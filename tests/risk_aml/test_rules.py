"""The AML rules: each at its edges on hand-made Activities, each scenario raising exactly
its own alert, and legitimate synthetic traffic raising none."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import pytest

from switch.risk.activity import DAY, DISTINCT_KEPT, FIRST, Activity
from switch.risk.aml import ALERTS, RULES, AmlPolicy, AmlRules, scenarios
from switch.risk.model import synthetic
from switch.risk.model.features import Event, reference_activities

POLICY = AmlPolicy()
RULES_ = AmlRules(POLICY)
# An established holder: a payment a day of $100 for the last 30 days, nothing yet today.
USUAL = replace(FIRST, first=False, count_30d=30.0, sum_30d_usd=3_000.0, age_seconds=90 * DAY, idle_seconds=DAY)


def alerts(activity: Activity, amount_usd: float, rules: AmlRules = RULES_) -> tuple[str, ...]:
    return rules.evaluate([(activity, amount_usd)])[0]


def test_the_defaults_and_the_alert_kinds() -> None:
    assert ALERTS == ("aml_structuring", "aml_fan_out", "aml_fan_in", "aml_spike", "aml_dormant")
    assert POLICY.enabled == frozenset(RULES)
    assert alerts(USUAL, 100.0) == ()
    assert RULES_.evaluate([]) == []


def test_near_threshold() -> None:
    assert [RULES_.near_threshold(x) for x in (8_999.99, 9_000.0, 9_999.99, 10_000.0)] == [False, True, True, False]


def test_structuring_needs_the_count_within_24h_this_one_included() -> None:
    rich = replace(USUAL, sum_30d_usd=30 * 5_000.0)  # a mean of $5,000: no spike
    two_before = replace(rich, near_threshold_24h=2.0)
    assert alerts(two_before, 9_500.0) == ("aml_structuring",)
    assert alerts(replace(rich, near_threshold_24h=1.0), 9_500.0) == ()
    assert alerts(two_before, 10_000.0) == ()  # at the threshold, not under it
    assert alerts(two_before, 8_999.0) == ()


def test_fan_out_counts_this_payment_as_a_new_destination() -> None:
    edge = POLICY.fan_out_destinations - 1
    assert alerts(replace(USUAL, destinations_24h=edge), 100.0) == ("aml_fan_out",)
    assert alerts(replace(USUAL, destinations_24h=edge - 1), 100.0) == ()
    assert alerts(replace(USUAL, destinations_24h=DISTINCT_KEPT), 100.0) == ("aml_fan_out",)


def test_fan_in_counts_the_payers_already_heard_from() -> None:
    assert alerts(replace(USUAL, sources_24h=POLICY.fan_in_sources), 100.0) == ("aml_fan_in",)
    assert alerts(replace(USUAL, sources_24h=POLICY.fan_in_sources - 1), 100.0) == ()
    assert alerts(replace(FIRST, sources_24h=POLICY.fan_in_sources), 100.0) == ("aml_fan_in",)  # a new payer too


def test_spike_needs_the_ratio_the_history_and_the_amount() -> None:
    # USUAL's mean is $100: ten times is $1,000, under spike_min_usd.
    assert alerts(USUAL, 5_000.0) == ("aml_spike",)
    assert alerts(USUAL, POLICY.spike_min_usd) == ("aml_spike",)
    assert alerts(USUAL, POLICY.spike_min_usd - 0.01) == ()
    rich = replace(USUAL, sum_30d_usd=30 * 500.0)  # a mean of $500
    assert alerts(rich, 5_000.0) == ("aml_spike",)  # exactly ten times
    assert alerts(rich, 4_999.99) == ()
    assert alerts(replace(USUAL, count_30d=4.0, sum_30d_usd=400.0), 5_000.0) == ()  # too little history
    assert alerts(FIRST, 50_000.0) == ()


def test_dormant_needs_history_the_silence_and_the_amount() -> None:
    silent = replace(USUAL, count_30d=0.0, sum_30d_usd=0.0, idle_seconds=POLICY.dormant_days * DAY)
    assert alerts(silent, POLICY.dormant_min_usd) == ("aml_dormant",)
    assert alerts(silent, POLICY.dormant_min_usd - 0.01) == ()
    assert alerts(replace(silent, idle_seconds=silent.idle_seconds - 1), 5_000.0) == ()
    assert alerts(replace(silent, first=True), 5_000.0) == ()


def test_alerts_come_in_a_fixed_order_and_nothing_is_shared_allocation() -> None:
    everything = Activity(False, 0.0, 0.0, 0.0, 5.0, 20, 20, 5.0, 5.0, 400 * DAY, 100 * DAY)
    assert alerts(everything, 9_500.0) == ALERTS
    out = RULES_.evaluate([(USUAL, 1.0), (FIRST, 2.0)])
    assert out == [(), ()] and out[0] is out[1]
    again = RULES_.evaluate([(everything, 9_500.0)])[0]
    assert again is alerts(everything, 9_500.0)  # the tuples are shared, not built per payment


@pytest.mark.parametrize("rule", RULES)
def test_each_rule_can_be_turned_off(rule: str) -> None:
    everything = Activity(False, 0.0, 0.0, 0.0, 5.0, 20, 20, 5.0, 5.0, 400 * DAY, 100 * DAY)
    rules = AmlRules(AmlPolicy(enabled=frozenset(RULES) - {rule}))
    assert alerts(everything, 9_500.0, rules) == tuple(kind for kind in ALERTS if kind != f"aml_{rule}")
    assert AmlRules(AmlPolicy(enabled=frozenset())).evaluate([(everything, 9_500.0)]) == [()]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"enabled": frozenset({"smurfing"})}, "enabled: unknown rule"),
        ({"enabled": {"spike"}}, "enabled: must be a frozenset"),
        ({"near_ratio": 1.0}, "near_ratio: must be"),
        ({"threshold_usd": float("inf")}, "threshold_usd: must be"),
        ({"fan_out_destinations": DISTINCT_KEPT + 1}, "fan_out_destinations: must be an integer in"),
        ({"fan_in_sources": 0}, "fan_in_sources: must be"),
        ({"structuring_count": 2.0}, "structuring_count: must be an integer"),
        ({"spike_ratio": True}, "spike_ratio: must be"),
    ],
)
def test_a_policy_refuses_what_its_rules_cannot_mean(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        AmlPolicy(**change)  # type: ignore[arg-type]


def run(events: list[Event], rules: AmlRules = RULES_) -> list[tuple[str, ...]]:
    activities = reference_activities(events, rules.near_threshold)
    return rules.evaluate([(a, e.amount_usd) for a, e in zip(activities, events, strict=True)])


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", ALERTS)
def test_each_scenario_raises_its_alert_where_expected_and_nothing_else(kind: str, seed: int) -> None:
    scenario = scenarios.GENERATORS[kind](seed)
    assert scenario.kind == kind
    assert scenario.alerting and scenario.alerting <= set(scenario.own)
    raised = run(scenario.events)
    assert {i: raised[i] for i in scenario.own} == {i: (kind,) if i in scenario.alerting else () for i in scenario.own}
    background = set(range(len(raised))) - set(scenario.own)
    assert not [raised[i] for i in background if raised[i]]


def test_scenarios_follow_their_policy() -> None:
    policy = AmlPolicy(structuring_count=5, fan_out_destinations=20, fan_in_sources=4)
    rules = AmlRules(policy)
    for kind in ("aml_structuring", "aml_fan_out", "aml_fan_in"):
        scenario = scenarios.GENERATORS[kind](7, policy)
        raised = run(scenario.events, rules)
        assert [raised[i] for i in scenario.own] == [(kind,) if i in scenario.alerting else () for i in scenario.own]


@pytest.mark.parametrize(("seed", "days", "holders"), [(0, 28, 2000), (1, 28, 2000), (2, 120, 200)])
def test_legitimate_traffic_raises_nothing(seed: int, days: int, holders: int) -> None:
    events, labels = synthetic.traffic(days, seed=seed, holders=holders)
    legitimate = [event for event, label in zip(events, labels, strict=True) if label is None]
    assert Counter(kind for raised in run(legitimate) for kind in raised) == Counter()
