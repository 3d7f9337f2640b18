"""The capacity benchmark's figures (loadtests/capacity.py): one run's result from its load
generator's report, the table of medians, the capacity issue's targets and the markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests import tables

# The capacity issue's targets for row (a) on Redis + PostgreSQL.
TARGET_UNARY_RATIO = 0.6
TARGET_BULK_RATE = 50_000.0
TARGET_P99_MS = 50.0
# Shorter runs are not judged against the targets: in a --quick run (1.5 s) warm-up and
# ramp-down dominate, and the echo and the switch are measured at rates they do not hold.
MIN_TARGET_RUN_S = 3.0


@dataclass(frozen=True)
class Measured:
    """A target as the report names it."""

    key: str  # "echo", "embedded-a", ...
    label: str  # "embedded (a) simulated", ...
    has_sim: bool  # row (b): its simulator's CPU is a column of its own
    baseline: str = "echo"  # the key of the echo its "vs echo" is against (the mTLS rows': "echo-tls")


@dataclass(frozen=True)
class RunResult:
    target: str
    mode: str
    phase: str  # "max" (closed loop) or "load" (open loop at --load of the max)
    offered_per_s: float  # open loop: the scheduled rate; closed loop: 0
    authorizations_per_s: float
    p50_ms: float
    p99_ms: float
    calls: int
    authorizations: int
    failed_calls: int
    item_errors: int
    declined: int
    count_bound: bool
    server_cpu_us: float  # server CPU time per authorization (the switch's process tree)
    server_cores: float  # server CPU time / wall time (1.0 = one core busy)
    sim_cores: float  # the ISO 8583 simulator's CPU time / wall time
    store_cores: float  # PostgreSQL's and Redis's CPU time / wall time (this machine's, all of it)
    client_cores: float  # the load generator's CPU time / wall time
    failures: dict[str, int] = field(default_factory=dict)


def run_result(target: str, mode: str, phase: str, rate: float, report: dict[str, Any]) -> RunResult:
    """One run's figures from the load generator's report, with the CPU the watched
    processes spent ("server", "sim", "stores") over "window_s" seconds."""
    elapsed = report["elapsed"] or 1e-9
    window = report["window_s"] or 1e-9
    authorizations = report["authorizations"]
    # CPU read from /proc twice: a process outside the trees' reach (one that exited
    # unreaped) can make the second reading smaller. Never below zero.
    cpu = {name: max(0.0, float(seconds)) for name, seconds in report["cpu_s"].items()}
    return RunResult(
        target=target,
        mode=mode,
        phase=phase,
        offered_per_s=rate,
        authorizations_per_s=authorizations / elapsed,
        p50_ms=report["p50_ms"],
        p99_ms=report["p99_ms"],
        calls=report["calls"],
        authorizations=authorizations,
        failed_calls=sum(report["failed_calls"].values()),
        item_errors=report["item_errors"],
        declined=report["declined"],
        count_bound=report["count_bound"],
        server_cpu_us=cpu["server"] * 1e6 / max(authorizations, 1),
        server_cores=cpu["server"] / window,
        sim_cores=cpu["sim"] / window,
        store_cores=cpu["stores"] / window,
        client_cores=max(0.0, report["client_cpu_s"]) / elapsed,
        failures=dict(report["failed_calls"]),
    )


def meta(args: argparse.Namespace, argv: Sequence[str]) -> dict[str, Any]:
    """The run's machine, versions, command and settings, for the table's heading."""
    import google.protobuf
    import grpc

    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from importlib.metadata import PackageNotFoundError, version

    try:
        uvloop_version = version("uvloop")
    except PackageNotFoundError:  # pragma: no cover - uvloop is a dependency
        uvloop_version = "-"
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(),
        "grpcio": grpc.__version__,
        "protobuf": google.protobuf.__version__,
        "uvloop": uvloop_version,
        "command": "python loadtests/capacity.py" + (" " + shlex.join(argv) if argv else ""),
        "duration_s": args.duration,
        "warmup_s": args.warmup,
        "repeats": args.repeats,
        "concurrency": {
            "unary_calls": args.concurrency,
            "batch_calls": args.batch_concurrency,
            "batch_items": args.batch_items,
            "streams": args.streams,
            "stream_window": args.stream_window,
            "channels": args.channels,
        },
        "load_share": args.load,
    }


def mode_label(mode: str, batch_items: int) -> str:
    return f"batch x{batch_items}" if mode == "batch" else mode


def median_rate(results: Sequence[RunResult], target: str, mode: str) -> float:
    runs = [r.authorizations_per_s for r in results if r.target == target and r.mode == mode and r.phase == "max"]
    return statistics.median(runs) if runs else 0.0


def build_report(
    meta: dict[str, Any], modes: Sequence[str], targets: Sequence[Measured], results: Sequence[RunResult]
) -> dict[str, Any]:
    """Per target and mode, the medians of the runs; the notes; the targets judged."""
    batch_items = meta["concurrency"]["batch_items"]
    rows: list[dict[str, Any]] = []
    notes: list[str] = []
    for mode in modes:
        rates: dict[str, float] = {}
        for target in targets:
            runs = [r for r in results if r.target == target.key and r.mode == mode and r.phase == "max"]
            loaded = [r for r in results if r.target == target.key and r.mode == mode and r.phase == "load"]
            if not runs:
                continue
            rate = rates[target.key] = statistics.median(r.authorizations_per_s for r in runs)
            echo_rate = rates.get(target.baseline, 0.0)
            row = _row(target, mode, rate=rate, echo_rate=echo_rate, runs=runs, loaded=loaded)
            rows.append(row)
            notes += _notes(f"{target.label} / {mode_label(mode, batch_items)}", target, row, runs, loaded)
    return {"meta": meta, "rows": rows, "targets": check_targets(rows, meta["duration_s"]), "notes": notes}


def _median(values: Sequence[float], digits: int) -> float | None:
    return round(statistics.median(values), digits) if values else None


def _row(
    target: Measured,
    mode: str,
    *,
    rate: float,
    echo_rate: float,
    runs: Sequence[RunResult],
    loaded: Sequence[RunResult],
) -> dict[str, Any]:
    every = (*runs, *loaded)
    answered = sum(r.authorizations for r in every)
    declined = sum(r.declined for r in every)
    return {
        "target": target.key,
        "label": target.label,
        "mode": mode,
        "authorizations_per_s": round(rate, 1),
        "p50_ms": _median([r.p50_ms for r in runs], 3),
        "p99_ms": _median([r.p99_ms for r in runs], 3),
        "p99_at_load_ms": _median([r.p99_ms for r in loaded], 3),
        "p50_at_load_ms": _median([r.p50_ms for r in loaded], 3),
        "offered_at_load_per_s": _median([r.offered_per_s for r in loaded], 1),
        "achieved_at_load_per_s": _median([r.authorizations_per_s for r in loaded], 1),
        "vs_echo": round(rate / echo_rate, 4) if echo_rate else None,
        "server_cpu_us_per_auth": _median([r.server_cpu_us for r in runs], 1),
        "server_cores": _median([r.server_cores for r in runs], 3),
        "sim_cores": _median([r.sim_cores for r in runs], 3) if target.has_sim else None,
        "store_cores": _median([r.store_cores for r in runs], 3),
        "client_cores": _median([r.client_cores for r in runs], 3),
        "runs_per_s": [round(r.authorizations_per_s, 1) for r in runs],
        "calls": sum(r.calls for r in runs),  # of the max-rate runs (stream: requests)
        "authorizations": sum(r.authorizations for r in runs),
        "failed_calls": sum(r.failed_calls for r in every),
        "item_errors": sum(r.item_errors for r in every),
        "declined_share": round(declined / answered, 4) if answered else None,
    }


def _notes(
    name: str, target: Measured, row: dict[str, Any], runs: Sequence[RunResult], loaded: Sequence[RunResult]
) -> list[str]:
    notes = []
    if any(r.count_bound for r in runs):
        notes.append(f"{name}: used up its pre-built requests before the time ran out")
    failures: dict[str, int] = {}
    for r in (*runs, *loaded):
        for code, count in r.failures.items():
            failures[code] = failures.get(code, 0) + count
    if failures:
        notes.append(f"{name}: failed calls {failures}")
    if row["item_errors"]:
        notes.append(f"{name}: {row['item_errors']} authorizations answered with an error")
    share = row["declined_share"]
    if target.key != target.baseline and share is not None and share > 0.25:
        notes.append(f"{name}: {share:.0%} declined (the load's mix declines about 10%)")
    for r in loaded:
        if r.authorizations_per_s < 0.95 * r.offered_per_s:
            notes.append(
                f"{name}: open loop fell behind its schedule "
                f"({r.authorizations_per_s:,.0f} of {r.offered_per_s:,.0f} auth/s offered)"
            )
    if row["client_cores"] >= 0.9:
        notes.append(f"{name}: the load generator was near one full core ({row['client_cores']:.2f})")
    return notes


def check_targets(rows: Sequence[dict[str, Any]], duration_s: float) -> list[dict[str, Any]]:
    """The capacity issue's targets, for row (a) on Redis + PostgreSQL; none is judged
    (holds None, with the reason) when the runs were shorter than MIN_TARGET_RUN_S."""
    found = {(row["target"], row["mode"]): row for row in rows}
    checks: list[dict[str, Any]] = []
    too_short = duration_s < MIN_TARGET_RUN_S
    reason = f"run too short ({duration_s:g} s per run; at least {MIN_TARGET_RUN_S:g} s)" if too_short else None

    def add(what: str, goal: str, value: float | None, holds: bool | None, shown: str) -> None:
        if too_short:
            holds = None
        checks.append(
            {"what": what, "target": goal, "value": value, "holds": holds, "shown": shown, "not_measured": reason}
        )

    prod = "production-a"
    unary = found.get((prod, "unary"))
    if unary is not None:
        ratio = unary["vs_echo"]
        add(
            "unary Authorize, production (a), vs bare echo",
            f">= {TARGET_UNARY_RATIO}x",
            ratio,
            None if ratio is None else ratio >= TARGET_UNARY_RATIO,
            "-" if ratio is None else f"{ratio:.3f}x",
        )
    for mode, rpc in (("batch", "AuthorizeBatch"), ("stream", "AuthorizeStream")):
        row = found.get((prod, mode))
        if row is not None:
            rate = row["authorizations_per_s"]
            add(
                f"{rpc}, production (a), authorizations/s",
                f">= {TARGET_BULK_RATE:,.0f}",
                rate,
                rate >= TARGET_BULK_RATE,
                f"{rate:,.0f}",
            )
    for mode in ("unary", "batch", "stream"):
        row = found.get((prod, mode))
        if row is not None and row["p99_at_load_ms"] is not None:
            p99 = row["p99_at_load_ms"]
            add(
                f"p99 at 80% of max, production (a), {mode}",
                f"< {TARGET_P99_MS:g} ms",
                p99,
                p99 < TARGET_P99_MS,
                f"{p99:.1f} ms{_echo_p99(found.get(('echo', mode)))}",
            )
    return checks


def _echo_p99(echo: dict[str, Any] | None) -> str:
    """The bare echo's own p99 at 80% of its max in the same run: what this machine
    and load generator allow a server that does nothing."""
    if echo is None or echo["p99_at_load_ms"] is None:
        return ""
    return f" (bare echo in this run: {echo['p99_at_load_ms']:.1f} ms)"


def _number(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


HEADER = (
    "row",
    "mode",
    "auth/s",
    "p50 ms",
    "p99 ms",
    "p99 @80% ms",
    "vs echo",
    "server CPU µs/auth",
    "server cores",
    "sim cores",
    "stores cores",
    "runs (auth/s)",
)


def _tls_note(rows: Sequence[dict[str, Any]]) -> list[str]:
    if not any(row["target"].endswith("-tls") for row in rows):
        return []
    return [
        "",
        "mTLS rows: the server serves mutual TLS (`--tls-dir`) and every client channel presents a client "
        'certificate; their "vs echo" is against the echo over mTLS, and the plaintext row of the same '
        "server shows what TLS costs it.",
    ]


def render_markdown(report: dict[str, Any]) -> str:
    meta = report["meta"]
    c = meta["concurrency"]
    lines = [
        f"### Capacity, {meta['date']}",
        "",
        f"- machine: {meta['cpus']} CPUs, {meta['cpu_model']} (load average at start "
        f"{', '.join(str(x) for x in meta['load_average'])})",
        f"- Python {meta['python']}, grpcio {meta['grpcio']}, protobuf {meta['protobuf']}, uvloop {meta['uvloop']}",
        f"- command: `{meta['command']}`",
        f"- {meta['duration_s']:g} s per run (+{meta['warmup_s']:g} s warm-up), median of {meta['repeats']}; "
        f"unary {c['unary_calls']} calls in flight; batch {c['batch_calls']} calls x {c['batch_items']} items; "
        f"stream {c['streams']} streams x {c['stream_window']} requests in flight; {c['channels']} channels; "
        f"open loop at {meta['load_share']:.0%} of each row's max rate; {meta.get('total_s', 0):g} s in all",
        "",
    ]
    cells = [
        [
            row["label"],
            mode_label(row["mode"], c["batch_items"]),
            _number(row["authorizations_per_s"]),
            _number(row["p50_ms"], 2),
            _number(row["p99_ms"], 2),
            _number(row["p99_at_load_ms"], 2),
            "-" if row["vs_echo"] is None else f"{row['vs_echo']:.3f}",
            _number(row["server_cpu_us_per_auth"], 1),
            _number(row["server_cores"], 2),
            _number(row["sim_cores"], 2),
            _number(row.get("store_cores"), 2),
            ", ".join(f"{x:,.0f}" for x in row["runs_per_s"]),
        ]
        for row in report["rows"]
    ]
    lines += tables.markdown(HEADER, cells, "llrrrrrrrrrl")
    lines += [
        "",
        "Latency is per call (batch: per call of all its items; stream: per request, write to answer); "
        "p99 @80% is an open-loop run at 80% of the row's max rate, timed from each scheduled send. "
        "Server CPU is the switch's process tree (the echo server's on echo rows); sim cores is the "
        "ISO 8583 simulator's process, not counted in the switch's; stores cores is PostgreSQL's and "
        "Redis's on this machine while the row ran (the embedded rows' SQLite is inside the switch).",
        *_tls_note(report["rows"]),
        "",
        "Targets (row (a) on Redis + PostgreSQL):",
        "",
    ]
    if not report["targets"]:
        lines.append("- none measured (run with --stores production and --rows a)")
    for check in report["targets"]:
        verdict = {True: "holds", False: "MISSED", None: "not measured"}[check["holds"]]
        if check.get("not_measured"):
            verdict = f"not measured: {check['not_measured']}"
        lines.append(f"- {check['what']}: {check['shown']} (target {check['target']}): **{verdict}**")
    if report["notes"]:
        lines += ["", "Notes:", ""]
        lines += [f"- {note}" for note in report["notes"]]
    return "\n".join(lines)
