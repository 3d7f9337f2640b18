"""The [sanctions] table: which lists to screen against, the thresholds, the embargo.

    [sanctions]
    lists = [
      { format = "ofac-csv", path = "lists/ofac" },               # a folder: sdn.csv, alt.csv, add.csv
      { format = "un-xml", path = "lists/un/consolidated.xml" },
    ]
    hit = 0.92                         # a name scoring this much declines (93)
    review = 0.85                      # ... this much passes with an alert
    refresh_seconds = 300              # read the lists again; a new version is swapped in
    embargoed_countries = ["KP", "IR"] # ISO 3166-1 alpha-2
    merchant_names = { m_1 = "ACME TRADING LLC" }

The lists are read (and checked) when the switch starts: a list that cannot be read
refuses the start, naming the file. Later refreshes that fail keep the old list.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from switch.config.checks import ConfigError, no_unknown_keys, unit_score
from switch.risk.sanctions.lists import FORMATS, ListSource
from switch.risk.sanctions.matching import HIT, REVIEW
from switch.risk.sanctions.screening import ScreeningPolicy

_KEYS = frozenset({"lists", "hit", "review", "refresh_seconds", "embargoed_countries", "merchant_names"})
_COUNTRY = re.compile(r"[A-Z]{2}")


@dataclass(frozen=True, slots=True)
class SanctionsSettings:
    sources: tuple[ListSource, ...] = ()
    refresh_seconds: float = 300.0
    policy: ScreeningPolicy = field(default_factory=ScreeningPolicy)  # thresholds, embargo, merchants' names


def parse_sanctions(raw: Any) -> SanctionsSettings | None:
    """The [sanctions] table, checked; None when there is none."""
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise ConfigError("sanctions: must be a table")
    no_unknown_keys("sanctions", raw, _KEYS)
    hit = unit_score("sanctions.hit", raw.get("hit", HIT))
    review = unit_score("sanctions.review", raw.get("review", REVIEW))
    if review > hit:
        raise ConfigError("sanctions.review: must not be above sanctions.hit")
    refresh = raw.get("refresh_seconds", 300)
    if isinstance(refresh, bool) or not isinstance(refresh, (int, float)) or refresh < 0:
        raise ConfigError("sanctions.refresh_seconds: must be a number >= 0 (0: read the lists once)")
    return SanctionsSettings(
        sources=tuple(_source(i, item) for i, item in enumerate(_array(raw, "lists"))),
        refresh_seconds=float(refresh),
        policy=ScreeningPolicy(
            hit,
            review,
            frozenset(_countries(raw.get("embargoed_countries", []))),
            MappingProxyType(_merchant_names(raw.get("merchant_names", {}))),
        ),
    )


def _array(raw: Mapping[str, Any], key: str) -> list[Any]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise ConfigError(f"sanctions.{key}: must be an array")
    return value


def _source(index: int, item: Any) -> ListSource:
    where = f"sanctions.lists[{index}]"
    if not isinstance(item, Mapping):
        raise ConfigError(f"{where}: must be a table with format and path")
    no_unknown_keys(where, item, frozenset({"format", "path"}))
    kind, path = item.get("format"), item.get("path")
    if kind not in FORMATS:
        raise ConfigError(f"{where}.format: must be one of {', '.join(FORMATS)}")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{where}.path: must name a file or folder")
    return ListSource(kind, Path(path))


def _countries(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(c, str) and _COUNTRY.fullmatch(c) for c in value):
        raise ConfigError('sanctions.embargoed_countries: must be ISO 3166-1 alpha-2 codes, e.g. ["KP"]')
    return value


def _merchant_names(value: Any) -> dict[str, str]:
    if not isinstance(value, Mapping) or not all(isinstance(n, str) and n.strip() for n in value.values()):
        raise ConfigError("sanctions.merchant_names: must map merchant ids to names")
    return {str(merchant): name for merchant, name in value.items()}
