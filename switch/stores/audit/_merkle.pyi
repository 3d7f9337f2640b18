from collections.abc import Sequence
from typing import Any

def seal(payloads: Sequence[bytes]) -> tuple[bytes, bytes]: ...
def seal_rows(
    transactions: list[tuple[Any, ...]], entries: list[tuple[Any, ...]], payloads: list[bytes]
) -> tuple[bytes, bytes, list[list[Any]]]: ...
