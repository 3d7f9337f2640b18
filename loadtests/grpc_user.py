"""A Locust user that speaks gRPC to the switch, and the events it reports.

grpcio's blocking API only cooperates with Locust's gevent loop after
`grpc.experimental.gevent.init_gevent()`; it runs once per process, before that
process opens its first channel (after `--processes` has forked, never before).

Every user opens its own channel (its own TCP connection: a local subchannel pool,
so a switch run with `--workers N` spreads users over its processes) and sends
pre-serialized requests through multicallables without serializers. With a TLS folder
(`switch tls init`; the locustfile's --tls-dir, or LOCUST_TLS_DIR) the channel is mutual
TLS: it trusts the folder's ca.pem and presents its client.pem; without, it is plaintext.

Events, one Locust stats row each (request_type / name):

    grpc / "<scenario> <RPC>"            one per call: per-call latency, bytes received.
    auth / "<scenario> authorizations"   one per authorization answered: the row's
                                         requests/s *is* authorizations/s. Its latency is
                                         what the caller waited for that answer (the call
                                         for unary and batch, send-to-answer on a stream).
    decline / "<scenario> declined <code>"   one per decline: the mix, visible; never a failure.

A gRPC error fails the call's row; a per-item error (or an answer that breaks an
invariant, see scenarios.problem) fails that item's authorization.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator, Sequence
from typing import Any

import grpc
from locust import User

from loadtests import harness, scenarios
from switch.v1 import switch_pb2 as pb

SERVICE = f"/{harness.SERVICE}/"
CALL_TIMEOUT_S = 30.0
DEFAULT_TARGET = "127.0.0.1:50051"

_gevent_ready = False


def _init_gevent_once() -> None:
    global _gevent_ready  # noqa: PLW0603 - once per process, after any fork
    if not _gevent_ready:
        import grpc.experimental.gevent as grpc_gevent  # type: ignore[import-not-found]  # no stub

        grpc_gevent.init_gevent()
        _gevent_ready = True


def grpc_target(host: str | None) -> str:
    """host:port from Locust's --host, which may carry a scheme (grpc://h:p, http://h:p)."""
    if not host:
        return DEFAULT_TARGET
    return host.split("://", 1)[-1].rstrip("/")


class ItemFailure(Exception):
    """An answer that is not a valid result (a per-item error, a broken invariant)."""


class CallFailure(Exception):
    """A gRPC error as one line, transaction ids masked, so Locust groups alike errors in one row."""

    def __init__(self, error: grpc.RpcError) -> None:
        code = error.code() if isinstance(error, grpc.Call) else None
        details = error.details() if isinstance(error, grpc.Call) else str(error)
        super().__init__(f"{code.name if code else 'UNKNOWN'}: {_TRANSACTION_ID.sub('tx_*', details or '')}")


_TRANSACTION_ID = re.compile(r"tx_[0-9A-Za-z]+")


class GrpcUser(User):
    """One channel per user; helpers that call the switch and fire Locust request events."""

    abstract = True
    host = DEFAULT_TARGET
    scenario = "grpc"  # the prefix of this user's stats rows

    def __init__(self, environment: Any) -> None:
        super().__init__(environment)
        _init_gevent_once()
        self.keys = scenarios.Keys()
        self.channel = self._open_channel(grpc_target(self.host))
        raw: dict[str, None] = {"request_serializer": None, "response_deserializer": None}
        self._authorize = self.channel.unary_unary(SERVICE + "Authorize", **raw)
        self._batch = self.channel.unary_unary(SERVICE + "AuthorizeBatch", **raw)
        self._stream = self.channel.stream_stream(SERVICE + "AuthorizeStream", **raw)
        self._capture = self.channel.unary_unary(SERVICE + "Capture", **raw)
        self._refund = self.channel.unary_unary(SERVICE + "Refund", **raw)

    def tls_dir(self) -> str:
        """The TLS folder to connect with ("" : plaintext): --tls-dir, else LOCUST_TLS_DIR."""
        options = self.environment.parsed_options
        return str(getattr(options, "tls_dir", "") or os.environ.get("LOCUST_TLS_DIR", ""))

    def _open_channel(self, target: str) -> grpc.Channel:
        folder = self.tls_dir()
        if not folder:
            return grpc.insecure_channel(target, options=harness.CHANNEL_OPTIONS)
        from switch.cli.demo.tls import TlsFolder

        return grpc.secure_channel(target, TlsFolder.open(folder).credentials(), options=harness.CHANNEL_OPTIONS)

    def on_stop(self) -> None:
        self.channel.close()

    # --- events ---------------------------------------------------------------------------------

    def _fire(self, kind: str, name: str, began: float, length: int, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type=kind,
            name=f"{self.scenario} {name}",
            response_time=(time.perf_counter() - began) * 1000.0,
            response_length=length,
            exception=error,
            context={},
        )

    def record_answer(self, answer: pb.AuthorizeResponse, expected: scenarios.Template, began: float) -> bool:
        """Fires the authorization (and decline) events of one answer; False when it is a failure."""
        found = scenarios.problem(answer, expected)
        self._fire("auth", "authorizations", began, 0, ItemFailure(found) if found else None)
        if found is None and answer.decision == pb.DECISION_DECLINED:
            self._fire("decline", f"declined {answer.response_code}", began, 0, None)
        return found is None

    def _call(self, method: Any, name: str, payload: bytes) -> tuple[bytes | None, float]:
        """One unary call; fires its grpc event. Returns (raw answer or None on error, start time)."""
        began = time.perf_counter()
        try:
            raw: bytes = method(payload, timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as error:
            self._fire("grpc", name, began, 0, CallFailure(error))
            return None, began
        self._fire("grpc", name, began, len(raw), None)
        return raw, began

    # --- calls ----------------------------------------------------------------------------------

    def call_authorize(
        self, template: scenarios.Template, key: str | None = None, name: str = "Authorize"
    ) -> pb.AuthorizeResponse | None:
        """One Authorize; the answer, or None when the call failed. Fires no authorization event."""
        raw, _ = self._call(self._authorize, name, scenarios.with_key(key or self.keys.next(), template.body))
        return None if raw is None else pb.AuthorizeResponse.FromString(raw)

    def call_authorize_counted(
        self, template: scenarios.Template, key: str | None = None
    ) -> pb.AuthorizeResponse | None:
        """One Authorize with its authorization event; the answer when it is a valid result."""
        began = time.perf_counter()
        answer = self.call_authorize(template, key)
        if answer is None or not self.record_answer(answer, template, began):
            return None
        return answer

    def call_batch(self, templates: Sequence[scenarios.Template]) -> None:
        """One AuthorizeBatch of len(templates) items; one authorization event per item."""
        payload = scenarios.batch_payload([scenarios.with_key(self.keys.next(), t.body) for t in templates])
        raw, began = self._call(self._batch, f"AuthorizeBatch x{len(templates)}", payload)
        if raw is None:
            return
        answers = pb.AuthorizeBatchResponse.FromString(raw).responses
        if len(answers) != len(templates):
            self._fire("auth", "authorizations", began, 0, ItemFailure(f"{len(answers)} answers to {len(templates)}"))
            return
        for answer, template in zip(answers, templates, strict=True):
            self.record_answer(answer, template, began)

    def call_stream(self, templates: Sequence[scenarios.Template]) -> None:
        """One AuthorizeStream carrying len(templates) requests; one authorization event per answer,
        timed from the moment its request was handed to the stream."""
        pending: dict[str, tuple[scenarios.Template, float]] = {}
        keyed = [(self.keys.next(), template) for template in templates]

        def requests() -> Iterator[bytes]:
            for key, template in keyed:
                pending[key] = (template, time.perf_counter())
                yield scenarios.with_key(key, template.body)

        name = f"AuthorizeStream x{len(templates)}"
        began = time.perf_counter()
        received = 0
        try:
            for raw in self._stream(requests(), timeout=CALL_TIMEOUT_S):
                received += len(raw)
                answer = pb.AuthorizeResponse.FromString(raw)
                sent = pending.pop(answer.idempotency_key, None)
                if sent is None:
                    self._fire("auth", "authorizations", began, 0, ItemFailure("answer for an unknown key"))
                    continue
                self.record_answer(answer, sent[0], sent[1])
        except grpc.RpcError as error:
            self._fire("grpc", name, began, received, CallFailure(error))
            return
        unanswered = ItemFailure(f"{len(pending)} of {len(templates)} unanswered") if pending else None
        self._fire("grpc", name, began, received, unanswered)

    def call_capture(self, transaction_id: str) -> pb.Transaction | None:
        request = pb.CaptureRequest(transaction_id=transaction_id, idempotency_key=self.keys.next())
        raw, _ = self._call(self._capture, "Capture", request.SerializeToString())
        return None if raw is None else pb.Transaction.FromString(raw)

    def call_refund(self, transaction_id: str, amount: pb.Money | None = None) -> pb.Transaction | None:
        """A refund of `amount`, or (None) of all that is captured and not yet refunded."""
        request = pb.RefundRequest(transaction_id=transaction_id, amount=amount, idempotency_key=self.keys.next())
        raw, _ = self._call(self._refund, "Refund", request.SerializeToString())
        return None if raw is None else pb.Transaction.FromString(raw)

    def report_failure(self, name: str, message: str) -> None:
        """Reports a broken flow (a wrong state after a successful call) as a failure of its own row."""
        self._fire("check", name, time.perf_counter(), 0, ItemFailure(message))
