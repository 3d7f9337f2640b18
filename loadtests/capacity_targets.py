"""The servers the capacity benchmark measures (loadtests/capacity.py):

    echo            the bare echo (loadtests/echo.py): the ceiling for this machine and
                    this load generator.
    <stores> (a)    `python -m switch serve --config loadtests/capacity.toml`: the switch's
                    own work, cards and accounts answered by the in-process simulated issuer.
    <stores> (b)    the same with the `card` route on the real ISO 8583 adapter, talking to
                    `python -m switch sim card` in a process of its own.

on the embedded stores (memory + SQLite, a file per switch) and on production ones (Redis
+ PostgreSQL, in the run's schema and key prefix). With a TLS folder (`switch tls init`)
the echo and every switch row come again over mutual TLS ("echo (mTLS)", "<stores> (a)
simulated, mTLS", ...): the servers serve the folder's server certificate, the switch
grants the folder's client identity what the load calls, and the load generator presents
the client certificate. An mTLS row is measured against the echo over mTLS.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loadtests import harness, servers

if TYPE_CHECKING:
    from switch.cli.demo.tls import TlsFolder

_CARD_ROUTE = re.compile(r"^\[routes\.card\]\n(?:(?!\[).*\n?)*", re.MULTILINE)


TLS_SUFFIX = "-tls"  # the key of an mTLS row: "echo-tls", "embedded-a-tls", ...


@dataclass
class Target:
    server: servers.Server
    sim: servers.Server | None = None  # (b): the ISO 8583 simulator this switch talks to

    @property
    def key(self) -> str:  # "echo", "embedded-a", ...
        return self.server.name

    @property
    def baseline(self) -> str:  # the echo it is measured against: over the same transport
        return "echo" + (TLS_SUFFIX if self.server.tls_dir is not None else "")

    @property
    def label(self) -> str:  # "embedded (a) simulated", ...
        return self.server.label

    def exited(self) -> str | None:
        """Which of its processes has exited, and how, or None while all run."""
        for server in filter(None, (self.server, self.sim)):
            code = server.exited()
            if code is not None:
                return f"{server.label} exited with {code}"
        return None


def targets(
    folder: Path,
    *,
    config: Path,
    stores: Sequence[str],
    rows: Sequence[str],
    production_env: dict[str, str],
    tls_dir: Path | None = None,
) -> list[Target]:
    """The echo, then each store set's rows, in the order the table shows them; with
    tls_dir, all of them again over mutual TLS."""
    base_env = harness.clean_env()
    key_file = harness.write_tokenization_keys(folder / "tokenization-keys.json")
    base_env["SWITCH_TOKENIZATION_KEY_FILE"] = str(key_file)
    config_a = config.read_text()
    found = [Target(servers.echo(folder))]
    found += _switches(folder, config_a, stores, rows, base_env=base_env, production_env=production_env, tls=None)
    if tls_dir is not None:
        from switch.cli.demo.tls import TlsFolder

        tls = TlsFolder.open(tls_dir)
        name = "echo" + TLS_SUFFIX
        found.append(Target(servers.echo(folder, name=name, label="echo (mTLS)", tls_dir=tls.path)))
        found += _switches(folder, config_a, stores, rows, base_env=base_env, production_env=production_env, tls=tls)
    return found


def _switches(
    folder: Path,
    config_a: str,
    stores: Sequence[str],
    rows: Sequence[str],
    *,
    base_env: dict[str, str],
    production_env: dict[str, str],
    tls: TlsFolder | None,
) -> list[Target]:
    """Each store set's rows, over mutual TLS with tls's files when given."""
    found = []
    suffix = TLS_SUFFIX if tls else ""
    for store in stores:
        store_env = dict(base_env, **(production_env if store == "production" else {}))
        if tls:
            store_env.pop("SWITCH_PLAINTEXT", None)  # [server.tls] instead
        for row in rows:
            key = f"{store}-{row}{suffix}"
            env = dict(store_env)
            if store == "embedded":  # a journal file each: SQLite's is one process's
                env["SWITCH_SQLITE_PATH"] = str(folder / "embedded" / f"{key}.sqlite3")
            sim = None
            text = config_a
            if row == "b":
                label = f"ISO 8583 simulator for {store} (b){', mTLS' if tls else ''}"
                sim = servers.simulator(dict(base_env), folder / f"{key}-sim.log", name=f"{key}-sim", label=label)
                text = config_b(config_a, sim.port)
            if tls:
                text += tls.server_toml()
            config_path = folder / f"{key}.toml"
            config_path.write_text(text)
            label = f"{store} (a) simulated" if row == "a" else f"{store} (b) ISO 8583"
            label += ", mTLS" if tls else ""
            log = folder / f"{key}.log"
            switch = servers.switch(config_path, env, log, name=key, label=label, tls_dir=tls.path if tls else None)
            found.append(Target(switch, sim))
    return found


def config_b(config_a: str, sim_port: int) -> str:
    """Row (b)'s configuration: row (a)'s with the `card` route on the ISO 8583 adapter."""
    block = (
        "[routes.card]\n"
        'adapter = "card_iso8583"\n'
        'rail = "card"\n'
        f'options = {{ host = "127.0.0.1", port = {sim_port} }}\n\n'
    )
    text, replaced = _CARD_ROUTE.subn(block, config_a, count=1)
    parsed = tomllib.loads(text)
    card = parsed.get("routes", {}).get("card", {})
    if replaced != 1 or card.get("adapter") != "card_iso8583":
        raise SystemExit("the configuration of row (a) has no [routes.card] table to put the ISO 8583 adapter on")
    return text


def start_all(found: Sequence[Target]) -> None:
    """The simulators first (the (b) switches connect to them as they start), then the servers."""
    sims = [target.sim for target in found if target.sim is not None]
    for sim in sims:
        sim.start()
    for sim in sims:
        servers.wait_listening(sim)
    for target in found:
        target.server.start()
    for target in found:
        servers.wait_healthy(target.server)


def stop_all(found: Sequence[Target]) -> None:
    for target in found:
        target.server.stop(timeout=15)
        if target.sim is not None:
            target.sim.stop(timeout=15)


def print_log_tails(found: Sequence[Target]) -> None:
    for target in found:
        target.server.print_log_tails()
        if target.sim is not None:
            target.sim.print_log_tails()
