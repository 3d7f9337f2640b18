"""Prometheus metrics, without a dependency: what an SRE watches on a running switch.

The hot path touches them once per batch or once per item with a dict update;
gauges (queue depth, breaker states) are read only when scraped. They are served
in the Prometheus text format (0.0.4) on `GET /metrics` by a small asyncio
listener when `server.metrics_port` is set; with `--workers N`, worker i listens
on metrics_port + i, so each process is scraped on its own.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

Labels = tuple[tuple[str, str], ...]
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
SECONDS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
_READ_LIMIT = 8192


@dataclass
class Counter:
    name: str
    help: str
    values: dict[Labels, float] = field(default_factory=dict)

    def inc(self, labels: Labels = (), amount: float = 1.0) -> None:
        self.values[labels] = self.values.get(labels, 0.0) + amount

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, value in sorted(self.values.items()):
            yield self.name + "_total", labels, value


@dataclass
class Histogram:
    name: str
    help: str
    buckets: Sequence[float]
    series: dict[Labels, list[float]] = field(default_factory=dict)  # bucket counts..., sum, count

    def observe(self, value: float, labels: Labels = ()) -> None:
        counts = self.series.get(labels)
        if counts is None:
            counts = self.series[labels] = [0.0] * (len(self.buckets) + 2)
        index = bisect.bisect_left(self.buckets, value)
        if index < len(self.buckets):
            counts[index] += 1
        counts[-2] += value
        counts[-1] += 1

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, counts in sorted(self.series.items()):
            cumulative = 0.0
            for bound, count in zip(self.buckets, counts, strict=False):
                cumulative += count
                yield self.name + "_bucket", (*labels, ("le", _number(bound))), cumulative
            yield self.name + "_bucket", (*labels, ("le", "+Inf")), counts[-1]
            yield self.name + "_sum", labels, counts[-2]
            yield self.name + "_count", labels, counts[-1]


@dataclass
class Gauge:
    name: str
    help: str
    read: Callable[[], Iterable[tuple[Labels, float]]]

    def samples(self) -> Iterable[tuple[str, Labels, float]]:
        for labels, value in self.read():
            yield self.name, labels, value


Metric = Counter | Histogram | Gauge
_TYPES = {Counter: "counter", Histogram: "histogram", Gauge: "gauge"}


class SwitchMetrics:
    """Every metric the switch exports, in one place."""

    def __init__(self) -> None:
        self.authorizations = Counter(
            "switch_authorizations", "Authorizations answered, by route and status (authorized, declined, unknown)"
        )
        self.replays = Counter("switch_replays", "Authorizations answered from an earlier answer (idempotent retries)")
        self.shed = Counter("switch_shed_items", "Items refused with RESOURCE_EXHAUSTED before any side effect")
        self.batch_items = Histogram("switch_batch_items", "Items per pipeline batch", BATCH_SIZE_BUCKETS)
        self.batch_seconds = Histogram("switch_batch_seconds", "Time a pipeline batch takes", SECONDS_BUCKETS)
        self.adapter_seconds = Histogram("switch_adapter_seconds", "Time a route's adapter call takes", SECONDS_BUCKETS)
        self.state_store_events = Counter(
            "switch_state_store_events",
            "State store events by kind: slot_map_read (a Redis Cluster slot moved or a node failed), "
            "not_served (items a node refused, sent again), given_back (keys undone after a failed claim), "
            "give_back_failed",
        )
        self.reversals = Counter(
            "switch_reversals",
            "Reversals finished, by route and the status they left: reversed, return_pending (a recall "
            "accepted, its money not yet back), recall_rejected (money moved although the caller was told 91)",
        )
        self.returns = Counter(
            "switch_returns",
            "Returns a network sent back after a recall, by outcome: applied, duplicate, unexpected "
            "(for no transaction awaiting one: settle by hand)",
        )
        self.risk_alerts = Counter(
            "switch_risk_alerts",
            "Risk decisions worth a human's look, by kind: sanctions_hit (declined 93), sanctions_review (passed), "
            "fraud_score (declined 59 at the model's decline threshold, else passed), aml_* (passed)",
        )
        self.kyc_declines = Counter(
            "switch_kyc_declines",
            "Authorizations declined 57 for a KYC cap of their holder's tier, by cap: per_transaction, daily, "
            "yearly, lifetime",
        )
        self.drift_alarms = Counter(
            "switch_risk_drift_alarms",
            "Changes the fraud model's drift detectors found, by signal (score_mean, decline_rate) and direction",
        )
        self.challenger = Counter(
            "switch_risk_challenger",
            "Payments scored by the live fraud model and its challenger in shadow, by what each model's "
            "score does at its own thresholds: live and challenger, each pass, alert or decline",
        )
        self.policy_reloads = Counter(
            "switch_policy_reloads",
            "Risk policy bundle reloads (SIGHUP) by outcome: swapped, unchanged, refused (the old one kept)",
        )
        self.sanctions_refreshes = Counter(
            "switch_sanctions_refreshes",
            "Sanctions list refreshes by outcome: swapped (a new version served), unchanged, failed (the old kept)",
        )
        self._metrics: list[Metric] = [
            self.authorizations,
            self.replays,
            self.shed,
            self.batch_items,
            self.batch_seconds,
            self.adapter_seconds,
            self.state_store_events,
            self.reversals,
            self.returns,
            self.risk_alerts,
            self.kyc_declines,
            self.drift_alarms,
            self.challenger,
            self.policy_reloads,
            self.sanctions_refreshes,
        ]

    def gauge(self, name: str, help: str, read: Callable[[], Iterable[tuple[Labels, float]]]) -> None:
        """A value read when scraped (queue depth, breaker states)."""
        self._metrics.append(Gauge(name, help, read))

    def render(self) -> str:
        lines = []
        for metric in self._metrics:
            lines.append(f"# HELP {metric.name} {metric.help}")
            lines.append(f"# TYPE {metric.name} {_TYPES[type(metric)]}")
            for name, labels, value in metric.samples():
                lines.append(f"{name}{_labels(labels)} {_number(value)}")
        return "\n".join(lines) + "\n"


async def serve(metrics: SwitchMetrics, host: str, port: int) -> asyncio.Server:
    """GET /metrics answers the text format; anything else is a 404."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=5.0)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
            writer.close()
            return
        path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b""
        if request.startswith(b"GET ") and path.split(b"?")[0] == b"/metrics":
            body, status = metrics.render().encode(), b"200 OK"
        else:
            body, status = b"not found\n", b"404 Not Found"
        writer.write(
            b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n" + body
        )
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, host, port, limit=_READ_LIMIT)
    log.info("metrics on http://%s:%d/metrics", host, server.sockets[0].getsockname()[1])
    return server


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    inner = ",".join(f'{key}="{_escape(value)}"' for key, value in labels)
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
