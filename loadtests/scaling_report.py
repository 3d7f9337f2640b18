"""The scaling benchmark's figures (loadtests/scaling.py): one point per worker count,
target and mode, the report as JSON and its table."""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from loadtests import tables

MODES = ("batch", "unary")
BATCH_ITEMS = 100


@dataclass
class Point:
    workers: int
    target: str  # echo | switch
    mode: str  # batch | unary
    clients: int
    channels: int
    in_flight: int
    authorizations_per_s: float = 0.0
    calls: int = 0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    failed_calls: dict[str, int] = field(default_factory=dict)
    item_errors: int = 0
    sampled_approved: int = 0
    sampled_declined: int = 0
    server_cores: float = 0.0  # server CPU seconds / measured second (all its processes)
    postgres_cores: float = 0.0  # PostgreSQL likewise (every backend), when this run started it
    redis_cores: float = 0.0  # Redis likewise, when this run started it (every primary of a cluster)
    redis_busiest_cores: float = 0.0  # a cluster's busiest primary alone
    client_cpu_max: float = 0.0  # the busiest client process's CPU / wall (1.0 = one core)
    client_cpu_mean: float = 0.0
    error: str = ""


def report(
    args: Any, points: Sequence[Point], notes: Sequence[str], total: float, *, owned: bool, cluster: int
) -> dict[str, Any]:
    import grpc

    return {
        "meta": {
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "machine": platform.node(),
            "kernel": platform.release(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "grpcio": grpc.__version__,
            "cext": _cext_active(),
            "stores": "started by this run" if owned else "given",
            "redis_cluster": cluster,
            "duration_s": args.duration,
            "warmup_s": args.warmup,
            "batch_items": BATCH_ITEMS,
            "command": " ".join(sys.argv),
            "extra_config": args.extra_config,
            "tls": bool(getattr(args, "tls_dir", None)),  # every point over mutual TLS
            "total_s": round(total, 1),
        },
        "points": [asdict(point) for point in points],
        "notes": list(notes),
    }


def _cext_active() -> bool:
    try:
        from switch import native
    except ImportError:
        return False
    return native.active()


def progress(point: Point, ready_s: float) -> str:
    text = (
        f"# {point.mode:5} {point.target:6} x{point.workers:<2} {point.authorizations_per_s:11,.0f} auth/s  "
        f"p50 {point.p50_ms:7.2f} ms  p99 {point.p99_ms:7.2f} ms  server {point.server_cores:5.2f} cores  "
        f"pg {point.postgres_cores:4.2f} redis {point.redis_cores:4.2f}  "
        f"clients {point.clients} (max {point.client_cpu_max:4.0%})  "
        f"ready in {ready_s:.1f} s"
    )
    if point.failed_calls:
        text += f"  FAILED {point.failed_calls}"
    if point.item_errors:
        text += f"  item errors {point.item_errors}"
    return text


HEADER = (
    "workers",
    "echo auth/s",
    "switch auth/s",
    "ratio",
    "switch p50 ms",
    "switch p99 ms",
    "echo p50/p99 ms",
    "sw x/1w",
    "echo x/1w",
    "sw cores",
    "pg/redis cores",
    "clients (max cpu)",
)


def render_table(report: dict[str, Any]) -> str:
    meta = report["meta"]
    points = report["points"]
    lines = [
        f"scaling: {meta['cpus']} CPUs, kernel {meta['kernel']}, Python {meta['python']}, grpcio {meta['grpcio']}, "
        f"cext {'on' if meta['cext'] else 'OFF'}, stores {meta['stores']}{_cluster_note(meta)}"
        f"{', mutual TLS (echo and switch)' if meta.get('tls') else ''}; "
        f"{meta['duration_s']:g} s per point "
        f"after {meta['warmup_s']:g} s warm-up; {meta['total_s']:.0f} s in all",
    ]
    extra = " ".join(line.strip() for line in meta.get("extra_config", "").splitlines() if line.strip())
    if extra:
        lines.append(f"switch configuration, added: {extra}")
    for mode in MODES:
        rows = _rows(meta, [p for p in points if p["mode"] == mode])
        if rows:
            lines += ["", f"{mode} x{BATCH_ITEMS}" if mode == "batch" else "unary Authorize"]
            lines += tables.aligned(HEADER, rows)
    for point in points:
        problems = []
        if point["failed_calls"]:
            problems.append(f"failed calls {point['failed_calls']}")
        if point["item_errors"]:
            problems.append(f"{point['item_errors']} item errors")
        if point["error"]:
            problems.append(point["error"][:300])
        if point["client_cpu_max"] > 0.9:
            problems.append(f"a client process at {point['client_cpu_max']:.0%} CPU: may be client-bound")
        if problems:
            lines.append(f"note: {point['mode']} {point['target']} x{point['workers']}: " + "; ".join(problems))
    lines += [f"note: {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


def _rows(meta: dict[str, Any], points: Sequence[dict[str, Any]]) -> list[tuple[str, ...]]:
    """One row per worker count: echo and switch side by side, speed-ups over one worker."""
    owned = meta["stores"] == "started by this run"  # else their CPU is not measured
    cluster = bool(meta.get("redis_cluster"))
    rows: list[tuple[str, ...]] = []
    base: dict[str, float] = {}
    for count in sorted({p["workers"] for p in points}):
        here = [p for p in points if p["workers"] == count and not p["error"]]
        echo = next((p for p in here if p["target"] == "echo"), None)
        sw = next((p for p in here if p["target"] == "switch"), None)
        for name, point in (("echo", echo), ("switch", sw)):
            if point and count == 1:
                base[name] = point["authorizations_per_s"]
        echo_rate = echo["authorizations_per_s"] if echo else 0.0
        sw_rate = sw["authorizations_per_s"] if sw else 0.0
        rows.append(
            (
                str(count),
                f"{echo_rate:,.0f}" if echo else "-",
                f"{sw_rate:,.0f}" if sw else "-",
                f"{sw_rate / echo_rate:.3f}" if echo_rate and sw else "-",
                f"{sw['p50_ms']:.2f}" if sw else "-",
                f"{sw['p99_ms']:.2f}" if sw else "-",
                f"{echo['p50_ms']:.2f}/{echo['p99_ms']:.2f}" if echo else "-",
                f"{sw_rate / base['switch']:.2f}" if sw and base.get("switch") else "-",
                f"{echo_rate / base['echo']:.2f}" if echo and base.get("echo") else "-",
                f"{sw['server_cores']:.2f}" if sw else "-",
                _store_cores(sw, cluster=cluster) if sw and owned else "-",
                f"{sw['clients']} ({max(sw['client_cpu_max'], echo['client_cpu_max'] if echo else 0.0):.0%})"
                if sw
                else "-",
            )
        )
    return rows


def _cluster_note(meta: dict[str, Any]) -> str:
    primaries = meta.get("redis_cluster", 0)
    return f" (Redis: a cluster of {primaries} primaries; redis cores: all, then the busiest)" if primaries else ""


def _store_cores(point: dict[str, Any], *, cluster: bool) -> str:
    cores = f"{point['postgres_cores']:.2f}/{point['redis_cores']:.2f}"
    return f"{cores} ({point['redis_busiest_cores']:.2f})" if cluster else cores
