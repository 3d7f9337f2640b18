"""Requests whose bytes do not decode as protobuf: INVALID_ARGUMENT, not a crash.

grpc.aio decodes a request before any handler runs; a DecodeError there escapes
to grpc itself, which answers UNKNOWN and logs an ERROR with a traceback for every
such call. register() installs a servicer through its generated
add_*Servicer_to_server with each method's deserializer wrapped: bytes that do not
decode become an Undecodable marker, which switch.api.decorators turns into
INVALID_ARGUMENT with one INFO line (unary calls), and AuthorizeStream into an
error answer for that one message (switch.api.servicer). Well-formed requests pay one
Python call and a try per message.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from switch.domain.errors import InvalidRequest, Violation

log = logging.getLogger(__name__)

Servicer = TypeVar("Servicer")


class Undecodable:
    """Stands in for a request whose bytes did not decode as message_name."""

    __slots__ = ("message_name",)

    def __init__(self, message_name: str) -> None:
        self.message_name = message_name

    def error(self) -> InvalidRequest:
        """The error for the call (or stream item), logged once, quietly: the caller's
        bytes are its own mistake, not the switch's."""
        log.info("a request does not decode as %s", self.message_name)
        # No field to name: the violation is about the whole message (the empty path).
        return InvalidRequest([Violation("", f"the request is not a valid protobuf {self.message_name}")])


def register(add_to_server: Callable[[Servicer, Any], None], servicer: Servicer, server: grpc.aio.Server) -> None:
    """add_to_server(servicer, server), every method's request deserializer made tolerant."""
    recorder = _Recorder()
    add_to_server(servicer, recorder)
    if not recorder.services:  # generated code that no longer registers its methods by name
        raise RuntimeError(f"{add_to_server.__name__} registered no method handlers")
    for service, handlers in recorder.services:
        tolerant = {name: _tolerant(service, name, handler) for name, handler in handlers.items()}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, tolerant),))
        server.add_registered_method_handlers(service, tolerant)  # type: ignore[attr-defined]  # not in the stubs yet


class _Recorder:
    """Takes what generated add_*Servicer_to_server code hands a server."""

    def __init__(self) -> None:
        self.services: list[tuple[str, dict[str, grpc.RpcMethodHandler[Any, Any]]]] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        """The same handlers come again, by name, through add_registered_method_handlers."""

    def add_registered_method_handlers(
        self, service: str, handlers: dict[str, grpc.RpcMethodHandler[Any, Any]]
    ) -> None:
        self.services.append((service, handlers))


def _tolerant(service: str, method: str, handler: grpc.RpcMethodHandler[Any, Any]) -> grpc.RpcMethodHandler[Any, Any]:
    parse = handler.request_deserializer
    if parse is None:  # bytes in, bytes out: nothing to decode
        return handler
    descriptor = getattr(getattr(parse, "__self__", None), "DESCRIPTOR", None)  # FromString is bound to its class
    marker = Undecodable(descriptor.full_name if descriptor is not None else f"{service}/{method} request")

    def deserialize(data: bytes) -> Any:
        try:
            return parse(data)
        except DecodeError:
            return marker

    return handler._replace(request_deserializer=deserialize)  # type: ignore[attr-defined,no-any-return]
