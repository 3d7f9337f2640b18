"""Roles and merchant scopes over mutual TLS, as a generated matrix.

Every RPC x every role (a client certificate per role, each granting exactly that
role, for the merchants m_in_*) x a merchant in scope or out of it, on both store
sets. An allowed cell is served (or fails for a business reason, never
PERMISSION_DENIED); a denied one answers PERMISSION_DENIED and leaves no trace but its
security event in the audit trail: no journal row holds its idempotency key, the
transaction it named is as it was, and a later allowed call with the same key is
no replay. A batch or a stream refuses its out-of-scope items alone.

One switch per store set serves the whole module (certificates are made once);
a second caller with every role for every merchant sets cells up and checks them.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import grpc
import pytest
import pytest_asyncio

from switch import config, server
from switch.security.policy import Role
from switch.server import RunningSwitch
from switch.v1 import switch_pb2 as pb
from switch.v1 import switch_pb2_grpc
from tests.conftest import STORE_SETS, drop_production_state, store_settings
from tests.e2e.support import VISA, card, card_request, expect, money, new_key
from tests.pki import CA, Issued

if TYPE_CHECKING:
    from switch.v1.switch_pb2_grpc import SwitchAsyncStub, TokensAsyncStub

pytestmark = pytest.mark.asyncio(loop_scope="module")

CALL_TIMEOUT = 10.0
DENIED = grpc.StatusCode.PERMISSION_DENIED
FAILED = grpc.StatusCode.FAILED_PRECONDITION
IN_SCOPE = "m_in_matrix"  # the role callers' scope is m_in_*
OUT_OF_SCOPE = "m_out_matrix"
EVERYONE = "spiffe://switch.test/matrix/everything"
JOURNAL_TABLES = ("transactions", "journal_entries", "authorization_intents")

ROLES = tuple(Role)
NEEDS = {
    "Authorize": Role.AUTHORIZE,
    "AuthorizeBatch": Role.AUTHORIZE,
    "AuthorizeStream": Role.AUTHORIZE,
    "Capture": Role.OPERATE,
    "Void": Role.OPERATE,
    "Refund": Role.OPERATE,
    "GetTransaction": Role.READ,
    "QuoteFee": Role.QUOTE,
    "ListAlerts": Role.COMPLIANCE,
    "SetHolderTier": Role.COMPLIANCE,
    "ReportFraud": Role.COMPLIANCE,
    "PromoteModel": Role.ADMIN,
    "Tokenize": Role.TOKENIZE,
    "Detokenize": Role.DETOKENIZE,
}
UNSCOPED = frozenset({"Tokenize", "Detokenize", "SetHolderTier", "PromoteModel"})  # carry no merchant


def identity(role: Role) -> str:
    return f"spiffe://switch.test/matrix/{role.value}"


CALLERS = [
    *({"identity": identity(role), "roles": [role.value], "merchants": ["m_in_*"]} for role in ROLES),
    {"identity": EVERYONE, "roles": [role.value for role in ROLES], "merchants": ["*"]},
]


@dataclass(frozen=True)
class Pki:
    ca: CA
    server: Issued
    callers: dict[Role, Issued]
    everyone: Issued


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = CA("roles matrix CA")
    return Pki(ca, ca.server(), {role: ca.client(uri=identity(role)) for role in ROLES}, ca.client(uri=EVERYONE))


@dataclass
class Caller:
    switch: SwitchAsyncStub
    tokens: TokensAsyncStub


@dataclass
class Matrix:
    store_set: str
    running: RunningSwitch
    callers: dict[Role, Caller]  # each holds its role alone, for m_in_*
    everyone: Caller  # every role, every merchant: sets cells up and checks them
    rows: Callable[[str], Awaitable[int]]  # journal rows (transactions, entries, intents) holding a key
    denials: Callable[[str], Awaitable[int]]  # PERMISSION_DENIED security events of a caller

    async def authorized(self, merchant: str) -> str:
        answer = await self.everyone.switch.Authorize(card_request(merchant=merchant), timeout=CALL_TIMEOUT)
        assert answer.response_code == "00", answer
        return answer.transaction_id

    async def captured(self, merchant: str) -> str:
        transaction_id = await self.authorized(merchant)
        request = pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=new_key("setup"))
        answer = await self.everyone.switch.Capture(request, timeout=CALL_TIMEOUT)
        assert answer.status == pb.TRANSACTION_STATUS_CAPTURED, answer
        return transaction_id

    async def transaction(self, transaction_id: str) -> pb.Transaction:
        request = pb.GetTransactionRequest(transaction_id=transaction_id)
        return await self.everyone.switch.GetTransaction(request, timeout=CALL_TIMEOUT)

    async def authorization_left_no_trace(self, request: pb.AuthorizeRequest) -> None:
        """Nothing holds the refused authorization's key: no journal row, and the same
        request by a caller who may make it is a first call, not a replay."""
        key = request.idempotency_key
        assert await self.rows(key) == 0, key
        answer = await self.everyone.switch.Authorize(request, timeout=CALL_TIMEOUT)
        assert answer.response_code == "00", answer
        assert not answer.replayed, answer
        assert await self.rows(key) > 0, key  # the count sees what an allowed call writes


DENIALS = "SELECT COUNT(*) FROM {}security_events WHERE caller = {} AND outcome = 'PERMISSION_DENIED'"


def _sqlite_denials(path: str) -> Callable[[str], Awaitable[int]]:
    async def count(caller: str) -> int:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return int(db.execute(DENIALS.format("", "?"), (caller,)).fetchone()[0])

    return count


def _postgres_denials(connection: Any, schema: str) -> Callable[[str], Awaitable[int]]:
    async def count(caller: str) -> int:
        return int(await connection.fetchval(DENIALS.format(f'"{schema}".', "$1"), caller))

    return count


def _sqlite_rows(path: str) -> Callable[[str], Awaitable[int]]:
    async def count(key: str) -> int:
        with contextlib.closing(sqlite3.connect(path)) as db:
            return sum(
                int(db.execute(f"SELECT COUNT(*) FROM {table} WHERE idempotency_key = ?", (key,)).fetchone()[0])
                for table in JOURNAL_TABLES
            )

    return count


def _postgres_rows(connection: Any, schema: str) -> Callable[[str], Awaitable[int]]:
    async def count(key: str) -> int:
        total = 0
        for table in JOURNAL_TABLES:
            total += await connection.fetchval(
                f'SELECT COUNT(*) FROM "{schema}".{table} WHERE idempotency_key = $1', key
            )
        return total

    return count


@contextlib.asynccontextmanager
async def _caller(port: int, ca: CA, client: Issued) -> AsyncIterator[Caller]:
    credentials = grpc.ssl_channel_credentials(ca.cert_pem, client.key_pem, client.cert_pem)
    options = [("grpc.use_local_subchannel_pool", 1)]
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        yield Caller(switch_pb2_grpc.SwitchStub(channel), switch_pb2_grpc.TokensStub(channel))


@pytest_asyncio.fixture(scope="module", loop_scope="module", params=STORE_SETS)
async def matrix(
    request: pytest.FixtureRequest, pki: Pki, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Matrix]:
    store_set = str(request.param)
    folder = tmp_path_factory.mktemp(f"matrix-{store_set}")
    cert, key = pki.server.write(folder, "server")
    raw = store_settings(store_set, folder)
    raw["server"] = {
        "port": 0,
        "tls": {"cert_file": str(cert), "key_file": str(key), "client_ca_file": str(pki.ca.write(folder))},
    }
    raw.setdefault("security", {})["callers"] = CALLERS
    raw["kyc"] = {"default_tier": "basic", "tiers": {"basic": {}, "full": {}}}  # tiers without caps: nothing declines
    settings = config.from_mapping(raw)
    running = await server.build(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:  # channels and connection close first
            port = running.port
            callers = {
                role: await stack.enter_async_context(_caller(port, pki.ca, pki.callers[role])) for role in ROLES
            }
            everyone = await stack.enter_async_context(_caller(port, pki.ca, pki.everyone))
            if settings.stores.embedded:
                rows = _sqlite_rows(settings.stores.sqlite_path)
                denials = _sqlite_denials(settings.stores.sqlite_path)
            else:
                import asyncpg

                connection = await asyncpg.connect(settings.stores.postgres_dsn)
                stack.push_async_callback(connection.close)
                rows = _postgres_rows(connection, settings.stores.postgres_schema)
                denials = _postgres_denials(connection, settings.stores.postgres_schema)
            yield Matrix(store_set, running, callers, everyone, rows, denials)
    finally:
        await running.stop(1.0)
        await drop_production_state(settings)


# --- the cells ------------------------------------------------------------------------


async def _authorize(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = card_request(new_key("auth"), merchant=merchant)
    if allowed:
        answer = await caller.switch.Authorize(request, timeout=CALL_TIMEOUT)
        assert answer.response_code == "00", answer
        assert not answer.replayed
        return
    await expect(caller.switch.Authorize(request, timeout=CALL_TIMEOUT), DENIED)
    await matrix.authorization_left_no_trace(request)


async def _authorize_batch(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = card_request(new_key("batch"), merchant=merchant)
    batch = pb.AuthorizeBatchRequest(requests=[request])
    if role is not Role.AUTHORIZE:  # no role: the whole call is refused
        assert not allowed
        await expect(caller.switch.AuthorizeBatch(batch, timeout=CALL_TIMEOUT), DENIED)
    else:
        (answer,) = (await caller.switch.AuthorizeBatch(batch, timeout=CALL_TIMEOUT)).responses
        assert answer.idempotency_key == request.idempotency_key
        if allowed:
            assert answer.response_code == "00", answer
            assert not answer.HasField("error"), answer
            return
        assert answer.error.code == DENIED.value[0], answer  # out of scope: the item is refused
        assert not answer.transaction_id, answer
    await matrix.authorization_left_no_trace(request)


async def _streamed(call: Any) -> list[pb.AuthorizeResponse]:
    return [answer async for answer in call]


async def _authorize_stream(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = card_request(new_key("stream"), merchant=merchant)
    call = caller.switch.AuthorizeStream(iter([request]), timeout=CALL_TIMEOUT)
    if role is not Role.AUTHORIZE:
        assert not allowed
        await expect(_streamed(call), DENIED)
    else:
        (answer,) = await _streamed(call)
        assert answer.idempotency_key == request.idempotency_key
        if allowed:
            assert answer.response_code == "00", answer
            assert not answer.HasField("error"), answer
            return
        assert answer.error.code == DENIED.value[0], answer
    await matrix.authorization_left_no_trace(request)


Operation = pb.CaptureRequest | pb.VoidRequest | pb.RefundRequest


def _operation_cell(
    name: str,
    build: Callable[[str], Operation],
    setup_status: pb.TransactionStatus.ValueType,
    done_status: pb.TransactionStatus.ValueType,
) -> Callable[[Matrix, Caller, str, bool, Role], Awaitable[None]]:
    async def cell(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
        if setup_status == pb.TRANSACTION_STATUS_CAPTURED:
            transaction_id = await matrix.captured(merchant)
        else:
            transaction_id = await matrix.authorized(merchant)
        before = await matrix.transaction(transaction_id)
        assert before.status == setup_status, before
        request = build(transaction_id)

        def send(stub: SwitchAsyncStub) -> Awaitable[pb.Transaction]:
            method: Callable[..., Awaitable[pb.Transaction]] = getattr(stub, name)
            return method(request, timeout=CALL_TIMEOUT)

        if allowed:
            answer = await send(caller.switch)
            assert answer.status == done_status, answer
            assert not answer.replayed
            return
        await expect(send(caller.switch), DENIED)
        # Refused before anything was claimed or decided: the transaction is as it was,
        # no entry holds the key, and the same request by one who may is a first call.
        assert await matrix.transaction(transaction_id) == before
        assert await matrix.rows(request.idempotency_key) == 0
        answer = await send(matrix.everyone.switch)
        assert answer.status == done_status, answer
        assert not answer.replayed, answer
        assert await matrix.rows(request.idempotency_key) > 0

    return cell


async def _get_transaction(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    transaction_id = await matrix.authorized(merchant)
    request = pb.GetTransactionRequest(transaction_id=transaction_id)
    if allowed:
        answer = await caller.switch.GetTransaction(request, timeout=CALL_TIMEOUT)
        assert answer.transaction_id == transaction_id
        assert answer.merchant_id == merchant
        return
    seen = await expect(caller.switch.GetTransaction(request, timeout=CALL_TIMEOUT), DENIED)
    assert merchant not in seen.details  # a refusal does not tell whose it is


async def _report_fraud(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    transaction_id = await matrix.authorized(merchant)
    request = pb.ReportFraudRequest(transaction_id=transaction_id, fraud=True, reason="matrix")
    if allowed:
        answer = await caller.switch.ReportFraud(request, timeout=CALL_TIMEOUT)
        assert (answer.transaction_id, answer.fraud) == (transaction_id, True)
        return
    seen = await expect(caller.switch.ReportFraud(request, timeout=CALL_TIMEOUT), DENIED)
    assert merchant not in seen.details


async def _quote_fee(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = pb.QuoteFeeRequest(merchant_id=merchant, amount=money(1000), rail="card")
    if allowed:
        answer = await caller.switch.QuoteFee(request, timeout=CALL_TIMEOUT)
        assert answer.fee.currency == "USD", answer
        return
    await expect(caller.switch.QuoteFee(request, timeout=CALL_TIMEOUT), DENIED)


async def _list_alerts(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = pb.ListAlertsRequest(merchant_id=merchant)
    if allowed:
        answer = await caller.switch.ListAlerts(request, timeout=CALL_TIMEOUT)
        assert not answer.alerts, answer  # nothing screens here: no alert, but served
        return
    seen = await expect(caller.switch.ListAlerts(request, timeout=CALL_TIMEOUT), DENIED)
    assert merchant not in seen.details


async def _set_holder_tier(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = pb.SetHolderTierRequest(card=pb.Card(pan=VISA), tier="full", reason="matrix")
    if allowed:
        answer = await caller.switch.SetHolderTier(request, timeout=CALL_TIMEOUT)
        assert answer.tier == "full" and answer.sequence > 0, answer
        assert answer.masked_instrument.endswith(VISA[-4:]) and VISA not in answer.masked_instrument, answer
        return
    seen = await expect(caller.switch.SetHolderTier(request, timeout=CALL_TIMEOUT), DENIED)
    assert VISA not in seen.details


async def _promote_model(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = pb.PromoteModelRequest(policy_version="0123456789abcdef", model_version="fedcba9876543210", reason="m")
    # This switch's tables are the main file's, no [policy] bundle: an allowed call fails
    # for that business reason (tests/e2e/test_challenger.py promotes for real).
    seen = await expect(caller.switch.PromoteModel(request, timeout=CALL_TIMEOUT), FAILED if allowed else DENIED)
    assert ("promotion needs a [policy] bundle" in seen.details) == allowed, seen.details


async def _tokenize(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    request = pb.TokenizeRequest(card=card(VISA))
    if allowed:
        answer = await caller.tokens.Tokenize(request, timeout=CALL_TIMEOUT)
        assert answer.token and answer.token != VISA, answer
        assert answer.masked_pan.endswith(VISA[-4:]), answer
        return
    seen = await expect(caller.tokens.Tokenize(request, timeout=CALL_TIMEOUT), DENIED)
    assert VISA not in seen.details


async def _detokenize(matrix: Matrix, caller: Caller, merchant: str, allowed: bool, role: Role) -> None:
    token = await matrix.everyone.tokens.Tokenize(pb.TokenizeRequest(card=card(VISA)), timeout=CALL_TIMEOUT)
    request = pb.DetokenizeRequest(token=token.token, key_id=token.key_id, reason="matrix cell")
    if allowed:
        answer = await caller.tokens.Detokenize(request, timeout=CALL_TIMEOUT)
        assert answer.pan == VISA, answer
        return
    seen = await expect(caller.tokens.Detokenize(request, timeout=CALL_TIMEOUT), DENIED)
    assert VISA not in seen.details


CELLS: dict[str, Callable[[Matrix, Caller, str, bool, Role], Awaitable[None]]] = {
    "Authorize": _authorize,
    "AuthorizeBatch": _authorize_batch,
    "AuthorizeStream": _authorize_stream,
    "Capture": _operation_cell(
        "Capture",
        lambda tx: pb.CaptureRequest(transaction_id=tx, idempotency_key=new_key("cap")),
        pb.TRANSACTION_STATUS_AUTHORIZED,
        pb.TRANSACTION_STATUS_CAPTURED,
    ),
    "Void": _operation_cell(
        "Void",
        lambda tx: pb.VoidRequest(transaction_id=tx, idempotency_key=new_key("void")),
        pb.TRANSACTION_STATUS_AUTHORIZED,
        pb.TRANSACTION_STATUS_VOIDED,
    ),
    "Refund": _operation_cell(
        "Refund",
        lambda tx: pb.RefundRequest(transaction_id=tx, idempotency_key=new_key("ref")),
        pb.TRANSACTION_STATUS_CAPTURED,
        pb.TRANSACTION_STATUS_REFUNDED,
    ),
    "GetTransaction": _get_transaction,
    "QuoteFee": _quote_fee,
    "ListAlerts": _list_alerts,
    "SetHolderTier": _set_holder_tier,
    "ReportFraud": _report_fraud,
    "PromoteModel": _promote_model,
    "Tokenize": _tokenize,
    "Detokenize": _detokenize,
}


async def test_the_matrix_covers_every_rpc_of_both_services() -> None:
    services = pb.DESCRIPTOR.services_by_name
    methods = {method.name for name in ("Switch", "Tokens") for method in services[name].methods}
    assert methods == set(CELLS) == set(NEEDS)


@pytest.mark.parametrize("scope", ["in", "out"])
@pytest.mark.parametrize("role", ROLES, ids=[role.value for role in ROLES])
@pytest.mark.parametrize("rpc", list(CELLS))
async def test_cell(matrix: Matrix, rpc: str, role: Role, scope: str) -> None:
    allowed = role is NEEDS[rpc] and (scope == "in" or rpc in UNSCOPED)
    merchant = IN_SCOPE if scope == "in" else OUT_OF_SCOPE
    denials = await matrix.denials(identity(role))
    await CELLS[rpc](matrix, matrix.callers[role], merchant, allowed, role)
    assert matrix.running.trail is not None
    await matrix.running.trail.flush()  # refusals are noted, and written a moment later
    assert await matrix.denials(identity(role)) == denials + (0 if allowed else 1)


async def test_every_role_for_every_merchant_makes_every_call(matrix: Matrix) -> None:
    """The setup caller, whose grant is every role and "*": the matrix's checks stand on it."""
    for rpc, cell in CELLS.items():
        for merchant in (IN_SCOPE, OUT_OF_SCOPE):
            await cell(matrix, matrix.everyone, merchant, True, NEEDS[rpc])


# --- batches and streams that mix merchants ---------------------------------------------


def _mixed() -> tuple[list[pb.AuthorizeRequest], set[str]]:
    """Requests alternating in scope and out of it; the out-of-scope keys."""
    requests = [
        card_request(new_key("mix"), merchant=IN_SCOPE if index % 2 == 0 else OUT_OF_SCOPE) for index in range(6)
    ]
    return requests, {request.idempotency_key for request in requests if request.merchant_id == OUT_OF_SCOPE}


async def _check_mixed(
    matrix: Matrix, requests: Iterable[pb.AuthorizeRequest], answers: dict[str, pb.AuthorizeResponse], refused: set[str]
) -> None:
    for request in requests:
        answer = answers[request.idempotency_key]
        if request.idempotency_key in refused:
            assert answer.error.code == DENIED.value[0], answer
            assert not answer.transaction_id
        else:
            assert not answer.HasField("error"), answer
            assert answer.response_code == "00", answer
            assert await matrix.rows(request.idempotency_key) > 0
    for request in requests:
        if request.idempotency_key in refused:
            await matrix.authorization_left_no_trace(request)


async def test_a_batch_refuses_its_out_of_scope_items_alone(matrix: Matrix) -> None:
    requests, refused = _mixed()
    caller = matrix.callers[Role.AUTHORIZE]
    batch = await caller.switch.AuthorizeBatch(pb.AuthorizeBatchRequest(requests=requests), timeout=CALL_TIMEOUT)
    assert [answer.idempotency_key for answer in batch.responses] == [r.idempotency_key for r in requests]
    await _check_mixed(matrix, requests, {answer.idempotency_key: answer for answer in batch.responses}, refused)


async def test_a_stream_refuses_its_out_of_scope_items_alone(matrix: Matrix) -> None:
    requests, refused = _mixed()
    caller = matrix.callers[Role.AUTHORIZE]
    answers = await _streamed(caller.switch.AuthorizeStream(iter(requests), timeout=CALL_TIMEOUT))
    assert sorted(answer.idempotency_key for answer in answers) == sorted(r.idempotency_key for r in requests)
    await _check_mixed(matrix, requests, {answer.idempotency_key: answer for answer in answers}, refused)
