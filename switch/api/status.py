"""The one place where exceptions become gRPC statuses.

Of the switch's three kinds of code, this is the mapping from the error to the
gRPC status a failed call ends with: the code is the error's own
(switch.domain.errors.Code). A decline is no error: it is an answer carrying an
ISO-style response code (switch.domain.response_codes), on a call that succeeded.

A SwitchError keeps its own status code and message; InvalidRequest adds a
google.rpc.BadRequest detail listing every bad field. Anything else is a bug:
it is logged with its traceback and the caller gets a bare INTERNAL, never the
exception's text (which might echo input).
"""

from __future__ import annotations

import logging

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from switch.domain.errors import InvalidRequest, SwitchError

log = logging.getLogger(__name__)


def as_switch_error(error: BaseException) -> SwitchError:
    if isinstance(error, SwitchError):
        return error
    log.error("unexpected error", exc_info=error)
    return SwitchError("internal error")


def to_grpc_status(error: SwitchError) -> grpc.Status:
    details = []
    if isinstance(error, InvalidRequest):
        bad_request = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in error.violations
            ]
        )
        detail = any_pb2.Any()
        detail.Pack(bad_request)
        details.append(detail)
    assert code_pb2.Code.Name(error.code) == error.code.name  # our table agrees with google.rpc.Code
    return rpc_status.to_status(status_pb2.Status(code=error.code, message=error.message, details=details))
