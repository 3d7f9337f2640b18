"""The ISO 8583 client against answers it did not write: standard fields it does not use, and frames
no specification decodes. A fake network on 127.0.0.1 sends exactly the bytes each test needs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import iso8583
import pytest

from adapters.card_iso8583 import Iso8583CardAdapter, framing, mapping, spec
from switch.adapters.conformance import card_request

APPROVE = "4111111111111111"
OTHER = "5555555555554444"

Answer = Callable[[framing.Message], list[bytes]]  # a request -> the frame bodies sent back for it

# What the network speaks: our fields and the standard ones it echoes, defined here so the test does
# not depend on the adapter's own specification.
NETWORK_SPEC: dict[str, dict[str, Any]] = {
    **spec.SPEC,
    "32": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 2, "max_len": 11, "desc": "Acquiring Institution"},
    "33": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 2, "max_len": 11, "desc": "Forwarding Institution"},
    "44": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 2, "max_len": 25, "desc": "Additional Response"},
    "48": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 3, "max_len": 999, "desc": "Additional Private"},
}


def encoded(message: framing.Message) -> bytes:
    raw, _ = iso8583.encode(dict(message), NETWORK_SPEC)
    return bytes(raw)


def approval(request: framing.Message, **extra: str) -> bytes:
    answer = {key: value for key, value in request.items() if key not in ("p", "1", "2", "14")}
    return encoded({**answer, "t": spec.RESPONSE_TO[request["t"]], "38": "ABC123", "39": "00", **extra})


def _bitmap(fields: list[int], first: int) -> bytes:
    return sum(1 << (64 - (field - first)) for field in fields).to_bytes(8, "big")


def undecodable(request: framing.Message | None) -> bytes:
    """A well-framed 0110 announcing a tertiary bitmap: field 130 is in no specification, so pyiso8583
    raises KeyError('130'), not its DecodeError. With a request, it carries the request's PAN, STAN and
    RRN (and an approval) ahead of that field; without, nothing that pairs it with anything."""
    primary = [1] if request is None else [1, 2, 11, 37, 39]
    fields = b"" if request is None else b"16" + request["2"].encode() + f"{request['11']}{request['37']}00".encode()
    return b"0110" + _bitmap(primary, 0) + _bitmap([65], 64) + _bitmap([130], 128) + fields + b"JUNK"


class FakeNetwork:
    """Signs on and echoes; answers each request with what answer(request) returns, in order."""

    def __init__(self, answer: Answer) -> None:
        self.answer = answer
        self.connections = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._session, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                request = await framing.read_message(reader)
                if request["t"] == spec.NETWORK:
                    bodies = [encoded({"t": spec.NETWORK_RESPONSE, "11": request["11"], "39": "00"})]
                else:
                    bodies = self.answer(request)
                for body in bodies:
                    writer.write(len(body).to_bytes(2, "big") + body)
                await writer.drain()
        writer.close()


@pytest.fixture
async def network() -> AsyncIterator[Callable[[Answer], Any]]:
    """network(answer) -> (fake network, started adapter on it); both closed after."""
    opened: list[FakeNetwork | Iso8583CardAdapter] = []

    async def _start(answer: Answer) -> tuple[FakeNetwork, Iso8583CardAdapter]:
        fake = FakeNetwork(answer)
        port = await fake.start()
        adapter = Iso8583CardAdapter("iso", {"port": port, "timeout": 0.5, "echo_interval": 60})
        opened.extend((fake, adapter))
        await adapter.start()
        return fake, adapter

    yield _start
    for thing in reversed(opened):
        await thing.close()


def test_the_specification_decodes_every_standard_field_networks_echo() -> None:
    for field in ("32", "33", "35", "43", "44", "48", "54", "55", "60", "62", "63", "100", "102", "123"):
        assert field in spec.SPEC, field
    message = {"t": "0110", "11": "000001", "32": "123456", "33": "7890", "37": "123456789012", "39": "00"}
    assert {key: value for key, value in framing.decode(encoded(message)).items() if key != "p"} == message


def test_an_undecodable_message_is_a_framing_error_that_still_names_its_request() -> None:
    request = {"t": "0100", "2": APPROVE, "11": "000042", "37": "123456789012"}
    with pytest.raises(framing.FramingError) as error:
        framing.decode(undecodable(request))
    assert error.value.key == ("000042", "123456789012")
    assert APPROVE not in str(error.value)
    with pytest.raises(framing.FramingError) as error:
        framing.decode(undecodable(None))
    assert error.value.key is None
    with pytest.raises(framing.FramingError) as error:
        framing.decode(b"\xff\x00 not ISO 8583 at all")
    assert error.value.key is None


async def test_an_approval_echoing_standard_fields_is_approved(network: Callable[[Answer], Any]) -> None:
    def answer(request: framing.Message) -> list[bytes]:
        return [approval(request, **{"32": "12345678901", "33": "654321", "44": "A5", "48": "network private"})]

    fake, adapter = await network(answer)
    (result,) = await adapter.send([card_request(APPROVE, "echoes-32")], time_left=1.0)
    assert (result.response_code, result.unknown, result.authorization_code) == ("00", False, "ABC123")
    assert result.network_reference == mapping.retrieval_reference("echoes-32")
    assert adapter.client.connected and fake.connections == 1


async def test_an_undecodable_answer_keeps_the_connection_and_the_other_answers(
    network: Callable[[Answer], Any], caplog: pytest.LogCaptureFixture
) -> None:
    bad = mapping.retrieval_reference("bad")

    def answer(request: framing.Message) -> list[bytes]:
        # Garbage first, on the same connection, ahead of the answers still owed.
        return [undecodable(None), b"\xff\x00 not ISO 8583 at all"] if request["37"] == bad else [approval(request)]

    caplog.set_level(logging.INFO)
    fake, adapter = await network(answer)
    requests = [card_request(APPROVE, "bad"), card_request(APPROVE, "good-1"), card_request(OTHER, "good-2")]
    unanswered, first, second = await adapter.send(requests, time_left=0.3)
    assert unanswered.unknown  # nothing pairs garbage with a request: its outcome stays unknown
    assert first.approved and second.approved and not (first.unknown or second.unknown)
    assert adapter.client.connected and fake.connections == 1 and adapter.client.sign_ons == 1
    (after,) = await adapter.send([card_request(APPROVE, "after")], time_left=1.0)
    assert after.approved and fake.connections == 1
    assert "connection to" not in caplog.text  # never lost
    assert caplog.text.count("undecodable message") == 2


async def test_an_undecodable_answer_that_names_its_request_settles_it_unknown_at_once(
    network: Callable[[Answer], Any], caplog: pytest.LogCaptureFixture
) -> None:
    bad = mapping.retrieval_reference("bad")

    def answer(request: framing.Message) -> list[bytes]:
        return [undecodable(request)] if request["37"] == bad else [approval(request)]

    caplog.set_level(logging.DEBUG)
    fake, adapter = await network(answer)
    loop = asyncio.get_running_loop()
    started = loop.time()
    unreadable, fine = await adapter.send([card_request(OTHER, "bad"), card_request(APPROVE, "fine")], time_left=2.0)
    # Unknown, not approved on a half-read answer, and at once, not at the deadline.
    assert unreadable.unknown and not unreadable.approved and unreadable.response_code == "91"
    assert loop.time() - started < 1.0
    assert fine.approved and adapter.client.connected and fake.connections == 1
    assert adapter.client.in_flight == 0
    assert caplog.text.count("undecodable message") == 1 and f"reference {bad}) is unknown" in caplog.text
    text = caplog.text + "".join(str(record.args) for record in caplog.records)
    assert OTHER not in text and APPROVE not in text
