"""Screening a batch's parties against the lists: verdicts, the embargo, the verdict cache,
swapping a new version in while batches run, and refreshes that fail keeping the old list.

The lists are the committed fixtures in their published formats (tests/data/sanctions)."""

from __future__ import annotations

import asyncio
import multiprocessing
import shutil
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest

from switch.domain.models import Account, Authorization, Card, Money
from switch.risk.sanctions.lists import ListSource, SanctionsList, load
from switch.risk.sanctions.matching import Match, Screener
from switch.risk.sanctions.refresh import ListRefresh
from switch.risk.sanctions.screening import Outcome, Screening, ScreeningPolicy
from switch.telemetry.metrics import Counter

FIXTURES = Path(__file__).parent / "data" / "sanctions"
OFAC = ListSource("ofac-csv", FIXTURES / "ofac")
UN = ListSource("un-xml", FIXTURES / "un" / "consolidated.xml")
VISA = "4111111111111111"


def card(holder: str = "", merchant: str = "m-1") -> Authorization:
    return Authorization("k", merchant, Money(1000, "USD"), Card(VISA, 12, 2099, holder))


def account(holder: str = "", country: str = "BR", to: Account | None = None) -> Authorization:
    return Authorization("k", "m-1", Money(1000, "BRL"), Account("instant", "+5511999990000", country, holder), to)


@pytest.fixture(scope="module")
def lists() -> SanctionsList:
    return load([OFAC, UN])


async def screening_of(sanctions: SanctionsList | None, **policy: object) -> Screening:
    screening = Screening(ScreeningPolicy(**policy), in_process=False)  # type: ignore[arg-type]
    if sanctions is not None:
        await screening.swap(sanctions)
    return screening


async def test_a_listed_party_is_a_hit_naming_the_entry_and_the_list(lists: SanctionsList) -> None:
    screening = await screening_of(lists)
    hit, clean, unnamed = await screening.screen(
        [card("Hasan Nasrallah"), card("Maria Oliveira Santos"), card()], ["", "", ""]
    )
    assert hit.outcome is Outcome.HIT and hit.reason.startswith("sanctions ofac:2686 scored")
    assert hit.version == lists.version
    assert (clean.outcome, unnamed.outcome) == (Outcome.PASS, Outcome.PASS)
    decided = orjson.loads(hit.decision)
    assert decided["sanctions"] == lists.version and decided["verdict"] == "hit"
    assert "Nasrallah" not in hit.decision and "Hasan" not in hit.decision  # the entry id, never the name


async def test_every_party_is_screened_destination_and_merchant_included(lists: SanctionsList) -> None:
    screening = await screening_of(lists, merchant_names={"m-cuba": "Banco Nacional de Cuba S.A."})
    to_listed = account("Ana Souza", to=Account("instant", "acct-9", "BR", "AEROCARIBBEAN AIRLINES"))
    verdicts = await screening.screen([to_listed, card(merchant="m-cuba"), card(merchant="m-1")], ["", "", ""])
    assert [v.outcome for v in verdicts] == [Outcome.HIT, Outcome.HIT, Outcome.PASS]
    assert "ofac:36" in verdicts[0].reason and "ofac:306" in verdicts[1].reason


async def test_an_embargoed_country_is_a_hit_from_the_card_or_either_account(lists: SanctionsList) -> None:
    screening = await screening_of(lists, embargoed_countries=frozenset({"KP", "IR"}))
    verdicts = await screening.screen(
        [card(), account(country="ir"), account(to=Account("instant", "a", "KP")), account()], ["KP", "", "", "US"]
    )
    assert [v.outcome for v in verdicts] == [Outcome.HIT, Outcome.HIT, Outcome.HIT, Outcome.PASS]
    assert [v.reason for v in verdicts[:3]] == ["embargoed country KP", "embargoed country IR", "embargoed country KP"]


async def test_names_between_review_and_hit_pass_with_a_review(lists: SanctionsList) -> None:
    screening = await screening_of(lists, hit=0.99, review=0.5)
    (verdict,) = await screening.screen([card("Hasan Nasrollah")], [""])  # a typo: below 0.99, above 0.5
    assert verdict.outcome is Outcome.REVIEW and "ofac:2686" in verdict.reason


class CountingScreener(Screener):
    """The real screener, recording which names reach it and on which thread."""

    calls: list[tuple[list[str], str]]

    def best_many(self, names: Sequence[str]) -> list[Match | None]:
        self.calls.append((list(names), threading.current_thread().name))
        return super().best_many(names)


async def test_verdicts_are_cached_by_normalised_name_and_new_names_are_screened_off_the_loop(
    lists: SanctionsList, monkeypatch: pytest.MonkeyPatch
) -> None:
    CountingScreener.calls = []
    monkeypatch.setattr("switch.risk.sanctions.index.Screener", CountingScreener)
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="screening")
    screening = Screening(ScreeningPolicy(), in_process=False, executor=executor)
    await screening.swap(lists)
    await screening.screen([card("Hasan Nasrallah"), card("NASRALLAH, Hasan"), card("Ana Souza")], ["", "", ""])
    await screening.screen([card("hasan  nasrallah"), card("Ana Souza")], ["", ""])  # seen: no new screening
    ((screened, thread),) = CountingScreener.calls
    assert len(screened) == 2 and "Ana Souza" in screened  # one per normalised name
    assert thread.startswith("screening")  # not the event loop's thread
    executor.shutdown()


async def test_a_swap_serves_the_new_list_from_the_next_batch_and_a_batch_keeps_its_own(
    lists: SanctionsList, tmp_path: Path
) -> None:
    screening = await screening_of(lists)
    assert await screening.swap(lists) is False  # the same version: nothing to do
    only_un = load([UN])
    first = asyncio.create_task(screening.screen([card("Hasan Nasrallah")], [""]))  # starts on the full list
    await asyncio.sleep(0)
    assert await screening.swap(only_un) is True
    (before,) = await first
    (after,) = await screening.screen([card("Hasan Nasrallah")], [""])
    assert (before.outcome, before.version) == (Outcome.HIT, lists.version)
    assert (after.outcome, after.version) == (Outcome.PASS, only_un.version)  # an OFAC entry, gone


async def test_a_refresh_that_fails_keeps_the_old_list_serving(tmp_path: Path) -> None:
    folder = tmp_path / "ofac"
    shutil.copytree(FIXTURES / "ofac", folder)
    screening = Screening(ScreeningPolicy(), in_process=False)
    outcomes = Counter("refreshes", "")
    refresh = ListRefresh(screening, [ListSource("ofac-csv", folder)], outcomes=outcomes)
    served = await refresh.first()
    assert await refresh.refresh() is False  # unchanged
    (folder / "alt.csv").write_bytes(b'"36","not a number"\n')  # truncated and malformed
    assert await refresh.refresh() is False
    assert screening.version == served.version
    (verdict,) = await screening.screen([card("Aerocaribbean Airlines")], [""])
    assert verdict.outcome is Outcome.HIT  # still screening against the old list
    shutil.copy(FIXTURES / "ofac" / "alt.csv", folder / "alt.csv")
    (folder / "sdn.csv").write_bytes(
        (FIXTURES / "ofac" / "sdn.csv").read_bytes().replace(b"AEROCARIBBEAN", b"AEROKARIBIAN")
    )
    assert await refresh.refresh() is True
    assert screening.version not in ("", served.version)
    assert outcomes.values == {
        (("outcome", "unchanged"),): 1.0,
        (("outcome", "failed"),): 1.0,
        (("outcome", "swapped"),): 1.0,
    }


async def test_the_index_in_its_own_process_gives_the_same_verdicts(lists: SanctionsList) -> None:
    names = ["Hasan Nasrallah", "Hasan Nasrollah", "Maria Oliveira Santos", "AEROCARIBBEAN AIRLINES", "Ana Souza"]
    batch = [card(name) for name in names]
    here = await screening_of(lists, review=0.5)
    apart = Screening(ScreeningPolicy(review=0.5))  # in_process: a spawned process holds the index
    try:
        await apart.swap(lists)
        assert await apart.screen(batch, [""] * len(batch)) == await here.screen(batch, [""] * len(batch))
        assert await apart.swap(load([UN])) is True  # a new list, a new process; the old one goes
        (after,) = await apart.screen([card("Hasan Nasrallah")], [""])
        assert after.outcome is Outcome.PASS
    finally:
        apart.close()


async def test_an_index_process_that_dies_is_spawned_again(lists: SanctionsList) -> None:
    screening = Screening(ScreeningPolicy())
    try:
        await screening.swap(lists)
        for child in multiprocessing.active_children():  # the index's process, killed
            child.kill()
            child.join()
        (verdict,) = await screening.screen([card("Hasan Nasrallah")], [""])  # a name it has not seen
        assert verdict.outcome is Outcome.HIT
    finally:
        screening.close()


async def test_without_a_list_only_the_embargo_screens() -> None:
    screening = await screening_of(None, embargoed_countries=frozenset({"CU"}))
    assert screening.active and screening.version == ""
    verdicts = await screening.screen([card("Hasan Nasrallah"), account(country="CU")], ["", ""])
    assert [v.outcome for v in verdicts] == [Outcome.PASS, Outcome.HIT]
    assert not (await screening_of(None)).active
