"""Velocity and amount limits: exact under concurrency, and only approvals count."""

from __future__ import annotations

import asyncio
import time

from switch.v1 import switch_pb2 as pb
from tests.conftest import SwitchFactory
from tests.e2e.support import AMEX, DECLINE_CARD, MASTERCARD, VISA, approved, card_request, serve

# Windows are aligned to the epoch; a long one keeps a test from straddling two.
LONG_WINDOW = 30 * 86_400


async def outside_an_hour_boundary(margin_seconds: float = 15.0) -> None:
    """The issue's example uses an hour-long window; keep the burst inside one of them."""
    into_the_hour = time.time() % 3600
    if into_the_hour > 3600 - margin_seconds:
        await asyncio.sleep(3600 - into_the_hour + 0.1)


async def test_count_limit_is_exact_under_200_concurrent_calls(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "instrument", "window_seconds": 3600, "max_count": 7}]
    await outside_an_hour_boundary()
    async with serve(switch_factory, store_set, limits=limits) as switch:
        answers = await asyncio.gather(*(switch.stub.Authorize(card_request(pan=VISA, amount=100)) for _ in range(200)))

        codes = [a.response_code for a in answers]
        assert codes.count("00") == 7
        assert codes.count("65") == 193
        limited = [a for a in answers if a.response_code == "65"]
        assert all(a.decision == pb.DECISION_DECLINED for a in limited)
        assert len({a.transaction_id for a in answers}) == 200

        # Another card is not affected, and a declined-by-limit transaction is recorded as declined.
        await approved(switch, card_request(pan=MASTERCARD))
        stored = await switch.stub.GetTransaction(pb.GetTransactionRequest(transaction_id=limited[0].transaction_id))
        assert stored.status == pb.TRANSACTION_STATUS_DECLINED
        assert stored.response_code == "65"


async def test_amount_limit(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "instrument", "window_seconds": LONG_WINDOW, "max_amount": 5000}]
    async with serve(switch_factory, store_set, limits=limits) as switch:
        await approved(switch, card_request(pan=VISA, amount=3000))
        over = await switch.stub.Authorize(card_request(pan=VISA, amount=3000))
        assert over.decision == pb.DECISION_DECLINED
        assert over.response_code == "61"
        await approved(switch, card_request(pan=VISA, amount=2000))  # exactly up to the limit
        assert (await switch.stub.Authorize(card_request(pan=VISA, amount=1))).response_code == "61"
        await approved(switch, card_request(pan=MASTERCARD, amount=5000))


async def test_amount_limit_is_exact_under_concurrent_calls(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "merchant", "window_seconds": LONG_WINDOW, "max_amount": 1000}]
    async with serve(switch_factory, store_set, limits=limits) as switch:
        calls = (switch.stub.Authorize(card_request(pan=VISA, amount=100, merchant="m_amounts")) for _ in range(100))
        codes = [a.response_code for a in await asyncio.gather(*calls)]
        assert codes.count("00") == 10
        assert codes.count("61") == 90


async def test_merchant_limit_counts_approvals_only(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "merchant", "window_seconds": LONG_WINDOW, "max_count": 3}]
    async with serve(switch_factory, store_set, limits=limits) as switch:
        declined = await switch.stub.Authorize(card_request(pan=DECLINE_CARD, merchant="m_busy"))
        assert declined.response_code == "05"  # declined by the issuer: must not use up the count

        for pan in (VISA, MASTERCARD, AMEX):
            await approved(switch, card_request(pan=pan, merchant="m_busy"))
        limited = await switch.stub.Authorize(card_request(pan=VISA, merchant="m_busy"))
        assert limited.response_code == "65"

        await approved(switch, card_request(pan=VISA, merchant="m_quiet"))


async def test_issuer_declines_give_their_amount_back(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "merchant", "window_seconds": LONG_WINDOW, "max_amount": 5000}]
    async with serve(switch_factory, store_set, limits=limits) as switch:
        for _ in range(3):
            declined = await switch.stub.Authorize(card_request(pan=DECLINE_CARD, amount=4000, merchant="m_amt"))
            assert declined.response_code == "05"
        await approved(switch, card_request(pan=VISA, amount=5000, merchant="m_amt"))
        assert (await switch.stub.Authorize(card_request(pan=AMEX, amount=1, merchant="m_amt"))).response_code == "61"


async def test_replays_and_limit_declines_do_not_count(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "instrument", "window_seconds": LONG_WINDOW, "max_count": 2}]
    async with serve(switch_factory, store_set, limits=limits) as switch:
        first = card_request(pan=VISA)
        await approved(switch, first)
        replay = await switch.stub.Authorize(first)
        assert replay.replayed
        assert replay.response_code == "00"

        await approved(switch, card_request(pan=VISA))  # the second approval: the replay did not count
        assert (await switch.stub.Authorize(card_request(pan=VISA))).response_code == "65"
        assert (await switch.stub.Authorize(card_request(pan=VISA))).response_code == "65"


async def test_concurrent_merchant_limit_through_a_batch(store_set: str, switch_factory: SwitchFactory) -> None:
    limits = [{"scope": "merchant", "window_seconds": LONG_WINDOW, "max_count": 5}]
    async with serve(switch_factory, store_set, limits=limits) as switch:
        requests = [card_request(pan=(VISA, MASTERCARD, AMEX)[i % 3], merchant="m_batch") for i in range(12)]
        batch = await switch.stub.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests))
        codes = [r.response_code for r in batch.responses]
        assert codes.count("00") == 5
        assert codes.count("65") == 7
