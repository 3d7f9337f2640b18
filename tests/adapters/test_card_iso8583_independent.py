"""Every message the ISO 8583 card adapter sends, read on the wire by a second implementation.

py8583 (PyPI) decodes with its own ISO 8583:1987 field table, written independently of
pyiso8583, which the adapter encodes with: if both agree on every field, and py8583 builds
the same bytes back, the layout is the standard's and not only our library's. A proxy
between the adapter and its simulator records the frames in both directions: sign-on
and echo (0800), authorizations (0100), a completion (0220), reversals (0400, 0420)
and the simulator's answers carrying data elements the adapter never asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from py8583.py8583 import DT, Iso8583  # type: ignore[import-untyped]
from py8583.py8583spec import IsoSpec1987ASCII  # type: ignore[import-untyped]

from adapters.card_iso8583 import Iso8583CardAdapter, framing, original
from adapters.card_iso8583.simulator import EXTRA_ACCEPTOR, start_simulator
from switch.adapters.conformance import card_request
from switch.adapters.contract import AdapterRequest
from switch.domain.ids import new_transaction_ids
from switch.domain.models import Money, OperationKind

APPROVE = "4111111111111111"
OPTIONS = {"acquirer_id": "123456", "merchant_category_code": "5411", "timezone": "Asia/Tokyo"}
_ALPHANUMERIC = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")


class Wire:
    """A TCP proxy that keeps every byte each side sent."""

    def __init__(self, upstream: int) -> None:
        self.upstream = upstream
        self.sent = bytearray()  # adapter -> network
        self.answered = bytearray()  # network -> adapter
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        # The adapter closed first: let each pump pass the close on to the simulator, then stop.
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=1.0)
        for task in self._tasks:
            task.cancel()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream)
        pumps = (self._pump(reader, up_writer, self.sent), self._pump(up_reader, writer, self.answered))
        self._tasks |= {asyncio.create_task(pump) for pump in pumps}

    @staticmethod
    async def _pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, kept: bytearray) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await reader.read(65536):
                kept += chunk
                writer.write(chunk)
                await writer.drain()
        writer.close()


def frames(stream: bytes) -> list[bytes]:
    """The message bodies behind their 2-byte length headers."""
    bodies, at = [], 0
    while at < len(stream):
        length = int.from_bytes(stream[at : at + 2], "big")
        bodies.append(stream[at + 2 : at + 2 + length])
        at += 2 + length
    return bodies


# py8583's 1987 ASCII table, with our binary bitmaps. One instance only: py8583 keeps a spec's
# data types in a class attribute, so a second instance would set the bitmap back to hex text.
SPEC_1987 = IsoSpec1987ASCII()
SPEC_1987.DataType(1, DT.BIN)


def independent(body: bytes) -> Iso8583:
    """py8583's reading of one message."""
    message = Iso8583(IsoSpec=SPEC_1987)
    message.Strict(True)  # also checks the MTI's class and origin
    message.SetIsoContent(body)
    return message


def fields(message: Iso8583) -> dict[str, str]:
    """Field number -> text, numeric fields as py8583 reads them (numbers) put back to their width."""
    spec = SPEC_1987
    out = {"t": message.MTI()}
    for field, present in message.Bitmap().items():
        if field == 1 or not present:
            continue
        value = message.FieldData(field)
        if spec.ContentType(field) == "n" and spec.LengthType(field).name == "FIXED":
            value = f"{value:0{spec.MaxLength(field)}d}"
        out[str(field)] = str(value)
    return out


def check_types(message: Iso8583, decoded: dict[str, str]) -> None:
    """The content types of py8583's table (n is already checked by its decoding to a number)."""
    spec = SPEC_1987
    for field, value in decoded.items():
        if field == "t":
            continue
        kind = spec.ContentType(int(field))
        if kind == "an" and field != "38":
            assert set(value) <= _ALPHANUMERIC, f"field {field} is not an"
        elif kind == "ans":
            assert all(0x20 <= ord(character) < 0x7F for character in value), f"field {field} is not ans"


@pytest.fixture
async def wire() -> AsyncIterator[tuple[Wire, Iso8583CardAdapter]]:
    simulator, port = await start_simulator("127.0.0.1", 0, extra_fields=True)
    proxy = Wire(port)
    adapter = Iso8583CardAdapter("iso", {"port": await proxy.start(), "timeout": 0.5, "echo_interval": 0.05, **OPTIONS})
    await adapter.start()
    yield proxy, adapter
    await adapter.close()
    await proxy.close()
    await simulator.close()


def operation(kind: OperationKind, transaction_id: str, **more: Any) -> AdapterRequest:
    return AdapterRequest(kind, transaction_id, "merchant-1", Money(1000, "USD"), authorization_code="ABC123", **more)


async def test_every_message_decodes_with_an_independent_1987_table(wire: tuple[Wire, Iso8583CardAdapter]) -> None:
    proxy, adapter = wire
    captured, reversed_, advised = new_transaction_ids(3)
    approvals = await adapter.send(
        [card_request(APPROVE, captured), card_request(APPROVE, reversed_), card_request(APPROVE, advised)], 1.0
    )
    assert all(result.approved for result in approvals)
    answers = await adapter.send(
        [operation(OperationKind.CAPTURE, captured), operation(OperationKind.VOID, reversed_)], time_left=1.0
    )
    answers += await adapter.send([operation(OperationKind.REVERSE, advised)], time_left=1.0)  # the switch's
    answers += await adapter.reverse([card_request(APPROVE, advised)], time_left=1.0)  # the adapter's own
    assert all(result.approved and not result.unknown for result in answers)
    async with asyncio.timeout(3.0):
        while sum(body.startswith(b"0810") for body in frames(bytes(proxy.answered))) < 2:  # noqa: ASYNC110
            await asyncio.sleep(0.01)  # polls: a sign-on and an echo answered, with no event to wait on

    sent = [independent(body) for body in frames(bytes(proxy.sent))]
    for message, body in zip(sent, frames(bytes(proxy.sent)), strict=True):
        assert message.BuildIso() == body  # py8583 writes the same bytes back
        assert fields(message) == {k: v for k, v in framing.decode(body).items() if k not in ("p", "1")}
        check_types(message, fields(message))
    by_type: dict[str, list[dict[str, str]]] = {}
    for message in sent:
        by_type.setdefault(message.MTI(), []).append(fields(message))
    assert set(by_type) == {"0800", "0100", "0220", "0400", "0420"}

    authorizations = {message["37"]: message for message in by_type["0100"]}
    for message in authorizations.values():
        assert {
            "2",
            "3",
            "4",
            "7",
            "11",
            "12",
            "13",
            "14",
            "18",
            "22",
            "25",
            "32",
            "37",
            "41",
            "42",
            "43",
            "49",
        } <= set(message)
        assert (message["18"], message["22"], message["25"], message["32"]) == ("5411", "010", "59", "123456")
    for reversal in by_type["0400"] + by_type["0420"]:
        authorization = authorizations[reversal["37"]]
        field_90 = reversal["90"]
        assert (
            field_90[:4] == "0100" and field_90[4:10] == authorization["11"] and field_90[10:20] == authorization["7"]
        )
        assert field_90[20:31] == authorization["32"].rjust(11, "0")
    advice_with_card, advice_without = sorted(by_type["0420"], key=lambda message: "2" in message, reverse=True)
    assert advice_with_card["2"] == APPROVE and "2" not in advice_without
    assert all(len(message["43"]) == 40 for message in authorizations.values())
    assert {message["11"] for message in authorizations.values()} == {
        f"{original.stan(transaction_id):06d}" for transaction_id in (captured, reversed_, advised)
    }

    answered = [fields(independent(body)) for body in frames(bytes(proxy.answered))]
    financial = [answer for answer in answered if answer["t"] != "0810"]
    assert financial and all(
        answer["32"] == "123456" and answer["43"] == EXTRA_ACCEPTOR and "44" in answer and "54" in answer
        for answer in financial
    )
