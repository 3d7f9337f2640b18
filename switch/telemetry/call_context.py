"""Who is calling and which request this is, for the code that runs inside a call.

Set by switch.api.decorators for the duration of each call's handler, read by
switch.telemetry.logs. Kept apart from the handlers so that logging never imports gRPC.
"""

from __future__ import annotations

from contextvars import ContextVar

request_id: ContextVar[str] = ContextVar("request_id", default="")
caller_id: ContextVar[str] = ContextVar("caller_id", default="")
