"""Locust load test of the switch over gRPC (one channel per simulated user; plaintext, or
mutual TLS with --tls-dir).

Scenarios, one user class each (select by class name, or by tag with --tags):

    class          tag        what each task does
    UnaryUser      unary      one Authorize from the instrument mix
    BatchUser      batch      one AuthorizeBatch of --batch-size items (default 100)
    StreamUser     stream     one AuthorizeStream carrying --batch-size requests
    LifecycleUser  lifecycle  Authorize (an approving card), Capture, Refund half, Refund the rest
    RetryUser      retry      Authorize, then the same request again: must come back replayed, same transaction
    MixedUser      mix        traffic as a wallet sends it: mostly Authorize, some lifecycles and retries

Every request carries a fresh idempotency key; every scenario draws from the
instrument mix of loadtests/scenarios.py (approvals and declines "05"/"51" on cards
and on the `instant` rail). A decline is a result, not a failure: it shows up in its
own "<scenario> declined <code>" row. A gRPC error, a per-item error or a broken
invariant (a declining card approved, a replay not marked replayed, a capture that
did not capture) is a failure.

Reading the stats table (see loadtests/grpc_user.py): rows of type `grpc` are calls
("batch AuthorizeBatch x100": calls/s and per-call latency); rows of type `auth` are
authorizations ("batch authorizations": authorizations/s). The Aggregated row adds
all of them together and means little here; read the rows.

Runs (from the repository root; the switch listens on --host, default 127.0.0.1:50051):

    # local, headless, CSV + HTML reports
    .venv/bin/locust -f loadtests/locustfile.py --host 127.0.0.1:50051 --headless -u 20 -r 20 -t 15s \\
        --csv loadtests/reports/latest/switch --html loadtests/reports/latest/switch.html

    # only some scenarios: by class, or by tag; and the batch size (or LOCUST_BATCH_SIZE=50)
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 8 -t 15s BatchUser StreamUser --batch-size 50
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 8 -t 15s --tags batch stream

    # one worker process per core on this machine (-1: os.cpu_count(); or a number)
    .venv/bin/locust -f loadtests/locustfile.py --headless -u 40 -r 40 -t 60s --processes -1 \\
        --csv loadtests/reports/latest/switch

    # distributed: one master, workers on other machines (each with this repository and its .venv)
    .venv/bin/locust -f loadtests/locustfile.py --master --master-bind-host 10.0.0.5 --expect-workers 4 \\
        --headless -u 200 -r 50 -t 5m --host switch.internal:50051 \\
        --csv loadtests/reports/latest/run --html loadtests/reports/latest/run.html
    .venv/bin/locust -f loadtests/locustfile.py --worker --master-host 10.0.0.5 --processes -1

    # a remote switch: only --host changes (plaintext gRPC)
    .venv/bin/locust -f loadtests/locustfile.py --host switch.staging.internal:50051 --headless -u 50 -t 2m

    # mutual TLS: a folder made by `switch tls init --dir DIR` (or LOCUST_TLS_DIR=DIR); each user
    # trusts DIR/ca.pem and presents DIR/client.pem. The switch serves DIR/server.pem, whose names
    # must hold the host dialled (`switch tls init --name`), and grants the client's identity
    # authorize and operate ([[security.callers]]). Distributed: every worker needs the folder too.
    .venv/bin/locust -f loadtests/locustfile.py --host 127.0.0.1:50051 --headless -u 20 -t 15s --tls-dir DIR

`loadtests/sizing.py` runs the standard sizing run (it starts its own switch).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # loaded by path (locust -f): make the `loadtests` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from locust import constant, events, tag, task
from locust.user.task import filter_tasks_by_tags

from loadtests import scenarios
from loadtests.grpc_user import GrpcUser
from switch.v1 import switch_pb2 as pb

DEFAULT_BATCH_SIZE = 100


def _add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--batch-size",
        type=int,
        default=int(os.environ.get("LOCUST_BATCH_SIZE", DEFAULT_BATCH_SIZE)),
        env_var="LOCUST_BATCH_SIZE",
        help="authorizations per AuthorizeBatch call and per AuthorizeStream",
    )
    parser.add_argument(
        "--tls-dir",
        default=os.environ.get("LOCUST_TLS_DIR", ""),
        env_var="LOCUST_TLS_DIR",
        help="a folder made by `switch tls init`: connect over mutual TLS with its ca.pem, client.pem, client.key",
    )


def _drop_users_without_tasks(environment: Any, **_: Any) -> None:
    """With --tags, keep only the user classes that still have a task (Locust would fail on the others)."""
    options = environment.parsed_options
    tags = set(options.tags) if options and options.tags else None
    excluded = set(options.exclude_tags) if options and options.exclude_tags else None
    if tags is None and excluded is None:
        return
    for user_class in environment.user_classes:
        filter_tasks_by_tags(user_class, tags, excluded)
    environment.user_classes[:] = [user_class for user_class in environment.user_classes if user_class.tasks]


events.init_command_line_parser.add_listener(_add_arguments)  # type: ignore[no-untyped-call]
events.init.add_listener(_drop_users_without_tasks)  # type: ignore[no-untyped-call]


class SwitchUser(GrpcUser):
    """The scenario flows; the concrete classes below pick and tag them."""

    abstract = True
    wait_time = constant(0)  # closed loop: each user keeps one call in flight

    def on_start(self) -> None:
        self.mix = scenarios.cycle(scenarios.MIX)
        self.capturable = scenarios.cycle(scenarios.CAPTURABLE)

    def batch_size(self) -> int:
        options = self.environment.parsed_options
        size = int(getattr(options, "batch_size", 0) or os.environ.get("LOCUST_BATCH_SIZE", DEFAULT_BATCH_SIZE))
        return max(1, size)

    def run_unary(self) -> None:
        self.call_authorize_counted(next(self.mix))

    def run_batch(self) -> None:
        self.call_batch([next(self.mix) for _ in range(self.batch_size())])

    def run_stream(self) -> None:
        self.call_stream([next(self.mix) for _ in range(self.batch_size())])

    def run_lifecycle(self) -> None:
        answer = self.call_authorize_counted(next(self.capturable))
        if answer is None or answer.decision != pb.DECISION_APPROVED:
            return  # a failure is already reported; a decline (a velocity limit) ends the flow
        captured = self.call_capture(answer.transaction_id)
        if captured is None:
            return
        if captured.status != pb.TRANSACTION_STATUS_CAPTURED:
            self.report_failure("Capture state", f"after Capture: {pb.TransactionStatus.Name(captured.status)}")
            return
        half = pb.Money(minor_units=captured.captured.minor_units // 2, currency=captured.captured.currency)
        partly = self.call_refund(answer.transaction_id, half)
        if partly is None:
            return
        if partly.status != pb.TRANSACTION_STATUS_PARTIALLY_REFUNDED or partly.refunded != half:
            self.report_failure("Refund state", f"after a half refund: {pb.TransactionStatus.Name(partly.status)}")
            return
        rest = self.call_refund(answer.transaction_id)
        if rest is not None and (rest.status != pb.TRANSACTION_STATUS_REFUNDED or rest.refunded != captured.captured):
            self.report_failure("Refund state", f"after refunding the rest: {pb.TransactionStatus.Name(rest.status)}")

    def run_retry(self) -> None:
        template, key = next(self.mix), self.keys.next()
        answer = self.call_authorize_counted(template, key)
        if answer is None:
            return
        again = self.call_authorize(template, key, name="Authorize (replay)")
        if again is None:
            return
        found = scenarios.replay_problem(answer, again)
        if found:
            self.report_failure("replay", found)


class UnaryUser(SwitchUser):
    weight = 3
    scenario = "unary"

    @tag("unary")
    @task
    def task_unary(self) -> None:
        self.run_unary()


class BatchUser(SwitchUser):
    scenario = "batch"

    @tag("batch")
    @task
    def task_batch(self) -> None:
        self.run_batch()


class StreamUser(SwitchUser):
    scenario = "stream"

    @tag("stream")
    @task
    def task_stream(self) -> None:
        self.run_stream()


class LifecycleUser(SwitchUser):
    scenario = "lifecycle"

    @tag("lifecycle")
    @task
    def task_lifecycle(self) -> None:
        self.run_lifecycle()


class RetryUser(SwitchUser):
    scenario = "retry"

    @tag("retry")
    @task
    def task_retry(self) -> None:
        self.run_retry()


class MixedUser(SwitchUser):
    weight = 3
    scenario = "mix"

    @tag("mix")
    @task(16)
    def task_unary(self) -> None:
        self.run_unary()

    @tag("mix")
    @task(2)
    def task_lifecycle(self) -> None:
        self.run_lifecycle()

    @tag("mix")
    @task(1)
    def task_retry(self) -> None:
        self.run_retry()
