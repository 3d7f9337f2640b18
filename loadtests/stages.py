"""Where an authorization's CPU goes: the production pipeline, stage by stage, and the stores.

    .venv/bin/python loadtests/stages.py [--batch 256] [--batches 200] [--quick]
        [--config loadtests/capacity.toml] [--redis-cluster N] [--merchants N] [--json PATH]

The capacity benchmark (capacity.py) says how fast the switch is; this says why.
It builds the switch's authorization pipeline in this process, exactly as the
server's composition root does (capacity.toml: velocity, fees with shares,
tokenization, the in-process simulated issuer) on this machine's Redis and
PostgreSQL, and runs pre-built batches (the benchmarks' requests, loadtests/payloads.py)
through it one at a time, with no gRPC transport. Run serially, each stage's process
CPU time is its own:

    parse           AuthorizeBatchRequest bytes -> domain Authorizations (switch.api.convert)
    pipeline stages tokenize, claim (Redis), journal read, route, price, intents + adapters,
                    commit (journal + Redis completion), timed around each call
    answer          results -> AuthorizeBatchResponse bytes

and the stores' own CPU (redis-server; the PostgreSQL postmaster and all its
processes) is read from /proc over the same batches. With --redis-cluster N the
state store runs on a Redis Cluster of N primaries that the script starts on this
machine (loadtests/stores.py), and the table adds the busiest primary's
share: what sizes a cluster, since each primary runs its scripts on one thread.
A merchant's idempotency keys and counters share its slot, so --merchants 1 (the
requests spread over 16 merchants by default) shows one merchant's own bound. Every figure is CPU
microseconds per authorization. The table (loadtests/stages_report.py) ends with the
ceilings they imply: one switch process can do no more than 1e6 / (its µs)
authorizations a second, and a machine of C cores running the switch and its stores
no more than C x 1e6 / (all µs), before any load generator or gRPC transport.

What the pipeline stages do not include (the gRPC transport, the micro-batcher,
the event loop's own work) is the difference between the capacity benchmark's
"server CPU µs/auth" and this table's switch total.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import inspect
import math
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson

if not __package__:  # run as a script: loadtests/ is sys.path[0], the repository is not on it
    sys.path.append(str(Path(__file__).resolve().parent.parent))

from loadtests import harness, payloads, stores
from loadtests.stages_report import PIPELINE_STAGES, render_markdown

CONFIG = Path(__file__).resolve().parent / "capacity.toml"
WARMUP_BATCHES = 5
SANCTIONS = Path(__file__).parents[1] / "tests" / "data" / "sanctions"
# What the state store's scripts call (switch.stores.redis): counted inside EVALSHA too.
SCRIPT_COMMANDS = ("set", "get", "del", "incrby", "decrby", "exists", "expire", "hmget", "hset")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.quick:
        args.batches = min(args.batches, 8)
    with (
        tempfile.TemporaryDirectory(prefix="switch-stages-") as folder,
        stores.Stores(args.redis_url, args.postgres_dsn, Path(folder), cluster=args.redis_cluster) as running,
    ):
        schema, prefix = f"stages_{secrets.token_hex(4)}", f"stages-{secrets.token_hex(4)}"
        stores.drop_state(running.redis_url, args.postgres_dsn, schema, prefix)
        try:
            import uvloop  # the server's event loop

            report = uvloop.run(_measure(args, running, Path(folder), schema=schema, prefix=prefix))
        finally:
            stores.drop_state(running.redis_url, args.postgres_dsn, schema, prefix)
    report["meta"]["command"] = "python loadtests/stages.py " + " ".join(argv if argv is not None else sys.argv[1:])
    print(render_markdown(report))
    if args.json:
        args.json.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="CPU per authorization, stage by stage, on Redis + PostgreSQL")
    parser.add_argument("--batch", type=int, default=256, help="authorizations per batch (the batcher's max_items)")
    parser.add_argument("--batches", type=int, default=200, help="measured batches")
    parser.add_argument("--quick", action="store_true", help="CI-sized: at most 8 measured batches")
    parser.add_argument("--config", type=Path, default=CONFIG, help="the switch's configuration")
    parser.add_argument(
        "--redis-cluster",
        type=int,
        default=0,
        metavar="N",
        help="start a local Redis Cluster of N (>= 3) primaries and keep the state there",
    )
    parser.add_argument("--redis-url", default=os.environ.get("SWITCH_REDIS_URL") or harness.DEFAULT_REDIS_URL)
    parser.add_argument("--postgres-dsn", default=os.environ.get("SWITCH_POSTGRES_DSN") or harness.DEFAULT_POSTGRES_DSN)
    parser.add_argument(
        "--merchants", type=_at_least_one, default=payloads.MERCHANTS, help="merchants the requests are spread over"
    )
    parser.add_argument(
        "--sanctions",
        action="store_true",
        help="screen every authorization against the test fixtures' sanctions lists, each with a holder name",
    )
    parser.add_argument(
        "--kyc",
        action="store_true",
        help="hold every card to a KYC tier's four caps (per transaction, daily, yearly, lifetime), none reached",
    )
    parser.add_argument(
        "--risk",
        action="store_true",
        help="the risk step on each payment's activity: the shipped fraud model (and its drift monitor), the AML rules",
    )
    parser.add_argument("--json", type=Path, help="also write the results here as JSON")
    return parser


def _at_least_one(text: str) -> int:
    number = int(text)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


async def _measure(
    args: argparse.Namespace, running: stores.Stores, folder: Path, *, schema: str, prefix: str
) -> dict[str, Any]:
    from switch import config
    from switch.api import convert
    from switch.cards.tokenizer import Tokenizer
    from switch.cli.main import tune_garbage_collector
    from switch.flow.pipeline import AuthorizationPipeline
    from switch.money.fees import FeeEngine
    from switch.risk.policy import CurrentPolicy
    from switch.risk.velocity import RiskRules
    from switch.server import _router, fingerprint_key, open_stores, risk_policy, token_keys
    from switch.v1 import switch_pb2 as pb

    env = harness.production_env(running.redis_url, args.postgres_dsn, schema, prefix, folder)
    if args.redis_cluster:
        env["SWITCH_REDIS_CLUSTER"] = "true"
    env["SWITCH_TOKENIZATION_KEY_FILE"] = str(harness.write_tokenization_keys(folder / "tokenization-keys.json"))
    settings = config.load(args.config, env)
    state, journal = await open_stores(settings)
    fees = FeeEngine(settings.fee_schedules, settings.fx)
    router = _router(settings, fees)
    for adapter in router.adapters:
        await adapter.start()
    screening = await _screening() if args.sanctions else None
    policy = _policy(args, settings.policy)
    pipeline = AuthorizationPipeline(
        tokenizer=Tokenizer(fingerprint_key(settings), token_keys(settings)),
        state=state,
        journal=journal,
        router=router,
        risk=RiskRules(settings.limits),
        fees=fees,
        adapter_timeout=settings.adapters.timeout_ms / 1000.0,
        screening=screening,
        policy=CurrentPolicy(risk_policy(policy, fees)),
    )
    # The collector as a served worker runs it, once its start-up is built: at Python's
    # default threshold each stage would pay for collections the switch does not make.
    tune_garbage_collector()
    cpu: dict[str, float] = {}
    for name, _ in PIPELINE_STAGES:
        setattr(pipeline, name, _timed(getattr(pipeline, name), name, cpu))

    requests = _batches(secrets.token_hex(4), args.batch, args.merchants, names=args.sanctions)
    batches = [requests.build() for _ in range(WARMUP_BATCHES + args.batches)]
    redis_pids, postgres_pids = _store_pids()
    try:
        for payload in batches[:WARMUP_BATCHES]:
            await _one_batch(pipeline, payload, pb, convert, cpu)
        cpu.clear()
        before = await _store_snapshot(redis_pids, postgres_pids, running.redis_urls)
        started = time.perf_counter()
        for payload in batches[WARMUP_BATCHES:]:
            await _one_batch(pipeline, payload, pb, convert, cpu)
        wall = time.perf_counter() - started
        after = await _store_snapshot(redis_pids, postgres_pids, running.redis_urls)
    finally:
        for adapter in router.adapters:
            await adapter.close()
        if screening is not None:
            screening.close()
        await state.close()
        await journal.close()
    items = args.batch * args.batches
    per_item = {name: seconds / items * 1e6 for name, seconds in cpu.items()}
    store_us = _stores_per_auth(before, after, items, busiest=bool(args.redis_cluster))
    return {
        "meta": {
            "kyc": args.kyc,
            "risk": args.risk,
            "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{os.cpu_count()} CPUs, {platform.processor() or platform.machine()}",
            "python": platform.python_version(),
            "batch": args.batch,
            "batches": args.batches,
            "cores": os.cpu_count() or 1,
            "redis_cluster": args.redis_cluster,
            "merchants": args.merchants,
            "wall_us_per_auth": wall / items * 1e6,
        },
        "switch_us": per_item,
        "stores_us": store_us,
    }


def _policy(args: argparse.Namespace, policy: Any) -> Any:
    """The configuration's risk policy, with what --risk and --kyc add."""
    from switch.config.fraud_model import parse_fraud_model
    from switch.risk.aml import AmlPolicy
    from switch.risk.model.model import Thresholds

    if args.risk:
        # The full risk step, every payment scored; thresholds out of reach so that the
        # benchmark's cards, each paying again and again within the hour, are not declined
        # as card testing (a score saturates at 1.0, which a threshold of 1 still declines).
        shipped = parse_fraud_model({})
        assert shipped is not None
        never = Thresholds(math.inf, math.inf)
        scoring = dataclasses.replace(shipped, model=dataclasses.replace(shipped.model, thresholds=never))
        policy = dataclasses.replace(policy, aml=AmlPolicy(), fraud_model=scoring)
    if args.kyc:
        policy = dataclasses.replace(policy, kyc=_kyc())
    return policy


def _kyc() -> Any:
    """One tier every card falls in (none is classified), with all four caps, each far
    above what a run moves: the claim reads the tier and checks and moves three totals."""
    from types import MappingProxyType

    from switch.risk.kyc import KycPolicy, TierLimits

    caps = TierLimits(per_transaction=10**9, daily=10**12, yearly=10**13, lifetime=10**14)
    return KycPolicy("standard", MappingProxyType({"standard": MappingProxyType({"USD": caps})}))


async def _screening() -> Any:
    """Screening against the sanctions fixtures the tests read (published formats)."""
    from switch.risk.sanctions.lists import ListSource
    from switch.risk.sanctions.refresh import ListRefresh
    from switch.risk.sanctions.screening import Screening, ScreeningPolicy

    screening = Screening(ScreeningPolicy())
    lists = [ListSource("ofac-csv", SANCTIONS / "ofac"), ListSource("un-xml", SANCTIONS / "un" / "consolidated.xml")]
    await ListRefresh(screening, lists).first()
    return screening


def _batches(run_id: str, size: int, merchants: int, *, names: bool = False) -> payloads.Requests:
    """AuthorizeBatchRequests of `size` fresh keys over the benchmarks' requests, the
    merchants this run's own (fresh velocity counters); names: each source with a holder name."""

    def key(n: int) -> bytes:
        # The profile's own key shape: what the switch's identifier checks cost depends on
        # it, and profiles are compared with earlier ones.
        text = f"s{run_id}-{n // size:06d}-{n % size:05d}".encode().ljust(payloads.KEY_LENGTH, b"x")
        return text[: payloads.KEY_LENGTH]

    bodies = payloads.templates(f"m{run_id}", merchants)
    if names:
        bodies = _named(bodies)
    return payloads.Requests("batch", run_id, size, bodies=bodies, key=key)


def _named(bodies: list[bytes]) -> list[bytes]:
    """The templates with a holder name on each card or account, from the sanctions bench's clean names."""
    from loadtests.sanctions_names import clean_names
    from switch.v1 import switch_pb2 as pb

    named = []
    for body, (_, name) in zip(bodies, clean_names(len(bodies), seed=7), strict=True):
        request = pb.AuthorizeRequest.FromString(body)
        source = request.card if request.HasField("card") else request.account
        source.holder_name = name[:128]
        named.append(request.SerializeToString())
    return named


def _timed(stage: Callable[..., Any], name: str, cpu: dict[str, float]) -> Callable[..., Any]:
    """stage, adding the process CPU time of each call to cpu[name]."""
    if inspect.iscoroutinefunction(stage):

        async def timed_async(*args: Any) -> Any:
            started = time.process_time()
            try:
                return await stage(*args)
            finally:
                cpu[name] = cpu.get(name, 0.0) + time.process_time() - started

        return timed_async

    def timed(*args: Any) -> Any:
        started = time.process_time()
        try:
            return stage(*args)
        finally:
            cpu[name] = cpu.get(name, 0.0) + time.process_time() - started

    return timed


async def _one_batch(pipeline: Any, payload: bytes, pb: Any, convert: Any, cpu: dict[str, float]) -> None:
    """One AuthorizeBatch, as the servicer handles it, minus the transport and the batcher."""
    started = time.process_time()
    request = pb.AuthorizeBatchRequest.FromString(payload)
    batch = [convert.authorization(item) for item in request.requests]
    parsed = time.process_time()
    outcomes = await pipeline.run(batch)
    answering = time.process_time()
    responses = [convert.result_to_proto(outcome) for outcome in outcomes]
    pb.AuthorizeBatchResponse(responses=responses).SerializeToString()
    done = time.process_time()
    cpu["parse"] = cpu.get("parse", 0.0) + parsed - started
    cpu["answer"] = cpu.get("answer", 0.0) + done - answering
    unanswered = [o for o in outcomes if not hasattr(o, "response_code")]
    if unanswered:
        raise SystemExit(f"the pipeline did not answer {len(unanswered)} items, e.g. {unanswered[0]!r}")


async def _redis_command_usec(urls: Sequence[str]) -> dict[str, float]:
    """Microseconds these Redis servers have spent in each command so far, together
    (INFO commandstats; a cluster's primaries each keep their own)."""
    import redis.asyncio as aioredis

    spent: dict[str, float] = {}
    for url in urls:
        client = aioredis.Redis.from_url(url)
        try:
            stats = await client.info("commandstats")
        finally:
            await client.aclose()
        for name, row in stats.items():
            command = name.removeprefix("cmdstat_")
            spent[command] = spent.get(command, 0.0) + float(row["usec"])
    return spent


async def _store_snapshot(redis: tuple[int, ...], postgres: tuple[int, ...], urls: Sequence[str]) -> dict[str, Any]:
    """The stores' CPU seconds so far (each redis-server's too) and Redis's command clock."""
    groups = {"redis": redis, "postgres": postgres, **{str(pid): (pid,) for pid in redis}}
    spent = harness.cpu_seconds(groups)
    return {
        "redis": spent["redis"],
        "each_redis": [spent[str(pid)] for pid in redis],
        "postgres": spent["postgres"],
        "commands": await _redis_command_usec(urls),
    }


def _stores_per_auth(before: dict[str, Any], after: dict[str, Any], items: int, *, busiest: bool) -> dict[str, float]:
    """The stores' CPU µs per authorization between two snapshots."""
    spent_us = {name: (after[name] - before[name]) / items * 1e6 for name in ("redis", "postgres")}
    # Redis's own clock, from INFO commandstats: time inside the scripts, and the part
    # of it spent in the commands they run; the rest is Lua and JSON decoding.
    commands_before, commands_after = before["commands"], after["commands"]
    spent = {name: commands_after.get(name, 0.0) - commands_before.get(name, 0.0) for name in commands_after}
    spent_us["redis_scripts"] = spent.get("evalsha", 0.0) / items
    spent_us["redis_script_commands"] = sum(spent.get(name, 0.0) for name in SCRIPT_COMMANDS) / items
    if busiest:
        each = zip(before["each_redis"], after["each_redis"], strict=True)
        spent_us["redis_busiest"] = max(end - start for start, end in each) / items * 1e6
    return spent_us


def _store_pids() -> tuple[tuple[int, ...], tuple[int, ...]]:
    pids = harness.store_pids()
    redis = tuple(pid for pid in pids if _name(pid) == "redis-server")
    return redis, tuple(pid for pid in pids if pid not in redis)


def _name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


if __name__ == "__main__":
    sys.exit(main())
