"""The built-in plugins as the registry (and so the control plane) sees them: names, Kong
priorities, defaults, and config errors with their locations through the CP's plugin API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from dataplane.gateway_config import ConfigError, GatewayConfig, normalise_declarative
from dataplane.plugins.host import PluginHost
from dataplane.plugins.registry import plugin_classes, validate_plugin_config
from dataplane.plugins.runtime import build_chains
from tests.controlplane.conftest import api, clock, control_plane

__all__ = ["api", "clock", "control_plane"]  # the control plane's fixtures, used here

MINIMAL: dict[str, dict[str, Any]] = {
    "correlation-id": {},
    "cors": {},
    "http-log": {"http_endpoint": "http://collector.internal/logs"},
    "ip-restriction": {"deny": ["203.0.113.0/24"]},
    "key-auth": {},
    "rate-limiting": {"minute": 60},
    "request-size-limiting": {},
    "request-termination": {},
    "request-transformer": {},
    "response-transformer": {},
}


def test_built_ins_and_kong_priorities() -> None:
    assert {name: cls.priority for name, cls in plugin_classes().items()} == {
        "correlation-id": 100001,
        "cors": 2000,
        "key-auth": 1250,
        "ip-restriction": 990,
        "request-size-limiting": 951,
        "rate-limiting": 910,
        "request-transformer": 801,
        "response-transformer": 800,
        "http-log": 12,
        "request-termination": 2,
    }


@pytest.mark.parametrize("name", sorted(MINIMAL))
def test_defaults_are_filled_and_round_trip(name: str) -> None:
    stored = validate_plugin_config(name, MINIMAL[name])
    assert validate_plugin_config(name, stored) == stored  # what nodes load is what was stored


def test_kong_defaults() -> None:
    assert validate_plugin_config("key-auth", {})["key_names"] == ["apikey"]
    limits = validate_plugin_config("rate-limiting", {"minute": 1})
    assert (limits["limit_by"], limits["policy"], limits["fault_tolerant"]) == (
        "consumer",
        "local",
        True,
    )
    assert validate_plugin_config("correlation-id", {})["header_name"] == "Kong-Request-ID"
    assert validate_plugin_config("request-termination", {})["status_code"] == 503
    size = validate_plugin_config("request-size-limiting", {})
    assert (size["allowed_payload_size"], size["size_unit"]) == (128, "megabytes")
    log = validate_plugin_config("http-log", MINIMAL["http-log"])
    assert (log["method"], log["timeout"], log["queue"]["max_batch_size"]) == ("POST", 10000, 1)


def test_declarative_config_error_points_into_the_plugin() -> None:
    document = {
        "services": [{"name": "s", "url": "http://up", "routes": [{"name": "r", "paths": ["/"]}]}],
        "plugins": [{"name": "ip-restriction", "config": {"allow": ["10.0.0.0/8", "bad"]}}],
    }
    with pytest.raises(ConfigError) as raised:
        GatewayConfig.load(normalise_declarative(document))
    assert raised.value.loc == ("plugins", 0, "config", "allow", 1)
    assert "'bad' is not an IP address or CIDR range" in raised.value.message


@pytest.mark.parametrize(
    ("body", "loc", "fragment"),
    [
        (
            {"name": "ip-restriction", "config": {"allow": ["10.0.0.0/33"]}},
            ["body", "config", "allow", 0],
            "'10.0.0.0/33' is not an IP address or CIDR range",
        ),
        (
            {"name": "ip-restriction", "config": {}},
            ["body", "config"],
            "at least one of 'allow' or 'deny'",
        ),
        (
            {"name": "rate-limiting", "config": {"minute": 5, "colour": "red"}},
            ["body", "config", "colour"],
            "Extra inputs are not permitted",
        ),
        (
            {"name": "key-auth", "config": {"key_names": ["has space"]}},
            ["body", "config", "key_names", 0],
            "should match pattern",
        ),
        (
            {"name": "cors", "config": {"origins": ["(bad"]}},
            ["body", "config", "origins", 0],
            "not a valid regex",
        ),
        (
            {"name": "http-log", "config": {"http_endpoint": "nope"}},
            ["body", "config", "http_endpoint"],
            "must be an http:// or https:// URL",
        ),
    ],
)
async def test_control_plane_rejects_bad_config_with_its_location(
    api: httpx.AsyncClient, body: dict[str, Any], loc: list[Any], fragment: str
) -> None:
    response = await api.post("/api/v1/plugins", json=body)
    assert response.status_code == 422, response.text
    error = response.json()
    assert error["errors"][0]["loc"] == loc, error
    assert fragment in error["message"], error


async def test_control_plane_stores_the_config_with_defaults(api: httpx.AsyncClient) -> None:
    response = await api.post(
        "/api/v1/plugins", json={"name": "rate-limiting", "config": {"hour": 100}}
    )
    assert response.status_code == 201, response.text
    config = response.json()["config"]
    assert config["hour"] == 100
    assert config["error_message"] == "API rate limit exceeded"
    schema = await api.get("/api/v1/plugins/schema/rate-limiting")
    assert schema.status_code == 200
    assert schema.json()["properties"]["limit_by"]["default"] == "consumer"


@pytest.mark.parametrize(
    ("name", "config", "header_filter"),
    [
        ("correlation-id", {}, False),
        ("correlation-id", {"echo_downstream": True}, True),
        ("rate-limiting", {"minute": 60}, True),
        ("rate-limiting", {"minute": 60, "hide_client_headers": True}, False),
    ],
)
async def test_a_phase_a_plugin_does_nothing_in_is_left_out_of_its_chain(
    name: str, config: dict[str, Any], header_filter: bool
) -> None:
    document = {
        "services": [{"name": "s", "url": "http://up", "routes": [{"name": "r", "paths": ["/"]}]}],
        "plugins": [{"name": name, "config": config}],
    }
    host = PluginHost(node_id="dp-test")
    try:
        chains, _ = build_chains(GatewayConfig.load(normalise_declarative(document)), host)
    finally:
        await host.close()
    (chain,) = chains.values()
    assert [p.name for p in chain.access] == [name]  # both still count or set their ID
    assert [p.name for p in chain.header_filter] == ([name] if header_filter else [])
