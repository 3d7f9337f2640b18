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
are screened in one call on a worker thread, so the event loop goes on serving
other batches meanwhile.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import orjson

from switch.domain.models import Account, Authorization, Card

from . import normalize
from .lists import SanctionsList
from .matching import HIT, REVIEW, Match, Screener

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
        decided = {"sanctions": self.version, "verdict": self.outcome.value}
        if self.reason:
            decided["reason"] = self.reason
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

    __slots__ = ("cache", "sanctions", "screener")

    def __init__(self, sanctions: SanctionsList, screener: Screener) -> None:
        self.sanctions = sanctions
        self.screener = screener
        self.cache: dict[str, Match | None] = {}


class Screening:
    def __init__(self, policy: ScreeningPolicy, executor: Executor | None = None) -> None:
        """executor: where never-seen names are screened (None: asyncio's default threads)."""
        self.policy = policy
        self._executor = executor
        self._snapshot: _Snapshot | None = None

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
        screener = await asyncio.get_running_loop().run_in_executor(self._executor, Screener, entries)
        self._snapshot = _Snapshot(sanctions, screener)
        return True

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
        return [(key, name) for name in found if (key := normalize.key(name))]

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
            loop = asyncio.get_running_loop()
            matches = await loop.run_in_executor(self._executor, snapshot.screener.best_many, list(unseen.values()))
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
            return Verdict(Outcome.PASS, "", version)
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
