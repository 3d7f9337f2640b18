"""Per-call context: every call gets a request id and a caller identity.

The id comes from the caller's `x-request-id` metadata or is made here; the
caller is its `x-caller-id` (mutual TLS or a mesh identity would set it). Both
go into every log line written while the call's handler runs (switch.logs reads
them from switch.call_context), and the id goes back to the caller: in the
trailing metadata of a unary call, errors included (it rides with the status, where
initial metadata would cost a message of its own on every call), and in the
initial metadata of a stream. At DEBUG level each call also writes one access line.
"""

from __future__ import annotations

import inspect
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from switch.call_context import caller_id, request_id

log = logging.getLogger("switch.access")

MAX_ID_LENGTH = 128


class CallContextInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[type-arg]
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler[Any, Any]]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any]:
        handler = await continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED itself
            return handler
        metadata = {
            key: value for key, value in handler_call_details.invocation_metadata or () if isinstance(value, str)
        }
        call = _Call(
            method=handler_call_details.method,
            request_id=_clean(metadata.get("x-request-id", "")) or os.urandom(16).hex(),
            caller=_clean(metadata.get("x-caller-id", "")),
        )
        return _wrap(handler, call)


class _Call:
    __slots__ = ("caller", "method", "request_id")

    def __init__(self, method: str, request_id: str, caller: str) -> None:
        self.method = method
        self.request_id = request_id
        self.caller = caller

    def enter(self) -> float:
        request_id.set(self.request_id)
        caller_id.set(self.caller)
        return time.perf_counter()

    def leave(self, context: grpc.aio.ServicerContext[Any, Any], started: float) -> None:
        if log.isEnabledFor(logging.DEBUG):
            code = context.code() if hasattr(context, "code") else None
            elapsed_ms = (time.perf_counter() - started) * 1000.0
            log.debug("%s %s %.2f ms", self.method, getattr(code, "name", code) or "OK", elapsed_ms)


def _clean(value: str) -> str:
    """Ids are echoed and logged: printable ASCII only, bounded."""
    value = value[:MAX_ID_LENGTH]
    return value if value.isascii() and value.isprintable() else ""


def _wrap(handler: grpc.RpcMethodHandler[Any, Any], call: _Call) -> grpc.RpcMethodHandler[Any, Any]:
    serializers = {
        "request_deserializer": handler.request_deserializer,
        "response_serializer": handler.response_serializer,
    }
    if handler.unary_unary:
        return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary, call), **serializers)
    if handler.stream_stream:
        return grpc.stream_stream_rpc_method_handler(_streaming(handler.stream_stream, call), **serializers)
    if handler.unary_stream:
        return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream, call), **serializers)
    assert handler.stream_unary is not None
    return grpc.stream_unary_rpc_method_handler(_unary(handler.stream_unary, call), **serializers)


def _unary(behaviour: Any, call: _Call) -> Any:
    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        started = call.enter()
        context.set_trailing_metadata((("x-request-id", call.request_id),))
        try:
            return await behaviour(request, context)
        finally:
            call.leave(context, started)

    return run


def _streaming(behaviour: Any, call: _Call) -> Any:
    """A streaming handler, wrapped as it is written: a generator yielding its answers,
    or a coroutine writing them with context.write."""
    if not inspect.isasyncgenfunction(behaviour):

        async def write(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
            started = call.enter()
            await context.send_initial_metadata((("x-request-id", call.request_id),))
            try:
                await behaviour(request, context)
            finally:
                call.leave(context, started)

        return write

    async def run(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> AsyncIterator[Any]:
        started = call.enter()
        await context.send_initial_metadata((("x-request-id", call.request_id),))
        try:
            async for response in behaviour(request, context):
                yield response
        finally:
            call.leave(context, started)

    return run
