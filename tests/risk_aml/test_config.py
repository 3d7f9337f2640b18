"""The [aml] table: the documented example, the defaults, and every bad value refused by its key."""

from __future__ import annotations

import tomllib
from typing import Any

import pytest

from switch.config import aml as aml_config
from switch.config.aml import parse_aml
from switch.config.checks import ConfigError
from switch.risk.aml import RULES, AmlPolicy


def test_no_table_is_no_monitoring() -> None:
    assert parse_aml(None) is None


def test_an_empty_table_is_the_defaults() -> None:
    assert parse_aml({}) == AmlPolicy()


def test_the_documented_example_is_the_defaults() -> None:
    doc = aml_config.__doc__ or ""
    example = "\n".join(line[4:] for line in doc.split("\n\n")[1].splitlines())
    assert parse_aml(tomllib.loads(example)["aml"]) == AmlPolicy()


def test_a_good_table() -> None:
    text = """
    [aml]
    enabled = ["structuring", "fan_in"]
    threshold_usd = 3000
    near_ratio = 0.8
    structuring_count = 4
    fan_out_destinations = 20
    fan_in_sources = 32
    spike_ratio = 5
    spike_min_history = 10
    spike_min_usd = 0
    dormant_days = 180.5
    dormant_min_usd = 250.0
    """
    assert parse_aml(tomllib.loads(text)["aml"]) == AmlPolicy(
        enabled=frozenset({"structuring", "fan_in"}),
        threshold_usd=3_000.0,
        near_ratio=0.8,
        structuring_count=4,
        fan_out_destinations=20,
        fan_in_sources=32,
        spike_ratio=5.0,
        spike_min_history=10,
        spike_min_usd=0.0,
        dormant_days=180.5,
        dormant_min_usd=250.0,
    )
    assert parse_aml({"enabled": []}) == AmlPolicy(enabled=frozenset())


BAD: list[tuple[str, Any]] = [
    ("enabled", "spike"),
    ("enabled", ["spike", 3]),
    ("enabled", ["smurfing"]),
    ("enabled", ["spike", "spike"]),
    ("threshold_usd", 0),
    ("threshold_usd", -1.0),
    ("threshold_usd", float("inf")),
    ("threshold_usd", "10000"),
    ("threshold_usd", True),
    ("near_ratio", 0.0),
    ("near_ratio", 1.0),
    ("near_ratio", float("nan")),
    ("structuring_count", 0),
    ("structuring_count", 2.5),
    ("structuring_count", 3.0),
    ("structuring_count", False),
    ("fan_out_destinations", 0),
    ("fan_out_destinations", 33),
    ("fan_out_destinations", "15"),
    ("fan_in_sources", 0),
    ("fan_in_sources", 33),
    ("fan_in_sources", 10.0),
    ("spike_ratio", 1.0),
    ("spike_ratio", 0.5),
    ("spike_ratio", float("inf")),
    ("spike_ratio", [10]),
    ("spike_min_history", 0),
    ("spike_min_history", 5.5),
    ("spike_min_usd", -0.01),
    ("spike_min_usd", float("inf")),
    ("spike_min_usd", None),
    ("dormant_days", 0),
    ("dormant_days", -90),
    ("dormant_days", float("nan")),
    ("dormant_min_usd", -1),
    ("dormant_min_usd", {"usd": 1}),
]


def test_every_key_has_a_bad_value() -> None:
    assert {key for key, _ in BAD} == {"enabled", *(name for name in AmlPolicy.__dataclass_fields__)}
    assert all(f'"{rule}"' in (aml_config.__doc__ or "") for rule in RULES)  # the example names them all


@pytest.mark.parametrize(("key", "value"), BAD)
def test_a_bad_value_is_refused_by_its_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"^aml\.{key}: "):
        parse_aml({key: value})


@pytest.mark.parametrize("raw", ["on", ["spike"], 1])
def test_the_table_must_be_a_table(raw: Any) -> None:
    with pytest.raises(ConfigError, match=r"^aml: must be a table"):
        parse_aml(raw)


def test_an_unknown_key_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"^aml\.spike_rate: unknown key"):
        parse_aml({"spike_ratio": 10.0, "spike_rate": 10.0})
