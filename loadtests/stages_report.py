"""The stage profile's table (loadtests/stages.py): CPU microseconds per authorization of
each pipeline stage and of the stores, and the ceilings they imply."""

from __future__ import annotations

from typing import Any

from loadtests import payloads, tables

TARGET_RATE = 50_000  # the capacity issue's AuthorizeBatch target, authorizations/s

# The pipeline's stages, in the order run() calls them (AuthorizationPipeline methods).
PIPELINE_STAGES = (
    ("_tokenize", "tokenize (FF1 token, HMAC fingerprint, request hash, ids)"),
    ("_limit_counters", "risk: the velocity counters, KYC caps and activity each authorization moves"),
    ("_claim", "claim keys + counters: one Redis script call, one per primary and step on a Cluster (client side)"),
    ("_skip_journaled", "journal read of keys already held: one PostgreSQL query"),
    ("_screen", "screen: sanctions, every party against the list (--sanctions; warm verdict cache)"),
    ("_assess", "assess: fraud score (Cython), drift, AML rules over the activity (--risk)"),
    ("_route", "route (plan, breakers)"),
    ("_price", "price: one fee-engine call (Cython)"),
    ("_call_adapters", "intents + adapter: one PostgreSQL statement, then the in-process simulated issuer"),
    ("_commit", "commit: rows, one PostgreSQL COPY transaction, one Redis completion"),
    ("_resolve", "resolve: each item's stage -> its outcome"),
)
STAGES = (
    ("parse", "parse: AuthorizeBatchRequest -> Authorizations"),
    *PIPELINE_STAGES,
    ("answer", "answer: results -> AuthorizeBatchResponse bytes"),
)


def render_markdown(report: dict[str, Any]) -> str:
    meta, switch, stores = report["meta"], report["switch_us"], report["stores_us"]
    switch_total = sum(switch.get(name, 0.0) for name, _ in STAGES)
    store_total = stores["redis"] + stores["postgres"]
    everything = switch_total + store_total
    cores = meta["cores"]
    rows = [["switch", label, f"{switch.get(name, 0.0):.1f}"] for name, label in STAGES]
    rows += [
        ["switch", "**total, one process**", f"**{switch_total:.1f}**"],
        ["Redis", f"redis-server{'s, all primaries' if 'redis_busiest' in stores else ''}", f"{stores['redis']:.1f}"],
        *redis_detail(stores),
        ["PostgreSQL", "all its processes (backends, WAL writer, ...)", f"{stores['postgres']:.1f}"],
        ["all", "**switch + stores**", f"**{everything:.1f}**"],
    ]
    lines = [
        f"### Stages ({meta['date']})",
        "",
        f"- machine: {meta['machine']}; Python {meta['python']}",
        f"- command: `{meta['command']}`",
        f"- {meta['batches']} batches of {meta['batch']}, one at a time, on {_redis_name(meta)} + PostgreSQL;"
        f" {_merchants(meta)}; wall {meta['wall_us_per_auth']:.1f} µs/auth",
        "",
        *tables.markdown(("where", "stage", "CPU µs/auth"), rows, "llr"),
        "",
        "Ceilings these imply, before the gRPC transport, the batcher and any load generator:",
        "",
        f"- one switch process: {1e6 / switch_total:,.0f} auth/s",
        f"- this machine's {cores} cores running the switch and its stores: {cores * 1e6 / everything:,.0f} auth/s",
        f"- {TARGET_RATE:,} auth/s on {cores} cores needs at most {cores * 1e6 / TARGET_RATE:.1f} µs/auth"
        " for everything",
    ]
    if "redis_busiest" in stores:
        busiest = stores["redis_busiest"]  # /proc counts 10 ms ticks: a tiny run may read none
        ceiling = f"{1e6 / busiest:,.0f} auth/s" if busiest else "not measured (under one clock tick)"
        lines.append(f"- the cluster, bound by its busiest primary (each runs scripts on one thread): {ceiling}")
    return "\n".join(lines)


def _merchants(meta: dict[str, Any]) -> str:
    count = meta.get("merchants", payloads.MERCHANTS)
    return f"{count} merchant{'' if count == 1 else 's'}"


def _redis_name(meta: dict[str, Any]) -> str:
    primaries = meta.get("redis_cluster", 0)
    return f"a Redis Cluster of {primaries} primaries" if primaries else "Redis"


def redis_detail(stores: dict[str, float]) -> list[list[str]]:
    """The scripts' share of redis-server's CPU, by Redis's own clock (not added to the totals)."""
    if "redis_scripts" not in stores:
        return []
    scripts, commands = stores["redis_scripts"], stores["redis_script_commands"]
    busiest = stores.get("redis_busiest")
    return [
        *([["Redis", "of which, the busiest primary", f"{busiest:.1f}"]] if busiest is not None else []),
        ["Redis", "of which, inside the two scripts (Redis's clock)", f"{scripts:.1f}"],
        ["Redis", "of which, the scripts' own work (Lua, JSON decoding)", f"{scripts - commands:.1f}"],
        ["Redis", "of which, the commands the scripts run (SET, GET, INCRBY, ...)", f"{commands:.1f}"],
    ]
