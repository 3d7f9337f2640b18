"""Structured logs: one JSON object per line, written with orjson.

Log records carry ids, masked instruments and codes only; no module logs a
card number, and this formatter never adds request bodies.
"""

from __future__ import annotations

import logging
import sys
import time

import orjson

from switch.telemetry.call_context import caller_id, request_id


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        # Set while a call's handler runs (switch.api.decorators); empty elsewhere.
        if request := request_id.get():
            entry["request_id"] = request
        if caller := caller_id.get():
            entry["caller"] = caller
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry).decode()


def configure(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logging.basicConfig(level=level, handlers=[handler], force=True)
