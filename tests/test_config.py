"""Configuration: TOML, environment and flags; every error names its key."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from switch import config


def test_defaults_are_the_embedded_store_set() -> None:
    settings = config.load()
    assert settings.stores.embedded
    assert settings.idempotency.retention_seconds == 86_400


def test_file_then_environment_then_flags(tmp_path: Path) -> None:
    path = tmp_path / "switch.toml"
    path.write_text(
        '[server]\nport = 7000\nhost = "0.0.0.0"\n'
        '[[limits]]\nscope = "instrument"\nwindow_seconds = 3600\nmax_count = 7\nmax_amount = 500000\n'
    )
    environ = {"SWITCH_PORT": "7100", "SWITCH_LOG_LEVEL": "debug", "SWITCH_PLAINTEXT": "1"}
    settings = config.load(path, environ, {"server": {"workers": 1}})
    assert settings.server.port == 7100
    assert settings.server.host == "0.0.0.0"
    assert settings.server.plaintext  # beyond loopback, plaintext only when said
    assert settings.log_level == "DEBUG"
    (limit,) = settings.limits
    assert limit == config.Limit(config.LimitScope.INSTRUMENT, 3600, 7, 500000)


@pytest.mark.parametrize(("text", "expected"), [("true", True), ("1", True), ("off", False), (" False ", False)])
def test_a_switch_from_the_environment(text: str, expected: bool) -> None:
    environ = {"SWITCH_REDIS_URL": "redis://r:7000", "SWITCH_POSTGRES_DSN": "postgresql://p/x", "SWITCH_PLAINTEXT": "1"}
    settings = config.load(None, {**environ, "SWITCH_REDIS_CLUSTER": text})
    assert settings.stores.redis_cluster is expected


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ({"batcher": {"max_items": 0}}, "batcher.max_items"),
        ({"batcher": {"max_items": "many"}}, "batcher.max_items"),
        ({"batcher": {"surprise": 1}}, "batcher.surprise"),
        ({"nonsense": {}}, "nonsense"),
        ({"server": {"port": 70000}}, "server.port"),
        ({"limits": [{"scope": "planet", "window_seconds": 1, "max_count": 1}]}, "limits[0].scope"),
        ({"limits": [{"scope": "merchant", "window_seconds": 0, "max_count": 1}]}, "limits[0].window_seconds"),
        ({"limits": [{"scope": "merchant", "window_seconds": 5}]}, "limits[0]"),
        ({"limits": [{"scope": "merchant", "window_seconds": 5, "max_amount": 1.5}]}, "limits[0].max_amount"),
        ({"stores": {"redis_url": "redis://x"}}, "stores"),
        ({"stores": {"redis_cluster": True}}, "stores.redis_cluster"),
        ({"stores": {"redis_cluster": "maybe"}}, "stores.redis_cluster"),
        ({"stores": {"redis_cluster": 1}}, "stores.redis_cluster"),
        ({"server": {"workers": 2}}, "server.workers"),
        ({"security": {"fingerprint_key_hex": "abcd"}}, "security.fingerprint_key_hex"),
        ({"log_level": "LOUD"}, "log_level"),
        ({"routes": {"card": {}}}, "routes.card.adapter"),
        ({"routes": {"card": {"adapter": "simulated", "surprise": 1}}}, "routes.card.surprise"),
        ({"routes": {"card": {"adapter": "simulated", "options": 3}}}, "routes.card.options"),
        (
            {"routing": {"rules": [{"name": "x", "candidates": [{"route": "zzz"}]}]}},
            "routing.rules[0].candidates[0].route",
        ),
        ({"routing": {"order_by": "luck"}}, "routing.order_by"),
        ({"idempotency": {"lease_seconds": 3}, "adapters": {"timeout_ms": 2000}}, "idempotency.lease_seconds"),
    ],
)
def test_errors_name_the_key(raw: dict[str, object], key: str) -> None:
    with pytest.raises(config.ConfigError) as error:
        config.from_mapping(raw)
    assert str(error.value).startswith(key)


def test_unreadable_file_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[server\n")
    with pytest.raises(config.ConfigError, match=r"bad\.toml"):
        config.load(path)


SIMULATED = {"adapter": "simulated"}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"routes": {"my-rail": SIMULATED}}, r"routes: card authorizations have no route; .*add \[routes\.card\]"),
        (
            {"routes": {"my-rail": SIMULATED, "card": SIMULATED}},
            r"routes: account payments on rail 'instant' have no route; .*add \[routes\.instant\]",
        ),
        (  # a rule for some cards only leaves the others without a route
            {
                "routes": {"my-rail": SIMULATED, "instant": SIMULATED},
                "routing": {"rules": [{"name": "big", "min_amount": 100, "candidates": [{"route": "my-rail"}]}]},
            },
            r"routes: card authorizations have no route",
        ),
    ],
)
def test_a_routes_table_must_still_route_cards_and_the_instant_rail(raw: dict[str, object], message: str) -> None:
    with pytest.raises(config.ConfigError, match=message):
        config.from_mapping(raw)


def test_rules_that_take_every_card_and_instant_payment_stand_for_the_default_routes() -> None:
    rules = [
        {"name": "cards", "source": "card", "candidates": [{"route": "my-rail"}]},
        {"name": "instant", "rail": "instant", "candidates": [{"route": "my-rail"}]},
    ]
    settings = config.from_mapping({"routes": {"my-rail": SIMULATED}, "routing": {"rules": rules}})
    assert [route.name for route in settings.routes] == ["my-rail"]


def test_the_adapter_templates_routes_are_accepted() -> None:
    """adapters/template/README.md, step 5, as a user pastes it."""
    readme = (Path(__file__).resolve().parent.parent / "adapters" / "template" / "README.md").read_text()
    step = readme[readme.index("## 5. Enable it") :]
    block = step[step.index("```toml\n") + len("```toml\n") : step.index("```\n", step.index("```toml"))]
    settings = config.from_mapping(tomllib.loads(block))
    assert {route.name for route in settings.routes} == {"my-rail", "card", "instant"}


# --- the port's transport: TLS, unless plaintext is said or it is the demo on loopback ---------

PRODUCTION = {"redis_url": "redis://127.0.0.1:6379/0", "postgres_dsn": "postgresql://postgres@127.0.0.1/test"}
TLS = {"cert_file": "server.pem", "key_file": "server.key", "require_client_cert": False}
PLAINTEXT_REFUSED = (
    "server.tls: the switch serves TLS unless it is the embedded default on loopback; "
    "configure [server.tls], or set server.plaintext = true behind a TLS-terminating sidecar"
)


@pytest.mark.parametrize(
    "raw",
    [
        {"stores": PRODUCTION},
        {"stores": PRODUCTION, "server": {"host": "127.0.0.1"}},  # loopback is not enough with production stores
        {"server": {"host": "0.0.0.0"}},  # the embedded default, reachable from other machines
        {"server": {"host": "10.0.0.7", "plaintext": False}},
    ],
)
def test_plaintext_beyond_the_demo_on_loopback_is_refused(raw: dict[str, object]) -> None:
    with pytest.raises(config.ConfigError) as error:
        config.from_mapping(raw)
    assert str(error.value) == PLAINTEXT_REFUSED
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost"])
def test_the_embedded_default_on_loopback_is_plaintext(host: str) -> None:
    settings = config.from_mapping({"server": {"host": host}})
    assert settings.tls is None and not settings.server.plaintext and settings.stores.embedded


@pytest.mark.parametrize(
    ("raw", "environ"),
    [
        ({"stores": PRODUCTION, "server": {"plaintext": True}}, {}),
        ({"stores": PRODUCTION}, {"SWITCH_PLAINTEXT": "true"}),
        ({"server": {"host": "0.0.0.0"}}, {"SWITCH_PLAINTEXT": "1"}),
    ],
)
def test_plaintext_said_explicitly_is_accepted(raw: dict[str, dict[str, object]], environ: dict[str, str]) -> None:
    settings = config.load(None, environ, raw)
    assert settings.server.plaintext and settings.tls is None


def test_tls_is_accepted_with_production_stores_and_beyond_loopback() -> None:
    settings = config.from_mapping({"stores": PRODUCTION, "server": {"host": "0.0.0.0", "tls": TLS}})
    assert settings.tls is not None and not settings.server.plaintext


def test_tls_and_plaintext_together_are_refused() -> None:
    with pytest.raises(config.ConfigError, match=r"^server\.plaintext: \[server\.tls\] is configured; remove one"):
        config.from_mapping({"stores": PRODUCTION, "server": {"plaintext": True, "tls": TLS}})


@pytest.mark.parametrize(
    "server",
    [
        {"tls": TLS},  # the identity comes from the client's certificate, never a header
        {"host": "0.0.0.0", "plaintext": True},  # anyone who reaches the port could set the header
        {"host": "10.0.0.7", "plaintext": True},
    ],
)
def test_a_trusted_identity_header_only_on_plaintext_loopback(server: dict[str, object]) -> None:
    raw = {"server": server, "security": {"trusted_identity_header": "x-client-id"}}
    with pytest.raises(config.ConfigError, match=r"^security\.trusted_identity_header: only for a plaintext listener"):
        config.from_mapping(raw)


def test_a_trusted_identity_header_behind_a_sidecar_on_loopback() -> None:
    raw = {"stores": PRODUCTION, "server": {"plaintext": True}, "security": {"trusted_identity_header": "x-client-id"}}
    assert config.from_mapping(raw).security.trusted_identity_header == "x-client-id"


def test_the_readmes_risk_tables_load() -> None:
    """README "Configuration": the [kyc], [fraud_model] and [aml] tables as a user copies them."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = readme[readme.index("### Configuration") :].split("```toml", 1)[1].split("```", 1)[0]
    raw = tomllib.loads(block)
    settings = config.from_mapping({table: raw[table] for table in ("kyc", "fraud_model", "aml")})
    policy = settings.policy
    assert policy.kyc is not None and policy.kyc.default_tier == "class_i"
    assert policy.fraud_model is not None and policy.fraud_model.drift_window == 10_000
    assert policy.aml is not None and policy.aml.threshold_usd == 10_000.0
