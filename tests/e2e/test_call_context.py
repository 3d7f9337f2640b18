"""Every call gets a request id (the caller's or a new one) and a caller identity,
echoed in metadata (trailing for unary calls, initial for streams) and carried by
every log line written during the call."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import grpc
import orjson
import pytest

from switch.telemetry.logs import JsonFormatter
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import SwitchFactory
from tests.e2e.support import card_request, serve

# The caller is named by a sidecar's trusted header (plaintext on loopback) in these tests.
TRUSTED_HEADER = {"trusted_identity_header": "x-caller-id"}


class _Lines(logging.Handler):
    """Formats at emit time, inside the call, as the switch's own handler does."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(JsonFormatter())
        self.lines: list[dict[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(orjson.loads(self.format(record)))


@pytest.fixture
def access_log() -> Iterator[_Lines]:
    lines = _Lines()
    logger = logging.getLogger("switch.access")
    level = logger.level
    logger.addHandler(lines)
    logger.setLevel(logging.DEBUG)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(level)


async def _request_id(call: grpc.aio.UnaryUnaryCall[pb.AuthorizeRequest, pb.AuthorizeResponse]) -> str:
    await call
    metadata = dict(await call.trailing_metadata())
    return str(metadata["x-request-id"])


async def test_the_callers_request_id_is_echoed_and_logged(switch_factory: SwitchFactory, access_log: _Lines) -> None:
    async with serve(switch_factory, "embedded", security=TRUSTED_HEADER) as switch:
        metadata = (("x-request-id", "req-42"), ("x-caller-id", "wallet-api"))
        call = switch.stub.Authorize(card_request(), metadata=metadata)
        assert await _request_id(call) == "req-42"
    (line,) = [x for x in access_log.lines if "Authorize" in x["msg"]]
    assert line["request_id"] == "req-42"
    assert line["caller"] == "wallet-api"
    assert line["msg"].endswith("ms") and " OK " in line["msg"]


async def test_a_request_id_is_made_when_none_comes_and_a_long_one_is_cut(switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, "embedded") as switch:
        made = await _request_id(switch.stub.Authorize(card_request()))
        assert len(made) == 32 and int(made, 16) >= 0
        too_long = await _request_id(switch.stub.Authorize(card_request(), metadata=(("x-request-id", "r" * 200),)))
        assert too_long == "r" * 128  # kept, but bounded


async def test_errors_carry_the_request_id_too(switch_factory: SwitchFactory, access_log: _Lines) -> None:
    async with serve(switch_factory, "embedded") as switch:
        call = switch.stub.GetTransaction(
            pb.GetTransactionRequest(transaction_id="tx_missing"), metadata=(("x-request-id", "req-404"),)
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await call
        assert dict(await call.trailing_metadata())["x-request-id"] == "req-404"
    (line,) = [x for x in access_log.lines if "GetTransaction" in x["msg"]]
    assert line["request_id"] == "req-404"


async def test_streams_get_a_request_id(switch_factory: SwitchFactory) -> None:
    async with serve(switch_factory, "embedded") as switch:
        call = switch.stub.AuthorizeStream(iter([card_request()]), metadata=(("x-request-id", "req-stream"),))
        answers = [answer async for answer in call]
        assert len(answers) == 1
        assert dict(await call.initial_metadata())["x-request-id"] == "req-stream"


async def test_the_tokens_service_carries_the_request_id_on_errors(switch_factory: SwitchFactory) -> None:
    async with (
        serve(switch_factory, "embedded") as switch,
        grpc.aio.insecure_channel(switch.target) as channel,
    ):
        stub = switch_pb2_grpc.TokensStub(channel)
        bad = pb.TokenizeRequest(card=pb.Card(pan="4111111111111112", expiry_month=12, expiry_year=2099))
        call = stub.Tokenize(bad, metadata=(("x-request-id", "req-tok"),))
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await call
        assert raised.value.code() is grpc.StatusCode.INVALID_ARGUMENT
        assert dict(await call.trailing_metadata())["x-request-id"] == "req-tok"


async def test_a_stream_writes_one_access_line_with_its_ids(switch_factory: SwitchFactory, access_log: _Lines) -> None:
    async with serve(switch_factory, "embedded", security=TRUSTED_HEADER) as switch:
        metadata = (("x-request-id", "req-s2"), ("x-caller-id", "wallet-api"))
        call = switch.stub.AuthorizeStream(iter([card_request(), card_request()]), metadata=metadata)
        assert len([answer async for answer in call]) == 2
    (line,) = [x for x in access_log.lines if "AuthorizeStream" in x["msg"]]
    assert (line["request_id"], line["caller"]) == ("req-s2", "wallet-api")
    assert " OK " in line["msg"]
