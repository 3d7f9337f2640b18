"""Every message on the wire between the ISO 20022 rail adapter and its simulator validates
against the official XSD of the version it names, inside a Business Application Header:
requests and answers both ways, the rail's own pacs.004 after an accepted recall and
the switch's pacs.002 acknowledging it included.

The frames are captured where they are written (framing.encode), from a real exchange:
not hand-written XML.
"""

from __future__ import annotations

import asyncio
import copy
import xml.etree.ElementTree as ET
from collections import defaultdict
from collections.abc import AsyncIterator, Sequence

import pytest

from adapters.rail_iso20022 import Iso20022RailAdapter, framing
from adapters.rail_iso20022.simulator import start_simulator
from switch.adapters.contract import AdapterRequest, Return
from switch.domain.models import Account, Money, OperationKind

from .iso20022_schemas import DEFINITIONS, document_errors, header_errors

NAMESPACE_PREFIX = "urn:iso:std:iso:20022:tech:xsd:"

Frames = dict[str, list[ET.Element]]  # message definition -> its envelopes, as sent


def _requests() -> list[AdapterRequest]:
    def transfer(account: Account, transaction_id: str) -> AdapterRequest:
        amount = Money(1234, "USD")
        destination = Account("rail", "shop-account-1")
        return AdapterRequest(
            OperationKind.AUTHORIZE, transaction_id, "merchant-1", amount, None, None, account, destination
        )

    return [
        transfer(Account("rail", "ana@bank", "BR", "Ana Souza"), "tx_01J0000000000000000000001"),
        transfer(Account("rail", "0012345"), "tx_01J0000000000000000000002"),  # no holder name
        transfer(Account("rail", "+5511999990000", "BR", "\x00\x07"), "tx_01J0000000000000000000003"),
        transfer(Account("rail", "1234-insufficient"), "tx_01J0000000000000000000004"),
        transfer(Account("rail", "unknown@bank"), "tx_01J0000000000000000000005"),
        _recall("tx_01J0000000000000000000006"),  # never transferred: rejected NOOR
        AdapterRequest(
            OperationKind.REFUND, "tx_01J0000000000000000000007", "merchant-1", Money(500, "USD"), reference="rf_1"
        ),
    ]


def _recall(transaction_id: str) -> AdapterRequest:
    return AdapterRequest(OperationKind.REVERSE, transaction_id, "merchant-1", Money(1234, "USD"))


@pytest.fixture
async def frames(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Frames]:
    """The frames both sides write during one exchange of every kind the adapter makes."""
    captured: Frames = defaultdict(list)
    encode = framing.encode

    def tap(message: framing.Message) -> bytes:
        raw = encode(message)
        envelope = ET.fromstring(raw[4:])
        document = next((child for child in envelope if child.tag.endswith("}Document")), envelope)
        captured[document.tag[1:].partition("}")[0].removeprefix(NAMESPACE_PREFIX)].append(envelope)
        return raw

    monkeypatch.setattr(framing, "encode", tap)
    simulator, port = await start_simulator("127.0.0.1", 0, return_delay=0.0)
    adapter = Iso20022RailAdapter("rail", {"host": "127.0.0.1", "port": port, "timeout": 0.5})
    delivered: list[Return] = []

    async def listener(returns: Sequence[Return]) -> None:
        delivered.extend(returns)

    adapter.listen(listener)
    await adapter.start()
    try:
        results = await adapter.send(_requests(), time_left=3.0)
        assert not any(result.unknown for result in results)
        # The recall of a settled transfer: accepted, then the rail's own pacs.004 and the switch's pacs.002.
        (recall,) = await adapter.send([_recall(_requests()[0].transaction_id)], time_left=3.0)
        assert recall.settles_later
        async with asyncio.timeout(3.0):
            while not simulator.acknowledged:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        assert len(delivered) == 1
        yield captured
    finally:
        await adapter.close()
        await simulator.close()


def _errors(envelope: ET.Element, definition: str) -> list[str]:
    if envelope.tag != "Envelope":
        return ["not inside an envelope with a Business Application Header"]
    header = next((child for child in envelope if child.tag.endswith("}AppHdr")), None)
    document = next((child for child in envelope if child.tag.endswith("}Document")), None)
    if header is None or document is None:
        return ["an envelope without its AppHdr or its Document"]
    errors = header_errors(header) + document_errors(definition, document)
    if header.findtext(f"{{{NAMESPACE_PREFIX}head.001.001.02}}MsgDefIdr") != definition:
        errors.append("the header's MsgDefIdr does not name the document's definition")
    return errors


@pytest.mark.parametrize("definition", sorted(DEFINITIONS))
async def test_every_message_on_the_wire_is_schema_valid(frames: Frames, definition: str) -> None:
    sent = frames.get(definition, [])
    assert sent, f"no {definition} on the wire; seen: {sorted(frames)}"
    for envelope in sent:
        assert _errors(envelope, definition) == []


async def test_the_wire_carries_only_the_versions_checked(frames: Frames) -> None:
    assert set(frames) <= DEFINITIONS


def _spoiled(envelope: ET.Element, path: str, text: str | None) -> ET.Element:
    """A copy of an envelope's document with the element at path (local names) given text,
    or removed when text is None."""
    document = copy.deepcopy(next(child for child in envelope if child.tag.endswith("}Document")))
    namespace = document.tag[: document.tag.index("}") + 1]
    parent_path, _, leaf = path.rpartition("/")
    qualified = "/".join(namespace + step for step in parent_path.split("/"))
    parent = document.find(qualified)
    assert parent is not None, path
    element = parent.find(namespace + leaf)
    assert element is not None, path
    if text is None:
        parent.remove(element)
    else:
        element.text = text
    return document


@pytest.mark.parametrize(
    ("definition", "path", "text"),
    [
        ("pacs.002.001.12", "FIToFIPmtStsRpt/GrpHdr/MsgId", "M" * 36),  # Max35Text
        ("pacs.002.001.12", "FIToFIPmtStsRpt/GrpHdr/CreDtTm", None),  # mandatory
        ("pacs.002.001.12", "FIToFIPmtStsRpt/TxInfAndSts/OrgnlUETR", "not-a-uuid"),  # UUIDv4Identifier pattern
        ("pacs.004.001.11", "PmtRtr/TxInf/RtrdIntrBkSttlmAmt", "1.123456"),  # 5 fraction digits at most
        ("pacs.004.001.11", "PmtRtr/TxInf/RtrdIntrBkSttlmAmt", "-1.00"),  # not negative
        ("pacs.004.001.11", "PmtRtr/TxInf/RtrId", ""),  # Max35Text: at least one character
    ],
)
async def test_the_generated_classes_hold_the_official_facets(
    frames: Frames, definition: str, path: str, text: str | None
) -> None:
    envelope = frames[definition][-1]
    assert _errors(envelope, definition) == []  # valid before it is spoiled
    assert document_errors(definition, _spoiled(envelope, path, text)) != []
