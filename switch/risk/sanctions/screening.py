"""Sanctions screening of a batch's parties (FATF R.6), the pipeline's risk step.

Each authorization's parties are screened: the source's and the destination's
holder names and the merchant's configured name against the list, the accounts'
countries and the card's (from the BIN table) against the embargoed countries.
A name scoring HIT or more against a listed party, or an embargoed country,
declines the authorization; a name between REVIEW and HIT passes with an alert.

The list, its index and its verdicts travel together as one snapshot, swapped
whole when the list changes (swap), so a batch screens against one version from
start to end and a verdict of one list never answers for another. Verdicts are
cached by normalised name; the names a batch brings that the cache has not seen
are screened in one call off the event loop (switch.risk.sanctions.index: by default
in a process of its own), so the event loop goes on serving other batches meanwhile.
"""

from __future__ import annotations

import enum
import functools
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import orjson

from switch.domain.models import Account, Authorization, Card

from . import normalize
from .index import Index, ProcessIndex, ThreadIndex
from .lists import SanctionsList
from .matching import HIT, REVIEW, Match

# Verdicts kept per list version before the cache starts again: a bound on memory,
# not a policy (a busy switch sees its regular names again within minutes).
CACHE_LIMIT = 200_000


class Outcome(enum.Enum):
    PASS = "pass"
    REVIEW = "review"  # passes, with an alert for a human to look at
    HIT = "hit"  # declined


@dataclass(frozen=True, slots=True)
class Verdict:
    """One authorization's screening. reason names the list entry or the country that
    decided it, never a customer's name."""

    outcome: Outcome
    reason: str = ""
    version: str = ""  # the list's SHA-256 it was reached on; "" without a list

    @property
    def decision(self) -> str:
        """What the journal keeps of it (JournalEntry.decision): compact JSON."""
        return _decision(self)


@functools.lru_cache(maxsize=4096)  # most verdicts are one of a few: a pass on the list in use
def _decision(verdict: Verdict) -> str:
    decided = {"sanctions": verdict.version, "verdict": verdict.outcome.value}
    if verdict.reason:
        decided["reason"] = verdict.reason
    return orjson.dumps(decided).decode()


@dataclass(frozen=True, slots=True)
class ScreeningPolicy:
    hit: float = HIT
    review: float = REVIEW
    embargoed_countries: frozenset[str] = frozenset()
    merchant_names: Mapping[str, str] | None = None  # merchant id -> the name screened for it


class _Snapshot:
    """A list, its index and the verdicts reached on it: replaced together, never changed apart
    from the cache growing."""

    __slots__ = ("cache", "index", "passed", "sanctions")

    def __init__(self, sanctions: SanctionsList, index: Index) -> None:
        self.sanctions = sanctions
        self.index = index
        self.cache: dict[str, Match | None] = {}
        self.passed = Verdict(Outcome.PASS, "", sanctions.version)  # most items' verdict, made once


class Screening:
    def __init__(self, policy: ScreeningPolicy, *, in_process: bool = True, executor: Executor | None = None) -> None:
        """in_process: each list's index in a process of its own (the event loop never waits on
        screening); False: in this one, never-seen names screened on executor's threads (None:
        asyncio's default)."""
        self.policy = policy
        self._in_process = in_process
        self._executor = executor
        self._snapshot: _Snapshot | None = None
        # Names as given -> their normalised key: normalising costs more than the rest of a
        # cached verdict, and the same names come back. Independent of the list.
        self._keys: dict[str, str] = {}

    @property
    def version(self) -> str:
        """The list's SHA-256 in use; "" before one is loaded."""
        return self._snapshot.sanctions.version if self._snapshot is not None else ""

    @property
    def active(self) -> bool:
        return self._snapshot is not None or bool(self.policy.embargoed_countries)

    async def swap(self, sanctions: SanctionsList) -> bool:
        """Serves sanctions from the next batch on; its index is built off the event loop.
        False, changing nothing, when that version is already served."""
        if self._snapshot is not None and self._snapshot.sanctions.version == sanctions.version:
            return False
        entries = [(party.uid, party.names) for party in sanctions.parties]
        index = await (ProcessIndex.build(entries) if self._in_process else ThreadIndex.build(entries, self._executor))
        retired, self._snapshot = self._snapshot, _Snapshot(sanctions, index)
        if retired is not None:
            retired.index.close()
        return True

    def close(self) -> None:
        if self._snapshot is not None:
            self._snapshot.index.close()

    async def screen(self, authorizations: Sequence[Authorization], card_countries: Sequence[str]) -> list[Verdict]:
        """A verdict per authorization, in order; card_countries: each one's card country from the
        BIN table ("" when not a card or unknown)."""
        snapshot = self._snapshot  # one version for the whole batch
        names = [self._names(authorization) for authorization in authorizations]
        found = await self._matches(snapshot, names) if snapshot is not None else {}
        return [
            self._verdict(snapshot, found, authorization, card_country, item_names)
            for authorization, card_country, item_names in zip(authorizations, card_countries, names, strict=True)
        ]

    def _names(self, authorization: Authorization) -> list[tuple[str, str]]:
        """(normalised key, name as given) of each party name the authorization carries."""
        found = []
        source = authorization.source
        if isinstance(source, (Card, Account)) and source.holder_name:
            found.append(source.holder_name)
        if authorization.destination is not None and authorization.destination.holder_name:
            found.append(authorization.destination.holder_name)
        merchants = self.policy.merchant_names
        if merchants and (merchant := merchants.get(authorization.merchant_id)):
            found.append(merchant)
        keys = self._keys
        named = []
        for name in found:
            key = keys.get(name)
            if key is None:
                if len(keys) >= CACHE_LIMIT:
                    keys.clear()
                key = keys[name] = normalize.key(name)
            if key:
                named.append((key, name))
        return named

    async def _matches(self, snapshot: _Snapshot, names: list[list[tuple[str, str]]]) -> dict[str, Match | None]:
        """The best match of every name of the batch, from the cache or screened now. The batch
        keeps its own map: another batch may clear the cache while this one waits."""
        cache = snapshot.cache
        found: dict[str, Match | None] = {}
        unseen: dict[str, str] = {}
        for item in names:
            for key, name in item:
                if key in cache:
                    found[key] = cache[key]
                else:
                    unseen[key] = name
        if unseen:
            matches = await snapshot.index.best_many(list(unseen.values()))
            screened = dict(zip(unseen, matches, strict=True))
            if len(cache) + len(screened) > CACHE_LIMIT:
                cache.clear()
            cache.update(screened)
            found.update(screened)
        return found

    def _verdict(
        self,
        snapshot: _Snapshot | None,
        found: Mapping[str, Match | None],
        authorization: Authorization,
        card_country: str,
        names: list[tuple[str, str]],
    ) -> Verdict:
        version = snapshot.sanctions.version if snapshot is not None else ""
        embargoed = self.policy.embargoed_countries
        if embargoed:
            for country in _countries(authorization, card_country):
                if country in embargoed:
                    return Verdict(Outcome.HIT, f"embargoed country {country}", version)
        if snapshot is None:
            return Verdict(Outcome.PASS)
        best: Match | None = None
        for key, _ in names:
            match = found.get(key)
            if match is not None and (best is None or match.score > best.score):
                best = match
        if best is None or best.score < self.policy.review:
            return snapshot.passed
        outcome = Outcome.HIT if best.score >= self.policy.hit else Outcome.REVIEW
        return Verdict(outcome, f"sanctions {best.uid} scored {best.score:.2f}", version)


def _countries(authorization: Authorization, card_country: str) -> list[str]:
    countries = [card_country] if card_country else []
    source = authorization.source
    if isinstance(source, Account) and source.country:
        countries.append(source.country.upper())
    if authorization.destination is not None and authorization.destination.country:
        countries.append(authorization.destination.country.upper())
    return countries
