"""errors.Code copies the google.rpc.Code values the domain needs (so the domain imports
no gRPC): each copy must name the same value gRPC does."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import code_pb2

from switch.domain.errors import Code


@pytest.mark.parametrize("code", list(Code), ids=lambda code: code.name)
def test_each_code_is_the_google_rpc_code_of_that_name(code: Code) -> None:
    assert code_pb2.Code.Value(code.name) == code.value
    assert grpc.StatusCode[code.name].value[0] == code.value
