"""The standard sizing run: one command starts a switch, loads it with Locust, stops it, sums up.

    .venv/bin/python loadtests/sizing.py [--stores embedded|production] [--users 20]
        [--run-time 15] [--processes -1] [--batch-size 100] [--out loadtests/reports/latest]
        [--real-routes] [--tls-dir DIR] [UserClass ...]

1. Starts `python -m switch serve` on a free loopback port:
   - embedded (default): memory + SQLite in a temporary folder;
   - production: this machine's Redis and PostgreSQL (SWITCH_REDIS_URL /
     SWITCH_POSTGRES_DSN, default redis://127.0.0.1:6379/0 and
     postgresql://postgres@127.0.0.1:5432/test) in a fresh schema and key prefix,
     removed at the end.
   Routes are the in-process simulated issuer, so the run measures the switch, not the
   network simulators (--real-routes: the embedded default's ISO 8583 / ISO 20022
   simulators instead). Velocity limits are set far above what a run reaches.
   --tls-dir DIR (a folder made by `switch tls init`): the switch serves mutual TLS with
   DIR's server certificate and grants DIR's client identity what the scenarios call
   ([[security.callers]]); Locust's users connect with DIR's client certificate.
2. Waits until its health service says SERVING.
3. Runs Locust headless with every scenario of loadtests/locustfile.py (or the named
   user classes): --users users, all spawned in the first second, for --run-time
   seconds, --processes worker processes (-1: one per core; 0: a single process), CSV
   and HTML reports in --out (switch_stats.csv, switch_failures.csv, switch.html, ...).
4. Stops the switch (SIGTERM: it drains), prints one row per scenario and exits 1 when
   any request failed, Locust failed, or no authorization was answered.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

if not __package__:  # run as a script: loadtests/ is sys.path[0], the repository is not on it
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from loadtests import harness, servers, stores, tables

ROOT = harness.ROOT
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
DEFAULT_OUT = ROOT / "loadtests" / "reports" / "latest"
REPORT_PREFIX = "switch"  # switch_stats.csv, switch_failures.csv, switch.html, ...
REDIS_URL = os.environ.get("SWITCH_REDIS_URL", harness.DEFAULT_REDIS_URL)
POSTGRES_DSN = os.environ.get("SWITCH_POSTGRES_DSN", harness.DEFAULT_POSTGRES_DSN)

# The routes carry an explicit option so they differ from the built-in defaults: routes
# equal to the defaults would be swapped for the network simulators on the embedded store.
SIMULATED_ROUTES = """
[routes.card]
adapter = "simulated"
options = { latency_ms = 0 }

[routes.instant]
adapter = "simulated"
options = { latency_ms = 0 }
"""

# --- the switch ----------------------------------------------------------------------------------


@contextlib.contextmanager
def running_switch(
    store_set: str = "embedded", real_routes: bool = False, tls_dir: Path | None = None
) -> Iterator[str]:
    """A switch on a free loopback port, isolated in a temporary folder (and, for production,
    a fresh PostgreSQL schema and Redis key prefix, dropped afterwards); yields its target.
    With tls_dir it serves mutual TLS with that folder's files (and admits its client)."""
    tls_config = ""
    if tls_dir is not None:
        from switch.cli.demo.tls import TlsFolder

        tls = TlsFolder.open(tls_dir)
        tls_dir, tls_config = tls.path, tls.server_toml()
    folder = Path(tempfile.mkdtemp(prefix="switch-sizing-"))
    unique = secrets.token_hex(4)
    schema, prefix = f"sizing_{unique}", f"sizing:{unique}"
    config = folder / "switch.toml"
    config.write_text(
        'log_level = "WARNING"\n'
        + ("" if real_routes else SIMULATED_ROUTES)
        + harness.VELOCITY_LIMITS
        + f'\n[tokenization]\nactive_key = "k1"\nkeys = {{ k1 = "{secrets.token_hex(32)}" }}\n'
        + tls_config
    )
    env = harness.clean_env()
    if store_set == "production":
        env |= harness.production_env(REDIS_URL, POSTGRES_DSN, schema, prefix, folder)
        if tls_config:
            del env["SWITCH_PLAINTEXT"]  # [server.tls] instead
    elif store_set == "embedded":
        env["SWITCH_SQLITE_PATH"] = str(folder / "journal.sqlite3")
    else:
        raise ValueError(f"stores: embedded or production, not {store_set!r}")
    try:
        switch = servers.switch(config, env, folder / "switch.log", tls_dir=tls_dir)
        with servers.serving(switch) as target:
            yield target
    finally:
        if store_set == "production":
            stores.drop_state(REDIS_URL, POSTGRES_DSN, schema, prefix)
        shutil.rmtree(folder, ignore_errors=True)


# --- Locust ----------------------------------------------------------------------------------------


def run_locust(
    target: str,
    out: Path,
    *,
    users: int,
    run_time_s: float,
    processes: int = 0,
    batch_size: int = 100,
    user_classes: Sequence[str] = (),
    extra: Sequence[str] = (),
    tls_dir: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Locust headless against target, reports in out/switch_*; its exit status and output.
    tls_dir: the users connect over mutual TLS with that folder's client files."""
    out.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--host",
        target,
        "--users",
        str(users),
        "--spawn-rate",
        str(users),
        "--run-time",
        f"{run_time_s:g}s",
        "--batch-size",
        str(batch_size),
        "--csv",
        str(out / REPORT_PREFIX),
        "--html",
        str(out / f"{REPORT_PREFIX}.html"),
        "--only-summary",
        "--loglevel",
        "WARNING",
        *(["--processes", str(processes)] if processes else []),
        *(["--tls-dir", str(tls_dir)] if tls_dir is not None else []),
        *extra,
        *user_classes,
    ]
    # Locust stops at --run-time; the margin covers start-up, forking and the reports.
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=run_time_s + 90, check=False)


@dataclass(frozen=True)
class StatsRow:
    kind: str  # Locust's request_type: grpc (calls), auth (authorizations), decline, check
    name: str
    requests: int
    failures: int
    per_s: float
    p50_ms: float
    p99_ms: float

    @property
    def scenario(self) -> str:
        return self.name.split(" ", 1)[0]


def read_stats(out: Path) -> list[StatsRow]:
    """The per-name rows of out/switch_stats.csv (the Aggregated row left out)."""
    with (out / f"{REPORT_PREFIX}_stats.csv").open(newline="") as source:
        return [
            StatsRow(
                kind=row["Type"],
                name=row["Name"],
                requests=int(row["Request Count"]),
                failures=int(row["Failure Count"]),
                per_s=float(row["Requests/s"]),
                p50_ms=_number(row["50%"]),
                p99_ms=_number(row["99%"]),
            )
            for row in csv.DictReader(source)
            if row["Name"] != "Aggregated"
        ]


def read_exceptions(out: Path) -> int:
    """How many exceptions the users' tasks raised (out/switch_exceptions.csv): bugs, never load."""
    path = out / f"{REPORT_PREFIX}_exceptions.csv"
    if not path.exists():
        return 0
    with path.open(newline="") as source:
        return sum(int(row["Count"]) for row in csv.DictReader(source))


def _number(cell: str) -> float:
    return float(cell) if cell not in ("", "N/A") else 0.0


@dataclass(frozen=True)
class ScenarioSummary:
    scenario: str
    calls_per_s: float
    authorizations: int
    authorizations_per_s: float
    declined: int
    failures: int
    p50_ms: float  # how long an authorization waited for its answer
    p99_ms: float


def summarize(rows: Sequence[StatsRow]) -> list[ScenarioSummary]:
    summaries = []
    for scenario in dict.fromkeys(row.scenario for row in rows):
        mine = [row for row in rows if row.scenario == scenario]
        auth = next((row for row in mine if row.kind == "auth"), None)
        summaries.append(
            ScenarioSummary(
                scenario=scenario,
                calls_per_s=sum(row.per_s for row in mine if row.kind == "grpc"),
                authorizations=auth.requests - auth.failures if auth else 0,
                authorizations_per_s=auth.per_s if auth else 0.0,
                declined=sum(row.requests for row in mine if row.kind == "decline"),
                failures=sum(row.failures for row in mine),
                p50_ms=auth.p50_ms if auth else 0.0,
                p99_ms=auth.p99_ms if auth else 0.0,
            )
        )
    return summaries


def format_table(summaries: Sequence[ScenarioSummary]) -> str:
    header = ("scenario", "calls/s", "auth/s", "declined", "failures", "p50 ms/auth", "p99 ms/auth")
    total = ScenarioSummary(
        "total",
        sum(s.calls_per_s for s in summaries),
        sum(s.authorizations for s in summaries),
        sum(s.authorizations_per_s for s in summaries),
        sum(s.declined for s in summaries),
        sum(s.failures for s in summaries),
        0.0,
        0.0,
    )
    rows = [
        (
            s.scenario,
            f"{s.calls_per_s:,.1f}",
            f"{s.authorizations_per_s:,.1f}",
            f"{s.declined / s.authorizations:.0%}" if s.authorizations else "-",
            str(s.failures),
            f"{s.p50_ms:,.0f}" if s is not total else "",
            f"{s.p99_ms:,.0f}" if s is not total else "",
        )
        for s in (*summaries, total)
    ]
    return "\n".join(tables.aligned(header, rows, left=1, total=True))


def locust_processes(processes: int) -> int:
    """The Locust processes that generate load for --processes: -1 forks one per core
    (Locust's own rule, os.cpu_count()), 0 forks none, so one process runs the users."""
    if processes == -1:
        return os.cpu_count() or 1
    return max(processes, 1)


# --- the command -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else None)
    parser.add_argument("--stores", choices=("embedded", "production"), default="embedded")
    parser.add_argument("--users", type=int, default=20, help="simulated users (one channel each)")
    parser.add_argument("--run-time", type=float, default=15.0, help="seconds of load")
    parser.add_argument("--processes", type=int, default=-1, help="Locust workers: -1 one per core, 0 none")
    parser.add_argument("--batch-size", type=int, default=100, help="items per AuthorizeBatch / AuthorizeStream")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the CSV and HTML reports")
    parser.add_argument("--real-routes", action="store_true", help="route through the ISO 8583/20022 simulators")
    parser.add_argument(
        "--tls-dir", type=Path, help="a `switch tls init` folder: mutual TLS between Locust and the switch"
    )
    parser.add_argument("user_classes", nargs="*", help="only these user classes (default: all)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.users < 1 or args.run_time <= 0 or args.batch_size < 1:
        raise SystemExit("--users, --run-time and --batch-size must be positive")
    started = time.monotonic()
    tls_dir = servers.tls_folder(args.tls_dir)
    transport = ", mutual TLS" if tls_dir else ""
    with running_switch(args.stores, args.real_routes, tls_dir) as target:
        print(
            f"# switch ({args.stores}{transport}) serving on {target}; Locust: {args.users} users, {args.run_time:g} s"
        )
        done = run_locust(
            target,
            args.out,
            users=args.users,
            run_time_s=args.run_time,
            processes=args.processes,
            batch_size=args.batch_size,
            user_classes=args.user_classes,
            tls_dir=tls_dir,
        )
    summaries = summarize(read_stats(args.out))
    print(
        f"sizing: {args.stores} stores, {'network simulators' if args.real_routes else 'simulated routes'}"
        f"{transport}, "
        f"{args.users} users, {args.run_time:g} s, Locust processes {locust_processes(args.processes)}, "
        f"batch {args.batch_size}, {os.cpu_count()} CPUs, {time.monotonic() - started:.0f} s in all"
    )
    print(format_table(summaries))
    print(f"reports: {args.out / (REPORT_PREFIX + '_stats.csv')}, {args.out / (REPORT_PREFIX + '.html')}")
    failures = sum(s.failures for s in summaries)
    exceptions = read_exceptions(args.out)
    answered = sum(s.authorizations for s in summaries)
    ok = not failures and not exceptions and answered and done.returncode == 0
    if not ok:
        print(done.stderr[-4000:], file=sys.stderr)
        print(
            f"FAILED: {failures} failed requests, {exceptions} task exceptions, {answered} authorizations, "
            f"Locust exit status {done.returncode} (see {args.out}/{REPORT_PREFIX}_failures.csv, _exceptions.csv)",
            file=sys.stderr,
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
