"""`switch serve` as a new operator meets it: every start-up error is one line naming
the setting, printed once (by the first worker, which starts alone), exit status 2;
the README's production path starts on the first try."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switch import config
from switch.v1 import switch_pb2_grpc
from tests.conftest import FINGERPRINT_KEY, POSTGRES_DSN, REDIS_URL, drop_production_state
from tests.test_serve import free_port, request, wait_until_serving

ROOT = Path(__file__).resolve().parent.parent
BOTH_DEFAULT_ROUTES = '[routes.card]\nadapter = "simulated"\n[routes.instant]\nadapter = "simulated"\n'


@pytest.fixture
def production(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a production switch with its own key prefix and schema (no keys),
    plaintext as behind a TLS-terminating sidecar."""
    unique = os.urandom(4).hex()
    env = dict(os.environ)
    env.update(
        SWITCH_REDIS_URL=REDIS_URL,
        SWITCH_POSTGRES_DSN=POSTGRES_DSN,
        SWITCH_POSTGRES_SCHEMA=f"test_{unique}",
        SWITCH_KEY_PREFIX=f"test:{unique}",
        SWITCH_PLAINTEXT="true",
    )
    for variable in (
        "SWITCH_FINGERPRINT_KEY",
        "SWITCH_FINGERPRINT_KEY_FILE",
        "SWITCH_TOKENIZATION_KEY_FILE",
        "SWITCH_AUDIT_SIGNING_KEY_FILE",
    ):
        env.pop(variable, None)
    yield env
    settings = config.load(None, env)
    asyncio.run(drop_production_state(settings))


def keys_in(folder: Path, env: dict[str, str]) -> dict[str, str]:
    subprocess.run([sys.executable, "-m", "switch", "keys", "init", "--dir", str(folder)], check=True, env=env)
    return {
        **env,
        "SWITCH_FINGERPRINT_KEY_FILE": str(folder / "fingerprint.key"),
        "SWITCH_TOKENIZATION_KEY_FILE": str(folder / "token-keys.json"),
        "SWITCH_AUDIT_SIGNING_KEY_FILE": str(folder / "audit-signing.key"),
    }


def start(env: dict[str, str], tmp_path: Path, toml: str = "", *args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "switch", "serve", "--workers", "2", "--port", str(free_port()), *args]
    if toml:
        (tmp_path / "switch.toml").write_text(toml)
        command += ["--config", str(tmp_path / "switch.toml")]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60, check=False)


def assert_refused_once(result: subprocess.CompletedProcess[str], line: str) -> None:
    """Exit status 2 and exactly one line on stderr, matching line; no traceback."""
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert re.fullmatch(line + r"\n", result.stderr), result.stderr
    assert "Traceback" not in result.stderr


def test_no_fingerprint_key(production: dict[str, str], tmp_path: Path) -> None:
    assert_refused_once(
        start(production, tmp_path),
        r"configuration error: security\.fingerprint_key_file: required with Redis and PostgreSQL .*switch keys init.*",
    )


def test_a_fingerprint_key_file_that_is_missing(production: dict[str, str], tmp_path: Path) -> None:
    env = {**production, "SWITCH_FINGERPRINT_KEY_FILE": str(tmp_path / "absent.key")}
    assert_refused_once(
        start(env, tmp_path), r"configuration error: security\.fingerprint_key_file: cannot read .*absent\.key: .*"
    )


def test_no_tokenization_keys(production: dict[str, str], tmp_path: Path) -> None:
    env = {**production, "SWITCH_FINGERPRINT_KEY": FINGERPRINT_KEY}
    assert_refused_once(start(env, tmp_path), r"configuration error: tokenization: required with Redis and .*")


def test_a_key_file_others_may_read(production: dict[str, str], tmp_path: Path) -> None:
    env = keys_in(tmp_path / "keys", production)
    (tmp_path / "keys" / "token-keys.json").chmod(0o644)
    assert_refused_once(
        start(env, tmp_path), r"configuration error: tokenization\.key_file: .* is mode 0644; key files must be 0600.*"
    )


def test_an_adapter_that_is_not_installed(production: dict[str, str], tmp_path: Path) -> None:
    env = keys_in(tmp_path / "keys", production)
    toml = BOTH_DEFAULT_ROUTES + '[routes.x]\nadapter = "no_such_adapter"\n'
    assert_refused_once(
        start(env, tmp_path, toml), r"configuration error: routes\.x\.adapter: no installed adapter named 'no_such_\w+'"
    )


def test_an_adapter_refusing_its_options(production: dict[str, str], tmp_path: Path) -> None:
    env = keys_in(tmp_path / "keys", production)
    toml = BOTH_DEFAULT_ROUTES + '[routes.x]\nadapter = "card_iso8583"\n'
    assert_refused_once(
        start(env, tmp_path, toml), r"configuration error: routes\.x\.options: adapter 'x' needs a port option.*"
    )


def test_a_port_that_is_not_a_number(tmp_path: Path) -> None:
    (tmp_path / "switch.toml").write_text('[server]\nport = "abc"\n')
    command = [sys.executable, "-m", "switch", "serve", "--workers", "2", "--config", str(tmp_path / "switch.toml")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert_refused_once(result, r"configuration error: server\.port: must be an integer")


def test_a_route_added_alone_names_the_dropped_default(production: dict[str, str], tmp_path: Path) -> None:
    """The adapter template's step: [routes.my-rail] alone would drop card and instant."""
    env = keys_in(tmp_path / "keys", production)
    toml = '[routes.my-rail]\nadapter = "simulated"\n'
    assert_refused_once(
        start(env, tmp_path, toml),
        r"configuration error: routes: card authorizations have no route; .* add \[routes\.card\] .*",
    )


@pytest.mark.parametrize(
    ("variable", "value", "line"),
    [
        ("SWITCH_REDIS_URL", "redis://127.0.0.1:1/0", r"start-up error: stores\.redis_url: Redis does not answer: .*"),
        (
            "SWITCH_POSTGRES_DSN",
            "postgresql://postgres@127.0.0.1:1/test",
            r"start-up error: stores\.postgres_dsn: PostgreSQL does not answer: .*",
        ),
    ],
)
def test_a_store_that_does_not_answer(
    production: dict[str, str], tmp_path: Path, variable: str, value: str, line: str
) -> None:
    env = {**keys_in(tmp_path / "keys", production), variable: value}
    assert_refused_once(start(env, tmp_path), line)


def test_keys_init_writes_private_files_and_never_replaces_them(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    command = [sys.executable, "-m", "switch", "keys", "init", "--dir", str(folder)]
    subprocess.run(command, check=True, capture_output=True)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    for name in ("fingerprint.key", "token-keys.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o600
    before = (folder / "fingerprint.key").read_bytes()
    again = subprocess.run(command, capture_output=True, text=True, check=False)
    assert_refused_once(again, r"configuration error: keys init: .*fingerprint\.key exists; keys are never replaced.*")
    assert (folder / "fingerprint.key").read_bytes() == before


def test_the_readmes_production_path_starts(production: dict[str, str], tmp_path: Path) -> None:
    """README "Production": keys init, tls init, then serve examples/production.toml with
    two workers, from the working folder the relative key and certificate paths of the
    example are resolved against; a client of tls init's files calls it over mutual TLS."""
    readme = (ROOT / "README.md").read_text()
    keys = ".venv/bin/switch keys init --dir switch-data/keys"
    tls = ".venv/bin/switch tls init --dir switch-data/tls"
    serve = ".venv/bin/switch serve --config examples/production.toml --workers 2"
    assert all(command in readme for command in (keys, tls, serve)), "the README's production commands changed"
    for init in (keys, tls):
        command = [sys.executable, "-m", "switch", *init.split()[1:]]
        subprocess.run(command, cwd=tmp_path, env=production, check=True, capture_output=True)
    port = free_port()
    command = [sys.executable, "-m", "switch", *serve.split()[1:]]
    command[command.index("examples/production.toml")] = str(ROOT / "examples" / "production.toml")
    env = {**production, "SWITCH_PORT": str(port), "SWITCH_METRICS_PORT": str(free_port())}
    del env["SWITCH_PLAINTEXT"]  # the example serves mutual TLS
    files = tmp_path / "switch-data" / "tls"
    credentials = grpc.ssl_channel_credentials(
        (files / "ca.pem").read_bytes(), (files / "client.key").read_bytes(), (files / "client.pem").read_bytes()
    )
    # Its own session: a failing test kills the workers too, not only their parent.
    process = subprocess.Popen([*command], cwd=tmp_path, env=env, stderr=subprocess.PIPE, start_new_session=True)
    try:
        with grpc.secure_channel(f"127.0.0.1:{port}", credentials) as channel:
            wait_until_healthy(channel)
            answer = switch_pb2_grpc.SwitchStub(channel).Authorize(request("readme-production"), timeout=10)
        assert answer.response_code == "00"
        assert answer.fee.minor_units > 0  # the example's fee schedule is in force
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError):
            switch_pb2_grpc.SwitchStub(channel).Authorize(request("readme-plaintext"), timeout=2)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def wait_until_healthy(channel: grpc.Channel, seconds: float = 20.0) -> None:
    """Until the switch behind channel (of any transport) answers SERVING to a health check."""
    deadline = time.monotonic() + seconds
    stub = health_pb2_grpc.HealthStub(channel)
    while True:
        try:
            if stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status == health_pb2.HealthCheckResponse.SERVING:
                return
        except grpc.RpcError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.1)


# --- the port's transport ------------------------------------------------------------------

PLAINTEXT_REFUSED = (
    r"configuration error: server\.tls: the switch serves TLS unless it is the embedded default on loopback; "
    r"configure \[server\.tls\], or set server\.plaintext = true behind a TLS-terminating sidecar"
)


def embedded(tmp_path: Path) -> dict[str, str]:
    """No configuration but a journal of its own (SWITCH_NO_EXTENSIONS, not configuration, goes through)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWITCH_") or k == "SWITCH_NO_EXTENSIONS"}
    return {**env, "SWITCH_SQLITE_PATH": str(tmp_path / "journal.sqlite3")}


def serving_log(env: dict[str, str], *args: str) -> str:
    """Starts `switch serve`, calls it once, stops it; what it logged."""
    port = free_port()
    command = [sys.executable, "-m", "switch", "serve", "--port", str(port), *args]
    env = {**env, "SWITCH_LOG_LEVEL": "INFO"}  # the transport's line is at INFO
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        wait_until_serving(port)
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            answer = switch_pb2_grpc.SwitchStub(channel).Authorize(request("transport"), timeout=10)
        assert answer.response_code == "00"
        process.send_signal(signal.SIGTERM)
        _, log = process.communicate(timeout=15)
        assert process.returncode == 0, log
        return log
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_production_without_tls_or_plaintext_is_refused(production: dict[str, str], tmp_path: Path) -> None:
    env = keys_in(tmp_path / "keys", production)
    del env["SWITCH_PLAINTEXT"]
    assert_refused_once(start(env, tmp_path), PLAINTEXT_REFUSED)


def test_production_with_plaintext_said_starts_and_says_so(production: dict[str, str], tmp_path: Path) -> None:
    log = serving_log(keys_in(tmp_path / "keys", production), "--workers", "2")
    assert "serving plaintext, as server.plaintext says" in log


def test_the_embedded_default_on_loopback_starts_plaintext_and_says_so(tmp_path: Path) -> None:
    log = serving_log(embedded(tmp_path), "--host", "127.0.0.1")
    assert "serving plaintext on loopback (the embedded default)" in log


def test_the_embedded_default_beyond_loopback_is_refused_without_tls(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "switch", "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        env=embedded(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert_refused_once(result, PLAINTEXT_REFUSED)
